"""Profile one shotflow command on a generated storyboard (pyinstrument, whole process).

    python bench/hotspots.py validate 1000 [--cache cold|warm|edit] [--html out.html]
    python bench/hotspots.py plan 10000 --cache edit
    python bench/hotspots.py render 1000            # the no-op render (renders first if needed)
    python bench/hotspots.py render 10000 --touch   # all fresh but no fast path (as after a checkout)
    python bench/hotspots.py memory 10000           # tracemalloc: what holds memory after load+expand

Uses the storyboards of ``commands.py`` (``bench/_work/sbN-d8``), the same user-cache
states (cold: empty; warm: ``bench/_work/usercache``; edit: warm, one prompt changed)
and prints pyinstrument's call tree (library frames folded), or writes HTML.
Needs pyinstrument (``pip install pyinstrument``, the ``bench`` extra).
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PY, child_env, shotflow_cmd  # noqa: E402
from commands import DEPTH, USER_CACHE, board_dir, edited  # noqa: E402
from generate import generate  # noqa: E402


def profile(command: str, n: int, cache: str, html: Path | None, interval: float, touch: bool = False) -> int:
    folder = board_dir(n)
    generate(n, folder, depth=DEPTH)
    sf = shotflow_cmd()
    script = sf if sf[0] != PY else [*sf[1:]]
    if command == "render" and not (folder / ".shotflow" / "storyboard.last-run.json").is_file():
        subprocess.run(
            [*sf, "render", "storyboard.yaml"], cwd=folder, env=child_env(), check=True, stdout=subprocess.DEVNULL
        )
    if touch:
        (folder / "storyboard.yaml").touch()  # a new mtime: the no-op fast path no longer applies
    with contextlib.ExitStack() as stack:
        user_cache = str(USER_CACHE)
        if cache == "cold":
            user_cache = stack.enter_context(tempfile.TemporaryDirectory(prefix="sf-usercache-"))
        elif cache == "edit":
            stack.enter_context(edited(folder / "storyboard.yaml", 9999))
        report = html or Path(stack.enter_context(tempfile.TemporaryDirectory())) / "profile.txt"
        renderer = ["-r", "html" if html else "text", "-o", str(report)]
        cmd = [PY, "-m", "pyinstrument", "-i", str(interval), *renderer, *script, command, "storyboard.yaml"]
        done = subprocess.run(
            cmd, cwd=folder, env=child_env({"SHOTFLOW_USER_CACHE": user_cache}), stdout=subprocess.DEVNULL
        )
        if html:
            print(f"wrote {html}")
        else:
            print(report.read_text())
    return done.returncode


def memory(n: int, top: int) -> int:
    """What the loaded and expanded project holds (tracemalloc, grouped by file:line)."""
    folder = board_dir(n)
    generate(n, folder, depth=DEPTH)
    code = f"""
import tracemalloc, resource, sys
tracemalloc.start(1)
from shotflow.api import load_project
from shotflow import graph
project = load_project({str(folder / "storyboard.yaml")!r})
g = graph.build(project)
snap = tracemalloc.take_snapshot()
current, peak = tracemalloc.get_traced_memory()
print(f"traced now {{current / 2**20:.0f}} MiB, peak {{peak / 2**20:.0f}} MiB; "
      f"RSS peak {{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}} MB")
for stat in snap.statistics("lineno")[:{top}]:
    frame = stat.traceback[0]
    print(f"{{stat.size / 2**20:7.1f}} MiB {{stat.count:9d}} blocks  {{frame.filename}}:{{frame.lineno}}")
"""
    return subprocess.run([PY, "-c", code], env=child_env({"SHOTFLOW_USER_CACHE": str(USER_CACHE)})).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/hotspots.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["validate", "plan", "render", "memory"])
    parser.add_argument("n", type=int)
    parser.add_argument("--cache", choices=["cold", "warm", "edit"], default="warm")
    parser.add_argument("--html", type=Path, default=None)
    parser.add_argument("--interval", type=float, default=0.001, help="sampling interval, seconds")
    parser.add_argument("--top", type=int, default=25, help="memory: lines to show")
    parser.add_argument("--touch", action="store_true", help="touch the storyboard first (no fast path)")
    args = parser.parse_args(argv)
    if args.command == "memory":
        return memory(args.n, args.top)
    return profile(args.command, args.n, args.cache, args.html, args.interval, args.touch)


if __name__ == "__main__":
    sys.exit(main())
