"""The Runware backend: Runway Gen-4 Image on Runware's REST API, over httpx.

One ``generate()`` is one ``imageInference`` task::

    Request ─► validate the task against schemas/models/<model>.json    (no network when invalid)
            ─► references: Runware imageUUID of an upstream take (remote_ids["runware"]),
                           else the memo ("runware-upload:<sha256>" → imageUUID, 30 days),
                           else imageUpload of a data URI (once per content hash)
            ─► journal.begin(key, {"task_uuid", "model", "sent_at", "delivery"})
            ─► POST /v1  [{"taskType": "imageInference", "taskUUID", "model", "positivePrompt",
                           "width", "height", "outputFormat", "outputQuality",
                           "numberResults": takes, "includeCost": true, "outputType",
                           "deliveryMethod", "inputs": {"referenceImages": [uuid | {"image", "tag"}]},
                           "safety"?, "providerSettings"?, "ttl"?, "webhookURL"?, "uploadEndpoint"?},
                          ... other tasks that were ready at the same moment]
            ─► {"data": [item, ...], "errors": [...]}, matched by taskUUID, never by position
            ─► getResponse polls until ``takes`` items (async delivery, conflictTaskUUID, a lost answer)
            ─► imageURL downloaded (or imageBase64Data / imageDataURI decoded)
            ─► journal.finish(key)
            ─► Generation(images=(Image(data, seed, remote_id=imageUUID, url, cost), ...),
                          task_id=taskUUID, cost=sum, backend="runware")

Settings (``Services.settings``, the storyboard's ``runware:`` section; all optional)::

    delivery        "sync" | "async"                    sync
    output_type     "URL" | "base64Data" | "dataURI"    base64Data
    timeout         seconds per task, end to end        600
    batch           tasks per HTTP request              8
    sync_batch      sync generations per HTTP request   1
    max_in_flight   HTTP requests in flight             15 (sync generations: 15 × batch / sync_batch)
    batch_window    seconds a ready task waits for others to share its request   0 (this tick)
    request_timeout seconds one HTTP request may take   120
    retries         retries after the first attempt     4
    retry_base      first backoff, doubling up to retry_cap, plus up to retry_base jitter   1.0
    retry_cap       longest backoff                     30
    poll_initial    first getResponse delay, then ×1.5 up to poll_max                     1.0
    poll_max        longest delay between polls         10

Failures: 408, 429, 5xx, timeouts, dropped connections and malformed JSON are retried with the
same taskUUID (honouring Retry-After, seconds or an HTTP date); an answer ``conflictTaskUUID``
means the task was already accepted, so it is polled, never paid for again. 400/401/402/403/404
are never retried. A task whose reference UUID Runware no longer knows is sent once more with
every reference uploaded afresh. A run that was killed finds its task in the journal and polls it.

The API key (env ``RUNWARE_API_KEY``, else ``RUNWARE_API_KEY=`` in ``<project>/.env``) is only
ever put in the Authorization header of requests to the API URL (env ``RUNWARE_API_URL``): never
in a message, a repr, the journal or the memo, and never sent to image URLs.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.utils
import os
import random
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

import httpx

from .. import catalog
from ..errors import AccountError, BackendError, ConfigError, RequestRejected, TransientError
from ._base import Generation, Image, Reference, Request, Services

DEFAULT_URL = "https://api.runware.ai/v1"
UPLOAD_MEMO_PREFIX = "runware-upload:"
UPLOAD_TTL = 30 * 86400  # Runware deletes uploads 30 days after their last use
MAX_DOWNLOAD = 64 * 1024 * 1024
_PLACEHOLDER_UUID = "00000000-0000-4000-8000-000000000000"  # stands for a reference not uploaded yet

_REJECTED = {
    401: "Runware rejected the API key (401): check RUNWARE_API_KEY",
    402: "insufficient Runware balance (402): top up at https://my.runware.ai/wallet",
    403: "this API key is not permitted to run this task on Runware (403): check the key's permissions",
}
_BALANCE_CODES = {"insufficientCredits", "insufficientBalance", "insufficientFunds", "paymentRequired"}
_KEY_CODES = {"invalidApiKey", "missingApiKey", "apiKeyRequired"}
_RETRIED_STATUS = {408, 425, 429}
_T = TypeVar("_T")
_IMAGE_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"BM", "image/bmp"),
)


# ── settings and the key ────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Settings:
    """The backend's knobs (see the module docstring); ``from_mapping`` checks their values."""

    delivery: str = "sync"
    # the image comes in the answer: one round trip instead of two, nothing left to expire
    output_type: str = "base64Data"
    timeout: float = 600.0
    batch: int = 8
    # a sync request answers when its slowest task ends, and tasks that start together end
    # together: batched generations move in lockstep, each round waiting for the whole
    # batch's answer to be read and the next batch sent. One a request, a freed slot is
    # refilled as soon as its own answer is in (makespan 1.055 → 1.02 × bound, emulator)
    sync_batch: int = 1
    max_in_flight: int = 15
    batch_window: float = 0.0  # 0: tasks that became ready in the same event-loop tick share a request
    request_timeout: float = 120.0
    retries: int = 4
    retry_base: float = 1.0
    retry_cap: float = 30.0
    poll_initial: float = 1.0
    poll_max: float = 10.0

    @classmethod
    def from_mapping(cls, settings: dict[str, Any]) -> Settings:
        values = cls()
        choices = {"delivery": ("sync", "async"), "output_type": ("URL", "base64Data", "dataURI")}
        for name, allowed in choices.items():
            if name in settings and settings[name] not in allowed:
                raise ConfigError(f"runware.{name} is {settings[name]!r}; use one of: {', '.join(allowed)}")
        for name in ("batch", "sync_batch", "max_in_flight", "retries"):
            value, least = settings.get(name, getattr(values, name)), 0 if name == "retries" else 1
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ConfigError(f"runware.{name} must be a whole number of at least {least}, not {value!r}")
        numbers = ("timeout", "request_timeout", "batch_window", "retry_base", "retry_cap", "poll_initial", "poll_max")
        for name in numbers:
            value = settings.get(name, getattr(values, name))
            least = "above 0" if name in ("timeout", "request_timeout") else "at least 0"
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or value < 0 or (value == 0 and least == "above 0"):
                raise ConfigError(f"runware.{name} must be a number of seconds {least}, not {value!r}")
        known = {name: settings[name] for name in cls.__dataclass_fields__ if name in settings}
        return cls(**known)


def api_key(project_dir: Path) -> str:
    """``RUNWARE_API_KEY`` from the environment, else from ``<project_dir>/.env``."""
    key = os.environ.get("RUNWARE_API_KEY", "").strip()
    if not key:
        key = _dotenv(project_dir / ".env").get("RUNWARE_API_KEY", "").strip()
    if not key:
        raise ConfigError(f"no Runware API key: set RUNWARE_API_KEY or put it in {project_dir / '.env'}")
    if not key.isascii() or not key.isprintable():
        # it goes in an HTTP header: a newline or a non-ASCII letter would fail (or split) the request
        raise ConfigError("the Runware API key holds a line break, a control or a non-ASCII character; "
                          "nothing was sent", hint="copy the key again from your Runware dashboard")
    return key


def _api_url(url: str) -> str:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ConfigError(f"RUNWARE_API_URL is not a URL: {url!r}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(f"RUNWARE_API_URL must be an http(s) URL such as {DEFAULT_URL}, not {url!r}")
    return url


def _dotenv(path: Path) -> dict[str, str]:
    """``NAME=value`` lines of a .env file (``export``, quotes and ``#`` comments allowed)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc.__class__.__name__}") from None
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        name, sep, value = line.partition("=")
        if not sep or line.startswith("#"):
            continue
        value = value.strip()
        if value[:1] in ("'", '"') and value[:1] in value[1:]:
            value = value[1 : value.index(value[0], 1)]
        else:
            value = value.split(" #", 1)[0].strip()
        values[name.strip()] = value
    return values


# ── answers ─────────────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class _Answer:
    """What one HTTP answer said about one task: its items and its errors."""

    status: int
    items: tuple[dict[str, Any], ...] = ()
    errors: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True)
class _Again:
    """An attempt that failed in a way worth repeating."""

    problem: str
    wait: float | None = None  # what Retry-After asked for
    cause: BaseException | None = None


class _Verdict(Enum):
    RESULTS = "results"  # items (maybe none yet, maybe not all)
    CONFLICT = "conflict"  # already accepted earlier: poll it
    UNKNOWN = "unknown"  # getResponse does not know the task: send it
    FAILED = "failed"


@dataclass(frozen=True)
class _Reading:
    verdict: _Verdict
    items: tuple[dict[str, Any], ...] = ()
    error: dict[str, Any] = field(default_factory=dict)
    status: int = 200


def _read(answer: _Answer) -> _Reading:
    """Sort one task's answer into results, a conflict, an unknown task or a failure."""
    for error in answer.errors:
        code = str(error.get("code", ""))
        if code == "conflictTaskUUID":
            return _Reading(_Verdict.CONFLICT, status=answer.status)
        not_found = error.get("taskType") == "getResponse" and "not found" in str(error.get("message", "")).lower()
        if code == "taskNotFound" or not_found:
            return _Reading(_Verdict.UNKNOWN, status=answer.status)
        return _Reading(_Verdict.FAILED, error=error, status=answer.status)
    items = []
    for item in answer.items:
        status = item.get("status")
        if status == "error":
            return _Reading(_Verdict.FAILED, error=item.get("error") or item, status=answer.status)
        if item.get("imageUUID") and status in (None, "success"):
            items.append(item)
    return _Reading(_Verdict.RESULTS, items=tuple(items), status=answer.status)


def _is_stale_reference(error: dict[str, Any]) -> bool:
    parameter = error.get("parameter")
    parameters = parameter if isinstance(parameter, list) else [parameter]
    text = " ".join(str(p) for p in parameters if p) + " " + str(error.get("message", ""))
    return "referenceImages" in text or "imageUUID" in text


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def _entry(image: str, tag: str | None, tagged: bool) -> str | dict[str, str]:
    """One referenceImages entry: a plain string, or Runway's ``{image, tag}`` form."""
    if not tagged:
        return image
    return {"image": image, "tag": tag} if tag else {"image": image}


def _mime(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((mime for magic, mime in _IMAGE_SIGNATURES if data.startswith(magic)), None)


# ── the transport: batches, retries ─────────────────────────────────────────────────────────


class _Transport:
    """One event loop's HTTP client; sends tasks in shared requests and retries transient failures.

    Tasks ready at the same moment (within ``batch_window``, up to ``batch``) go in one POST.
    Sync inference tasks have a lane of their own (``sync_batch`` a request, and requests in
    flight for as many tasks as ``max_in_flight`` × ``batch``), so that polls and uploads never
    wait behind a generation in the same request.
    """

    def __init__(self, url: str, key: str, settings: Settings, scrub: Callable[[str], str]):
        self.loop = asyncio.get_running_loop()
        self._url = url
        self._headers = {"Authorization": f"Bearer {key}"}
        self._settings = settings
        self._scrub = scrub
        self._timeout = httpx.Timeout(settings.request_timeout, connect=min(settings.request_timeout, 10.0))
        sync_requests = max(1, settings.max_in_flight * settings.batch // settings.sync_batch)
        self.client = httpx.AsyncClient(
            timeout=self._timeout,
            limits=httpx.Limits(
                max_connections=sync_requests + settings.max_in_flight,
                max_keepalive_connections=settings.max_in_flight,
            ),
            follow_redirects=False,
        )
        self._slots = asyncio.Semaphore(settings.max_in_flight)  # polls, uploads, downloads
        self._sync_slots = asyncio.Semaphore(sync_requests)  # sync generations
        self._queues: dict[bool, list[tuple[dict[str, Any], asyncio.Future[_Answer]]]] = {True: [], False: []}
        self._timers: dict[bool, asyncio.Handle] = {}
        self._sending: set[asyncio.Task[None]] = set()
        self.uploads: dict[str, asyncio.Task[str]] = {}  # sha256 → upload in progress

    def __repr__(self) -> str:
        return f"_Transport({self._url})"

    async def call(self, task: dict[str, Any]) -> _Answer:
        """Send ``task`` (with whatever else is ready) and return what the API said about it."""
        future: asyncio.Future[_Answer] = self.loop.create_future()
        slow = task.get("taskType") == "imageInference" and task.get("deliveryMethod", "sync") == "sync"
        queue = self._queues[slow]
        queue.append((task, future))
        if len(queue) >= self._batch(slow):
            self._flush(slow)
        elif slow not in self._timers:
            window = self._settings.batch_window
            # with no window, what the resolver starts in this tick goes out together, at once
            self._timers[slow] = (self.loop.call_later(window, self._flush, slow) if window > 0
                                  else self.loop.call_soon(self._flush, slow))
        return await future

    def _flush(self, slow: bool) -> None:
        timer = self._timers.pop(slow, None)
        if timer is not None:
            timer.cancel()
        queue = [(task, future) for task, future in self._queues[slow] if not future.done()]
        self._queues[slow].clear()
        size = self._batch(slow)
        for start in range(0, len(queue), size):
            sending = self.loop.create_task(self._send(queue[start : start + size], slow))
            self._sending.add(sending)
            sending.add_done_callback(self._sending.discard)

    def _batch(self, slow: bool) -> int:
        return self._settings.sync_batch if slow else self._settings.batch

    async def _send(self, batch: list[tuple[dict[str, Any], asyncio.Future[_Answer]]], slow: bool = False) -> None:
        tasks = [task for task, _ in batch]
        try:
            async with self._sync_slots if slow else self._slots:
                status, body = await self._post(tasks)
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:  # handed to every caller of this batch, who raise it: nothing is hidden
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        answers = _split(status, body, tasks)
        for task, future in batch:
            if not future.done():
                future.set_result(answers[task["taskUUID"]])

    async def _post(self, tasks: list[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
        """(HTTP status, JSON body) for ``tasks``; the same body on every attempt."""
        return await self._retrying(lambda: self._post_once(tasks), "Runware")

    async def _post_once(self, tasks: list[dict[str, Any]]) -> tuple[int, dict[str, Any]] | _Again:
        response = await self.client.post(self._url, json=tasks, headers=self._headers)
        status = response.status_code
        if status in _REJECTED:
            raise AccountError(_REJECTED[status])
        if status == 404:
            raise RequestRejected(f"Runware answered 404 Not Found at {self._url}: check RUNWARE_API_URL")
        if status in _RETRIED_STATUS or status >= 500:
            return _Again(f"HTTP {status}", _retry_after(response.headers.get("Retry-After")))
        try:
            body = response.json()
        except ValueError as exc:
            if status >= 400:
                raise RequestRejected(f"Runware answered HTTP {status}: {self._scrub(response.text[:200])}") from None
            return _Again("an answer that is not valid JSON", cause=exc)
        return (status, body) if isinstance(body, dict) else _Again("an answer that is not a JSON object")

    async def download(self, url: str) -> bytes:
        """The bytes at ``url`` (no API key sent), checked against Content-Length and a size limit."""
        return await self._retrying(lambda: self._download_once(url), f"downloading {url}")

    async def _download_once(self, url: str) -> bytes | _Again:
        async with self._slots, self.client.stream("GET", url) as response:
            status = response.status_code
            if status in _RETRIED_STATUS or status >= 500:
                return _Again(f"HTTP {status}", _retry_after(response.headers.get("Retry-After")))
            if status != 200:
                raise BackendError(f"downloading {url} failed: HTTP {status}")
            return await _body(response, url)

    async def _retrying(self, attempt: Callable[[], Awaitable[_T | _Again]], what: str) -> _T:
        """``attempt()`` until it gives a result, with backoff and jitter, honouring Retry-After."""
        attempts = self._settings.retries + 1
        for number in range(attempts):
            try:
                outcome = await attempt()
            except httpx.TimeoutException as exc:
                outcome = _Again(f"no answer within {self._settings.request_timeout:g} s", cause=exc)
            except httpx.InvalidURL as exc:
                raise BackendError(f"{what}: not a valid URL") from exc
            except httpx.RequestError as exc:  # refused, reset or dropped connections
                outcome = _Again(f"the connection failed ({exc.__class__.__name__})", cause=exc)
            if not isinstance(outcome, _Again):
                return outcome
            if number + 1 == attempts:
                last = outcome.problem
                raise TransientError(f"{what} failed {attempts} times; the last time: {last}") from outcome.cause
            await asyncio.sleep(outcome.wait if outcome.wait is not None else self.backoff(number))
        raise AssertionError("unreachable: the last attempt returns or raises")

    def backoff(self, attempt: int) -> float:
        base = self._settings.retry_base
        return min(self._settings.retry_cap, base * 2**attempt) + random.uniform(0, base)

    async def aclose(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        for queue in self._queues.values():
            for _, future in queue:
                future.cancel()
            queue.clear()
        pending = [*self._sending, *self.uploads.values()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await self.client.aclose()


async def _body(response: httpx.Response, url: str) -> bytes | _Again:
    """The complete body, or what is wrong with it when fetching it again may help."""
    declared = response.headers.get("Content-Length")
    length = int(declared) if declared and declared.isdigit() else None
    if length is not None and length > MAX_DOWNLOAD:
        raise BackendError(f"{url} is {length} bytes; images over {MAX_DOWNLOAD // 2**20} MiB are refused")
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > MAX_DOWNLOAD:
            raise BackendError(f"{url} is over {MAX_DOWNLOAD // 2**20} MiB; refused")
        chunks.append(chunk)
    data = b"".join(chunks)
    if not data:
        return _Again("an empty body")
    if length is not None and len(data) != length:
        return _Again(f"{len(data)} of {length} bytes")
    return data


def _split(status: int, body: dict[str, Any], tasks: list[dict[str, Any]]) -> dict[str, _Answer]:
    """Each task's items and errors, by taskUUID; errors naming no task of ours concern them all."""
    data = body.get("data") if isinstance(body.get("data"), list) else []
    errors = body.get("errors") if isinstance(body.get("errors"), list) else []
    if isinstance(body.get("error"), dict):  # older answers held a single error object
        errors = [*errors, body["error"]]
    ours = {task["taskUUID"] for task in tasks}
    general = [e for e in errors if isinstance(e, dict) and e.get("taskUUID") not in ours]
    answers = {}
    for task in tasks:
        task_uuid = task["taskUUID"]
        items = tuple(i for i in data if isinstance(i, dict) and i.get("taskUUID") == task_uuid)
        own = tuple(e for e in errors if isinstance(e, dict) and e.get("taskUUID") == task_uuid)
        answers[task_uuid] = _Answer(status, items, own or (tuple(general) if not items else ()))
    return answers


# ── the backend ─────────────────────────────────────────────────────────────────────────────


class RunwareBackend:
    """Generates images on Runware; one instance per run (see the module docstring)."""

    name = "runware"
    deterministic = False
    # generate() takes ``start``: the request is checked, its references resolved and its
    # journal entry made durable before it waits for a slot (see generate)
    prepares = True

    def __init__(self, services: Services):
        self.services = services
        self.settings = Settings.from_mapping(dict(services.settings or {}))
        self.url = _api_url(os.environ.get("RUNWARE_API_URL", "").strip() or DEFAULT_URL)
        self._key = api_key(Path(services.project_dir))
        self._transport: _Transport | None = None
        self._uploaded: dict[str, str] = {}  # sha256 → imageUUID, this run

    def __repr__(self) -> str:
        return f"RunwareBackend(url={self.url!r}, delivery={self.settings.delivery!r})"

    async def generate(self, request: Request, start: Callable[[], Awaitable[None]] | None = None) -> Generation:
        """Generate ``request``'s takes. ``start``, when given, is awaited once before the task
        (or a poll of it) first goes out: the caller's slot. Everything before that — the schema
        check, the references' UUIDs, the journal entry, made durable — is done meanwhile, so a
        freed slot is followed by the POST alone."""
        self._check(request)
        call = _Call(self, request, start)
        try:
            async with asyncio.timeout(self.settings.timeout):
                return await call.run()
        except TimeoutError as exc:
            got = f"{len(call.results)} of {request.takes} images" if request.takes > 1 else "no image"
            later = "; the next run polls it instead of paying again" if self.services.journal is not None else ""
            raise TransientError(
                f"Runware gave {got} within {self.settings.timeout:g} s (task {call.task_uuid}){later}"
            ) from exc

    async def aclose(self) -> None:
        if self._transport is not None:
            transport, self._transport = self._transport, None
            await transport.aclose()

    # the parts a call uses

    def transport(self) -> _Transport:
        """The transport of the running event loop (a new loop gets a new client)."""
        loop = asyncio.get_running_loop()
        if self._transport is None or self._transport.loop is not loop:
            self._transport = _Transport(self.url, self._key, self.settings, self.scrub)
        return self._transport

    def scrub(self, text: str) -> str:
        """``text`` with the API key masked, should a server ever echo it."""
        return text.replace(self._key, "***")

    def task(self, request: Request, task_uuid: str, references: list[str]) -> dict[str, Any]:
        task: dict[str, Any] = {
            "taskType": "imageInference",
            "taskUUID": task_uuid,
            "model": request.model,
            "positivePrompt": request.prompt,
            "width": request.width,
            "height": request.height,
            "outputFormat": request.output_format,
            "outputQuality": request.output_quality,
            "numberResults": request.takes,
            "includeCost": True,
        }
        settings = self.settings
        delivery = {"outputType": settings.output_type, "deliveryMethod": settings.delivery, **request.options}
        task.update((name, value) for name, value in delivery.items() if name not in task and value is not None)
        if request.safety:
            task["safety"] = request.safety
        if request.provider_settings:
            task["providerSettings"] = request.provider_settings
        if references:
            entries = zip(references, request.references)
            task["inputs"] = {"referenceImages": [_entry(image, ref.tag, request.tagged) for image, ref in entries]}
        return task

    def _check(self, request: Request) -> None:
        """Refuse a request the model's schema refuses, before any network traffic."""
        # placeholders stand for what is not known yet (the task's UUID, references not
        # uploaded) and for what is (an upstream take's UUID is a non-empty string like them):
        # tasks of one shape then differ only in their prompt, checked once per shape
        placeholders = [_PLACEHOLDER_UUID for _ in request.references]
        problems = catalog.task_errors(self.task(request, _PLACEHOLDER_UUID, placeholders), by_shape=True)
        if problems:
            raise RequestRejected(f"invalid request for {request.model}: {'; '.join(problems)}")

    async def reference(self, ref: Reference, *, fresh: bool) -> str:
        """An imageUUID Runware knows for ``ref``'s bytes; ``fresh`` uploads them again."""
        name = UPLOAD_MEMO_PREFIX + ref.sha256
        memo = self.services.memo
        if fresh:
            self._uploaded.pop(ref.sha256, None)
            if memo is not None:
                memo.drop(name)
        else:
            known = ref.remote_ids.get("runware") or self._uploaded.get(ref.sha256)
            if not known and memo is not None:
                remembered = memo.get(name)
                known = remembered if isinstance(remembered, str) else None
            if known:
                return known
        transport = self.transport()
        upload = transport.uploads.get(ref.sha256)
        if upload is None:  # concurrent shots sharing a reference share its upload
            upload = transport.loop.create_task(self._upload(ref))
            transport.uploads[ref.sha256] = upload
            upload.add_done_callback(lambda _: transport.uploads.pop(ref.sha256, None))
        return await asyncio.shield(upload)

    async def _upload(self, ref: Reference) -> str:
        label = f"reference {ref.source or ref.sha256[:12]}"
        mime = _mime(ref.data)
        if mime is None:
            raise RequestRejected(f"{label} is not a PNG, JPEG, WEBP, GIF or BMP image")
        image = f"data:{mime};base64," + base64.b64encode(ref.data).decode("ascii")
        for _ in range(2):  # a conflict means a lost earlier attempt: uploads are free, send a new one
            task = {"taskType": "imageUpload", "taskUUID": str(uuid.uuid4()), "image": image}
            reading = _read(await self.transport().call(task))
            if reading.verdict is _Verdict.FAILED:
                raise self.rejection(reading, f"the upload of {label}")
            uploaded = next((i["imageUUID"] for i in reading.items if i.get("imageUUID")), None)
            if reading.verdict is _Verdict.RESULTS and uploaded:
                break
        else:
            raise TransientError(f"Runware did not answer the upload of {label}")
        self._uploaded[ref.sha256] = uploaded
        if self.services.memo is not None:
            await asyncio.to_thread(self.services.memo.put, UPLOAD_MEMO_PREFIX + ref.sha256, uploaded, UPLOAD_TTL)
        return uploaded

    def rejection(self, reading: _Reading, what: str) -> BackendError:
        """The error to raise for a task Runware refused or failed (one line, the API's own words)."""
        error = reading.error
        code = str(error.get("code", ""))
        if code in _BALANCE_CODES:
            return AccountError(_REJECTED[402])
        if code in _KEY_CODES:
            return AccountError(_REJECTED[401])
        message = self.scrub(" ".join(str(error.get("message") or code or "no reason given").split()))
        parameter = error.get("parameter")
        if isinstance(parameter, list):
            parameter = ", ".join(str(p) for p in parameter)
        detail = f"{message} (parameter {parameter})" if parameter and str(parameter) not in message else message
        if "timeout" in code.lower() or code.lower().startswith(("internal", "serviceunavailable")):
            return TransientError(f"{what} failed on Runware: {detail}")
        return RequestRejected(f"Runware refused {what}: {detail}")


class _Call:
    """One ``generate()``: send (or resume) one task, wait for its takes, fetch them."""

    def __init__(self, backend: RunwareBackend, request: Request,
                 start: Callable[[], Awaitable[None]] | None = None):
        self.backend = backend
        self.request = request
        self._start = start
        self.settings = backend.settings
        self.journal = backend.services.journal
        self.task_uuid = str(uuid.uuid4())
        self.results: dict[str, dict[str, Any]] = {}  # imageUUID → item, in arrival order

    async def run(self) -> Generation:
        request = self.request
        pending = self.journal.pending(request.key) if self.journal is not None else None
        resumed = pending.get("task_uuid") if isinstance(pending, dict) else None
        if isinstance(resumed, str) and resumed:
            # a killed run sent this task: poll it rather than pay for it again
            self.task_uuid = resumed
            reading = await self._wait(first_delay=0.0)
            if reading.verdict is _Verdict.FAILED:
                self.task_uuid = str(uuid.uuid4())  # that task failed: this run tries anew
            if reading.verdict is not _Verdict.RESULTS:
                await self._send()  # UNKNOWN: it never arrived; send it now, same UUID
        else:
            await self._send()
        items = list(self.results.values())[: request.takes]
        images = await asyncio.gather(*(self._image(item) for item in items))
        # the journal entry stays until the run that owns the journal has recorded these
        # images: a run killed in between polls the task again instead of losing them
        costs = [image.cost for image in images if image.cost is not None]
        return Generation(
            images=tuple(images),
            task_id=self.task_uuid,
            cost=round(sum(costs), 6) if costs else None,
            backend=self.backend.name,
        )

    async def _slot(self) -> None:
        """Wait for the caller's slot, once, before the first task or poll goes out."""
        if self._start is not None:
            start, self._start = self._start, None
            await start()

    @property
    def complete(self) -> bool:
        return len(self.results) >= self.request.takes

    def _collect(self, items: tuple[dict[str, Any], ...]) -> None:
        for item in items:
            self.results.setdefault(item["imageUUID"], item)

    async def _send(self) -> None:
        """Submit the task (the same UUID on every retry) and wait until all its takes exist."""
        for _ in range(3):
            submitted, delivery = await self._submit()
            self._collect(submitted.items)
            if self.complete:
                return
            # a sync answer without our items was lost on the way: ask at once
            lost = submitted.verdict is _Verdict.RESULTS and delivery == "sync"
            reading = await self._wait(first_delay=0.0 if lost else None)
            if reading.verdict is _Verdict.RESULTS:
                return
            if reading.verdict is _Verdict.FAILED:
                self._forget()
                raise self.backend.rejection(reading, "the task")
            # UNKNOWN: the API never got the task (send it again), or it knows the UUID but no
            # longer its results (a conflict, then nothing to poll): that UUID is spent
            if submitted.verdict is _Verdict.CONFLICT:
                self.task_uuid = str(uuid.uuid4())
        self._forget()
        raise TransientError(f"Runware lost task {self.task_uuid} three times")

    async def _submit(self) -> tuple[_Reading, str]:
        """Send the task once (the transport retries); (what Runware said, the delivery method)."""
        request, backend = self.request, self.backend
        for fresh in (False, True):
            uuids = (backend.reference(ref, fresh=fresh) for ref in request.references)
            references = list(await asyncio.gather(*uuids))
            task = backend.task(request, self.task_uuid, references)
            delivery = task.get("deliveryMethod", "sync")
            if self.journal is not None:
                # durable before the task leaves: a small write and an fsync, done here rather
                # than in a thread, whose hand-off costs more than the write on a busy loop
                self.journal.begin(request.key, {
                    "task_uuid": self.task_uuid,
                    "model": request.model,
                    "sent_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                    "delivery": delivery,
                })
            try:
                await self._slot()
            except BaseException:  # never sent (the run stopped meanwhile): nothing to poll later
                self._forget()
                raise
            try:
                reading = _read(await backend.transport().call(task))
            except RequestRejected:
                self._forget()
                raise
            if reading.verdict is not _Verdict.FAILED:
                return reading, delivery
            if not fresh and request.references and _is_stale_reference(reading.error):
                self.task_uuid = str(uuid.uuid4())  # a new task: the refused one is not sent again
                continue
            self._forget()
            raise backend.rejection(reading, "the task")
        raise AssertionError("unreachable: the second pass returns or raises")

    async def _wait(self, first_delay: float | None) -> _Reading:
        """Poll getResponse until every take is in (RESULTS), or the API says FAILED or UNKNOWN."""
        delay = self.settings.poll_initial if first_delay is None else first_delay
        interval = self.settings.poll_initial
        while True:
            await self._slot()
            if delay > 0:
                await asyncio.sleep(delay)
            task = {"taskType": "getResponse", "taskUUID": self.task_uuid}
            reading = _read(await self.backend.transport().call(task))
            if reading.verdict in (_Verdict.FAILED, _Verdict.UNKNOWN):
                return reading
            self._collect(reading.items)
            if self.complete:
                return reading
            delay, interval = interval, min(interval * 1.5, self.settings.poll_max)

    def _forget(self) -> None:
        """The task was refused or failed for good: nothing is pending for this key any more."""
        if self.journal is not None:
            self.journal.finish(self.request.key)

    async def _image(self, item: dict[str, Any]) -> Image:
        image_uuid = item.get("imageUUID")
        try:
            if item.get("imageBase64Data"):
                data = base64.b64decode(item["imageBase64Data"], validate=True)
            elif item.get("imageDataURI"):
                data = base64.b64decode(str(item["imageDataURI"]).partition(",")[2], validate=True)
            elif item.get("imageURL"):
                data = await self.backend.transport().download(str(item["imageURL"]))
            else:
                raise BackendError(f"Runware sent image {image_uuid} without imageURL, imageBase64Data or imageDataURI")
        except binascii.Error as exc:
            raise BackendError(f"Runware sent image {image_uuid} with broken base64 data") from exc
        if _mime(data) not in ("image/png", "image/jpeg", "image/webp"):
            raise BackendError(f"Runware's image {image_uuid} is not a PNG, JPEG or WEBP file")
        cost = item.get("cost")
        seed = item.get("seed")
        return Image(
            data=data,
            seed=int(seed) if isinstance(seed, (int, float)) else None,
            remote_id=str(image_uuid),
            url=item.get("imageURL"),
            cost=float(cost) if isinstance(cost, (int, float)) else None,
        )
