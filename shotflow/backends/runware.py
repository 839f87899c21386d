"""The Runware backend: Runway Gen-4 Image on Runware's REST API, over httpx.

One ``generate()`` is one ``imageInference`` task, paid for once::

    Request ─► validate the task against schemas/models/<model>.json    (no network when invalid)
            ─► references: Runware imageUUID of an upstream take (remote_ids["runware"]),
                           else the memo ("runware-upload:<sha256>" → imageUUID, 30 days),
                           else imageUpload of a data URI (once per content hash; an image over
                           2048 px a side is downscaled first, as Runware would store it)
            ─► journal.begin(key, {"task_uuid", "model", "sent_at", "delivery", "tagged"})
            ─► POST /v1  [{"taskType": "imageInference", "taskUUID", "model", "positivePrompt",
                           "width", "height", "outputFormat", "outputQuality",
                           "numberResults": takes, "includeCost": true, "outputType",
                           "deliveryMethod": "async", "inputs": {"referenceImages": [...]}, ...},
                          ... other tasks that were ready at the same moment]
            ─► async (default): an acknowledgment; then getResponse, every task in flight in one
               request, until ``takes`` finished items have arrived (over one poll or several)
               sync: the items in the answer itself
            ─► imageURL downloaded (or imageBase64Data / imageDataURI decoded)
            ─► Generation(images=(Image(data, seed, remote_id=imageUUID, url, cost), ...),
                          task_id=taskUUID, cost, backend="runware", sent={...})

The journal entry stays until the run that owns the journal has recorded the images.

What is guaranteed, and under which delivery (README "Rendering on Runware"):

- **async** (default): a task is sent under one UUID, written durably to the journal first.
  A lost answer, a timeout, a 5xx or a kill is recovered by asking ``getResponse`` and, when
  Runware does not know the task, by sending it again *under the same UUID* (Runware answers
  ``conflictTaskUUID`` if it had it): never billed twice.
- **sync**: the same, except that Runware documents ``getResponse`` for async tasks only. When
  the answer to an accepted sync task is lost and Runware will not say what became of it, the
  shot fails with that message and its journal entry is kept: it is never sent again under a
  new UUID (that could pay twice). ``--force`` on the shot sends it anew, knowingly.

Settings (``Services.settings``, the storyboard's ``runware:`` section; all optional)::

    delivery        "sync" | "async"                    async
    output_type     "URL" | "base64Data" | "dataURI"    base64Data
    timeout         seconds per task, end to end        600
    batch           tasks per HTTP request (submissions, uploads)   8
    sync_batch      sync generations per HTTP request   1
    max_in_flight   HTTP requests in flight: generations, polls, uploads   15
    batch_window    seconds a ready task waits for others to share its request   0 (this tick)
    request_timeout seconds one HTTP request may take   120
    retries         retries after the first attempt     4
    retry_base      first backoff, doubling up to retry_cap, plus up to retry_base jitter   1.0
    retry_cap       longest backoff                     30
    poll_initial    first getResponse delay while a model's task time is unknown, then ×1.25  0.05
    poll_min        shortest pause between polls of a task                                   0.0025
    poll_max        longest pause between polls of a task                                   10

Failures: 408, 429, 5xx, timeouts, dropped connections and malformed JSON are retried with the
same taskUUID (honouring Retry-After, seconds or an HTTP date; 429s also lower the number of
requests in flight while they last). 400/401/402/403/404 are never retried as they are, but a
400 to a task with references is answered once with fresh uploads (a UUID Runware forgot, whatever
its error code says), and a 400 about ``referenceImages`` to a tagged task with plain strings and
the prompt's ``@tags`` written as positions (remembered per model for the run).

Answers are read defensively (``_read``): items are matched by taskUUID; an item counts as a
finished, paid image only with an imageUUID and the image itself (base64, data URI or URL) and a
status of ``success`` or none; ``error`` items and ``errors`` entries fail the task; progress
items, ``processing`` and unknown statuses mean "not yet".

The API key (env ``RUNWARE_API_KEY``, else ``RUNWARE_API_KEY=`` in ``<project>/.env``) is only
ever put in the Authorization header of requests to the API URL (env ``RUNWARE_API_URL``): never
in a message, a repr, the journal or the memo, and never sent to image URLs. Every error the API
sends is scrubbed of it, in every field, before anything reads it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
import os
import re
import urllib.parse
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

import httpx

from .. import catalog
from ..errors import AccountError, BackendError, ConfigError, RequestRejected, TransientError
from ._base import Backend, Generation, Image, Reference, Request, Services, Start
from ._runware_http import MAX_DOWNLOAD, REJECTED, Answer, Transport, first_quartile, prepare_tls

__all__ = [
    "DEFAULT_URL",
    "MAX_DOWNLOAD",
    "MAX_UPLOAD_SIDE",
    "RunwareBackend",
    "Settings",
    "UPLOAD_MEMO_PREFIX",
    "UPLOAD_TTL",
    "api_key",
]

DEFAULT_URL = "https://api.runware.ai/v1"
UPLOAD_MEMO_PREFIX = "runware-upload:"
UPLOAD_TTL = 30 * 86400  # Runware deletes uploads 30 days after their last use
MAX_UPLOAD_SIDE = 2048  # Runware stores an uploaded image at most this many pixels a side
_PLACEHOLDER_UUID = "00000000-0000-4000-8000-000000000000"  # stands for a reference not uploaded yet

_BALANCE_CODES = {"insufficientCredits", "insufficientBalance", "insufficientFunds", "paymentRequired"}
_KEY_CODES = {"invalidApiKey", "missingApiKey", "apiKeyRequired"}
_IN_PROGRESS = {"processing", "queued", "pending", "scheduled", "waiting", "running", "started", "in_progress"}
_IMAGE_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF8", "image/gif"),
    (b"BM", "image/bmp"),
)
_MENTION = re.compile(r"@([A-Za-z][A-Za-z0-9]{2,15})\b")


# ── settings and the key ────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Settings:
    """The backend's knobs (see the module docstring); ``from_mapping`` checks their values."""

    # Runware's SDKs default to async, and only an async task can be asked about after a lost
    # answer (getResponse is documented for async tasks): the one delivery that never pays twice
    delivery: str = "async"
    # the image comes in the answer: one round trip instead of two, nothing left to expire
    output_type: str = "base64Data"
    timeout: float = 600.0
    batch: int = 8
    # a sync request answers when its slowest task ends, and tasks that start together end
    # together: batched generations move in lockstep. One a request, a freed slot is refilled
    # as soon as its own answer is in
    sync_batch: int = 1
    # HTTP requests at once, whatever --jobs is: Runware's own SDK keeps at most 15 in flight
    # (API-NOTES.md); a 429 halves it for a while
    max_in_flight: int = 15
    batch_window: float = 0.0  # 0: tasks that became ready in the same event-loop tick share a request
    request_timeout: float = 120.0
    retries: int = 4
    retry_base: float = 1.0
    retry_cap: float = 30.0
    poll_initial: float = 0.05
    poll_min: float = 0.0025
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
        numbers = (
            "timeout",
            "request_timeout",
            "batch_window",
            "retry_base",
            "retry_cap",
            "poll_initial",
            "poll_min",
            "poll_max",
        )
        for name in numbers:
            value = settings.get(name, getattr(values, name))
            bound = "above 0" if name in ("timeout", "request_timeout") else "at least 0"
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not number or value < 0 or (value == 0 and bound == "above 0"):
                raise ConfigError(f"runware.{name} must be a number of seconds {bound}, not {value!r}")
        known = {name: settings[name] for name in cls.__dataclass_fields__ if name in settings}
        return cls(**known)


def api_key(project_dir: Path) -> str:
    """``RUNWARE_API_KEY`` from the environment, else from ``<project_dir>/.env``."""
    key = os.environ.get("RUNWARE_API_KEY", "").strip()
    if not key:
        key = _dotenv(project_dir / ".env").get("RUNWARE_API_KEY", "").strip()
        if key:
            _refuse_if_tracked(project_dir / ".env")
            _warn_unless_ignored(project_dir / ".env")
    if not key:
        raise ConfigError(f"no Runware API key: set RUNWARE_API_KEY or put it in {project_dir / '.env'}")
    if not key.isascii() or not key.isprintable():
        # it goes in an HTTP header: a newline or a non-ASCII letter would fail (or split) the request
        raise ConfigError(
            "the Runware API key holds a line break, a control or a non-ASCII character; nothing was sent",
            hint="copy the key again from your Runware dashboard",
        )
    return key


def _refuse_if_tracked(dotenv: Path) -> None:
    """A ``.env`` git tracks came with the repository (or is on its way into it): the key in it is
    whoever committed it's — your renders, prompts and reference images would go to their
    account — and, if it is yours, everyone's who has the repository. Never used."""
    from .._gitignore import came_with_repository

    if came_with_repository(dotenv):
        where = f"{dotenv} (a link to {os.path.realpath(dotenv)})" if dotenv.is_symlink() else dotenv
        raise ConfigError(
            f"the Runware key would come from {where}, which git tracks: a key committed with a project is "
            "whoever committed it's (and everyone's who has the repository), so shotflow does not use it; "
            "nothing was sent",
            hint="set RUNWARE_API_KEY in your environment; if the key is yours, untrack the file "
            "(git rm --cached .env), add .env to .gitignore, and replace the key in your Runware dashboard",
        )


def _warn_unless_ignored(dotenv: Path) -> None:
    """A key in a ``.env`` that git would commit is everyone's who gets the repository (and a
    ``.env`` that came with someone else's repository holds *their* key): say so, once."""
    import warnings

    from .._gitignore import ignored
    from ..errors import ShotflowWarning

    if not dotenv.is_symlink() and ignored(dotenv) is False:  # a link would be committed, not the key
        warnings.warn(
            f"the Runware key comes from {dotenv}, which git does not ignore: committed, it is the key of "
            "everyone with the repository (add .env to .gitignore; a .env that came with someone else's "
            "project holds their key: set RUNWARE_API_KEY instead)",
            ShotflowWarning,
            stacklevel=3,
        )


def _api_url(url: str) -> str:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ConfigError(f"RUNWARE_API_URL is not a URL: {url!r}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(f"RUNWARE_API_URL must be an http(s) URL such as {DEFAULT_URL}, not {url!r}")
    return url


DOTENV_BYTES = 64 * 1024  # a .env of a few keys; a committed link to /dev/zero must not be read whole


def _dotenv(path: Path) -> dict[str, str]:
    """``NAME=value`` lines of a .env file (``export``, quotes and ``#`` comments allowed).
    A link is followed (a user's ``.env -> ~/secrets/runware.env``), but only to a regular
    file of at most DOTENV_BYTES: never a FIFO, a device, or a file read whole whatever its size."""
    from ..statefile import read_regular

    try:
        text = read_regular(path, DOTENV_BYTES, follow=True).decode("utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc.__class__.__name__}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"cannot read {path}: it is not UTF-8 text") from None
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


# ── reading answers ─────────────────────────────────────────────────────────────────────────


class _Verdict(Enum):
    RESULTS = "results"  # finished items (maybe none yet, maybe not all), or an acknowledgment
    CONFLICT = "conflict"  # the UUID was accepted earlier: ask about it, never pay again
    UNKNOWN = "unknown"  # getResponse does not know the task (taskNotFound)
    EXPIRED = "expired"  # Runware had the results and no longer has them (taskExpired)
    GONE = "gone"  # taskFailedOrNotFound: failed, or never arrived
    FAILED = "failed"  # refused or failed: an error entry or an item with status "error"


@dataclass(frozen=True)
class _Reading:
    verdict: _Verdict
    items: tuple[dict[str, Any], ...] = ()  # finished images only
    error: dict[str, Any] = field(default_factory=dict)
    status: int = 200
    running: bool = False  # an item said the task is still in progress


def _read(answer: Answer) -> _Reading:
    """Sort one task's answer into finished images, a conflict, an unknown, expired or failed task.

    Shapes from Runware's docs and SDKs: errors in ``errors`` (``parameter`` a string or a list)
    or as ``data`` items with ``status: "error"``; items still ``processing`` (or queued, …);
    progress items without a status; finished items with or without ``status: "success"``.
    Only an item with an imageUUID *and* the image itself counts as finished: anything unknown
    or ambiguous is "not yet", never a paid image.
    """
    for error in answer.errors:
        code = str(error.get("code", ""))
        if code == "conflictTaskUUID":
            return _Reading(_Verdict.CONFLICT, status=answer.status)
        if code == "taskExpired":
            return _Reading(_Verdict.EXPIRED, error=error, status=answer.status)
        if code == "taskFailedOrNotFound":
            return _Reading(_Verdict.GONE, error=error, status=answer.status)
        not_found = error.get("taskType") == "getResponse" and "not found" in str(error.get("message", "")).lower()
        if code == "taskNotFound" or not_found:
            return _Reading(_Verdict.UNKNOWN, status=answer.status)
        return _Reading(_Verdict.FAILED, error=error, status=answer.status)
    items, running = [], False
    for item in answer.items:
        status = str(item.get("status") or "").lower()
        if status in ("error", "failed", "failure"):
            failure = item["error"] if isinstance(item.get("error"), dict) else item
            return _Reading(_Verdict.FAILED, error=failure, status=answer.status)
        if status in ("", "success") and _finished(item):
            items.append(item)
        else:
            running = True
    return _Reading(_Verdict.RESULTS, items=tuple(items), status=answer.status, running=running)


def _finished(item: dict[str, Any]) -> bool:
    if not isinstance(item.get("imageUUID"), str) or not item["imageUUID"]:
        return False
    return any(
        isinstance(item.get(name), str) and item[name] for name in ("imageBase64Data", "imageDataURI", "imageURL")
    )


_MISSING = ("not found", "notfound", "unknown", "expired", "missing", "invalid", "does not exist", "no longer")


def _mentions_images(error: dict[str, Any]) -> bool:
    """Whether a refusal may be about a reference image Runware forgot, in any field, whatever
    its code: it names referenceImages or an imageUUID, or says an image is not found, unknown,
    expired, invalid…"""
    text = json.dumps(error, default=str).lower()
    if "referenceimages" in text or "imageuuid" in text:
        return True
    return ("image" in text or "reference" in text) and any(word in text for word in _MISSING)


def _about_reference_images(error: dict[str, Any]) -> bool:
    return "referenceimages" in json.dumps(error, default=str).lower()


def _entry(image: str, tag: str | None, tagged: bool) -> str | dict[str, str]:
    """One referenceImages entry: a plain string, or Runway's ``{image, tag}`` form."""
    if not tagged:
        return image
    return {"image": image, "tag": tag} if tag else {"image": image}


def positional_prompt(prompt: str, references: tuple[Reference, ...]) -> str:
    """``@tags`` written as positions, for a model that refuses tagged references:
    "@mara at the door" → "the subject of reference 2 at the door" (1-based, request order)."""
    positions = {ref.tag.lower(): i for i, ref in enumerate(references, 1) if ref.tag}

    def word(match: re.Match[str]) -> str:
        position = positions.get(match.group(1).lower())
        return f"the subject of reference {position}" if position else match.group(0)

    return _MENTION.sub(word, prompt)


def _costs(items: list[dict[str, Any]], model: str) -> tuple[list[float | None], float | None]:
    """(cost of each image, cost of the task) from the items' ``cost``, which Runware gives per
    image or per task: all equal and nearer the task's price than an image's means per task;
    on some items only, it is the task's, shared out."""
    raw = [
        float(i["cost"]) if isinstance(i.get("cost"), (int, float)) and not isinstance(i.get("cost"), bool) else None
        for i in items
    ]
    known = [c for c in raw if c is not None]
    if not known:
        return raw, None
    count = len(items)
    if len(known) < count:
        total = sum(known)
        return [round(total / count, 6)] * count, round(total, 6)
    try:
        price = catalog.get(model).price_per_image
    except Exception:  # noqa: BLE001 - an unknown model has no price: read the costs as given
        price = None
    if count > 1 and price and len(set(known)) == 1 and abs(known[0] - price * count) < abs(known[0] - price):
        return [round(known[0] / count, 6)] * count, round(known[0], 6)
    return raw, round(sum(known), 6)


def _mime(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return next((mime for magic, mime in _IMAGE_SIGNATURES if data.startswith(magic)), None)


def fit_for_upload(data: bytes) -> bytes:
    """The image as Runware would store it: unchanged when at most 2048 px a side, else
    downscaled to fit (Lanczos) and encoded as PNG — deterministic, so the same file always
    becomes the same bytes (and one upload, remembered by the original's hash)."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    try:
        with PILImage.open(io.BytesIO(data)) as image:
            if max(image.size) <= MAX_UPLOAD_SIDE:
                return data
            image.thumbnail((MAX_UPLOAD_SIDE, MAX_UPLOAD_SIDE), PILImage.Resampling.LANCZOS)
            out = io.BytesIO()
            image.save(out, "PNG")
    except (UnidentifiedImageError, OSError):
        return data  # Runware says what is wrong with it
    return out.getvalue()


# ── the backend ─────────────────────────────────────────────────────────────────────────────


class RunwareBackend(Backend):
    """Generates images on Runware; one instance per run (see the module docstring)."""

    name = "runware"
    deterministic = False
    # generate() takes ``start``: the request is checked, its references resolved and its
    # journal entry made durable before it waits for a slot (see generate)
    prepares = True

    def __init__(self, services: Services):
        super().__init__(services)
        self.services: Services = services
        self.settings = Settings.from_mapping(dict(services.settings or {}))
        self.url = _api_url(os.environ.get("RUNWARE_API_URL", "").strip() or DEFAULT_URL)
        self._key = api_key(Path(services.project_dir))
        self._secrets = tuple({self._key, urllib.parse.quote(self._key, safe=""), json.dumps(self._key)[1:-1]})
        self._transport: Transport | None = None
        self._host = urllib.parse.urlsplit(self.url).hostname or ""  # task times are remembered per host
        self._uploaded: dict[str, str] = {}  # sha256 → imageUUID, this run
        self._seen: set[str] = set()  # imageUUIDs Runware gave this run (uploads, results): not stale
        self._untagged: set[str] = set()  # models that refused tagged references this run

    def __repr__(self) -> str:
        return f"RunwareBackend(url={self.url!r}, delivery={self.settings.delivery!r})"

    @classmethod
    def warm_up(cls) -> None:
        """The TLS context, made in a thread while the run plans (``_runware_http.prepare_tls``)."""
        prepare_tls()

    @property
    def limit(self) -> int:
        """HTTP requests in flight at most (``max_in_flight``): this backend's load on the API,
        not the run's scheduling, which ``--jobs`` alone decides (in ``resolve``)."""
        return self.settings.max_in_flight

    async def generate(self, request: Request, start: Start | None = None) -> Generation:
        """Generate ``request``'s takes. ``start``, when given, is awaited once before the task
        (or a poll of it) first goes out: the caller's slot. Everything before that — the schema
        check, the references' UUIDs, the journal entry, made durable — is done meanwhile, so a
        freed slot is followed by the POST alone."""
        try:
            self._check(request)
            call = _Call(self, request, start)
            try:
                async with asyncio.timeout(self.settings.timeout):
                    return await call.run()
            except TimeoutError as exc:
                got = f"{len(call.results)} of {request.takes} images" if request.takes > 1 else "no image"
                later = (
                    "; the next run asks for it instead of paying again" if self.services.journal is not None else ""
                )
                raise TransientError(
                    f"Runware gave {got} within {self.settings.timeout:g} s (task {call.task_uuid}){later}"
                ) from exc
        except BackendError as exc:
            clean = self.scrub(exc.message)
            if clean != exc.message or self._leaks(exc.__cause__):
                raise type(exc)(clean, where=exc.where, hint=exc.hint) from None
            raise

    async def aclose(self) -> None:
        if self._transport is not None:
            transport, self._transport = self._transport, None
            await transport.aclose()
            learned = transport.poller.durations()
            if learned:
                _remember_task_times(self._host, learned)

    # the parts a call uses

    def transport(self) -> Transport:
        """The transport of the running event loop (a new loop gets a new client)."""
        loop = asyncio.get_running_loop()
        if self._transport is None or self._transport.loop is not loop:
            hints = _task_times().get(self._host, {})
            self._transport = Transport(self.url, self._key, self.settings, self.scrub, self.limit, _estimates(hints))
        return self._transport

    def scrub(self, value: Any) -> Any:
        """``value`` (text, or an error's fields, nested) with the API key masked, in any
        spelling a server might echo it in."""
        if isinstance(value, str):
            for secret in self._secrets:
                if secret:
                    value = value.replace(secret, "***")
            return value
        if isinstance(value, dict):
            return {self.scrub(k): self.scrub(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self.scrub(v) for v in value)
        return value

    def _leaks(self, error: BaseException | None) -> bool:
        return error is not None and any(secret in str(error) for secret in self._secrets if secret)

    def tags_refused(self, model: str) -> bool:
        return model in self._untagged

    def refuse_tags(self, model: str) -> None:
        if model not in self._untagged:
            self._untagged.add(model)
            self.notes.append(
                f"Runware refused tagged reference images for {model} (a 400 about referenceImages): its shots were "
                'sent with plain references and their @tags written as positions ("the subject of reference 2")'
            )

    def task(
        self,
        request: Request,
        task_uuid: str,
        references: list[str],
        *,
        tagged: bool | None = None,
        prompt: str | None = None,
        delivery: str | None = None,
    ) -> dict[str, Any]:
        tagged = request.tagged if tagged is None else tagged
        task: dict[str, Any] = {
            "taskType": "imageInference",
            "taskUUID": task_uuid,
            "model": request.model,
            "positivePrompt": request.prompt if prompt is None else prompt,
            "width": request.width,
            "height": request.height,
            "outputFormat": request.output_format,
            "outputQuality": request.output_quality,
            "numberResults": request.takes,
            "includeCost": True,
        }
        settings = self.settings
        options = {
            "outputType": settings.output_type,
            "deliveryMethod": delivery or settings.delivery,
            **request.options,
        }
        task.update((name, value) for name, value in options.items() if name not in task and value is not None)
        if request.safety:
            task["safety"] = request.safety
        if request.provider_settings:
            task["providerSettings"] = request.provider_settings
        if references:
            entries = zip(references, request.references, strict=True)
            task["inputs"] = {"referenceImages": [_entry(image, ref.tag, tagged) for image, ref in entries]}
        return task

    def _check(self, request: Request, *, tagged: bool | None = None, prompt: str | None = None) -> None:
        """Refuse a request the model's schema refuses, before any network traffic."""
        # placeholders stand for what is not known yet (the task's UUID, references not
        # uploaded) and for what is (an upstream take's UUID is a non-empty string like them):
        # tasks of one shape then differ only in their prompt, checked once per shape
        placeholders = [_PLACEHOLDER_UUID for _ in request.references]
        task = self.task(request, _PLACEHOLDER_UUID, placeholders, tagged=tagged, prompt=prompt)
        problems = catalog.task_errors(task, by_shape=True)
        if problems:
            how = " (with its @tags written as positions)" if prompt is not None else ""
            raise RequestRejected(f"invalid request for {request.model}{how}: {'; '.join(problems)}")

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

    def known_this_run(self, image_uuid: str) -> bool:
        """An imageUUID Runware gave during this run (so not one it may have forgotten)."""
        return image_uuid in self._seen

    async def _upload(self, ref: Reference) -> str:
        label = f"reference {ref.source or ref.sha256[:12]}"
        mime = _mime(ref.data)
        if mime is None:
            raise RequestRejected(f"{label} is not a PNG, JPEG, WEBP, GIF or BMP image")
        data = await asyncio.to_thread(fit_for_upload, ref.data)
        image = f"data:{_mime(data)};base64," + base64.b64encode(data).decode("ascii")
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
        self._seen.add(uploaded)
        if self.services.memo is not None:
            await asyncio.to_thread(self.services.memo.put, UPLOAD_MEMO_PREFIX + ref.sha256, uploaded, UPLOAD_TTL)
        return uploaded

    def rejection(self, reading: _Reading, what: str) -> BackendError:
        """The error to raise for a task Runware refused or failed (one line, the API's own words)."""
        error = self.scrub(reading.error)
        code = str(error.get("code", ""))
        if code in _BALANCE_CODES:
            return AccountError(REJECTED[402])
        if code in _KEY_CODES:
            return AccountError(REJECTED[401])
        message = " ".join(str(error.get("message") or code or "no reason given").split())
        parameter = error.get("parameter")
        if isinstance(parameter, list):
            parameter = ", ".join(str(p) for p in parameter)
        detail = f"{message} (parameter {parameter})" if parameter and str(parameter) not in message else message
        if "timeout" in code.lower() or code.lower().startswith(("internal", "serviceunavailable")):
            return TransientError(f"{what} failed on Runware: {detail}")
        return RequestRejected(f"Runware refused {what}: {detail}")


class _Call:
    """One ``generate()``: send (or resume) one task, wait for its takes, fetch them.

    ``task_uuid`` is the UUID the task is known by; ``delivery`` and ``tagged`` the form it was
    (or will be) sent in. A UUID that Runware may have accepted is never replaced: every resend
    of it carries the same UUID, so that Runware answers ``conflictTaskUUID`` instead of billing.
    """

    def __init__(self, backend: RunwareBackend, request: Request, start: Start | None = None):
        self.backend = backend
        self.request = request
        self._start = start
        self._permit = start  # released once every take is known, before the images are fetched
        self.settings = backend.settings
        self.journal = backend.services.journal
        self.task_uuid = str(uuid.uuid4())
        self.delivery = self.settings.delivery
        self.tagged = request.tagged and not backend.tags_refused(request.model)
        self.claimed = False  # the UUID may have been accepted by Runware (sent before, or resumed)
        self.accepted_at: float | None = None  # loop time the accepted submission was sent (async)
        self.results: dict[str, dict[str, Any]] = {}  # imageUUID → item, in arrival order

    @property
    def prompt(self) -> str | None:
        """The prompt sent instead of the request's: @tags as positions once tags are refused."""
        return (
            positional_prompt(self.request.prompt, self.request.references)
            if self.request.tagged and not self.tagged
            else None
        )

    async def run(self) -> Generation:
        request = self.request
        entry = self.journal.pending(request.key) if self.journal is not None else None
        resumed = entry.get("task_uuid") if isinstance(entry, dict) else None
        if isinstance(entry, dict) and isinstance(resumed, str) and resumed:
            # a killed (or failed) run sent this task: ask about it rather than pay for it again
            self.task_uuid, self.claimed = resumed, True
            self.delivery = "async" if entry.get("delivery") == "async" else "sync"
            if isinstance(entry.get("tagged"), bool):
                self.tagged = entry["tagged"] and request.tagged
            await self._recover()
        else:
            await self._send()
        if self._permit is not None:  # Runware's part is over: the next shot may send while these download
            self._permit.release()
        items = list(self.results.values())[: request.takes]
        costs, total = _costs(items, request.model)
        images = await asyncio.gather(*(self._image(item, cost) for item, cost in zip(items, costs, strict=True)))
        sent: dict[str, Any] = {}
        if self.prompt is not None:
            sent = {"prompt": self.prompt, "tagged": False}
        return Generation(
            images=tuple(images), task_id=self.task_uuid, cost=total, backend=self.backend.name, sent=sent
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
            self.backend._seen.add(item["imageUUID"])

    # sending

    async def _send(self) -> None:
        """Submit the task, then wait until all its takes exist."""
        reading = await self._submit()
        self._collect(reading.items)
        if self.complete:
            return
        if self.delivery == "async":
            await self._await_results()
        else:
            await self._sync_lost(reading)

    async def _submit(self) -> _Reading:
        """Send the task (the transport retries it with the same UUID) until Runware takes it:
        an acknowledgment, results, or a conflict. A 400 to a task with references is answered
        once with fresh uploads, then (tagged) once with plain strings; raises on a refusal."""
        request, backend = self.request, self.backend
        fresh = False
        while True:
            uuids = list(await asyncio.gather(*(backend.reference(ref, fresh=fresh) for ref in request.references)))
            if self.prompt is not None:
                backend._check(request, tagged=False, prompt=self.prompt)
            task = backend.task(
                request, self.task_uuid, uuids, tagged=self.tagged, prompt=self.prompt, delivery=self.delivery
            )
            transport = backend.transport()  # the client too is made before the slot is taken
            await self._journal()
            try:
                await self._slot()
            except BaseException:  # never sent (the run stopped meanwhile): nothing to ask about later
                if not self.claimed:
                    self._forget()
                raise
            sent = asyncio.get_running_loop().time()  # a task's time is counted from here
            try:
                reading = _read(await transport.call(task))
            except RequestRejected:
                if not self.claimed:
                    self._forget()
                raise
            if reading.verdict is not _Verdict.FAILED:
                self.claimed = True
                if reading.verdict is _Verdict.RESULTS and self.accepted_at is None:
                    self.accepted_at = sent
                return reading
            # an error entry for a submitted task is a refusal, not billed (HTTP 400 alone, or 200
            # when other tasks of the same request went through)
            refused = bool(request.references)
            stale = (
                refused
                and not fresh
                and _mentions_images(reading.error)
                and not all(backend.known_this_run(u) for u in uuids)
            )
            untag = refused and self.tagged and _about_reference_images(reading.error)
            if not (stale or untag):
                if not self.claimed:
                    self._forget()
                raise backend.rejection(reading, "the task")
            if stale:
                fresh = True  # a UUID Runware forgot, whatever its code says: upload afresh, send again
            else:
                self.tagged = False
                backend.refuse_tags(request.model)
            if not self.claimed:
                # everything sent under this UUID was refused (a 400 is the same for every attempt
                # of one body): the changed task goes under a new one
                self.task_uuid = str(uuid.uuid4())

    async def _journal(self, **more: Any) -> None:
        """Make the task durable before it leaves: a killed run finds it and asks about it."""
        if self.journal is None:
            return
        # in a thread: two fsyncs take milliseconds on a busy disk, and on the event loop they
        # would hold back every poll and answer of the other tasks in flight
        await asyncio.to_thread(
            self.journal.begin,
            self.request.key,
            {
                "task_uuid": self.task_uuid,
                "model": self.request.model,
                "sent_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "delivery": self.delivery,
                "tagged": self.tagged,
                **more,
            },
        )

    # waiting

    async def _await_results(self, *, asked: bool = False) -> None:
        """Poll (batched with every other task in flight) until every take is in. A task Runware
        does not know is sent again under its own UUID (it answers conflictTaskUUID if it had it)."""
        poller = self.backend.transport().poller
        resent = 0
        since = None if asked else self.accepted_at
        try:
            while not self.complete:
                await self._slot()
                reading = _read(await poller.next(self.task_uuid, self.request.model, since=since))
                verdict = reading.verdict
                if verdict is _Verdict.RESULTS:
                    self._collect(reading.items)
                    continue
                if verdict is _Verdict.FAILED:
                    self._forget()
                    raise self.backend.rejection(reading, "the task")
                if verdict is _Verdict.EXPIRED:
                    self._forget()
                    raise TransientError(
                        f"Runware no longer holds the results of task {self.task_uuid} (taskExpired): they were paid "
                        "for and cannot be fetched; the next run generates this shot anew"
                    )
                if resent >= 2:
                    if verdict is _Verdict.GONE:  # it knows the UUID (conflict) but has no result: it failed
                        self._forget()
                        raise self.backend.rejection(reading, "the task")
                    raise TransientError(
                        f"Runware lost task {self.task_uuid}: it neither knows it nor takes it "
                        "again; its journal entry is kept, the next run asks again"
                    )
                resent += 1
                poller.done(self.task_uuid, finished=False)
                again = await self._submit()  # same UUID: never billed twice
                self._collect(again.items)
                since = asyncio.get_running_loop().time()
            poller.done(self.task_uuid, finished=self.accepted_at is not None and not asked)
        except BaseException:
            poller.done(self.task_uuid, finished=False)
            raise

    async def _recover(self) -> None:
        """Resume a task from the journal: ask about it first, send it (same UUID) if unknown."""
        if self.delivery == "async":
            await self._await_results(asked=True)
            return
        # sync: Runware documents getResponse for async tasks only, but a service that can answer is asked
        if await self._ask_once():
            return
        submitted = await self._submit()  # same UUID: if Runware had it, it says conflict
        self._collect(submitted.items)
        if not self.complete:
            await self._sync_lost(submitted)

    async def _ask_once(self) -> bool:
        """Ask Runware about the task once. True: it answered with results (collected, and
        awaited to the end); False: it does not know the task. Raises when it says the task failed."""
        await self._slot()
        poller = self.backend.transport().poller
        reading = _read(await poller.next(self.task_uuid, self.request.model))
        poller.done(self.task_uuid, finished=False)
        if reading.verdict is _Verdict.RESULTS and (reading.items or reading.running):
            self._collect(reading.items)
            if not self.complete:
                await self._await_results(asked=True)
            return True
        if reading.verdict is _Verdict.FAILED:
            self._forget()
            raise self.backend.rejection(reading, "the task")
        return False

    async def _sync_lost(self, submitted: _Reading) -> None:
        """A sync task Runware took (a conflict, or an answer without our images): ask once;
        when Runware will not say, the outcome is unknown and the task is never sent again."""
        if await self._ask_once():
            return
        await self._journal(outcome="unknown")
        raise TransientError(
            f"the answer to sync task {self.task_uuid} was lost after Runware accepted it, and Runware keeps no "
            "result of a sync task to ask for: it may have been paid for. It is not sent again (that could pay "
            "twice); its journal entry is kept. Async delivery (the default) recovers from this; "
            f"`shotflow render --force {self.request.node_id}` sends it anew, knowing it may pay twice"
        )

    def _forget(self) -> None:
        """The task was refused or failed for good: nothing is pending for this key any more."""
        if self.journal is not None:
            self.journal.finish(self.request.key)

    async def _image(self, item: dict[str, Any], cost: float | None) -> Image:
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
        seed = item.get("seed")
        return Image(
            data=data,
            seed=int(seed) if isinstance(seed, (int, float)) and not isinstance(seed, bool) else None,
            remote_id=str(image_uuid),
            url=item.get("imageURL"),
            cost=cost,
        )


# -- how long a model's tasks take, remembered between runs (the poller's first estimate) ------

TASK_TIMES = "runware-task-times.json"  # in the user cache, sealed: {host: {model: [seconds, ...]}}


def _task_times() -> dict[str, dict[str, list[float]]]:
    """What earlier runs learned; anything malformed is ignored (it is only a hint)."""
    from .. import _usercache

    payload = _usercache.load(TASK_TIMES, limit=64 * 1024)
    try:
        data = json.loads(payload) if payload else {}
    except ValueError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {
        host: {
            model: [float(t) for t in times if isinstance(t, (int, float)) and 0 < t < 86400][-16:]
            for model, times in models.items()
            if isinstance(times, list)
        }
        for host, models in data.items()
        if isinstance(host, str) and isinstance(models, dict)
    }


def _estimates(times: dict[str, list[float]]) -> dict[str, float]:
    """model → the first quartile of its remembered times (as the poller estimates)."""
    return {model: first_quartile(t) for model, t in times.items() if t}


def _remember_task_times(host: str, learned: dict[str, list[float]]) -> None:
    from .. import _usercache

    data = _task_times()
    models = data.pop(host, {})
    for model, times in learned.items():
        models[model] = [round(t, 4) for t in times[-16:]]
    data[host] = dict(list(models.items())[-32:])
    data = dict(list(data.items())[-16:])  # a bound on what the user cache holds: the hosts used last
    _usercache.store(TASK_TIMES, json.dumps(data, sort_keys=True).encode())
