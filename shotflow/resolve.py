"""Stage 6: run a DAG with many nodes in flight (asyncio); the one place ``--jobs`` is enforced.

The scheduler knows nothing of images: it is handed the graph's dependencies and two
functions, and it guarantees::

    a node starts the moment all its dependencies succeeded (not level by level)
    at most `jobs` expensive nodes run at once; cheap ones (fresh) never wait
    a ready node whose chain ahead is as long as the work left per slot starts first
    (the critical tail is never late); otherwise the earliest in story order does, so
    a frame's users follow it soon and few frames are waiting for theirs
    a failed node skips its downstream closure; independent branches go on
    cancellation (Ctrl-C) cancels what runs and keeps what finished

Its parts: ``Scheduler`` (the run: who waits on whom, what runs, what failed), ``ReadyQueue``
(longest chain first when urgent, else story order) and ``Slots`` (prepare ahead: when the
backend prepares its requests, twice ``jobs`` nodes run and prepare — references, key,
lookup, journal entry — while only ``jobs`` hold a permit to send, handed out longest chain
first; a render's head start waits on them until its first requests hold their permits,
``Slots.until_taken``, before it builds its graph). The backend is told only whether it may
send (``start``): it never reads ``jobs``.
Its own limits are load against its service, not scheduling (Runware's ``max_in_flight``
HTTP requests, halved on HTTP 429).

Outcomes are values: each node ends RENDERED, CACHED, FAILED or SKIPPED (or HELD,
which the caller's ``cheap`` decides: an approved frame kept).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from .errors import file_system_error
from .status import Outcome, Status, skipped

HEAD_SEND_WAIT = 0.25  # seconds a head start's plan waits at most for its first requests (Slots.until_taken)

Run = Callable[[str, dict[str, Outcome], Callable[[], None]], Awaitable[Outcome]]


async def resolve(
    order: Sequence[str],
    deps: Mapping[str, Sequence[str]],
    run: Run,
    *,
    jobs: int = 4,
    cheap: Callable[[str], Outcome | None] | None = None,
    priority: Mapping[str, float] | None = None,
    on_start: Callable[[str], None] | None = None,
    on_done: Callable[[Outcome], None] | None = None,
    fail_fast: bool = False,
) -> dict[str, Outcome]:
    """Run every node of ``order`` (a topological order) and return each Outcome.

    ``run(node, upstream_outcomes, release)`` does the expensive work of one node;
    it holds one of the ``jobs`` slots until it returns, or until it calls
    ``release()`` (when the part worth limiting — a request in flight — is over and
    only local work is left, the next node may start meanwhile).
    ``cheap(node)``, when given, is asked first and may finish a node at once
    without a slot (returning None sends it to ``run``). ``priority`` is each node's
    chain ahead (its height, in nodes that need a slot): see ``ReadyQueue``.
    With ``fail_fast``, the first failure stops new nodes from starting (running
    ones finish); the rest end SKIPPED. A ``fatal`` failure always does.
    """
    scheduler = Scheduler(
        order,
        deps,
        run,
        jobs=jobs,
        cheap=cheap,
        priority=priority,
        on_start=on_start,
        on_done=on_done,
        fail_fast=fail_fast,
    )
    return await scheduler.run()


def head_start(ready: Sequence[str], jobs: int) -> tuple[list[str], Slots | None]:
    """Of the nodes ``ready`` before their run's graph is known (a render's head start), those that
    may start at once — as many as a run that prepares ahead has under way, twice ``jobs`` — and
    the ``jobs`` send permits they take, in their order; ``Scheduler(slots=…, adopted=…)`` then
    takes them over. Nothing ready: ``([], None)``."""
    jobs = max(1, jobs)
    head = list(ready)[: 2 * jobs]
    return head, (Slots(jobs, {n: (0.0, i) for i, n in enumerate(head)}) if head else None)


class ReadyQueue:
    """The nodes ready to start that need a slot, and which starts next.

    A ready node whose height (its chain ahead, in nodes that need a slot) is at least the
    nodes left to start per slot is urgent, and the highest one starts first; when none is,
    the ready node earliest in story order starts (story order finishes what a node's frame
    is for soon after it, so memory follows the DAG's frontier, not its width, while the
    longest chains still start in time). Two heaps over the same set (a node taken through
    one is skipped lazily in the other): each node is looked at once, no step is quadratic.
    """

    def __init__(self, position: Mapping[str, int], heights: Mapping[str, float], jobs: int):
        self.position = position
        self.heights = heights
        self.jobs = jobs
        self.by_height: list[tuple[float, int, str]] = []
        self.by_position: list[tuple[int, str]] = []
        self.queued: set[str] = set()

    def __bool__(self) -> bool:
        return bool(self.queued)

    def push(self, node: str) -> None:
        self.queued.add(node)
        heapq.heappush(self.by_height, (-self.heights.get(node, 0.0), self.position[node], node))
        heapq.heappush(self.by_position, (self.position[node], node))

    def pop(self, left: int) -> str:
        """The next node to start (``left``: nodes neither started nor finished)."""
        while self.by_height[0][2] not in self.queued:
            heapq.heappop(self.by_height)
        while self.by_position[0][1] not in self.queued:
            heapq.heappop(self.by_position)
        if -self.by_height[0][0] * self.jobs >= left:
            node = heapq.heappop(self.by_height)[2]
        else:
            node = heapq.heappop(self.by_position)[1]
        self.queued.discard(node)
        return node


class Scheduler:
    """One run of a DAG (see ``resolve``), with its state named.

    With ``prepare_ahead`` (a backend that prepares its requests), twice ``jobs`` nodes run
    at once and ``slots`` holds the ``jobs`` permits to send, which ``run`` takes through
    ``Slots.generate``. A run whose first nodes were started before their graph was known (a
    render's head start) hands over the ``slots`` they were sent under and their tasks
    (``adopted``: node → task): they count as started, and their outcomes are collected as any.
    """

    def __init__(
        self,
        order: Sequence[str],
        deps: Mapping[str, Sequence[str]],
        run: Run,
        *,
        jobs: int = 4,
        cheap: Callable[[str], Outcome | None] | None = None,
        priority: Mapping[str, float] | None = None,
        on_start: Callable[[str], None] | None = None,
        on_done: Callable[[Outcome], None] | None = None,
        fail_fast: bool = False,
        prepare_ahead: bool = False,
        slots: Slots | None = None,
        adopted: Mapping[str, Any] | None = None,
    ):
        self.deps = deps
        self.work = run
        self.cheap = cheap
        self.on_start = on_start
        self.on_done = on_done
        self.fail_fast = fail_fast
        heights = priority or {}
        position = {node: i for i, node in enumerate(order)}
        rank = {n: (-heights.get(n, 0.0), i) for n, i in position.items()}
        if slots is not None:  # the permits the adopted nodes were sent under: ranked by this run from now on
            slots.rank.update(rank)
        self.slots = slots if slots is not None else Slots(jobs, rank) if prepare_ahead else None
        self.jobs = jobs * 2 if self.slots is not None else jobs  # nodes running at once
        # nodes started before the run knew its whole graph (a render's head start): node → its task
        self.adopted = dict(adopted or {})
        self.users: dict[str, list[str]] = {node: [] for node in order}  # node → the nodes that depend on it
        self.waiting: dict[str, int] = {}  # node → its dependencies not finished yet
        for node in order:
            ds = [d for d in deps.get(node, ()) if d in position]
            self.waiting[node] = len(ds)
            for d in ds:
                self.users[d].append(node)
        self.ready = ReadyQueue(position, heights, self.jobs)
        self.left = len(order)  # nodes neither started nor finished
        self.unblocked: deque[str] = deque(
            node for node in order if self.waiting[node] == 0 and node not in self.adopted
        )
        self.outcomes: dict[str, Outcome] = {}
        self.running: dict[Any, str] = {}  # task → node
        self.holding: set[str] = set()  # nodes that hold a slot
        self.failed_because: dict[str, str] = {}  # node → the upstream failure that skips it
        self.stopped_by: str | None = None  # the failure that stopped the run (--fail-fast, fatal)
        self.wake: Any = None  # an asyncio.Event: a task finished or a slot was released

    async def run(self) -> dict[str, Outcome]:
        """Run every node; returns each Outcome. Cancelled: cancels what runs, then re-raises."""
        import asyncio

        self.wake = asyncio.Event()
        try:
            for node, task in self.adopted.items():
                self.left -= 1
                self.holding.add(node)
                if self.on_start:
                    self.on_start(node)
                self.running[task] = node
                task.add_done_callback(lambda _: self.wake.set())
            self.triage()
            while self.ready or self.running:
                self.skip_stopped()
                while self.ready and len(self.holding) < self.jobs:
                    self.start(self.ready.pop(self.left))
                if not self.running:
                    continue
                await self.wake.wait()
                self.wake.clear()
                self.collect()
                self.triage()
        except asyncio.CancelledError:
            for task in self.running:
                task.cancel()
            await asyncio.gather(*self.running, return_exceptions=True)
            raise
        return self.outcomes

    def triage(self) -> None:
        """Finish at once what needs no slot (skipped, cheap); queue the rest by priority."""
        while self.unblocked:
            node = self.unblocked.popleft()
            if node in self.failed_because:
                self.left -= 1
                self.finish(skipped(node, self.failed_because[node]))
                continue
            done_now = self.cheap(node) if self.cheap else None
            if done_now is not None:
                self.left -= 1
                self.finish(done_now)
            else:
                self.ready.push(node)

    def skip_stopped(self) -> None:
        """After a failure that stops the run, what waits for a slot ends SKIPPED."""
        while self.ready and self.stopped_by is not None:
            node = self.ready.pop(self.left)
            self.left -= 1
            why = "the run stopped" if self.outcomes[self.stopped_by].fatal else "--fail-fast"
            self.finish(Outcome(node, Status.SKIPPED, error=f"skipped: {self.stopped_by} failed ({why})"))
            self.triage()

    def start(self, node: str) -> None:
        import asyncio

        self.left -= 1
        self.holding.add(node)
        if self.on_start:
            self.on_start(node)
        upstream = {d: self.outcomes[d] for d in self.deps.get(node, ()) if d in self.outcomes}
        task = asyncio.ensure_future(self.work(node, upstream, lambda: self.release(node)))
        self.running[task] = node
        task.add_done_callback(lambda _: self.wake.set())

    def release(self, node: str) -> None:
        """``node`` is done with its slot (its request is over): the next node may start."""
        if node in self.holding:
            self.holding.discard(node)
            self.wake.set()

    def collect(self) -> None:
        """Finish the nodes whose tasks are done."""
        for task in [t for t in self.running if t.done()]:
            node = self.running.pop(task)
            self.holding.discard(node)
            exc = task.exception()
            machine = file_system_error(exc)
            if machine is not None:  # a full disk, a folder it cannot write: every other node would fail too
                outcome = Outcome(node, Status.FAILED, error=str(machine), fatal=True)
            elif exc is not None:
                # a bug in shotflow, not a failed shot: say so, keep the others going
                outcome = Outcome(
                    node, Status.FAILED, error=f"internal error: {type(exc).__name__}: {exc}", internal=True
                )
            else:
                outcome = task.result()
            self.finish(outcome)

    def finish(self, outcome: Outcome) -> None:
        self.outcomes[outcome.id] = outcome
        if (self.fail_fast or outcome.fatal) and outcome.status is Status.FAILED and self.stopped_by is None:
            self.stopped_by = outcome.id
        if self.on_done:
            self.on_done(outcome)
        for user in self.users[outcome.id]:
            if not outcome.status.ok:
                self.failed_because.setdefault(user, self.failed_because.get(outcome.id, outcome.id))
            self.waiting[user] -= 1
            if self.waiting[user] == 0:
                self.unblocked.append(user)


class Slots:
    """``jobs`` permits to send, handed to the waiting shot with the longest chain ahead first
    (then story order), not first come first served: a shot prepared early does not hold back
    a critical one that became ready after it."""

    def __init__(self, jobs: int, rank: dict[str, tuple[float, int]]):
        self.free = jobs
        self.rank = rank
        self.waiting: list[tuple[tuple[float, int], Any]] = []  # heap of (rank, future)
        self.taken = 0  # permits handed out so far
        self._watch: tuple[int, Any] | None = None  # (count, future) of ``until_taken``

    async def until_taken(self, count: int, timeout: float | None = None) -> None:
        """Until ``count`` permits have been handed out, or ``timeout`` seconds have passed: a
        head start plans the rest of its run once its first requests are on their way (a
        request preparing slowly — a large reference uploading — holds the plan back that long
        at most)."""
        import asyncio

        if self.taken >= count:
            return
        future = asyncio.get_running_loop().create_future()
        self._watch = (count, future)
        try:
            await asyncio.wait_for(future, HEAD_SEND_WAIT if timeout is None else timeout)
        except TimeoutError:
            pass
        finally:
            self._watch = None

    async def generate(self, backend, request, node_id: str, check) -> Any:
        """``backend.generate(request)`` holding a permit from its first send until the service
        has answered with every take (``Permit.release``), or until it returns."""
        permit = Permit(self, self.rank[node_id], check)
        try:
            return await backend.generate(request, start=permit)
        finally:
            permit.release()

    async def _acquire(self, rank: tuple[float, int]) -> None:
        import asyncio
        import heapq

        if self.free > 0 and not self.waiting:
            self.free -= 1
            self._took()
            return
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self.waiting, (rank, future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release()  # handed over just as it was cancelled: pass it on
            raise
        self._took()

    def _took(self) -> None:
        self.taken += 1
        watch = self._watch
        if watch is not None and self.taken >= watch[0] and not watch[1].done():
            watch[1].set_result(None)

    def _release(self) -> None:
        import heapq

        while self.waiting:
            _, future = heapq.heappop(self.waiting)
            if not future.done():
                future.set_result(None)
                return
        self.free += 1


class Permit:
    """One shot's permit to send (``backends.Start``): awaited before its first request,
    released when the service is done with it; releasing twice, or unheld, does nothing."""

    def __init__(self, slots: Slots, rank: tuple[float, int], check: Callable[[], None]):
        self.slots = slots
        self.rank = rank
        self.check = check
        self.held = False

    async def __call__(self) -> None:
        await self.slots._acquire(self.rank)
        self.held = True
        self.check()

    def release(self) -> None:
        if self.held:
            self.held = False
            self.slots._release()
