"""The Runware backend's HTTP layer: one client per event loop, a gate on requests in flight,
retries, shared requests, and one poller that asks about every task in flight at once.

    _Transport.call(task) ─► queued with what else is ready ─► POST [tasks] ─► _Answer per task
                                                               │
    _Gate ── at most ``limit`` requests in flight (generations, polls, uploads); while Runware
             answers 429 the limit halves (once per wave of requests), and climbs back one at a
             time after ``limit`` answers in a row; a Retry-After pauses every request
    _Poller.next(task) ─► the task's answer from the next getResponse request, which carries
             every task due by then (one request for all of them, not one a task)

Poll timing (why the default async delivery costs little speed): until a task of a model has
finished, a task is first asked after ``poll_initial`` and then ×1.25 (up to ``poll_max``).
Once tasks have finished, the first quartile of their last 16 durations is the model's
estimate (a duration is the middle of the polls that saw the task running and done): a task is
first asked a little before it (0.95 ×; a task longer than ``poll_max`` at ``poll_max``, then every
``poll_max`` at most until then), then after every 1 % of it (at least ``poll_min``) up to
it, and past it each pause a tenth longer than the last (at most ``poll_max``): the poll that
finds a task done on time comes at most one fine step after its end (pauses that grew from the
first poll on were already ~1.5 times as long when tasks ended). A task done at its first poll counts
as ended a tenth before it; four in a row, as ended halfway (an estimate far too long comes
down in a wave or two). Every task due within half a step
goes in the same request. For a service whose tasks take 10 s that is a request every 0.1 s
around the time tasks end, and fewer as they run late; for the emulator's 0.2 s, every 2.5 ms.
A model's estimate is remembered between runs (the user cache, per API host): until a task of
this run has finished, the first tasks are asked about on both schedules, the unknown one and
the remembered estimate's, whichever poll is sooner. A first wave of 10 s tasks is then seen
done within 0.1 s, not up to 2.5 s late; a remembered time that is wrong costs a few polls.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import random
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

if TYPE_CHECKING:
    import ssl

from ..errors import AccountError, BackendError, RequestRejected, TransientError

MAX_DOWNLOAD = 64 * 1024 * 1024
POLL_CHUNK = 100  # getResponse tasks per request at most
FIRST = 0.95  # a task is first asked about at this fraction of its model's time…
STEP = 0.01  # …then after this fraction of it; past the time, each pause a tenth longer than the last
UNKNOWN_GROWTH = 1.25  # pauses while a model's time is not known yet
EARLY_STREAK = 4  # tasks in a row done at their first poll: the estimate is too long, come down faster
REJECTED = {
    401: "Runware rejected the API key (401): check RUNWARE_API_KEY",
    402: "insufficient Runware balance (402): top up at https://my.runware.ai/wallet",
    403: "this API key is not permitted to run this task on Runware (403): check the key's permissions",
}
_RETRIED_STATUS = {408, 425, 429}
_THROTTLE_STATUS = {429, 503, 504}  # the service is full: every request waits out its Retry-After
_T = TypeVar("_T")


@dataclass(frozen=True)
class Answer:
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


def retry_after(value: str | None) -> float | None:
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
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


# ── the gate ────────────────────────────────────────────────────────────────────────────────


class _Gate:
    """At most ``limit`` requests in flight, first come first served; fewer while Runware
    keeps answering 429, and none while a Retry-After pause runs.

    Additive increase, multiplicative decrease: a 429 halves the limit, but only once per wave
    (a 429 to a request sent before the last cut does not cut again); ``limit`` good answers
    in a row give one slot back, up to the most allowed.
    """

    def __init__(self, most: int):
        self.most = most
        self.limit = most
        self.busy = 0
        self.epoch = 0  # bumped by every cut
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._resume_at = 0.0
        self._wins = 0
        self._timer: asyncio.TimerHandle | None = None

    async def acquire(self) -> int:
        """Wait for a slot; returns the epoch the request is sent in (see ``answered``)."""
        loop = asyncio.get_running_loop()
        if not self._waiters and self.busy < self.limit and loop.time() >= self._resume_at:
            self.busy += 1
            return self.epoch
        future: asyncio.Future[None] = loop.create_future()
        self._waiters.append(future)
        self._wake()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # granted just as it was cancelled: pass the slot on
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(future)
            raise
        return self.epoch

    def release(self) -> None:
        self.busy -= 1
        self._wake()

    def answered(self, epoch: int, status: int, wait: float | None) -> None:
        """Learn from one answer: 429 cuts the limit, 429/503/504 with Retry-After pause all."""
        loop = asyncio.get_running_loop()
        if status in _THROTTLE_STATUS:
            self._wins = 0
            if wait:
                self._resume_at = max(self._resume_at, loop.time() + wait)
            if status == 429 and epoch == self.epoch:
                self.limit = max(1, self.limit // 2)
                self.epoch += 1
            return
        self._wins += 1
        if self.limit < self.most and self._wins >= self.limit:
            self.limit += 1
            self._wins = 0
            self._wake()

    def _wake(self) -> None:
        loop = asyncio.get_running_loop()
        pause = self._resume_at - loop.time()
        if pause > 0:
            if self._timer is None:

                def resume() -> None:
                    self._timer = None
                    self._wake()

                self._timer = loop.call_later(pause, resume)
            return
        while self._waiters and self.busy < self.limit:
            future = self._waiters.popleft()
            if not future.done():
                self.busy += 1
                future.set_result(None)


def first_quartile(times: Iterable[float]) -> float:
    """A model's estimate from its task times (see ``Poller.estimate``): their first quartile."""
    ordered = sorted(times)
    return ordered[len(ordered) // 4]


# ── TLS, made ahead ─────────────────────────────────────────────────────────────────────────

# httpx makes a TLS context for every client, loading certifi's CA bundle: ~50 ms, most of it in
# OpenSSL, which releases the GIL. Made in a thread while the run still plans (``prepare_tls``,
# through ``RunwareBackend.warm_up``), it is ready when the first request leaves, instead of
# delaying it; one context serves every client of the process (httpx's own advice).
_tls_lock = threading.Lock()
_tls_thread: threading.Thread | None = None
_tls_made: list[ssl.SSLContext] = []
_tls_failed: list[BaseException] = []


def prepare_tls() -> None:
    """Start making httpx's default TLS context in a thread (once a process)."""
    global _tls_thread
    with _tls_lock:
        if _tls_thread is None:
            _tls_thread = threading.Thread(target=_make_tls, name="shotflow-tls", daemon=True)
            _tls_thread.start()


def _make_tls() -> None:
    try:
        # no arguments: the context httpx would make itself (certifi, or SSL_CERT_FILE / SSL_CERT_DIR)
        _tls_made.append(httpx.create_ssl_context())
    except BaseException as exc:  # raised where the client is made, as httpx would have
        _tls_failed.append(exc)


def tls_context() -> ssl.SSLContext:
    """The process's TLS context, waiting for ``prepare_tls``'s thread (started now if need be)."""
    prepare_tls()
    assert _tls_thread is not None
    _tls_thread.join()
    if _tls_failed:
        raise _tls_failed[0]
    return _tls_made[0]


# ── the transport ───────────────────────────────────────────────────────────────────────────


class Transport:
    """One event loop's HTTP client; sends tasks in shared requests and retries transient failures.

    Tasks ready at the same moment (within ``batch_window``, up to ``batch``) go in one POST.
    Sync inference tasks have a lane of their own (``sync_batch`` a request), so that polls and
    uploads never wait behind a generation in the same request. Every POST holds a slot of the
    gate while it is in flight; downloads of image URLs (not the API) have slots of their own.
    """

    def __init__(
        self,
        url: str,
        key: str,
        settings: Any,
        scrub: Callable[[Any], Any],
        limit: int,
        hints: dict[str, float] | None = None,
    ):
        self.loop = asyncio.get_running_loop()
        self._url = url
        self._headers = {"Authorization": f"Bearer {key}"}
        self._settings = settings
        self._scrub = scrub
        self._timeout = httpx.Timeout(settings.request_timeout, connect=min(settings.request_timeout, 10.0))
        self.gate = _Gate(limit)
        self.client = httpx.AsyncClient(
            verify=tls_context(),
            timeout=self._timeout,
            limits=httpx.Limits(max_connections=2 * limit + 2, max_keepalive_connections=2 * limit + 2),
            follow_redirects=False,
        )
        self._downloads = asyncio.Semaphore(limit)
        self._queues: dict[bool, list[tuple[dict[str, Any], asyncio.Future[Answer]]]] = {True: [], False: []}
        self._timers: dict[bool, asyncio.Handle] = {}
        self._sending: set[asyncio.Task[None]] = set()
        self.uploads: dict[str, asyncio.Task[str]] = {}  # sha256 → upload in progress
        self.poller = Poller(self, settings, hints)  # hints: models' times remembered from earlier runs

    def __repr__(self) -> str:
        return f"Transport({self._url})"

    async def call(self, task: dict[str, Any]) -> Answer:
        """Send ``task`` (with whatever else is ready) and return what the API said about it."""
        future: asyncio.Future[Answer] = self.loop.create_future()
        slow = task.get("taskType") == "imageInference" and task.get("deliveryMethod", "sync") == "sync"
        queue = self._queues[slow]
        queue.append((task, future))
        if len(queue) >= self._batch(slow):
            self._flush(slow)
        elif slow not in self._timers:
            window = self._settings.batch_window
            # with no window, what the resolver starts in this tick goes out together, at once
            self._timers[slow] = (
                self.loop.call_later(window, self._flush, slow)
                if window > 0
                else self.loop.call_soon(self._flush, slow)
            )
        return await future

    async def send(self, tasks: list[dict[str, Any]]) -> dict[str, Answer]:
        """POST ``tasks`` in one request now (retried); each task's answer by taskUUID."""
        status, body = await self._retrying(lambda: self._post_once(tasks), "Runware")
        return split(status, body, tasks, self._scrub)

    def _flush(self, slow: bool) -> None:
        timer = self._timers.pop(slow, None)
        if timer is not None:
            timer.cancel()
        queue = [(task, future) for task, future in self._queues[slow] if not future.done()]
        self._queues[slow].clear()
        size = self._batch(slow)
        for start in range(0, len(queue), size):
            sending = self.loop.create_task(self._send(queue[start : start + size]))
            self._sending.add(sending)
            sending.add_done_callback(self._sending.discard)

    def _batch(self, slow: bool) -> int:
        return self._settings.sync_batch if slow else self._settings.batch

    async def _send(self, batch: list[tuple[dict[str, Any], asyncio.Future[Answer]]]) -> None:
        tasks = [task for task, _ in batch]
        try:
            answers = await self.send(tasks)
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:  # handed to every caller of this batch, who raise it: nothing is hidden
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for task, future in batch:
            if not future.done():
                future.set_result(answers[task["taskUUID"]])

    async def _post_once(self, tasks: list[dict[str, Any]]) -> tuple[int, dict[str, Any]] | _Again:
        epoch = await self.gate.acquire()
        try:
            response = await self.client.post(self._url, json=tasks, headers=self._headers)
        finally:
            self.gate.release()
        status = response.status_code
        wait = retry_after(response.headers.get("Retry-After"))
        self.gate.answered(epoch, status, wait)
        if status in REJECTED:
            raise AccountError(REJECTED[status])
        if status == 404:
            raise RequestRejected(f"Runware answered 404 Not Found at {self._url}: check RUNWARE_API_URL")
        if status in _RETRIED_STATUS or status >= 500:
            return _Again(f"HTTP {status}", wait)
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
        async with self._downloads, self.client.stream("GET", url) as response:
            status = response.status_code
            if status in _RETRIED_STATUS or status >= 500:
                return _Again(f"HTTP {status}", retry_after(response.headers.get("Retry-After")))
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
        await self.poller.aclose()
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


def split(
    status: int, body: dict[str, Any], tasks: list[dict[str, Any]], scrub: Callable[[Any], Any]
) -> dict[str, Answer]:
    """Each task's items and errors, by taskUUID; errors naming no task of ours concern them all.

    Errors, and items that are not images, pass through ``scrub`` (a server may echo the key)."""
    data: list[Any] = body["data"] if isinstance(body.get("data"), list) else []
    errors: list[Any] = body["errors"] if isinstance(body.get("errors"), list) else []
    if isinstance(body.get("error"), dict):  # older answers held a single error object
        errors = [*errors, body["error"]]
    errors = [scrub(e) for e in errors if isinstance(e, dict)]
    ours = {task["taskUUID"] for task in tasks}
    general = [e for e in errors if e.get("taskUUID") not in ours]
    answers = {}
    for task in tasks:
        task_uuid = task["taskUUID"]
        items = tuple(
            i if _is_image(i) else scrub(i) for i in data if isinstance(i, dict) and i.get("taskUUID") == task_uuid
        )
        own = tuple(e for e in errors if e.get("taskUUID") == task_uuid)
        answers[task_uuid] = Answer(status, items, own or (tuple(general) if not items else ()))
    return answers


def _is_image(item: dict[str, Any]) -> bool:
    return any(item.get(name) for name in ("imageBase64Data", "imageDataURI", "imageURL"))


# ── the poller ──────────────────────────────────────────────────────────────────────────────


@dataclass(eq=False)
class _Watch:
    """One task being polled: when it was accepted, how often it was asked, when next."""

    task_uuid: str
    model: str
    since: float  # loop time it was accepted (or resumed)
    polls: int = 0
    timed_polls: int = 0  # polls at or past its expected end (its model's time, known or remembered)
    last: float = 0.0  # loop time of its last poll
    before: float | None = None  # loop time of the poll before it (the task was not done then)
    due: float = 0.0
    asking: bool = False  # a getResponse about it is in flight
    future: asyncio.Future[Answer] | None = field(default=None, repr=False)


class Poller:
    """Polls every task in flight with one getResponse request per step (see the module
    docstring for the timing) and learns how long a model's tasks take."""

    def __init__(self, transport: Transport, settings: Any, hints: dict[str, float] | None = None):
        self._transport = transport
        self._settings = settings
        self._watches: dict[str, _Watch] = {}
        self._durations: dict[str, deque[float]] = {}
        self._early: dict[str, int] = {}  # model → its tasks done at their first poll, in a row
        # a model's time remembered from earlier runs: until a task of this run has told its
        # time, a task is also asked about as if it were known (whichever poll comes sooner),
        # so a remembered time that is now too long costs nothing over not knowing it
        self._hints = dict(hints or {})
        self._wake: asyncio.Future[None] | None = None  # the runner's sleep; a call or an answer ends it
        self._runner: asyncio.Task[None] | None = None
        self._asking: set[asyncio.Task[None]] = set()
        self.requests = 0  # getResponse requests sent (diagnostics)

    async def next(self, task_uuid: str, model: str, *, since: float | None = None) -> Answer:
        """The task's answer from the next poll that carries it. ``since``: the loop time the
        task was accepted, on its first call (None: a resumed task, asked at once)."""
        loop = asyncio.get_running_loop()
        watch = self._watches.get(task_uuid)
        if watch is None:
            now = loop.time()
            watch = self._watches[task_uuid] = _Watch(task_uuid, model, now if since is None else since)
            watch.due = now if since is None else self._first_due(watch)
        else:
            watch.due = self._due_after(watch)
        watch.future = loop.create_future()
        self._kick()
        if self._runner is None or self._runner.done():
            self._runner = loop.create_task(self._run())
        try:
            return await watch.future
        finally:
            watch.future = None

    def done(self, task_uuid: str, *, finished: bool) -> None:
        """Stop watching a task; ``finished``: it gave all its results (its time is learned)."""
        watch = self._watches.pop(task_uuid, None)
        if watch is not None and finished and watch.polls:
            # it ended between the poll before the last (not done) and the last (done); done at the
            # first poll, it may have ended long before: guess a tenth earlier, so that an estimate
            # too long comes down until first polls find tasks running (and bracket them again).
            # After EARLY_STREAK tasks in a row done at their first poll the estimate is plainly too
            # long (a slow first wave, a service that got faster): the middle of [sent, first poll]
            if watch.before is None:
                streak = self._early[watch.model] = self._early.get(watch.model, 0) + 1
                share = 0.5 if streak >= EARLY_STREAK else 0.9
                ended = watch.since + share * (watch.last - watch.since)
            else:
                self._early[watch.model] = 0
                ended = (watch.before + watch.last) / 2
            durations = self._durations.setdefault(watch.model, deque(maxlen=16))
            durations.append(max(0.0, ended - watch.since))

    def estimate(self, model: str) -> float | None:
        """How long a task of ``model`` takes, from the last 16 seen (None: not known yet): the
        first quartile, so that most tasks are asked about just as they end, and one odd
        quick task does not make every other one look late. A task's time is the middle of
        the two polls that saw it running and done (the last poll alone, when it was the first)."""
        durations = self._durations.get(model)
        return first_quartile(durations) if durations else None

    def durations(self) -> dict[str, list[float]]:
        """The task times learned this run, by model (to be remembered for the next one)."""
        return {model: list(times) for model, times in self._durations.items() if times}

    def _hinted_from(self, watch: _Watch) -> float | None:
        """Loop time from which a task is asked about as its model's remembered time says
        (None: no remembered time, or this run already knows the model's time)."""
        hint = None if watch.model in self._durations else self._hints.get(watch.model)
        return None if hint is None else watch.since + min(FIRST * hint, self._settings.poll_max)

    def _first_due(self, watch: _Watch) -> float:
        estimate = self.estimate(watch.model)
        first = self._settings.poll_initial if estimate is None else FIRST * estimate
        due = watch.since + min(first, self._settings.poll_max)
        hinted = self._hinted_from(watch)
        return due if hinted is None else min(due, hinted)

    def _step(self, watch: _Watch) -> float:
        estimate = self.estimate(watch.model)
        if estimate is not None:
            return self._timed_step(estimate, watch)
        unknown = self._unknown_step(watch)
        hinted = self._hinted_from(watch)
        if hinted is None:
            return unknown
        if watch.last < hinted:  # not yet at the remembered time: the sooner of it and the unknown schedule
            return min(unknown, hinted - watch.last)
        return min(unknown, self._timed_step(self._hints[watch.model], watch))

    def _unknown_step(self, watch: _Watch) -> float:
        settings = self._settings
        return min(settings.poll_max, max(settings.poll_min, settings.poll_initial) * UNKNOWN_GROWTH**watch.polls)

    def _asked(self, watch: _Watch, sent: float) -> None:
        """Count a poll sent at loop time ``sent``. Pauses grow only with the polls past the
        task's expected end (its model's time, or the remembered one): from ``FIRST`` × it up to
        it they stay at their finest, so the poll that finds a task done on time is at most a
        step late. (A task longer than ``poll_max`` is first asked at ``poll_max``, then every
        ``poll_max`` at most until its fine window: ``_due_after``.)"""
        watch.polls += 1
        watch.before = watch.last if watch.polls > 1 else None
        watch.last = sent
        estimate, _ = self._expected(watch)
        if estimate is not None and sent >= watch.since + estimate:
            watch.timed_polls += 1

    def _expected(self, watch: _Watch) -> tuple[float | None, bool]:
        """How long the task should take: its model's time learned this run, else the time
        remembered from earlier runs (then True), else None."""
        estimate = self.estimate(watch.model)
        if estimate is None and self._hinted_from(watch) is not None:
            return self._hints[watch.model], True
        return estimate, False

    def _timed_step(self, estimate: float, watch: _Watch) -> float:
        settings = self._settings
        base = max(settings.poll_min, STEP * estimate)
        return min(settings.poll_max, base * 1.1 ** max(0, watch.timed_polls - 1))

    def _due_after(self, watch: _Watch) -> float:
        """When a task last asked at ``watch.last`` is asked next: one step on (``_step``, also
        the slack by which a due poll joins a request). A task longer than ``poll_max`` was
        first asked at ``poll_max``; until its fine window (``FIRST`` × its time) it is asked
        every ``poll_max`` at most, and once as the window opens — not every fine step (60 s
        tasks: 11 polls, 0.3 s late, where growing from the first poll took 21, 2 s late). A
        remembered time never delays a poll the unknown schedule would make."""
        step = self._step(watch)
        estimate, remembered = self._expected(watch)
        if estimate is not None:
            window = watch.since + FIRST * estimate
            if watch.last + step < window:
                jump = min(self._settings.poll_max, window - watch.last)
                step = max(step, min(jump, self._unknown_step(watch)) if remembered else jump)
        return watch.last + step

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            waiting = [
                w for w in self._watches.values() if w.future is not None and not w.future.done() and not w.asking
            ]
            if not waiting:
                if not await self._sleep(loop.time() + 5.0):
                    return  # idle: the next call starts a new runner
                continue
            now = loop.time()
            soonest = min(w.due for w in waiting)
            if soonest > now:
                await self._sleep(soonest)
                continue
            # everything due within its next step goes along: one request, not one a task (the
            # tasks being polled fall into one rhythm, a request a step at most). It is
            # not waited for here: a slow answer does not hold back the polls of other tasks
            ready = [w for w in waiting if w.due <= now + self._step(w)]
            for start in range(0, len(ready), POLL_CHUNK):
                chunk = ready[start : start + POLL_CHUNK]
                for watch in chunk:
                    watch.asking = True
                asking = loop.create_task(self._poll(chunk))
                self._asking.add(asking)
                asking.add_done_callback(self._asking.discard)

    def _kick(self) -> None:
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    async def _sleep(self, until: float) -> bool:
        """Sleep until loop time ``until``, or until kicked (True)."""
        loop = asyncio.get_running_loop()
        self._wake = wake = loop.create_future()
        timer = loop.call_at(until, lambda: None if wake.done() else wake.set_result(None))
        try:
            await wake
        finally:
            timer.cancel()
        return loop.time() < until

    async def _poll(self, watches: list[_Watch]) -> None:
        loop = asyncio.get_running_loop()
        sent = loop.time()
        tasks = [{"taskType": "getResponse", "taskUUID": w.task_uuid} for w in watches]
        self.requests += 1
        try:
            answers = await self._transport.send(tasks)
        except Exception as exc:  # every task of the request hears it; its caller raises it
            for watch in watches:
                watch.asking = False
                if watch.future is not None and not watch.future.done():
                    watch.future.set_exception(exc)
            return
        finally:
            self._kick()
        for watch in watches:
            watch.asking = False
            self._asked(watch, sent)
            if watch.future is not None and not watch.future.done():
                watch.future.set_result(answers[watch.task_uuid])

    async def aclose(self) -> None:
        pending = [task for task in (self._runner, *self._asking) if task is not None]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for watch in self._watches.values():
            if watch.future is not None and not watch.future.done():
                watch.future.cancel()
        self._watches.clear()
