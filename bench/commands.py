"""validate, plan and render as whole processes, at N = 100, 1000 and 10 000 shots.

    python bench/commands.py [--quick] [--sizes 100,1000] [--runs 5] [--fresh]

For each N, on a storyboard from ``generate.py`` (depth 8)::

    validate, cold user cache     shotflow validate FILE, $SHOTFLOW_USER_CACHE empty each run
    validate, warm                the same file again (compiled prompts, schema check cached)
    validate, 1 prompt edited     one shot's prompt changed since the last run (the edit loop)
    render (cold, preview)        shotflow render FILE from an empty cache, once, only when needed
    plan, warm (all fresh)        shotflow plan FILE after that render
    plan, 1 prompt edited         ... with one prompt changed: it and its downstream render
    render, 1 prompt edited       shotflow render FILE after that edit: renders the shot and its
                                  downstream, the rest is fresh (the everyday loop)
    render, edit reverted         the prompt put back: nothing renders, but the no-op fast path
                                  cannot answer (the file changed since the last run), so every
                                  node goes through plan and the cache (as after a git checkout)
    render (no-op)                shotflow render FILE again, nothing changed

Each figure is the median wall clock of spawn-to-exit over the runs (after one warm-up
run at N ≤ 1000), with the largest peak RSS of the process. The cold render is the
setup of the no-op case: it is kept in ``bench/_work/`` and redone only when missing
or with ``--fresh``. An edited prompt is put back byte for byte, with its mtime, so
the no-op case still sees an unchanged storyboard.

The per-user cache (compiled templates, schema checks; see ``shotflow/_usercache.py``)
is ``bench/_work/usercache`` for the warm cases, never the user's own.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import WORK, Result, check, median, quote, run, shotflow_cmd, table  # noqa: E402
from generate import generate  # noqa: E402

SIZES = (100, 1000, 10_000)
QUICK_SIZES = (20,)
DEPTH = 8
RSS_LIMIT_MB = 150.0
USER_CACHE = WORK / "usercache"

# what a command must reach at that N (and at 10 000: RSS_LIMIT_MB); no entry: no target
UNDER_A_SECOND = (0.5, "well under 1 s (≤ 0.5)")
TARGETS = {
    ("render (no-op)", 1000): (0.25, "≤ 0.25 s"),
    ("render (no-op)", 10_000): (2.0, "≤ 2 s"),
    ("validate, cold user cache", 1000): UNDER_A_SECOND,
    ("validate, warm", 1000): UNDER_A_SECOND,
    ("validate, 1 prompt edited", 1000): UNDER_A_SECOND,
    ("plan, warm (all fresh)", 1000): UNDER_A_SECOND,
    ("plan, 1 prompt edited", 1000): UNDER_A_SECOND,
}


def default_runs(n: int) -> int:
    return 3 if n >= 10_000 else 5


def board_dir(n: int) -> Path:
    return WORK / f"sb{n}-d{DEPTH}"


def _judge(name: str, n: int, value: float, rss: float, quick: bool) -> tuple[str, bool | None]:
    target = TARGETS.get((name, n))
    texts, oks = [], []
    if target:
        texts.append(target[1])
        oks.append(value <= target[0])
    if n >= 10_000:
        texts.append(f"RSS ≤ {RSS_LIMIT_MB:.0f} MB")
        oks.append(rss <= RSS_LIMIT_MB)
    if quick or not oks:
        return "; ".join(texts), None
    return "; ".join(texts), all(oks)


@contextlib.contextmanager
def edited(path: Path, run_index: int):
    """One shot's prompt changed for the duration, then the exact bytes and mtime put back
    (same inode), so nothing downstream sees a change. The shot is ``edit_target`` of
    bench-meta.json (the middle scene's shot with the most downstream), else the first."""
    original = path.read_bytes()
    st = os.stat(path)
    try:
        target = json.loads((path.parent / "bench-meta.json").read_text())["edit_target"]
        scene_id, shot_id = target.split("/")
        scene = original.index(f"  - id: {scene_id}\n".encode())
        shot = original.index(f"      - id: {shot_id}\n".encode(), scene)
    except (OSError, ValueError, KeyError):
        shot = original.index(b"      - id: ")
    at = original.index(b'"', original.index(b"        prompt: ", shot)) + 1
    # a new text each time: a user cache must never have seen it
    path.write_bytes(original[:at] + f"edit {run_index}.{time.time_ns()}: ".encode() + original[at:])
    try:
        yield
    finally:
        path.write_bytes(original)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _where(n: int, cmd: list[str]) -> str:
    return f"python bench/commands.py --sizes {n}  # runs `{quote(cmd)}` in bench/_work/sb{n}-d{DEPTH}"


def _timed(
    name: str,
    n: int,
    cmd: list[str],
    runs: int,
    quick: bool,
    cwd: Path,
    *,
    expect: str | None = None,
    cold_user_cache: bool = False,
    edit: Path | None = None,
) -> Result:
    walls, cpus, rss = [], [], 0.0
    note = ""
    for i in range(runs if quick or n > 1000 else runs + 1):  # at N ≤ 1000 the first run is a warm-up
        with contextlib.ExitStack() as stack:
            env = {"SHOTFLOW_USER_CACHE": str(USER_CACHE)}
            if cold_user_cache:
                env["SHOTFLOW_USER_CACHE"] = stack.enter_context(tempfile.TemporaryDirectory(prefix="sf-usercache-"))
            if edit is not None:
                stack.enter_context(edited(edit, i))
            proc = check(run(cmd, cwd=cwd, env=env), f"{name} at N={n}")
        if i == 0 and not quick and n <= 1000:
            continue
        if expect is not None and expect not in proc.out:
            note = f"expected '{expect}' in the output: the fast path was not taken"
        walls.append(proc.wall)
        cpus.append(proc.cpu)
        rss = max(rss, proc.rss_mb)
    value = median(walls)
    note = f"CPU {median(cpus):.2f} s" + (f"; {note}" if note else "")
    target, ok = _judge(name, n, value, rss, quick)
    if "fast path" in note:
        ok = False if not quick else None
    return Result(
        bench="commands",
        case=f"{name}, N={n}",
        value=value,
        unit="s",
        runs=walls,
        rss_mb=rss,
        target=target,
        ok=ok,
        command=_where(n, cmd),
        note=note,
    )


def _edit_loop(n: int, cmd: list[str], runs: int, quick: bool, cwd: Path, board: Path) -> list[Result]:
    """Render with one prompt edited, then with the edit reverted: both timed, each run."""
    edit, revert = [], []
    env = {"SHOTFLOW_USER_CACHE": str(USER_CACHE)}
    for i in range(runs):
        with edited(board, i):
            edit.append(check(run(cmd, cwd=cwd, env=env), f"render with an edit at N={n}"))
        revert.append(check(run(cmd, cwd=cwd, env=env), f"render with the edit reverted at N={n}"))
    results = []
    for name, procs in (("render, 1 prompt edited", edit), ("render, edit reverted", revert)):
        walls = [p.wall for p in procs]
        rendered = procs[-1].out.count(" rendered ")
        rss = max(p.rss_mb for p in procs)
        target, ok = _judge(name, n, median(walls), rss, quick)
        results.append(
            Result(
                bench="commands",
                case=f"{name}, N={n}",
                value=median(walls),
                unit="s",
                runs=walls,
                rss_mb=rss,
                target=target,
                ok=ok,
                command=_where(n, cmd),
                note=f"CPU {median([p.cpu for p in procs]):.2f} s; {rendered} nodes rendered",
            )
        )
    return results


def _clear(folder: Path) -> None:
    for name in (".shotflow", "renders"):
        shutil.rmtree(folder / name, ignore_errors=True)
    (folder / "storyboard.lock").unlink(missing_ok=True)


def bench_one(n: int, runs: int, quick: bool, fresh: bool) -> list[Result]:
    folder = board_dir(n)
    meta = generate(n, folder, depth=DEPTH)
    board = folder / "storyboard.yaml"
    sf = shotflow_cmd()
    validate = [*sf, "validate", "storyboard.yaml"]
    plan = [*sf, "plan", "storyboard.yaml"]
    render = [*sf, "render", "storyboard.yaml"]
    results = [
        # at 10 000 a cold run is ~30 s: one is enough to see it
        _timed(
            "validate, cold user cache", n, validate, 1 if n >= 10_000 else runs, quick, folder, cold_user_cache=True
        ),
        _timed("validate, warm", n, validate, runs, quick, folder),
        _timed("validate, 1 prompt edited", n, validate, runs, quick, folder, edit=board),
    ]
    cold_needed = fresh or not (folder / ".shotflow" / "storyboard.last-run.json").is_file()
    if cold_needed:
        _clear(folder)
        proc = check(
            run(render, cwd=folder, keep_output=False, env={"SHOTFLOW_USER_CACHE": str(USER_CACHE)}),
            f"cold render at N={n}",
        )
        nodes = meta["nodes"]
        results.append(
            Result(
                bench="commands",
                case=f"render (cold, preview), N={n}",
                value=proc.wall,
                unit="s",
                runs=[proc.wall],
                rss_mb=proc.rss_mb,
                target=f"RSS ≤ {RSS_LIMIT_MB:.0f} MB" if n >= 10_000 else "",
                ok=None if quick or n < 10_000 else proc.rss_mb <= RSS_LIMIT_MB,
                command=_where(n, render) + " (--fresh)",
                note=f"{nodes} nodes, {meta['takes'] + meta['sheets']} frames; "
                f"{proc.wall / nodes * 1000:.1f} ms per node; CPU {proc.cpu:.1f} s",
            )
        )
    else:
        results.append(
            Result(
                bench="commands",
                case=f"render (cold, preview), N={n}",
                value=None,
                unit="s",
                command=_where(n, render) + " (--fresh)",
                note="kept from an earlier run (pass --fresh to redo)",
            )
        )
    results += [
        _timed("plan, warm (all fresh)", n, plan, runs, quick, folder),
        _timed("plan, 1 prompt edited", n, plan, runs, quick, folder, edit=board),
        *_edit_loop(n, render, 1 if n >= 10_000 else min(runs, 3), quick, folder, board),
        _timed("render (no-op)", n, render, runs, quick, folder, expect="nothing to do"),
    ]
    return results


def bench(
    quick: bool = False, sizes: tuple[int, ...] | None = None, runs: int | None = None, fresh: bool = False
) -> list[Result]:
    sizes = sizes or (QUICK_SIZES if quick else SIZES)
    results: list[Result] = []
    for n in sizes:
        results += bench_one(n, runs or (1 if quick else default_runs(n)), quick, fresh or quick)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/commands.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny N, one run, no targets (CI smoke)")
    parser.add_argument("--sizes", default=None, help="comma-separated N (default 100,1000,10000)")
    parser.add_argument("--runs", type=int, default=None, help="runs per figure (default 5; 3 at 10 000)")
    parser.add_argument("--fresh", action="store_true", help="redo the cold render even when kept")
    args = parser.parse_args(argv)
    sizes = tuple(int(s) for s in args.sizes.split(",")) if args.sizes else None
    print(table(bench(args.quick, sizes, args.runs, args.fresh)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
