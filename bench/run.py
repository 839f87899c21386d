"""Every shotflow benchmark, one table: ``python bench/run.py [--quick] [--only ...] [--json out.json]``.

    commands    validate / plan / render (cold, no-op) as processes, N = 100, 1000, 10 000; peak RSS
    startup     --help, no-op render, plan, validate: wall time and what each imports
    stages      where validate and plan spend their time, stage by stage (in process)
    scheduling  the resolver's own cost per node (no-op run, realistic DAG)
    preview     ms per preview frame at 720p and 1080p, with and without references
    makespan    cold render on the Runware emulator against the DAG's lower bound
    live        shotflow watch: a prompt saved → the edited frame on the board (server-sent event)
    teamcache   the team cache on a local S3 server: push, pull -j 1 vs 16, a clone's render,
                no-op and no-fast-path renders with and without a remote (needs moto: the test extra)
    stores      obstore vs fsspec+s3fs (import, 1000-object upload and download, memory; needs s3fs)

``--quick`` is the CI smoke: tiny N, one run each, no targets judged, well under 30 s.
The full run takes about 10-15 minutes on 2 cores (most of it the 10 000-shot cold
render, which is kept in ``bench/_work/`` for later runs; ``--fresh`` redoes it).
Exit status: 0, or 1 when a benchmark could not run (a missed target is not an error:
the table says MISS).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import commands  # noqa: E402
import frames  # noqa: E402
import live  # noqa: E402
import makespan  # noqa: E402
import remote_stores  # noqa: E402
import scheduling  # noqa: E402
import stages  # noqa: E402
import startup  # noqa: E402
import teamcache  # noqa: E402
from _common import Result, machine, table  # noqa: E402

BENCHES = {
    "startup": lambda a: startup.bench(a.quick),
    "commands": lambda a: commands.bench(a.quick, fresh=a.fresh),
    "stages": lambda a: stages.bench(a.quick),
    "scheduling": lambda a: scheduling.bench(a.quick),
    "preview": lambda a: frames.bench(a.quick),
    "makespan": lambda a: makespan.bench(a.quick, runs=None if a.quick else 3),
    "live": lambda a: live.bench(a.quick),
    "teamcache": lambda a: teamcache.bench(a.quick),
    "stores": lambda a: remote_stores.bench(a.quick),
}
ALIASES = {
    "watch": "live",
    "noop": "commands",
    "validate": "commands",
    "plan": "commands",
    "rss": "commands",
    "imports": "startup",
    "frames": "preview",
    "sched": "scheduling",
    "resolve": "scheduling",
}


def _cpu_times() -> list[int] | None:
    try:
        return [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None


def markdown(results: list[Result], info: dict[str, str]) -> str:
    """The figures as a Markdown table, with the machine and the command of each row."""
    from _common import fmt_value

    lines = [
        "Machine: " + "; ".join(f"{k} {v}" for k, v in info.items() if v),
        "",
        "| bench | case | median | runs | peak RSS | target | | notes | reproduce |",
        "|---|---|---:|---|---:|---|---|---|---|",
    ]
    for r in results:
        runs = ", ".join(fmt_value(v, r.unit) for v in r.runs) if len(r.runs) > 1 else ""
        cells = [
            r.bench,
            r.case,
            fmt_value(r.value, r.unit),
            runs,
            f"{r.rss_mb:.0f} MB" if r.rss_mb else "",
            r.target,
            {True: "ok", False: "**MISS**", None: ""}[r.ok],
            r.note,
            f"`{r.command}`" if r.command else "",
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI smoke: tiny N, 1 run, no targets judged")
    parser.add_argument("--only", default="", help="comma-separated: " + ", ".join(BENCHES))
    parser.add_argument("--json", type=Path, default=None, help="also write every figure (and the machine) here")
    parser.add_argument("--fresh", action="store_true", help="redo the cold renders kept in bench/_work/")
    parser.add_argument(
        "--markdown", type=Path, default=None, help="also write the table as Markdown (for BENCHMARKS.md)"
    )
    args = parser.parse_args(argv)
    chosen = [ALIASES.get(name, name) for name in args.only.split(",") if name] or list(BENCHES)
    unknown = [name for name in chosen if name not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(BENCHES)}")
    chosen = list(dict.fromkeys(chosen))

    info = machine()
    print("machine: " + "; ".join(f"{k} {v}" for k, v in info.items() if v), flush=True)
    cpu_before, started = _cpu_times(), time.perf_counter()
    results: list[Result] = []
    failures = []
    for name in chosen:
        t0 = time.perf_counter()
        try:
            got = BENCHES[name](args)
        except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the others
            failures.append(name)
            traceback.print_exc()
            got = [Result(bench=name, case="(failed)", value=None, unit="", note=f"{type(exc).__name__}: {exc}"[:300])]
        results += got
        print(f"  {name}: {len(got)} figures in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
        if any(r.value is None and r.note.startswith("could not run") for r in got):
            failures.append(name)
    cpu_after = _cpu_times()
    if cpu_before and cpu_after and len(cpu_after) > 7:
        delta = [b - a for a, b in zip(cpu_before, cpu_after, strict=True)]
        stolen = 100 * delta[7] / max(1, sum(delta))
        info["steal"] = f"{stolen:.0f}% of CPU time stolen by the hypervisor during the run"
    info["elapsed"] = f"{time.perf_counter() - started:.0f} s"
    print()
    print(table(results))
    missed = [r for r in results if r.ok is False]
    print(
        f"\n{len(results)} figures, {len(missed)} targets missed; {info['elapsed']}"
        + (f"; {info['steal']}" if "steal" in info else "")
    )
    if args.markdown:
        args.markdown.write_text(markdown(results, info))
    if args.json:
        args.json.write_text(
            json.dumps({"machine": info, "quick": args.quick, "results": [r.to_json() for r in results]}, indent=1)
            + "\n"
        )
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
