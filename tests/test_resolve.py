"""The resolver: dependency order, parallelism, failures, cancellation."""

from __future__ import annotations

import asyncio
import time

import pytest

from shotflow.resolve import resolve
from shotflow.status import Outcome, Status


def run_with(latency: dict[str, float], fail: set[str] = frozenset(), log: list | None = None):
    async def run(node, upstream, release):
        start = time.monotonic()
        if log is not None:
            log.append(("start", node, start))
        await asyncio.sleep(latency.get(node, 0.0))
        if log is not None:
            log.append(("end", node, time.monotonic()))
        if node in fail:
            return Outcome(node, Status.FAILED, error="boom")
        return Outcome(node, Status.RENDERED)

    return run


def test_a_node_starts_as_soon_as_its_own_dependencies_are_done():
    # a (slow) -> c ; b (fast) -> d : d must not wait for a
    deps = {"c": ["a"], "d": ["b"]}
    log: list = []
    asyncio.run(
        resolve(["a", "b", "c", "d"], deps, run_with({"a": 0.3, "b": 0.05, "c": 0.0, "d": 0.0}, log=log), jobs=4)
    )
    t = {(kind, node): at for kind, node, at in log}
    assert t[("start", "d")] < t[("end", "a")]
    assert t[("start", "c")] >= t[("end", "a")]


def test_jobs_limits_what_runs_at_once():
    order = [f"n{i}" for i in range(12)]
    running, peak = 0, 0

    async def run(node, upstream, release):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return Outcome(node, Status.RENDERED)

    asyncio.run(resolve(order, {}, run, jobs=3))
    assert peak == 3


def test_a_failure_skips_the_downstream_closure_only():
    deps = {"b": ["a"], "c": ["b"], "d": [], "e": ["d", "c"]}
    out = asyncio.run(resolve(["a", "d", "b", "c", "e"], deps, run_with({}, fail={"a"}), jobs=2))
    assert out["a"].status is Status.FAILED
    assert {n for n, o in out.items() if o.status is Status.SKIPPED} == {"b", "c", "e"}
    assert out["d"].status is Status.RENDERED
    assert out["e"].error == "skipped: upstream a failed"


def test_cheap_nodes_finish_without_a_slot():
    calls = []

    def cheap(node):
        return Outcome(node, Status.CACHED) if node.startswith("fresh") else None

    async def run(node, upstream, release):
        calls.append(node)
        return Outcome(node, Status.RENDERED)

    order = ["fresh1", "fresh2", "x", "fresh3"]
    out = asyncio.run(resolve(order, {"x": ["fresh1"], "fresh3": ["x"]}, run, cheap=cheap, jobs=1))
    assert calls == ["x"]
    assert out["fresh3"].status is Status.CACHED


def test_a_released_slot_lets_the_next_node_start_while_local_work_finishes():
    log = []

    async def run(node, upstream, release):
        log.append(("start", node))
        await asyncio.sleep(0.05)  # the request in flight
        release()
        await asyncio.sleep(0.2)  # storing the result
        log.append(("end", node))
        return Outcome(node, Status.RENDERED)

    asyncio.run(resolve(["a", "b"], {}, run, jobs=1))
    assert log[:2] == [("start", "a"), ("start", "b")]


def test_priority_starts_the_longest_chain_first():
    started = []

    async def run(node, upstream, release):
        started.append(node)
        return Outcome(node, Status.RENDERED)

    asyncio.run(resolve(["short", "long"], {}, run, jobs=1, priority={"short": 1, "long": 5}))
    assert started == ["long", "short"]


def test_without_urgency_story_order_decides_so_a_frame_meets_its_users_soon():
    # s1 → u1, s2 → u2: by height alone s1, s2 would both go before u1 (their frames wait);
    # with two nodes left per slot and chains of 1, nothing is urgent and story order decides
    started = []

    async def run(node, upstream, release):
        started.append(node)
        return Outcome(node, Status.RENDERED)

    deps = {"u1": ["s1"], "u2": ["s2"]}
    heights = {"s1": 2, "u1": 1, "s2": 2, "u2": 1}
    asyncio.run(resolve(["s1", "u1", "s2", "u2"], deps, run, jobs=1, priority=heights))
    assert started == ["s1", "u1", "s2", "u2"]
    # a chain as long as the work left per slot starts first, wherever it is in the story
    started.clear()
    deps = {"c2": ["c1"], "c3": ["c2"]}
    heights = {"a": 1, "b": 1, "c1": 3, "c2": 2, "c3": 1}
    asyncio.run(resolve(["a", "b", "c1", "c2", "c3"], deps, run, jobs=2, priority=heights))
    assert started[:2] == ["c1", "a"]


def test_an_exception_in_a_node_is_an_internal_failure_not_a_crash():
    async def run(node, upstream, release):
        if node == "bad":
            raise RuntimeError("bug")
        return Outcome(node, Status.RENDERED)

    out = asyncio.run(resolve(["bad", "ok", "after"], {"after": ["bad"]}, run))
    assert out["bad"].internal and "RuntimeError: bug" in out["bad"].error
    assert out["ok"].status is Status.RENDERED and out["after"].status is Status.SKIPPED


def test_cancellation_cancels_running_nodes_and_keeps_finished_ones():
    done = []

    async def run(node, upstream, release):
        await asyncio.sleep(0.01 if node == "quick" else 10)
        return Outcome(node, Status.RENDERED)

    async def main():
        task = asyncio.ensure_future(resolve(["quick", "slow"], {}, run, on_done=lambda o: done.append(o.id)))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    t0 = time.monotonic()
    asyncio.run(main())
    # "slow" sleeps 10 s: a run that waited for it instead of cancelling it would take that long
    assert done == ["quick"] and time.monotonic() - t0 < 8


def test_a_long_chain_of_cheap_nodes_does_not_recurse():
    n = 5000
    order = [f"n{i}" for i in range(n)]
    deps = {f"n{i}": [f"n{i - 1}"] for i in range(1, n)}

    async def run(node, upstream, release):
        raise AssertionError("everything is cheap")

    out = asyncio.run(resolve(order, deps, run, cheap=lambda node: Outcome(node, Status.CACHED)))
    assert len(out) == n


# -- the Scheduler's parts ---------------------------------------------------------------


def test_the_ready_queue_takes_an_urgent_chain_first_else_story_order():
    from shotflow.resolve import ReadyQueue

    queue = ReadyQueue({"a": 0, "b": 1, "c": 2}, {"a": 1, "b": 1, "c": 4}, jobs=2)
    for node in ("b", "c", "a"):
        queue.push(node)
    assert queue.pop(left=8) == "c"  # 4 × 2 slots ≥ 8 nodes left: its chain is urgent
    assert queue.pop(left=8) == "a"  # 1 × 2 < 8: nothing urgent, story order
    assert queue.pop(left=1) == "b" and not queue


def test_prepare_ahead_runs_twice_jobs_and_hands_jobs_send_permits_by_chain_first():
    from shotflow.resolve import Scheduler

    async def run(node, upstream, release):
        return Outcome(node, Status.RENDERED)

    plain = Scheduler(["a", "b"], {}, run, jobs=3)
    assert plain.jobs == 3 and plain.slots is None
    ahead = Scheduler(["a", "b"], {}, run, jobs=3, priority={"a": 1.0, "b": 2.0}, prepare_ahead=True)
    assert ahead.jobs == 6 and ahead.slots.free == 3
    assert ahead.slots.rank == {"a": (-1.0, 0), "b": (-2.0, 1)}


def test_the_scheduler_ends_with_nothing_left_running_or_held():
    from shotflow.resolve import Scheduler

    peak = 0

    async def run(node, upstream, release):
        nonlocal peak
        peak = max(peak, len(scheduler.holding))
        await asyncio.sleep(0)
        return Outcome(node, Status.FAILED if node == "b" else Status.RENDERED)

    order = ["a", "b", "c", "d", "e"]
    scheduler = Scheduler(order, {"c": ["b"]}, run, jobs=1, fail_fast=True)
    out = asyncio.run(scheduler.run())
    assert peak == 1 and set(out) == set(order)
    assert scheduler.left == 0 and not scheduler.running and not scheduler.holding and not scheduler.ready
    assert scheduler.stopped_by == "b" and out["c"].error == "skipped: upstream b failed"
    assert all(out[n].status is Status.SKIPPED for n in ("c", "d", "e"))


def test_a_permit_released_when_the_service_answered_lets_the_next_shot_send_before_the_first_returns():
    from shotflow.resolve import Slots

    log: list[str] = []
    fetched = None  # set once the second shot has sent: the first one's "download" may end

    class Backend:
        async def generate(self, request, start):
            await start()
            log.append(f"send {request}")
            if request == "a":
                start.release()  # its takes are known; the images are fetched without the permit
                start.release()  # twice does nothing (else a third permit would appear)
                await fetched.wait()
            log.append(f"return {request}")
            return request

    async def main():
        nonlocal fetched
        fetched = asyncio.Event()
        slots = Slots(1, {"a": (0.0, 0), "b": (0.0, 1)})
        first = asyncio.ensure_future(slots.generate(Backend(), "a", "a", lambda: None))
        await asyncio.sleep(0)
        # without the release, "b" would wait for a permit that "a" holds until its fetch ends
        second = await asyncio.wait_for(slots.generate(Backend(), "b", "b", lambda: None), 10)
        fetched.set()
        assert await first == "a" and second == "b"
        return slots.free

    assert asyncio.run(main()) == 1
    assert log == ["send a", "send b", "return b", "return a"]


def test_a_head_start_takes_twice_jobs_nodes_and_jobs_send_permits_in_their_order():
    from shotflow.resolve import head_start

    head, slots = head_start([f"n{i}" for i in range(10)], jobs=3)
    assert head == ["n0", "n1", "n2", "n3", "n4", "n5"]
    assert slots.free == 3 and [slots.rank[n] for n in head] == [(0.0, i) for i in range(6)]
    assert head_start([], jobs=3) == ([], None)


def test_until_taken_waits_for_that_many_permits_or_its_timeout():
    from shotflow.resolve import Slots

    async def main():
        slots = Slots(2, {"a": (0.0, 0), "b": (0.0, 1)})
        waiting = asyncio.ensure_future(slots.until_taken(2, timeout=30))
        await slots._acquire((0.0, 0))
        await asyncio.sleep(0)
        assert not waiting.done() and slots.taken == 1
        await slots._acquire((0.0, 1))
        await asyncio.wait_for(waiting, 5)  # the second permit ends the wait, long before 30 s
        started = asyncio.get_running_loop().time()
        await slots.until_taken(3, timeout=0.05)  # a third never comes: the timeout ends it
        return asyncio.get_running_loop().time() - started

    assert 0.04 <= asyncio.run(main()) < 5
