"""A Runware REST API emulator: a real HTTP server on loopback, for tests and CI.

In-process::

    with Emulator(latency=0.05, api_key="test-key-123") as emu:
        emu.inject(Fault.status(429, retry_after=1), times=2)
        httpx.post(emu.url, json=[task], headers={"Authorization": "Bearer test-key-123"})
        assert emu.stats.billed == 1

As a process (prints its URL as the first line of stdout, serves until SIGTERM/SIGINT)::

    python -m shotflow.testing.emulator --port 0 [--latency SECONDS] [--api-key KEY] [--strict]
                                        [--capacity N] [--refuse-tags] [--concurrency N]

What it answers on ``POST /v1`` (a JSON array of tasks, ``Authorization: Bearer KEY``)::

    imageInference ─► {"data": [{"taskType", "taskUUID", "imageUUID", "seed", "NSFWContent",
                                 "cost"?, "imageURL" | "imageBase64Data" | "imageDataURI"},
                                ... one item per result (numberResults)]}
                      async: {"data": [{"taskType", "taskUUID"}]} at once, results via getResponse
    imageUpload    ─► {"data": [{"taskType", "taskUUID", "imageUUID", "imageURL"}]}
    getResponse    ─► {"data": [{...result, "status": "success"}, ...]}
                      or {"data": [{"taskType", "taskUUID", "status": "processing"}]}
                      or {"errors": [{..., "status": "error"}]}; an unknown task: code "taskNotFound"
    failures       ─► {"errors": [{"code", "message", "parameter", "taskType", "taskUUID",
                                   "documentation"}]}: HTTP 400/401/402 when every task failed,
                      HTTP 200 with both "data" and "errors" when only some did.

``GET /images/<imageUUID>.<ext>`` serves every image it generated or was given; these are the
``imageURL`` it hands out.

Two modes. The default (lenient) one is convenient for tests of shotflow itself: it checks tasks
with shotflow's own model schemas and lets any task be polled. **Strict mode**
(``Emulator(strict=True)``, ``--strict``) follows Runware's documentation
(``/work/shared/runware/``, API-NOTES.md and the two model specs), not shotflow's assumptions,
so that it can catch where shotflow and the real service differ:

- tasks are checked by hand-written rules taken from the model specs (``_strict_task_errors``),
  not with ``schemas/models/``: unknown parameters, types, ranges, the size table, UUID v4 task
  ids, ``inputs.referenceImages`` (strings; Runway's ``{image, tag}`` objects unless
  ``refuse_tags``), at most 3 references, Turbo's required reference;
- a sync task is not pollable: ``getResponse`` does not know it (``taskNotFound``), even though
  resending its UUID still answers ``conflictTaskUUID``;
- an async task that fails is a ``data`` item ``{"status": "error", "error": {...}}``, not an
  entry of ``errors``; a task still running is a progress item without a ``status`` and
  without an image, but with the imageUUID of the result being worked on
  (``{"taskType", "taskUUID", "imageUUID", "progress": 40}``): not a finished result;
- the results of a task with ``numberResults`` > 1 finish one after another, so they arrive
  over several polls;
- at most ``capacity`` requests are handled at once (default 15, the older SDK's own cap):
  beyond that, HTTP 429 with ``Retry-After``;
- uploaded images are stored at most 2048 px a side (downscaled, as Runware does);
  ``expire_uploads()`` forgets them, after which a task naming one is refused with a 400 whose
  code is not the lenient mode's;
- ``refuse_tags=True``: a task with ``{image, tag}`` references is refused with a 400 about
  ``inputs.referenceImages`` (the spec types it as an array of strings).

Behaviour worth knowing when writing tests against it (both modes unless said):

- Lenient mode validates every ``imageInference`` task with ``catalog.task_errors`` (the model
  schemas in ``schemas/models/``).
- Images are deterministic: the pixels are a function of (model, prompt, width, height, the bytes
  of each reference image, seed), and the seed of result *i* is derived from the first four plus
  *i*. The same task sent twice gives the same bytes (and new imageUUIDs).
- Reference images (``inputs.referenceImages`` or top-level ``referenceImages``, strings or
  ``{image, tag}``) may be imageUUIDs it knows, its own image URLs, data URIs or base64. An
  unknown UUID is HTTP 400 with parameter ``inputs.referenceImages`` (see ``forget_images()``).
  Other URLs are not fetched (no network): the URL text stands in for the image's bytes.
- A ``taskUUID`` it has seen before is answered with code ``conflictTaskUUID`` and not billed
  again; the first task keeps running (lenient mode: it can be polled with getResponse, sync
  tasks too; strict mode: async tasks only).
- Latency is per task and concurrent: a task finishes ``latency`` seconds after its request
  arrived, however many other tasks run. ``concurrency`` caps tasks in flight; excess tasks
  queue (as Runware's per-model queues do) and their clock starts when they get a slot.
- Billing happens when a task is accepted: ``price_per_image × numberResults`` from the catalog.
  With ``balance`` set, a task that would overdraw it is refused with HTTP 402. ``stats.billed_images``
  counts the images billed per task UUID (a task is never billed twice).
- Faults (``Fault``) are armed with ``inject()`` and fire on the next matching requests (request
  faults) or tasks (``task_error``, ``conflict``); with ``probability`` they fire at random
  (seeded by ``Emulator(seed=...)``). Tasks of a faulted request still count as received in
  ``stats``.
- Not emulated: webhooks, ``uploadEndpoint``, ``ttl`` expiry, WebSockets.

Test controls::

    Emulator(latency=0.0, api_key=None, concurrency=None, balance=None, host="127.0.0.1", port=0,
             strict=False, capacity=None, retry_after=1.0, refuse_tags=False, cost_per_task=False, seed=0)
    emu.url, emu.base_url            "http://127.0.0.1:PORT/v1", "http://127.0.0.1:PORT"
    emu.inject(fault, times=1, task_type=None, probability=1.0)   times=None: until clear_faults()
        Fault.status(429, retry_after=1 | "Wed, 21 Oct 2026 07:28:00 GMT", message=..., parameter=...)
        Fault.slow(seconds)                        accepted at once, answered late
        Fault.drop(after_accept=False)             connection closed without an answer
        Fault.malformed(after_accept=False)        200 with a body that is not JSON
        Fault.task_error(match, message, code=..., parameter=..., extra={...})
                                                   one task of a batch fails (prompt substring or UUID)
        Fault.conflict()                           accepted and billed, answered conflictTaskUUID
        task_type: "imageInference" | "imageUpload" | "getResponse" | "download" (GET /images/...)
    emu.clear_faults(), emu.forget_images(), emu.expire_uploads(), emu.expire_results(),
    emu.reset() (counters), emu.balance
    emu.stats → Stats(requests, tasks={taskType: n}, batch_sizes, billed, billed_tasks, images,
                      billed_images={taskUUID: n}, cost, uploads, downloads, faults, throttled,
                      max_in_flight, max_tasks_running, bodies=(every task received, as sent),
                      upload_sizes)
"""

from __future__ import annotations

import argparse
import base64
import binascii
import colorsys
import contextlib
import hashlib
import io
import json
import random
import re
import signal
import socket
import sys
import textwrap
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .. import catalog
from .._resources import font_path

__all__ = ["Emulator", "Fault", "FaultKind", "Stats", "main"]

_DOCS = "https://runware.ai/docs/platform/errors"
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_FORMATS = {"PNG": ("png", "image/png"), "JPG": ("jpg", "image/jpeg"), "WEBP": ("webp", "image/webp")}
_STATUS_CODES = {
    400: "invalidRequest",
    401: "invalidApiKey",
    402: "insufficientCredits",
    403: "accessDenied",
    404: "notFound",
    408: "requestTimeout",
    429: "tooManyRequests",
    500: "internalServerError",
    502: "badGateway",
    503: "serviceUnavailable",
    504: "timeoutProvider",
}


# ── faults ──────────────────────────────────────────────────────────────────────────────────


class FaultKind(Enum):
    STATUS = "status"  # answer with an HTTP status and a Runware error body, tasks not accepted
    SLOW = "slow"  # accept the tasks, answer ``seconds`` late
    DROP = "drop"  # close the connection without an answer
    MALFORMED = "malformed"  # answer 200 with a body that is not JSON (downloads: a truncated body)
    TASK_ERROR = "task_error"  # a per-task error for tasks whose prompt contains ``match`` (or UUID is it)
    CONFLICT = "conflict"  # accept and run the task, but answer conflictTaskUUID

    @property
    def per_task(self) -> bool:
        return self in (FaultKind.TASK_ERROR, FaultKind.CONFLICT)


@dataclass(frozen=True)
class Fault:
    """One kind of misbehaviour; arm it with ``Emulator.inject(fault, times=N, task_type=...)``.

    Build it with the constructors: ``Fault.status(429, retry_after=1)``, ``Fault.slow(2.0)``,
    ``Fault.drop(after_accept=True)``, ``Fault.malformed()``,
    ``Fault.task_error("storm", "provider failed")``, ``Fault.conflict()``.
    """

    kind: FaultKind
    http_status: int = 0
    retry_after: str | None = None  # the Retry-After header, verbatim
    seconds: float = 0.0
    after_accept: bool = False  # drop/malformed: the tasks were accepted (and billed) first
    match: str | None = None
    message: str = ""
    code: str = ""
    parameter: str | list[str] | None = None
    extra: tuple[tuple[str, Any], ...] = ()  # task_error: more fields of the error entry

    @classmethod
    def status(
        cls,
        http_status: int,
        *,
        retry_after: float | str | None = None,
        message: str = "",
        parameter: str | None = None,
    ) -> Fault:
        """Answer ``http_status``; ``retry_after`` in seconds, or an HTTP date string, as is."""
        header = f"{retry_after:g}" if isinstance(retry_after, (int, float)) else retry_after
        text = message or f"the emulator was told to answer {http_status}"
        return cls(FaultKind.STATUS, http_status=http_status, retry_after=header, message=text, parameter=parameter)

    @classmethod
    def slow(cls, seconds: float) -> Fault:
        return cls(FaultKind.SLOW, seconds=seconds)

    @classmethod
    def drop(cls, *, after_accept: bool = False) -> Fault:
        return cls(FaultKind.DROP, after_accept=after_accept)

    @classmethod
    def malformed(cls, *, after_accept: bool = False) -> Fault:
        return cls(FaultKind.MALFORMED, after_accept=after_accept)

    @classmethod
    def task_error(
        cls,
        match: str,
        message: str = "the provider failed to generate the image",
        *,
        code: str = "providerError",
        parameter: str | list[str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Fault:
        """Fail tasks whose positivePrompt contains ``match`` (or whose taskUUID is ``match``).

        The task is accepted, not billed, and fails when it would have finished: in the answer
        of a sync request, or in getResponse for an async one. ``parameter`` (a string or a
        list) and ``extra`` fields go into the error entry as given.
        """
        fields = tuple(sorted((extra or {}).items()))
        return cls(FaultKind.TASK_ERROR, match=match, message=message, code=code, parameter=parameter, extra=fields)

    @classmethod
    def conflict(cls) -> Fault:
        """Answer conflictTaskUUID as if an earlier, lost request had already sent the task."""
        return cls(FaultKind.CONFLICT)


@dataclass
class _Armed:
    fault: Fault
    remaining: int | None  # None: until clear_faults()
    task_type: str | None  # None: any POST /v1; "download": GET /images/...
    probability: float = 1.0  # the chance that a matching request (or task) fires it


# ── stats ───────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Stats:
    """What the emulator saw since it started (or since ``reset()``)."""

    requests: int = 0  # POST /v1 requests, faulted ones included
    tasks: dict[str, int] = field(default_factory=dict)  # tasks received, by taskType
    batch_sizes: tuple[int, ...] = ()  # tasks per POST, in arrival order
    billed: int = 0  # imageInference tasks billed (each at most once)
    billed_tasks: tuple[str, ...] = ()  # their taskUUIDs, in billing order
    images: int = 0  # images billed
    billed_images: dict[str, int] = field(default_factory=dict)  # taskUUID → images billed for it
    cost: float = 0.0  # USD billed
    uploads: int = 0  # imageUpload tasks accepted
    downloads: int = 0  # GET /images/... answered with an image
    faults: int = 0  # injected faults that fired
    throttled: int = 0  # requests answered 429 because ``capacity`` requests were in flight
    max_in_flight: int = 0  # the most POST /v1 requests it was handling at once
    max_tasks_running: int = 0  # the most inference tasks running at once (past the concurrency cap)
    bodies: tuple[dict[str, Any], ...] = ()  # every task received, as sent, in arrival order
    upload_sizes: tuple[tuple[int, int], ...] = ()  # (width, height) of each image uploaded, as received


@dataclass
class _Counters:
    requests: int = 0
    tasks: Counter = field(default_factory=Counter)
    batch_sizes: list[int] = field(default_factory=list)
    billed_tasks: list[str] = field(default_factory=list)
    images: int = 0
    billed_images: Counter = field(default_factory=Counter)
    cost: float = 0.0
    uploads: int = 0
    downloads: int = 0
    faults: int = 0
    throttled: int = 0
    max_in_flight: int = 0
    max_tasks_running: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    upload_sizes: list[tuple[int, int]] = field(default_factory=list)

    def snapshot(self) -> Stats:
        return Stats(
            requests=self.requests,
            tasks=dict(self.tasks),
            batch_sizes=tuple(self.batch_sizes),
            billed=len(self.billed_tasks),
            billed_tasks=tuple(self.billed_tasks),
            images=self.images,
            billed_images=dict(self.billed_images),
            cost=round(self.cost, 6),
            uploads=self.uploads,
            downloads=self.downloads,
            faults=self.faults,
            throttled=self.throttled,
            max_in_flight=self.max_in_flight,
            max_tasks_running=self.max_tasks_running,
            bodies=tuple(self.bodies),
            upload_sizes=tuple(self.upload_sizes),
        )


# ── internal records ───────────────────────────────────────────────────────────────────────


class _Refused(Exception):
    """A task the emulator answers with an error entry instead of a result."""

    def __init__(self, status: int, code: str, message: str, parameter: str | list[str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.parameter = parameter

    def entry(self, task: dict[str, Any]) -> dict[str, Any]:
        return _error_entry(self.code, self.message, self.parameter, task)


@dataclass(frozen=True)
class _Stored:
    data: bytes
    ext: str
    mime: str
    uploaded: bool = False  # given by an imageUpload (expire_uploads forgets these)


@dataclass
class _Job:
    """One accepted imageInference task; ``items``/``error`` are published as it goes: its
    results one by one (strict mode) or all at once, then ``done``."""

    task: dict[str, Any]
    done: threading.Event = field(default_factory=threading.Event)
    items: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    started: float = field(default_factory=time.monotonic)
    expired: bool = False  # expire_results(): polls answer taskExpired

    @property
    def sync(self) -> bool:
        return self.task.get("deliveryMethod", "sync") != "async"


@dataclass
class _Answer:
    data: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # one per error entry

    def refuse(self, refused: _Refused, task: dict[str, Any]) -> None:
        self.errors.append(refused.entry(task))
        self.statuses.append(refused.status)

    def http_status(self) -> int:
        if self.data or not self.errors:
            return 200
        return self.statuses[0] if len(set(self.statuses)) == 1 else 400

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if self.data or not self.errors:
            body["data"] = self.data
        if self.errors:
            body["errors"] = self.errors
        return body


def _error_entry(
    code: str, message: str, parameter: str | list[str] | None, task: dict[str, Any] | None
) -> dict[str, Any]:
    entry: dict[str, Any] = {"code": code, "message": message}
    if parameter is not None:
        entry["parameter"] = parameter
    if task is not None:
        entry["taskType"] = task.get("taskType")
        if task.get("taskUUID") is not None:
            entry["taskUUID"] = task["taskUUID"]
    entry["documentation"] = _DOCS
    return entry


# ── the emulator ────────────────────────────────────────────────────────────────────────────


STRICT_CAPACITY = 15  # requests handled at once in strict mode unless ``capacity`` says otherwise
STRICT_STALE_CODE = "referenceImageNotFound"  # strict mode's answer to a reference it does not know


class Emulator:
    """A Runware REST API on ``127.0.0.1``; use it as a context manager or ``start()``/``stop()``.

    ``latency``: seconds each inference task takes. ``api_key``: the one key accepted (None: any
    non-empty key). ``concurrency``: inference tasks in flight at once (None: no limit; excess
    tasks queue). ``balance``: USD that may be spent (None: no limit); then tasks answer 402.
    ``strict``: follow Runware's documentation rather than shotflow's assumptions (see the module
    docstring). ``capacity``: POST requests handled at once, beyond which it answers 429 with
    ``Retry-After: retry_after`` (None: no limit; strict mode: 15). ``refuse_tags``: refuse
    ``{image, tag}`` references with a 400. ``cost_per_task``: each result's ``cost`` is the
    whole task's (an ambiguity of the docs a client must survive). ``seed``: of the random
    faults (``inject(..., probability=p)``).
    """

    def __init__(
        self,
        *,
        latency: float = 0.0,
        api_key: str | None = None,
        concurrency: int | None = None,
        balance: float | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        strict: bool = False,
        capacity: int | None = None,
        retry_after: float = 1.0,
        refuse_tags: bool = False,
        cost_per_task: bool = False,
        seed: int = 0,
    ):
        self.latency = latency
        self.strict = strict
        self._api_key = api_key
        self._slots = threading.BoundedSemaphore(concurrency) if concurrency else None
        self._balance = balance
        self._spent = 0.0
        self._address = (host, port)
        self._lock = threading.RLock()
        self._counters = _Counters()
        self._faults: list[_Armed] = []
        self._jobs: dict[str, _Job] = {}
        self._images: dict[str, _Stored] = {}
        self._server: _Server | None = None
        self._images_base = ""
        self._thread: threading.Thread | None = None
        self.capacity = capacity if capacity is not None else (STRICT_CAPACITY if strict else None)
        self.retry_after = retry_after
        self.refuse_tags = refuse_tags
        self.cost_per_task = cost_per_task
        self._in_flight = 0
        self._running = 0  # inference tasks between their start (a concurrency slot) and their end
        self._random = random.Random(seed)

    def __repr__(self) -> str:
        state = self.url if self._server else "stopped"
        mode = ", strict" if self.strict else ""
        return f"Emulator({state}, latency={self.latency:g}{mode})"

    # life cycle

    def start(self) -> Emulator:
        if self._server is None:
            self._server = _Server(self._address, self)
            host, port = self._server.socket.getsockname()[:2]
            self._images_base = f"http://{host}:{port}"  # kept after stop() for tasks still finishing
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="runware-emulator", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (images are served below it)."""
        if self._server is None:
            raise RuntimeError("the emulator is not running: use start() or a with block")
        return self._images_base

    @property
    def url(self) -> str:
        """The API endpoint, ``http://127.0.0.1:PORT/v1`` (what RUNWARE_API_URL should be)."""
        return self.base_url + "/v1"

    # test controls

    @property
    def stats(self) -> Stats:
        with self._lock:
            return self._counters.snapshot()

    def reset(self) -> None:
        """Zero the counters and the list of bodies (tasks, images, faults and balance stay)."""
        with self._lock:
            self._counters = _Counters()

    @property
    def balance(self) -> float | None:
        """USD left to spend, or None when unlimited."""
        with self._lock:
            return None if self._balance is None else round(self._balance - self._spent, 6)

    def inject(
        self, fault: Fault, *, times: int | None = 1, task_type: str | None = None, probability: float = 1.0
    ) -> None:
        """Arm ``fault`` for the next ``times`` matching requests (or tasks; None: until cleared).

        Request faults match any ``POST /v1`` (``task_type=None``), only requests holding a task of
        ``task_type``, or image downloads (``task_type="download"``). Task faults (task_error,
        conflict) match imageInference tasks unless ``task_type`` says otherwise. With
        ``probability`` below 1, a matching request fires it only that often (seeded: ``seed``).
        """
        if fault.kind.per_task and task_type is None:
            task_type = "imageInference"
        if task_type == "download" and fault.kind.per_task:
            raise ValueError(f"{fault.kind.value} faults apply to tasks, not to downloads")
        if not 0.0 < probability <= 1.0:
            raise ValueError("probability must be above 0 and at most 1")
        with self._lock:
            self._faults.append(_Armed(fault, times, task_type, probability))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def forget_images(self) -> None:
        """Forget every uploaded and generated image, as if their UUIDs had expired."""
        with self._lock:
            self._images.clear()

    def expire_uploads(self) -> int:
        """Forget every uploaded image (Runware deletes an upload 30 days after its last use);
        generated images stay. Returns how many were forgotten."""
        with self._lock:
            gone = [name for name, stored in self._images.items() if stored.uploaded]
            for name in gone:
                del self._images[name]
        return len(gone)

    def expire_results(self) -> None:
        """Forget the results of every task so far: polling one answers ``taskExpired``."""
        with self._lock:
            for job in self._jobs.values():
                job.expired = True

    # faults

    def _take_fault(self, matches: Any) -> Fault | None:
        """The first armed fault for which ``matches(armed)`` holds, counting it as fired."""
        with self._lock:
            for armed in self._faults:
                if matches(armed) and (armed.probability >= 1.0 or self._random.random() < armed.probability):
                    if armed.remaining is not None:
                        armed.remaining -= 1
                        if armed.remaining <= 0:
                            self._faults.remove(armed)
                    self._counters.faults += 1
                    return armed.fault
        return None

    def _request_fault(self, task_types: set[str]) -> Fault | None:
        return self._take_fault(
            lambda a: (
                not a.fault.kind.per_task
                and a.task_type != "download"
                and (a.task_type is None or a.task_type in task_types)
            )
        )

    def _task_fault(self, task: dict[str, Any]) -> Fault | None:
        def matches(armed: _Armed) -> bool:
            fault = armed.fault
            if not fault.kind.per_task or armed.task_type != task.get("taskType"):
                return False
            if fault.kind is FaultKind.TASK_ERROR:
                return fault.match == task.get("taskUUID") or (
                    fault.match is not None and fault.match in str(task.get("positivePrompt", ""))
                )
            return True

        return self._take_fault(matches)

    # HTTP

    def _post(self, handler: _Handler) -> None:
        with self._lock:
            self._in_flight += 1
            self._counters.max_in_flight = max(self._counters.max_in_flight, self._in_flight)
            busy = self.capacity is not None and self._in_flight > self.capacity
        try:
            if busy:
                handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
                with self._lock:
                    self._counters.requests += 1
                    self._counters.throttled += 1
                message = f"too many requests in flight (at most {self.capacity}): retry after {self.retry_after:g} s"
                return _reply_json(
                    handler,
                    429,
                    {"errors": [_error_entry("tooManyRequests", message, None, None)]},
                    {"Retry-After": f"{self.retry_after:g}"},
                )
            self._handle_post(handler)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _handle_post(self, handler: _Handler) -> None:
        arrived = handler.arrived  # the latency clock of its tasks starts here
        raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        with self._lock:
            self._counters.requests += 1
        if handler.path.rstrip("/") != "/v1":
            return _reply_error(handler, 404, "notFound", f"no endpoint {handler.path}")
        try:
            tasks = json.loads(raw)
        except ValueError:
            return _reply_error(handler, 400, "invalidJSON", "the body is not valid JSON")
        if not isinstance(tasks, list):
            return _reply_error(handler, 400, "invalidRequest", "the body must be a JSON array of task objects")
        tasks = [t if isinstance(t, dict) else {"taskType": None, "value": t} for t in tasks]
        with self._lock:
            self._counters.bodies.extend(tasks)
            self._counters.batch_sizes.append(len(tasks))
            self._counters.tasks.update(str(t.get("taskType")) for t in tasks)

        fault = self._request_fault({str(t.get("taskType")) for t in tasks})
        if fault is not None and not fault.after_accept and fault.kind is not FaultKind.SLOW:
            return _misbehave(handler, fault, tasks)
        refused = self._authenticate(handler, tasks)
        if refused is not None:
            return _reply_json(handler, refused.status, {"errors": [refused.entry({"taskType": "authentication"})]})

        answer = self._answer(tasks, arrived)
        if fault is not None:
            if fault.kind is FaultKind.SLOW:
                time.sleep(fault.seconds)
            else:
                return _misbehave(handler, fault, tasks)
        _reply_json(handler, answer.http_status(), answer.body())

    def _get(self, handler: _Handler) -> None:
        name = handler.path.split("?", 1)[0]
        image_uuid = name.rsplit("/", 1)[-1].split(".", 1)[0]
        fault = self._take_fault(lambda a: a.task_type == "download" and not a.fault.kind.per_task)
        with self._lock:
            stored = self._images.get(image_uuid) if name.startswith("/images/") else None
        if stored is None:
            return _reply_error(handler, 404, "notFound", f"no image at {name}")
        if fault is not None:
            if fault.kind is FaultKind.SLOW:
                time.sleep(fault.seconds)
            elif fault.kind is FaultKind.MALFORMED:
                return _reply(handler, 200, stored.data[: len(stored.data) // 2], stored.mime, length=len(stored.data))
            else:
                return _misbehave(handler, fault, [])
        with self._lock:
            self._counters.downloads += 1
        _reply(handler, 200, stored.data, stored.mime)

    def _authenticate(self, handler: _Handler, tasks: list[dict[str, Any]]) -> _Refused | None:
        scheme, _, key = (handler.headers.get("Authorization") or "").partition(" ")
        key = key.strip() if scheme.lower() == "bearer" else ""
        for task in tasks:
            if task.get("taskType") == "authentication":
                key = str(task.get("apiKey") or "")
        if not key:
            return _Refused(401, "missingApiKey", "no API key: send 'Authorization: Bearer <key>'", "apiKey")
        if self._api_key is not None and key != self._api_key:
            return _Refused(401, "invalidApiKey", "Invalid API key. Get one at https://my.runware.ai/signup", "apiKey")
        return None

    # tasks

    def _answer(self, tasks: list[dict[str, Any]], arrived: float) -> _Answer:
        answer = _Answer()
        waits: list[_Job] = []  # sync jobs, answered when done
        for task in tasks:
            kind = task.get("taskType")
            try:
                if kind == "imageInference":
                    job, conflict = self._accept(task, arrived)
                    if conflict:
                        raise _conflict(task)
                    if task.get("deliveryMethod") == "async":
                        answer.data.append({"taskType": "imageInference", "taskUUID": task.get("taskUUID")})
                    else:
                        waits.append(job)
                elif kind == "imageUpload":
                    answer.data.append(self._upload(task))
                elif kind == "getResponse":
                    self._poll(task, answer)
                elif kind == "authentication":
                    answer.data.append({"taskType": "authentication", "connectionSessionUUID": str(uuid.uuid4())})
                else:
                    message = f"the emulator does not know taskType {kind!r}"
                    raise _Refused(400, "unsupportedTaskType", message, "taskType")
            except _Refused as refused:
                answer.refuse(refused, task)
        for job in waits:
            job.done.wait()
            if job.error is not None:
                answer.errors.append(job.error)
                answer.statuses.append(400)
            else:
                answer.data.extend(job.items)
        return answer

    def _check(self, task: dict[str, Any]) -> None:
        """Refuse an inference task as the mode says: shotflow's schemas, or Runware's docs."""
        if self.strict:
            problems = _strict_task_errors(task, refuse_tags=self.refuse_tags)
            if problems:
                parameters = list(dict.fromkeys(parameter for parameter, _ in problems))
                parameter = parameters[0] if len(parameters) == 1 else parameters
                raise _Refused(400, "invalidParameter", "; ".join(message for _, message in problems), parameter)
            return
        if self.refuse_tags and _tagged(task):
            raise _tags_refused()
        messages = catalog.task_errors(task)
        if messages:
            parameters = list(dict.fromkeys(_parameter(message) for message in messages))
            parameter = parameters[0] if len(parameters) == 1 else parameters
            raise _Refused(400, "invalidParameter", "; ".join(messages), parameter)

    def _accept(self, task: dict[str, Any], arrived: float) -> tuple[_Job, bool]:
        """Validate, bill and start one inference task; (job, answer-with-conflict)."""
        self._check(task)
        references = self._references(task)
        task_uuid = task["taskUUID"]
        price = catalog.models()[task["model"]].price_per_image
        results = int(task.get("numberResults", 1))
        with self._lock:  # re-entrant: _task_fault takes it too
            if task_uuid in self._jobs:
                raise _conflict(task)
            fault = self._task_fault(task)
            failure = None
            if fault is not None and fault.kind is FaultKind.TASK_ERROR:
                failure = {**_error_entry(fault.code, fault.message, fault.parameter, task), **dict(fault.extra)}
            else:
                cost = price * results
                left = None if self._balance is None else self._balance - self._spent
                if left is not None and cost > left + 1e-9:
                    message = f"insufficient credits: this task costs ${cost:.2f}, ${left:.2f} left"
                    raise _Refused(402, "insufficientCredits", message)
                self._spent += cost
                self._counters.billed_tasks.append(task_uuid)
                self._counters.images += results
                self._counters.billed_images[task_uuid] += results
                self._counters.cost += cost
            job = _Job(task)
            self._jobs[task_uuid] = job
        threading.Thread(target=self._run, args=(job, references, price, failure, arrived), daemon=True).start()
        return job, fault is not None and fault.kind is FaultKind.CONFLICT

    def _references(self, task: dict[str, Any]) -> tuple[str, ...]:
        """The sha256 of each reference image's bytes, in order."""
        top = task.get("referenceImages")
        refs = top if top is not None else (task.get("inputs") or {}).get("referenceImages") or []
        parameter = "referenceImages" if top is not None else "inputs.referenceImages"
        digests = []
        for ref in refs:
            value = ref.get("image") if isinstance(ref, dict) else ref
            digests.append(hashlib.sha256(self._image_bytes(str(value), parameter)).hexdigest())
        return tuple(digests)

    def _image_bytes(self, value: str, parameter: str) -> bytes:
        """The bytes behind an image given as UUID, URL, data URI or base64."""
        if value.startswith("data:"):
            header, sep, payload = value.partition(",")
            if not sep or ";base64" not in header:
                raise _Refused(400, "invalidImage", "a data URI must look like data:image/png;base64,...", parameter)
            return _b64(payload, parameter)
        own = bool(self._images_base) and value.startswith(self._images_base + "/images/")
        if own or _UUID.match(value):
            image_uuid = value.rsplit("/", 1)[-1].split(".", 1)[0]
            with self._lock:
                stored = self._images.get(image_uuid)
            if stored is None:
                if self.strict:  # another code, and the parameter as a path list: a client must not rely on either
                    message = f"The image {image_uuid} could not be found."
                    raise _Refused(400, STRICT_STALE_CODE, message, parameter.split("."))
                message = f"unknown imageUUID {image_uuid}: it may have expired; upload the image again"
                raise _Refused(400, "invalidImageUUID", message, parameter)
            return stored.data
        if value.startswith(("http://", "https://")):
            return value.encode()  # not fetched: no network; the URL stands for its image
        return _b64(value, parameter)

    def _upload(self, task: dict[str, Any]) -> dict[str, Any]:
        data = self._image_bytes(str(task.get("image") or ""), "image")
        kind = _sniff(data)
        if kind is None and not str(task.get("image", "")).startswith(("http://", "https://")):
            raise _Refused(400, "invalidImage", "the image is not a PNG, JPEG, WEBP, GIF or BMP file", "image")
        size = _image_size(data) if kind else None
        if self.strict and size is not None and max(size) > MAX_UPLOAD_SIDE:
            data, kind = _downscale(data), ("png", "image/png")  # Runware keeps at most 2048 px a side
        ext, mime = kind or ("bin", "application/octet-stream")
        image_uuid = str(uuid.uuid4())
        with self._lock:
            self._images[image_uuid] = _Stored(data, ext, mime, uploaded=True)
            self._counters.uploads += 1
            if size is not None:
                self._counters.upload_sizes.append(size)
        return {
            "taskType": "imageUpload",
            "taskUUID": task.get("taskUUID"),
            "imageUUID": image_uuid,
            "imageURL": f"{self._images_base}/images/{image_uuid}.{ext}",
        }

    def _poll(self, task: dict[str, Any], answer: _Answer) -> None:
        with self._lock:
            job = self._jobs.get(str(task.get("taskUUID")))
            if job is not None and self.strict and job.sync:
                job = None  # Runware documents getResponse for async tasks only
            items = list(job.items) if job is not None else []
            if job is not None:
                error, done, expired = job.error, job.done.is_set(), job.expired
            else:
                error, done, expired = None, False, False
        if job is None:
            raise _Refused(400, "taskNotFound", f"no task with taskUUID {task.get('taskUUID')} is known", "taskUUID")
        if expired:
            raise _Refused(400, "taskExpired", f"the results of task {task.get('taskUUID')} have expired", "taskUUID")
        head = {"taskType": "imageInference", "taskUUID": job.task["taskUUID"]}
        if not self.strict:
            if not done:
                answer.data.append({**head, "status": "processing"})
            elif error is not None:
                answer.errors.append({**error, "status": "error"})
                answer.statuses.append(400)
            else:
                answer.data.extend({**item, "status": "success"} for item in items)
            return
        # strict: what is finished so far, a progress item (no status) while more is to come, and
        # a failure as a data item with status "error"
        answer.data.extend({**item, "status": "success"} for item in items)
        if error is not None:
            answer.data.append({**head, "status": "error", "error": error})
        elif not done:
            wanted = int(job.task.get("numberResults", 1))
            elapsed = time.monotonic() - job.started
            progress = min(99, int(100 * max(len(items) / wanted, elapsed / self.latency if self.latency else 0)))
            # the image being worked on has a UUID already, but no image yet: not a finished result
            working = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{job.task['taskUUID']}/{len(items)}"))
            answer.data.append({**head, "imageUUID": working, "progress": progress})

    def _run(
        self, job: _Job, references: tuple[str, ...], price: float, failure: dict[str, Any] | None, arrived: float
    ) -> None:
        started = arrived
        if self._slots is not None and not self._slots.acquire(blocking=False):
            self._slots.acquire()  # queued behind other tasks: its clock starts now
            started = time.monotonic()
        job.started = started
        with self._lock:
            self._running += 1
            self._counters.max_tasks_running = max(self._counters.max_tasks_running, self._running)
        try:
            # draw in the quiet middle of the wait, not while the burst of requests that brought
            # this task (and their clients) still needs the GIL: that keeps latency what it says
            time.sleep(max(0.0, started + self.latency / 4 - time.monotonic()))
            items = [] if failure else self._generate(job.task, references, price)
            if self.strict and len(items) > 1:
                # results finish one after another: the last at ``latency``, the first at half of it
                for index, item in enumerate(items):
                    due = started + self.latency * (0.5 + 0.5 * (index + 1) / len(items))
                    time.sleep(max(0.0, due - time.monotonic()))
                    with self._lock:
                        job.items.append(item)
            time.sleep(max(0.0, started + self.latency - time.monotonic()))
            with self._lock:
                job.items = items
                job.error = failure
            job.done.set()
        finally:
            with self._lock:
                self._running -= 1
            if self._slots is not None:
                self._slots.release()

    def _generate(self, task: dict[str, Any], references: tuple[str, ...], price: float) -> list[dict[str, Any]]:
        model, prompt = task["model"], task["positivePrompt"]
        width, height = int(task.get("width", 1024)), int(task.get("height", 1024))
        output_format = task.get("outputFormat", "JPG")
        quality = int(task.get("outputQuality", 95))
        output_type = task.get("outputType", "URL")
        ext, mime = _FORMATS[output_format]
        signature = hashlib.sha256(json.dumps([model, prompt, width, height, references]).encode()).digest()
        first_seed = int.from_bytes(signature[:4], "big") & 0x7FFFFFFF
        items = []
        for index in range(int(task.get("numberResults", 1))):
            seed = (first_seed + index) & 0x7FFFFFFF
            data = _render(model, prompt, width, height, references, seed, output_format, quality)
            image_uuid = str(uuid.uuid4())
            with self._lock:
                self._images[image_uuid] = _Stored(data, ext, mime)
            item: dict[str, Any] = {
                "taskType": "imageInference",
                "taskUUID": task["taskUUID"],
                "imageUUID": image_uuid,
                "seed": seed,
                "NSFWContent": False,
            }
            if output_type == "base64Data":
                item["imageBase64Data"] = base64.b64encode(data).decode()
            elif output_type == "dataURI":
                item["imageDataURI"] = f"data:{mime};base64," + base64.b64encode(data).decode()
            else:
                item["imageURL"] = f"{self._images_base}/images/{image_uuid}.{ext}"
            if task.get("includeCost"):
                item["cost"] = round(price * int(task.get("numberResults", 1)), 6) if self.cost_per_task else price
            items.append(item)
        return items


def _parameter(problem: str) -> str:
    """The parameter a ``catalog.task_errors`` line is about."""
    path, _, message = problem.partition(":")
    if path != "(task)":
        return path
    return "width" if "width" in message else "inputs.referenceImages" if "reference" in message else "(task)"


def _conflict(task: dict[str, Any]) -> _Refused:
    message = f"a task with taskUUID {task.get('taskUUID')} was already received; poll it with getResponse"
    return _Refused(400, "conflictTaskUUID", message, "taskUUID")


def _b64(payload: str, parameter: str) -> bytes:
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        message = "the image is not an imageUUID, URL, data URI or base64"
        raise _Refused(400, "invalidImage", message, parameter) from None


def _sniff(data: bytes) -> tuple[str, str] | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png", "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpg", "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp", "image/webp"
    if data.startswith(b"GIF8"):
        return "gif", "image/gif"
    if data.startswith(b"BM"):
        return "bmp", "image/bmp"
    return None


MAX_UPLOAD_SIDE = 2048  # Runware stores an uploaded image at most this many pixels a side


def _image_size(data: bytes) -> tuple[int, int] | None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except (UnidentifiedImageError, OSError):
        return None


def _downscale(data: bytes) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        image.thumbnail((MAX_UPLOAD_SIDE, MAX_UPLOAD_SIDE), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        image.save(out, "PNG")
    return out.getvalue()


def _tagged(task: dict[str, Any]) -> bool:
    refs = task.get("referenceImages")
    if refs is None:
        refs = (task.get("inputs") or {}).get("referenceImages") if isinstance(task.get("inputs"), dict) else None
    return isinstance(refs, list) and any(isinstance(ref, dict) for ref in refs)


def _tags_refused() -> _Refused:
    message = "Invalid value for referenceImages: expected an array of strings (UUID, URL, data URI or base64)."
    return _Refused(400, "invalidReferenceImages", message, "inputs.referenceImages")


# ── strict mode: Runware's rules, written from the model specs (not from shotflow's schemas) ──

_STRICT_SIZES = {
    (1920, 1080),
    (1080, 1920),
    (1024, 1024),
    (1360, 768),
    (1080, 1080),
    (1168, 880),
    (1440, 1080),
    (1080, 1440),
    (1808, 768),
    (2112, 912),
    (1280, 720),
    (720, 1280),
    (720, 720),
    (960, 720),
    (720, 960),
    (1680, 720),
}  # the same 16 for both models (runway-gen-4-image.md, runway-gen-4-image-turbo.md)
_STRICT_MODELS = {"runway:4@1": (0, 3), "runway:4@2": (1, 3)}  # (least, most) reference images
_STRICT_PARAMETERS = {
    "taskType",
    "taskUUID",
    "outputType",
    "outputFormat",
    "outputQuality",
    "webhookURL",
    "deliveryMethod",
    "uploadEndpoint",
    "safety",
    "ttl",
    "includeCost",
    "numberResults",
    "inputs",
    "model",
    "positivePrompt",
    "width",
    "height",
    "providerSettings",
    "referenceImages",  # the spec's own examples for runway:4@1 put it at the top level (API-NOTES.md)
}
_UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", re.IGNORECASE)
_TAG = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,15}$")


class _Problems(list):
    """(parameter, message) pairs, in the order the checks find them."""

    def need(self, ok: bool, parameter: str, message: str) -> None:
        if not ok:
            self.append((parameter, message))


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _uri(value: Any) -> bool:
    return isinstance(value, str) and re.match(r"^https?://[^\s/]+", value) is not None


def _strict_task_errors(task: dict[str, Any], *, refuse_tags: bool = False) -> list[tuple[str, str]]:
    """(parameter, message) for each way ``task`` breaks the model spec, as Runware documents it."""
    problems = _Problems()
    _strict_core(task, problems)
    _strict_output(task, problems)
    _strict_settings(task, problems)
    _strict_references(task, problems, refuse_tags=refuse_tags)
    return list(problems)


def _strict_core(task: dict[str, Any], problems: _Problems) -> None:
    """Known parameters only; the model, the task's UUID, the prompt and the size."""
    for name in sorted(set(task) - _STRICT_PARAMETERS):
        problems.append((name, f"unknown parameter {name}"))
    problems.need(task.get("model") in _STRICT_MODELS, "model", f"model must be one of {', '.join(_STRICT_MODELS)}")
    problems.need(
        isinstance(task.get("taskUUID"), str) and bool(_UUID4.match(task.get("taskUUID") or "")),
        "taskUUID",
        "taskUUID must be a UUID v4",
    )
    prompt = task.get("positivePrompt")
    problems.need(
        isinstance(prompt, str) and 1 <= len(prompt) <= 1000,
        "positivePrompt",
        "positivePrompt must be a string of 1 to 1000 characters",
    )
    if "width" in task or "height" in task:
        size = (task.get("width"), task.get("height"))
        problems.need(
            all(_integer(v) for v in size) and size in _STRICT_SIZES,
            "width",
            "width and height must be used together and be one of the supported dimensions",
        )


def _strict_output(task: dict[str, Any], problems: _Problems) -> None:
    """How the result is delivered: output type, format and quality, webhook, ttl, cost, count."""
    for name, allowed in (
        ("outputType", ("URL", "base64Data", "dataURI")),
        ("outputFormat", ("JPG", "PNG", "WEBP")),
        ("deliveryMethod", ("sync", "async")),
    ):
        if name in task:
            problems.need(task[name] in allowed, name, f"{name} must be one of {', '.join(allowed)}")
    if "outputQuality" in task:
        problems.need(
            _integer(task["outputQuality"]) and 20 <= task["outputQuality"] <= 99,
            "outputQuality",
            "outputQuality must be an integer from 20 to 99",
        )
    for name in ("webhookURL", "uploadEndpoint"):
        if name in task:
            problems.need(_uri(task[name]), name, f"{name} must be a URI")
    if "ttl" in task:
        problems.need(_integer(task["ttl"]) and task["ttl"] >= 60, "ttl", "ttl must be an integer of at least 60")
    if "includeCost" in task:
        problems.need(isinstance(task["includeCost"], bool), "includeCost", "includeCost must be a boolean")
    if "numberResults" in task:
        problems.need(
            _integer(task["numberResults"]) and 1 <= task["numberResults"] <= 20,
            "numberResults",
            "numberResults must be an integer from 1 to 20",
        )


def _strict_settings(task: dict[str, Any], problems: _Problems) -> None:
    """The nested settings objects: ``safety`` and ``providerSettings.runway``."""
    if "safety" in task:
        safety = task["safety"]
        ok = (
            isinstance(safety, dict)
            and set(safety) <= {"checkContent", "mode"}
            and isinstance(safety.get("checkContent", False), bool)
            and safety.get("mode", "none") in ("none", "fast")
        )
        problems.need(ok, "safety", "safety takes checkContent (a boolean) and mode (none or fast)")
    if "providerSettings" in task:
        settings = task["providerSettings"]
        runway = settings.get("runway") if isinstance(settings, dict) else None
        moderation = runway.get("contentModeration") if isinstance(runway, dict) else None
        ok = (
            isinstance(settings, dict)
            and set(settings) <= {"runway"}
            and isinstance(runway, dict)
            and set(runway) <= {"contentModeration"}
            and isinstance(moderation, dict)
            and set(moderation) <= {"publicFigureThreshold"}
            and moderation.get("publicFigureThreshold", "auto") in ("auto", "low")
        )
        problems.need(
            ok,
            "providerSettings.runway.contentModeration.publicFigureThreshold",
            "providerSettings.runway.contentModeration.publicFigureThreshold must be auto or low",
        )


def _strict_references(task: dict[str, Any], problems: _Problems, *, refuse_tags: bool) -> None:
    """``inputs`` and the reference images (top level or in ``inputs``): their form and how many the model takes."""
    inputs = task.get("inputs")
    if inputs is not None:
        problems.need(
            isinstance(inputs, dict) and set(inputs) <= {"referenceImages"},
            "inputs",
            "inputs takes referenceImages only",
        )
    top = task.get("referenceImages")
    refs = top if top is not None else (inputs or {}).get("referenceImages") if isinstance(inputs, dict) else None
    parameter = "referenceImages" if top is not None else "inputs.referenceImages"
    if refs is not None:
        if not isinstance(refs, list):
            problems.append((parameter, f"{parameter} must be an array"))
            refs = []
        for ref in refs:
            if isinstance(ref, dict):
                if refuse_tags:
                    problems.append((parameter, _tags_refused().message))
                    break
                ok = (
                    set(ref) <= {"image", "tag"}
                    and isinstance(ref.get("image"), str)
                    and bool(ref.get("image"))
                    and ("tag" not in ref or (isinstance(ref["tag"], str) and bool(_TAG.match(ref["tag"]))))
                )
                problems.need(
                    ok,
                    parameter,
                    f"{parameter}: a tagged reference is {{image, tag}}, "
                    "the tag 3 to 16 letters and digits starting with a letter",
                )
            else:
                problems.need(isinstance(ref, str) and bool(ref), parameter, f"{parameter} must be an array of strings")
    model = task.get("model")
    if model in _STRICT_MODELS:
        least, most = _STRICT_MODELS[model]
        count = len(refs) if isinstance(refs, list) else 0
        problems.need(count <= most, parameter, f"{model} takes at most {most} reference images")
        problems.need(count >= least, "inputs.referenceImages", f"{model} requires inputs.referenceImages")


# ── HTTP plumbing ───────────────────────────────────────────────────────────────────────────


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as clients expect
    disable_nagle_algorithm = True  # small answers must not wait for delayed ACKs (+40 ms each)
    timeout = 120  # idle keep-alive connections end after this
    server: _Server
    arrived = 0.0

    def parse_request(self) -> bool:
        self.arrived = time.monotonic()  # the latency clock starts before any parsing
        return super().parse_request()

    def do_POST(self) -> None:
        self.server.emulator._post(self)

    def do_GET(self) -> None:
        self.server.emulator._get(self)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read stats, not logs


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # bursts of hundreds of connections must not be refused

    def __init__(self, address: tuple[str, int], emulator: Emulator):
        super().__init__(address, _Handler)
        self.emulator = emulator

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (killed, timed out) while its connection was read is not a
        fault of the emulator: nothing to print. Anything else is, and socketserver prints it."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def _reply(
    handler: _Handler,
    status: int,
    body: bytes,
    content_type: str,
    *,
    headers: dict[str, str] | None = None,
    length: int | None = None,  # a Content-Length that lies: the body is cut short
) -> None:
    try:
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(body) if length is None else length))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)
        handler.wfile.flush()
    except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting: nothing to tell
        handler.close_connection = True
    if length is not None and length != len(body):
        handler.close_connection = True


def _reply_json(handler: _Handler, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
    _reply(handler, status, json.dumps(body).encode(), "application/json", headers=headers)


def _reply_error(handler: _Handler, status: int, code: str, message: str) -> None:
    _reply_json(handler, status, {"errors": [_error_entry(code, message, None, None)]})


def _misbehave(handler: _Handler, fault: Fault, tasks: list[dict[str, Any]]) -> None:
    """Answer as ``fault`` says instead of properly."""
    if fault.kind is FaultKind.DROP:
        handler.close_connection = True
        with contextlib.suppress(OSError):  # already gone
            handler.connection.shutdown(socket.SHUT_RDWR)
    elif fault.kind is FaultKind.MALFORMED:
        handler.close_connection = True
        _reply(handler, 200, b'{"data": [{"taskType": "imageInference", "taskUU', "application/json")
    elif fault.kind is FaultKind.STATUS:
        code = _STATUS_CODES.get(fault.http_status, "error")
        if fault.http_status == 401:
            errors = [_error_entry(code, fault.message, "apiKey", {"taskType": "authentication"})]
        else:
            errors = [_error_entry(code, fault.message, fault.parameter, task) for task in tasks] or [
                _error_entry(code, fault.message, fault.parameter, None)
            ]
        headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
        _reply_json(handler, fault.http_status, {"errors": errors}, headers)
    else:
        raise ValueError(f"{fault.kind.value} is not a request fault")


# ── images ──────────────────────────────────────────────────────────────────────────────────

_GRID = 8  # the picture is drawn on a grid this many times coarser, then scaled up
_FONT_LOCK = threading.Lock()  # FreeType faces are not safe to share between threads


@lru_cache(maxsize=8)
def _font(size: int):
    from PIL import ImageFont

    return ImageFont.truetype(str(font_path()), size)


@lru_cache(maxsize=64)
def _render(
    model: str,
    prompt: str,
    width: int,
    height: int,
    references: tuple[str, ...],
    seed: int,
    output_format: str,
    quality: int,
) -> bytes:
    """A cheap, deterministic picture: a palette image drawn coarse, captioned at full size.

    Colours follow the prompt, the layout follows the seed, and one swatch per reference image
    follows that image's bytes, so each input visibly changes the result.
    """
    from PIL import Image, ImageDraw

    rng = random.Random(f"{model}|{prompt}|{width}x{height}|{','.join(references)}|{seed}")
    hue = int(hashlib.sha256(prompt.encode()).hexdigest()[:4], 16) / 0xFFFF
    palette: list[tuple[int, ...]] = [(12, 12, 16)]  # 0: caption band
    palette += [_hls(hue + 0.02 * i, 0.25 + 0.08 * i, 0.45) for i in range(6)]  # 1-6: sky
    shapes = [(hue + 0.5 + rng.uniform(-0.1, 0.1), rng.uniform(0.2, 0.6), rng.uniform(0.3, 0.8)) for _ in range(5)]
    palette += [_hls(*shape) for shape in shapes]  # 7-11: ground and shapes
    palette += [tuple(bytes.fromhex(digest[:6])) for digest in references[:3]]  # 12-14: references
    palette += [(0, 0, 0)] * (15 - len(palette)) + [(245, 245, 240)]  # 15: caption text

    cols, rows = -(-width // _GRID), -(-height // _GRID)
    canvas = Image.new("P", (cols, rows), 1)
    canvas.putpalette([channel for colour in palette for channel in colour])
    draw = ImageDraw.Draw(canvas)
    for band in range(6):
        draw.rectangle((0, band * rows // 6, cols, (band + 1) * rows // 6), fill=1 + band)
    horizon = int(rows * rng.uniform(0.45, 0.7))
    draw.rectangle((0, horizon, cols, rows), fill=7)
    for _ in range(rng.randint(3, 6)):
        x, w = rng.randrange(cols), rng.randint(max(1, cols // 12), max(2, cols // 4))
        top = rng.randint(rows // 6, horizon)
        if rng.random() < 0.6:
            draw.rectangle((x, top, x + w, horizon), fill=rng.randint(8, 11))
        else:
            draw.ellipse((x, top, x + w, top + w), fill=rng.randint(8, 11))
    side = max(2, rows // 6)
    for index in range(min(3, len(references))):
        left = cols - (index + 1) * (side + 1)
        draw.rectangle((left, 1, left + side - 1, side), fill=12 + index)

    image = canvas.resize((width, height), Image.Resampling.NEAREST)
    size = max(10, height // 28)
    lines = textwrap.wrap(prompt, width=max(10, int(width / (size * 0.58))), max_lines=2, placeholder=" …")
    lines.append(f"seed {seed} · {model} · {width}×{height} · shotflow emulator")
    band = int(size * 1.3 * len(lines) + size)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, height - band, width, height), fill=0)
    with _FONT_LOCK:
        font = _font(size)
        for row, line in enumerate(lines):
            draw.text((size // 2, height - band + size // 2 + int(row * size * 1.3)), line, font=font, fill=15)

    out = io.BytesIO()
    if output_format == "PNG":
        image.save(out, "PNG", compress_level=1)
    elif output_format == "WEBP":
        image.convert("RGB").save(out, "WEBP", quality=quality, method=0)
    else:
        image.convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


def _hls(hue: float, lightness: float, saturation: float) -> tuple[int, int, int]:
    r, g, b = colorsys.hls_to_rgb(hue % 1.0, min(lightness, 0.95), saturation)
    return int(r * 255), int(g * 255), int(b * 255)


# ── command line ────────────────────────────────────────────────────────────────────────────


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m shotflow.testing.emulator",
        description="Serve a Runware REST API emulator on loopback; prints its URL first.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per inference task")
    parser.add_argument("--api-key", default=None, help="the only key accepted (default: any non-empty key)")
    parser.add_argument("--concurrency", type=int, default=None, help="inference tasks in flight; more queue")
    parser.add_argument("--balance", type=float, default=None, help="USD that may be spent; then 402")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="follow Runware's documentation, not shotflow's assumptions (see the module docstring)",
    )
    parser.add_argument(
        "--capacity",
        type=int,
        default=None,
        help=f"requests handled at once, then 429 (default: none; --strict: {STRICT_CAPACITY})",
    )
    parser.add_argument("--retry-after", type=float, default=1.0, help="seconds a 429 asks to wait (default 1)")
    parser.add_argument("--refuse-tags", action="store_true", help="refuse {image, tag} references with a 400")
    args = parser.parse_args(argv)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    emulator = Emulator(
        latency=args.latency,
        api_key=args.api_key,
        concurrency=args.concurrency,
        balance=args.balance,
        host=args.host,
        port=args.port,
        strict=args.strict,
        capacity=args.capacity,
        retry_after=args.retry_after,
        refuse_tags=args.refuse_tags,
    )
    with emulator:
        print(emulator.url, flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
