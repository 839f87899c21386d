"""Scheduling overhead of the resolver, per node, in process.

    python bench/scheduling.py [--quick] [--sizes 1000,10000,100000] [--runs 5] [--jobs 8]

``shotflow.resolve.resolve`` runs the DAG of a generated storyboard (the same one
``generate.py`` writes: sheets, scenes of ~50 shots, chains of depth 8, fan-in ≤ 3)
with a ``run`` that does nothing but return RENDERED, no ``cheap`` path, a priority
(longest chain ahead, as ``render`` passes it) and ``jobs`` slots. What is left is the
resolver's own cost: time / N. Target: ≤ 1 ms per node.

Also measured, as a floor: the same N no-op coroutines through a bare asyncio loop
with a semaphore of ``jobs`` (what any asyncio scheduler pays).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Result, median, table  # noqa: E402
from generate import build  # noqa: E402

SIZES = (1000, 10_000, 100_000)
QUICK_SIZES = (200,)
TARGET_MS = 1.0


def dag(n: int) -> tuple[list[str], dict[str, list[str]], dict[str, float]]:
    """(story order, deps, priority) of the generated storyboard with n shots."""
    deps = build(n).deps()
    order = list(deps)  # sheets first, refs only point backwards: a topological order
    users: dict[str, list[str]] = {node: [] for node in order}
    for node, ds in deps.items():
        for d in ds:
            users[d].append(node)
    height: dict[str, float] = {}
    for node in reversed(order):
        height[node] = 1.0 + max((height[u] for u in users[node]), default=0.0)
    return order, deps, height


def time_resolver(order, deps, priority, jobs: int) -> float:
    from shotflow.resolve import resolve

    try:
        from shotflow.status import Outcome, Status
    except ImportError:  # a shotflow from before issue 12
        from shotflow.resolve import NodeStatus as Status  # type: ignore[attr-defined,no-redef]
        from shotflow.resolve import Outcome  # type: ignore[attr-defined,no-redef]

    async def run(node: str, upstream, *more) -> Outcome:  # (more: a release callback, in newer resolvers)
        return Outcome(node, Status.RENDERED)

    async def main() -> dict:
        return await resolve(order, deps, run, jobs=jobs, priority=priority)

    gc.collect()
    start = time.perf_counter()
    outcomes = asyncio.run(main())
    elapsed = time.perf_counter() - start
    if len(outcomes) != len(order) or any(o.status is not Status.RENDERED for o in outcomes.values()):
        raise RuntimeError("the resolver did not render every node")
    return elapsed


def time_floor(n: int, jobs: int) -> float:
    async def noop() -> None:
        return None

    async def main() -> None:
        slots = asyncio.Semaphore(jobs)

        async def one() -> None:
            async with slots:
                await noop()

        await asyncio.gather(*(one() for _ in range(n)))

    gc.collect()
    start = time.perf_counter()
    asyncio.run(main())
    return time.perf_counter() - start


def bench(
    quick: bool = False, sizes: tuple[int, ...] | None = None, runs: int | None = None, jobs: int = 8
) -> list[Result]:
    sizes = sizes or (QUICK_SIZES if quick else SIZES)
    runs = runs or (1 if quick else 5)
    results = []
    for n in sizes:
        order, deps, priority = dag(n)
        nodes = len(order)
        reps = min(runs, 3) if n >= 100_000 else runs
        per_node = [time_resolver(order, deps, priority, jobs) / nodes * 1e6 for _ in range(reps)]
        value = median(per_node)
        results.append(
            Result(
                bench="scheduling",
                case=f"resolve, N={n} ({nodes} nodes, jobs={jobs})",
                value=value,
                unit="us",
                runs=per_node,
                target=f"≤ {TARGET_MS:g} ms per node",
                ok=None if quick else value <= TARGET_MS * 1000,
                command=f"python bench/scheduling.py --sizes {n}",
                note=f"{value * nodes / 1e6:.3f} s for the DAG",
            )
        )
        floor = [time_floor(nodes, jobs) / nodes * 1e6 for _ in range(reps)]
        results.append(
            Result(
                bench="scheduling",
                case=f"asyncio floor, N={n}",
                value=median(floor),
                unit="us",
                runs=floor,
                command=f"python bench/scheduling.py --sizes {n}",
                note="gather + semaphore of no-op coroutines, for comparison",
            )
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/scheduling.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", default=None)
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--jobs", type=int, default=8)
    args = parser.parse_args(argv)
    sizes = tuple(int(s) for s in args.sizes.split(",")) if args.sizes else None
    print(table(bench(args.quick, sizes, args.runs, args.jobs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
