"""Stage 6: run a DAG with many nodes in flight (asyncio).

The resolver knows nothing of images: it is handed the graph's dependencies and two
functions, and it guarantees::

    a node starts the moment all its dependencies succeeded (not level by level)
    at most `jobs` expensive nodes run at once; cheap ones (fresh) never wait
    a ready node whose chain ahead is as long as the work left per slot starts first
    (the critical tail is never late); otherwise the earliest in story order does, so
    a frame's users follow it soon and few frames are waiting for theirs
    a failed node skips its downstream closure; independent branches go on
    cancellation (Ctrl-C) cancels what runs and keeps what finished

Outcomes are values: each node ends RENDERED, CACHED, FAILED or SKIPPED (or HELD,
which the caller's ``cheap`` decides: an approved frame kept).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from .status import Outcome, Status, skipped


async def resolve(
    order: Sequence[str],
    deps: Mapping[str, Sequence[str]],
    run: Callable[[str, dict[str, Outcome], Callable[[], None]], Awaitable[Outcome]],
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
    chain ahead (its height, in nodes that need a slot): a ready node whose height
    is at least the nodes left to start per slot is urgent and the highest one starts
    first; when none is, the ready node earliest in ``order`` starts (story order
    finishes what a node's frame is for soon after it, so memory follows the DAG's
    frontier, not its width, while the longest chains still start in time). Each
    node is looked at once: no step is quadratic.
    With ``fail_fast``, the first failure stops new nodes from starting (running
    ones finish); the rest end SKIPPED. A ``fatal`` failure always does.
    """
    import asyncio

    position = {node: i for i, node in enumerate(order)}
    users: dict[str, list[str]] = {node: [] for node in order}
    waiting: dict[str, int] = {}
    for node in order:
        ds = [d for d in deps.get(node, ()) if d in position]
        waiting[node] = len(ds)
        for d in ds:
            users[d].append(node)
    prio = priority or {}
    # nodes that need a slot, in two heaps over the same set (a node started through
    # one is skipped lazily in the other): by height, and by story position
    by_height: list[tuple[float, int, str]] = []
    by_position: list[tuple[int, str]] = []
    queued: set[str] = set()
    left = [len(order)]  # nodes neither started nor finished
    unblocked: deque[str] = deque(node for node in order if waiting[node] == 0)
    outcomes: dict[str, Outcome] = {}
    running: dict[asyncio.Task, str] = {}
    failed_because: dict[str, str] = {}
    stopped_by: list[str] = []

    def push(node: str) -> None:
        queued.add(node)
        heapq.heappush(by_height, (-prio.get(node, 0.0), position[node], node))
        heapq.heappush(by_position, (position[node], node))

    def pop() -> str:
        """The next node to start: the highest when it is urgent, else the first in story order."""
        while by_height[0][2] not in queued:
            heapq.heappop(by_height)
        while by_position[0][1] not in queued:
            heapq.heappop(by_position)
        top = by_height[0]
        if -top[0] * jobs >= left[0]:
            node = heapq.heappop(by_height)[2]
        else:
            node = heapq.heappop(by_position)[1]
        queued.discard(node)
        return node

    def finish(outcome: Outcome) -> None:
        outcomes[outcome.id] = outcome
        if (fail_fast or outcome.fatal) and outcome.status is Status.FAILED and not stopped_by:
            stopped_by.append(outcome.id)
        if on_done:
            on_done(outcome)
        for user in users[outcome.id]:
            if not outcome.status.ok:
                failed_because.setdefault(user, failed_because.get(outcome.id, outcome.id))
            waiting[user] -= 1
            if waiting[user] == 0:
                unblocked.append(user)

    def triage() -> None:
        """Finish at once what needs no slot (skipped, cheap); queue the rest by priority."""
        while unblocked:
            node = unblocked.popleft()
            if node in failed_because:
                left[0] -= 1
                finish(skipped(node, failed_because[node]))
                continue
            done_now = cheap(node) if cheap else None
            if done_now is not None:
                left[0] -= 1
                finish(done_now)
            else:
                push(node)

    def upstream_of(node: str) -> dict[str, Outcome]:
        return {d: outcomes[d] for d in deps.get(node, ()) if d in outcomes}

    holding: set[str] = set()  # nodes that hold a slot
    wake = asyncio.Event()

    def release(node: str) -> None:
        if node in holding:
            holding.discard(node)
            wake.set()

    def start(node: str) -> None:
        left[0] -= 1
        holding.add(node)
        if on_start:
            on_start(node)
        task = asyncio.ensure_future(run(node, upstream_of(node), lambda: release(node)))
        running[task] = node
        task.add_done_callback(lambda _: wake.set())

    try:
        triage()
        while queued or running:
            while queued and stopped_by:
                node = pop()
                left[0] -= 1
                why = "the run stopped" if outcomes[stopped_by[0]].fatal else "--fail-fast"
                finish(Outcome(node, Status.SKIPPED, error=f"skipped: {stopped_by[0]} failed ({why})"))
                triage()
            while queued and len(holding) < jobs:
                start(pop())
            if not running:
                continue
            await wake.wait()
            wake.clear()
            for task in [t for t in running if t.done()]:
                node = running.pop(task)
                holding.discard(node)
                exc = task.exception()
                if exc is not None:
                    # a bug in shotflow, not a failed shot: say so, keep the others going
                    outcome = Outcome(node, Status.FAILED, error=f"internal error: {type(exc).__name__}: {exc}",
                                      internal=True)
                else:
                    outcome = task.result()
                finish(outcome)
            triage()
    except asyncio.CancelledError:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        raise
    return outcomes


class Slots:
    """``jobs`` permits to send, handed to the waiting shot with the longest chain ahead first
    (then story order), not first come first served: a shot prepared early does not hold back
    a critical one that became ready after it."""

    def __init__(self, jobs: int, rank: dict[str, tuple[float, int]]):
        self.free = jobs
        self.rank = rank
        self.waiting: list[tuple[tuple[float, int], Any]] = []  # heap of (rank, future)

    async def generate(self, backend, request, node_id: str, check) -> Any:
        """``backend.generate(request)`` holding a permit from its first send to its return."""
        held = False

        async def start() -> None:
            nonlocal held
            await self._acquire(self.rank[node_id])
            held = True
            check()

        try:
            return await backend.generate(request, start=start)
        finally:
            if held:
                self._release()

    async def _acquire(self, rank: tuple[float, int]) -> None:
        import asyncio
        import heapq

        if self.free > 0 and not self.waiting:
            self.free -= 1
            return
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self.waiting, (rank, future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release()  # handed over just as it was cancelled: pass it on
            raise

    def _release(self) -> None:
        import heapq

        while self.waiting:
            _, future = heapq.heappop(self.waiting)
            if not future.done():
                future.set_result(None)
                return
        self.free += 1
