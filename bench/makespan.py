"""Cold-render makespan on the Runware emulator, against the DAG's lower bound.

    python bench/makespan.py [--quick] [--shots 400] [--latency 0.2] [--jobs 8] [--runs 1]

A storyboard from ``generate.py`` (N shots + their sheets, chains of depth 8) is
rendered from an empty cache with ``shotflow render --backend runware --jobs C
--json`` against ``python -m shotflow.testing.emulator --latency L --concurrency C``
(every inference task takes L seconds; at most C at once). Nothing can beat::

    bound = max(longest chain × L, ⌈nodes / C⌉ × L)

Two figures: the process wall clock (spawn to exit: start-up, load, plan, render,
lock and manifest), and the run's own makespan, estimated from the JSON event
stream as (last node done − first node done) + L (the first node done cannot have
started later than L before it finished). Target: makespan ≤ 1.05 × bound.

Profiling: ``--probe`` times every task in the emulator (the slots' idle time);
``--handoffs`` also stamps shotflow's POSTs and splits that idle time: the time before
the first task, after the last, and each freed slot's wait for its next task (polling
lateness, the answer's way back, shotflow's own work, the next POST's way there).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PY, WORK, Result, child_env, measured, median, quote, read_rss, reap, shotflow_cmd, table  # noqa: E402
from generate import generate  # noqa: E402

TARGET = 1.05


class EmulatorProcess:
    """``python -m shotflow.testing.emulator`` in a child process; its URL is the first stdout line."""

    def __init__(self, latency: float, concurrency: int | None, api_key: str = "test-key", probe: Path | None = None):
        probed = [str(Path(__file__).resolve().parent / "_emulator_probe.py")]
        entry = probed if probe else ["-m", "shotflow.testing.emulator"]
        cmd = [PY, *entry, "--port", "0", "--latency", str(latency), "--api-key", api_key]
        self.env = child_env({"SHOTFLOW_BENCH_PROBE": str(probe)} if probe else None)
        if concurrency:
            cmd += ["--concurrency", str(concurrency)]
        self.cmd = cmd
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.cpu = 0.0  # CPU seconds it used, known once it exited

    def __enter__(self) -> EmulatorProcess:
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: lines.put(self.proc.stdout.readline()), daemon=True).start()
        try:
            self.url = lines.get(timeout=20).strip()
        except queue.Empty:
            self.__exit__()
            raise RuntimeError("the emulator printed no URL within 20 s") from None
        if not self.url.startswith("http"):
            err = self.proc.stderr.read() if self.proc.poll() is not None else ""
            self.__exit__()
            raise RuntimeError(f"the emulator did not start: {self.url or err.strip()[-500:]}")
        return self

    def __exit__(self, *exc) -> None:
        if self.proc and self.proc.returncode is None:
            self.proc.terminate()
            killer = threading.Timer(10, self.proc.kill)
            killer.start()
            try:
                _, usage = reap(self.proc)
            finally:
                killer.cancel()
            self.cpu = usage.ru_utime + usage.ru_stime


def render_timed(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> dict:
    """Run a ``render --json``; the arrival time of every stdout line, and the child's peak RSS."""
    full_env = child_env(env)
    with tempfile.NamedTemporaryFile(suffix=".rss", delete=False) as rss_file:
        pass  # only its name: the measured child writes it
    start, spawned = time.perf_counter(), time.monotonic()  # monotonic: the emulator probe's clock
    proc = subprocess.Popen(
        measured(cmd, rss_file.name),
        cwd=cwd,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    err_chunks: list[str] = []
    reader = threading.Thread(target=lambda: err_chunks.append(proc.stderr.read()), daemon=True)
    reader.start()
    events = []
    for line in proc.stdout:
        stamp = time.perf_counter() - start
        try:
            events.append((stamp, json.loads(line)))
        except ValueError:
            continue
    try:
        _, usage = reap(proc)
    finally:
        killer.cancel()
    wall, exited = time.perf_counter() - start, time.monotonic()
    reader.join(5)
    rss = read_rss(rss_file.name, usage.ru_maxrss)
    os.unlink(rss_file.name)
    return {
        "wall": wall,
        "spawned": spawned,
        "exited": exited,
        "code": proc.returncode,
        "events": events,
        "rss_mb": rss,
        "cpu": usage.ru_utime + usage.ru_stime,
        "err": "".join(err_chunks),
    }


def probe_summary(tasks: list[list[float]], latency: float, jobs: int, runs: int) -> str:
    """Where the time beyond the bound went, from the emulator's side (one run's tasks)."""
    tasks = sorted(tasks)[: len(tasks) // max(1, runs)]
    if not tasks:
        return "probe: no tasks"
    span = max(d for _, d in tasks) - tasks[0][0]
    durations = sorted(d - a for a, d in tasks)
    busy = sum(durations)
    return (
        f"probe: task time median {durations[len(durations) // 2] * 1000:.0f} ms, "
        f"p90 {durations[int(len(durations) * 0.9)] * 1000:.0f} ms (L {latency * 1000:.0f}); "
        f"slots busy {busy / (jobs * span):.0%} of {jobs} × {span:.2f} s; "
        f"idle slot time {jobs * span - busy:.2f} s = shotflow's turnaround, "
        f"{(jobs * span - busy) / len(tasks) * 1000:.0f} ms per task"
    )


def handoff_summary(probe: dict, runs: list[list], ends: list[tuple[float, float]], jobs: int) -> str:
    """Where a freed slot's time goes before its next task arrives (profiling, ``--handoffs``).

    The k-th task to finish frees a slot; the (k + C)-th task to arrive fills it. Its handoff
    is split, on the one monotonic clock both processes read, into: the task done → the poll
    that reports it reaching the emulator (polling lateness); the emulator's answer → shotflow
    holding it (the answer's way back through both HTTP stacks); → shotflow's POST of the next
    task (its own work); → that POST's arrival at the emulator (the way there). ``runs``: each
    run's POST stamps (``_patched.py``'s ``poststamp``); ``ends``: when each run's process
    was spawned and exited, for the time before its first task and after its last."""
    parts: list[tuple[float, ...]] = []
    starts, tails = [], []
    for stamps, (spawned, exited) in zip(runs, ends, strict=True):
        parts += _handoffs(probe, stamps, jobs)
        mine = [times for times in probe["tasks"].values() if spawned <= times[0] <= exited]
        if mine:
            starts.append(min(t[0] for t in mine) - spawned)
            tails.append(exited - max(t[1] for t in mine))
    if not parts:
        return "handoffs: none matched"
    mid = [median([p[i] for p in parts]) * 1000 for i in range(5)]
    return (
        f"spawn → first task at the emulator {median(starts) * 1000:.0f} ms, last task done → exit "
        f"{median(tails) * 1000:.0f} ms (medians); handoffs ({len(parts)} matched, medians): "
        f"{mid[4]:.1f} ms a freed slot = polling lateness "
        f"{mid[0]:.1f} + the answer back {mid[1]:.1f} + shotflow's work {mid[2]:.1f} + the next POST there {mid[3]:.1f}"
    )


def _handoffs(probe: dict, stamps: list[list], jobs: int) -> list[tuple[float, ...]]:
    """One run's handoffs (see ``handoff_summary``): the tasks that arrived while it posted."""
    if not stamps:
        return []
    first, last = min(s[0] for s in stamps), max(s[1] for s in stamps)
    tasks = {uuid: times for uuid, times in probe["tasks"].items() if first <= times[0] <= last}
    reported: dict[str, tuple[float, float]] = {}
    for arrived, answered, done in probe["reports"]:
        for uuid in done:
            reported.setdefault(uuid, (arrived, answered))
    held: dict[str, float] = {}  # task → when shotflow held the poll answer that reported it
    posted: dict[str, float] = {}  # task → when shotflow started the POST that sent it
    for start, end, sent in sorted(stamps):
        for kind, uuid in sent:
            if kind == "imageInference":
                posted.setdefault(uuid, start)
            elif kind == "getResponse" and uuid in reported and start <= reported[uuid][0] <= end:
                held.setdefault(uuid, end)
    ends = sorted((done, uuid) for uuid, (_, done) in tasks.items())
    starts = sorted((arrived, uuid) for uuid, (arrived, _) in tasks.items())
    parts = []
    for (done, freed), (arrived, filled) in zip(ends, starts[jobs:], strict=False):  # the last C free no slot
        if freed in held and filled in posted and arrived > done:
            poll_arrived, answered = reported[freed]
            parts.append(
                (
                    poll_arrived - done,
                    held[freed] - answered,
                    posted[filled] - held[freed],
                    arrived - posted[filled],
                    arrived - done,
                )
            )
    return parts


def bench(
    quick: bool = False,
    shots: int | None = None,
    latency: float | None = None,
    jobs: int | None = None,
    runs: int | None = None,
    whatif: str = "",
    probe: bool = False,
    extra_jobs: int = 0,
    handoffs: bool = False,
) -> list[Result]:
    """``whatif``: comma-separated patches of ``_patched.py`` and/or ``base64`` (the storyboard
    asks Runware for base64Data instead of URLs: no download round trip), ``batch1`` (one task
    per HTTP request), ``window0`` (no batch window), ``sync`` (sync delivery instead of the
    default async one); for profiling only."""
    shots = shots or (20 if quick else 400)
    latency = latency if latency is not None else (0.05 if quick else 0.2)
    jobs = jobs or (4 if quick else 8)
    runs = runs or 1
    folder = WORK / f"makespan-{shots}"
    meta = generate(shots, folder, depth=8)
    nodes, chain = int(meta["nodes"]), int(meta["longest_chain"])
    bound = max(chain * latency, math.ceil(nodes / jobs) * latency)
    settings = {
        "base64": "output_type: base64Data",
        "batch1": "batch: 1",
        "window0": "batch_window: 0",
        "sync": "delivery: sync",
    }
    wanted = [w for w in whatif.split(",") if w]
    patches = [w for w in wanted if w not in settings] + (["poststamp"] if handoffs else [])
    probe = probe or handoffs
    board = "storyboard.yaml"
    if any(w in settings for w in wanted):
        board = "storyboard-" + "-".join(w for w in wanted if w in settings) + ".yaml"
        section = ", ".join(settings[w] for w in wanted if w in settings)
        (folder / board).write_text((folder / "storyboard.yaml").read_text() + f"runware: {{{section}}}\n")
    sf = [PY, str(Path(__file__).resolve().parent / "_patched.py")] if patches else shotflow_cmd()
    # extra_jobs > 0 (profiling): shotflow keeps more tasks in flight than the emulator runs at once;
    # the emulator queues them, so a freed slot starts the next task at once (turnaround hidden)
    cmd = [*sf, "render", board, "--backend", "runware", "--jobs", str(jobs + extra_jobs), "--json"]
    case = f"N={shots} ({nodes} nodes, chain {chain}), L={latency:g} s, C={jobs}"
    case += f", what-if {whatif}" if whatif else ""
    if extra_jobs:
        case += f", --jobs {jobs + extra_jobs}"
    if handoffs:
        case += ", POSTs stamped"
    command = (
        f"python bench/makespan.py --shots {shots} --latency {latency:g} --jobs {jobs}"
        f"  # runs `{quote(cmd)}` against the emulator"
    )
    probe_file = WORK / "emulator-probe.json" if probe else None
    try:
        with EmulatorProcess(latency, jobs, probe=probe_file) as emulator:
            makespans, walls, cpus, rss, failed, rendered = [], [], [], 0.0, 0, 0
            stamps: list[list] = []  # each run's POST stamps (--handoffs)
            ends: list[tuple[float, float]] = []  # and when its process started and exited
            stamp_file = WORK / "makespan-posts.json"
            for _ in range(runs):
                for name in (".shotflow", "renders"):
                    shutil.rmtree(folder / name, ignore_errors=True)
                (folder / board).with_suffix(".lock").unlink(missing_ok=True)
                env = {
                    "RUNWARE_API_URL": emulator.url,
                    "RUNWARE_API_KEY": "test-key",
                    "SHOTFLOW_BENCH_PATCH": ",".join(patches),
                    "SHOTFLOW_BENCH_POSTS": str(stamp_file),
                }
                got = render_timed(cmd, folder, env, timeout=max(120.0, bound * 10))
                node_events = [(t, e) for t, e in got["events"] if e.get("event") == "node"]
                if got["code"] not in (0, 1) or not node_events:
                    tail = (got["err"] or "").strip().splitlines()[-8:]
                    raise RuntimeError(f"render exited {got['code']}: " + " | ".join(tail))
                failed = sum(1 for _, e in node_events if e["status"] in ("failed", "skipped"))
                rendered = sum(1 for _, e in node_events if e["status"] == "rendered")
                makespans.append(node_events[-1][0] - node_events[0][0] + latency)
                walls.append(got["wall"])
                cpus.append(got["cpu"])
                rss = max(rss, got["rss_mb"])
                if handoffs:
                    stamps.append(json.loads(stamp_file.read_text()))
                    ends.append((got["spawned"], got["exited"]))
    except (RuntimeError, OSError) as exc:
        import traceback

        traceback.print_exc()
        note = f"could not run: {exc}"
        return [
            Result(
                bench="makespan",
                case=case,
                value=None,
                unit="x",
                target=f"≤ {TARGET} × bound",
                command=command,
                note=note[:400],
            )
        ]
    span, wall = median(makespans), median(walls)
    cpu = median(cpus)
    emulator_cpu = emulator.cpu / runs
    ok_run = span <= TARGET * bound
    note = (
        f"bound {bound:.2f} s; run makespan {span:.2f} s; process wall {wall:.2f} s "
        f"({wall / bound:.3f}× bound); {rendered} rendered, {failed} failed or skipped; "
        f"CPU: shotflow {cpu:.1f} s ({cpu / nodes * 1000:.0f} ms/node), emulator {emulator_cpu:.1f} s"
    )
    if probe_file is not None and probe_file.is_file():
        note += "; " + probe_summary(json.loads(probe_file.read_text()), latency, jobs, runs)
        if handoffs:
            note += "; " + handoff_summary(json.loads(Path(f"{probe_file}.tasks").read_text()), stamps, ends, jobs)
    return [
        Result(
            bench="makespan",
            case=case,
            value=span / bound,
            unit="x",
            runs=[m / bound for m in makespans],
            rss_mb=rss,
            target=f"≤ {TARGET} × bound",
            ok=None if quick else (ok_run and not failed),
            command=command,
            note=note,
        ),
        Result(
            bench="makespan",
            case=f"process wall, {case}",
            value=wall / bound,
            unit="x",
            runs=[w / bound for w in walls],
            rss_mb=rss,
            command=command,
            note="start-up + load + plan + render + lock/manifest, over the bound",
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/makespan.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--shots", type=int, default=None, help="shots (default 400)")
    parser.add_argument("--latency", type=float, default=None, help="seconds per task (default 0.2)")
    parser.add_argument("--jobs", type=int, default=None, help="C: --jobs and emulator concurrency (default 8)")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--whatif", default="", help="profiling: nofsync, novalidate, base64, sync (comma-separated)")
    parser.add_argument(
        "--probe", action="store_true", help="time every task in the emulator (bench/_emulator_probe.py)"
    )
    parser.add_argument(
        "--extra-jobs",
        type=int,
        default=0,
        help="profiling: run shotflow with --jobs C+K against an emulator of concurrency C",
    )
    parser.add_argument(
        "--handoffs",
        action="store_true",
        help="profiling: split a freed slot's idle time (the probe, and shotflow's POSTs stamped)",
    )
    args = parser.parse_args(argv)
    results = bench(
        args.quick,
        args.shots,
        args.latency,
        args.jobs,
        args.runs,
        args.whatif,
        args.probe,
        args.extra_jobs,
        handoffs=args.handoffs,
    )
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
