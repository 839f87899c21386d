"""Stage 6: run a DAG with many nodes in flight (asyncio).

The resolver knows nothing of images: it is handed the graph's dependencies and two
functions, and it guarantees::

    a node starts the moment all its dependencies succeeded (not level by level)
    at most `jobs` expensive nodes run at once; cheap ones (fresh) never wait
    among ready nodes, the one with the longest chain ahead starts first
    a failed node skips its downstream closure; independent branches go on
    cancellation (Ctrl-C) cancels what runs and keeps what finished

Outcomes are values: each node ends RENDERED, CACHED, FAILED or SKIPPED.
"""

from __future__ import annotations

import enum
import heapq
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass


class NodeStatus(enum.Enum):
    RENDERED = "rendered"
    CACHED = "cached"
    FAILED = "failed"
    SKIPPED = "skipped"

    @property
    def ok(self) -> bool:
        return self in (NodeStatus.RENDERED, NodeStatus.CACHED)


@dataclass(frozen=True)
class Outcome:
    """How one node ended. ``value`` carries what dependents need (the stage's record)."""

    id: str
    status: NodeStatus
    value: object = None
    outputs: tuple[str, ...] = ()
    error: str | None = None
    cost: float = 0.0
    elapsed: float = 0.0
    internal: bool = False  # True when shotflow itself broke (not the shot)
    fatal: bool = False  # True when no other node can succeed either (e.g. a rejected API key)


def skipped(node: str, because: str) -> Outcome:
    return Outcome(node, NodeStatus.SKIPPED, error=f"skipped: upstream {because} failed")


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
    without a slot (returning None sends it to ``run``). ``priority`` ranks ready
    nodes (higher first). Each node is looked at once: no step is quadratic.
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
    ready: list[tuple[float, int, str]] = []  # nodes that need a slot, best first
    unblocked: deque[str] = deque(node for node in order if waiting[node] == 0)
    outcomes: dict[str, Outcome] = {}
    running: dict[asyncio.Task, str] = {}
    failed_because: dict[str, str] = {}
    stopped_by: list[str] = []

    def finish(outcome: Outcome) -> None:
        outcomes[outcome.id] = outcome
        if (fail_fast or outcome.fatal) and outcome.status is NodeStatus.FAILED and not stopped_by:
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
                finish(skipped(node, failed_because[node]))
                continue
            done_now = cheap(node) if cheap else None
            if done_now is not None:
                finish(done_now)
            else:
                heapq.heappush(ready, (-prio.get(node, 0.0), position[node], node))

    def upstream_of(node: str) -> dict[str, Outcome]:
        return {d: outcomes[d] for d in deps.get(node, ()) if d in outcomes}

    holding: set[str] = set()  # nodes that hold a slot
    wake = asyncio.Event()

    def release(node: str) -> None:
        if node in holding:
            holding.discard(node)
            wake.set()

    def start(node: str) -> None:
        holding.add(node)
        if on_start:
            on_start(node)
        task = asyncio.ensure_future(run(node, upstream_of(node), lambda: release(node)))
        running[task] = node
        task.add_done_callback(lambda _: wake.set())

    try:
        triage()
        while ready or running:
            while ready and stopped_by:
                node = heapq.heappop(ready)[2]
                why = "the run stopped" if outcomes[stopped_by[0]].fatal else "--fail-fast"
                finish(Outcome(node, NodeStatus.SKIPPED, error=f"skipped: {stopped_by[0]} failed ({why})"))
                triage()
            while ready and len(holding) < jobs:
                start(heapq.heappop(ready)[2])
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
                    outcome = Outcome(node, NodeStatus.FAILED, error=f"internal error: {type(exc).__name__}: {exc}",
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
