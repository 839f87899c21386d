"""Where validate and plan spend their time: each stage timed in process, at N = 1000 and 10 000.

    python bench/stages.py [--quick] [--sizes 1000,10000] [--runs 3]

In a fresh interpreter per run (so nothing is warm that a new process would not have)::

    imports        shotflow.api + load/expand/graph/plan and the libraries they use
    yaml           load.read_source(storyboard)      compose + plain data (the main file)
    schema         validate.check(source)            jsonschema over the whole main file
    load           load.load(storyboard)             all of stage 1-2: read, check, includes
    expand         expand.expand(loaded)             Jinja, sizes, references
    graph          graph.build(project)              the DAG, cycle check
    plan           api.plan(project)                 keys, freshness (on the rendered board)

each twice: with the per-user cache off (``SHOTFLOW_USER_CACHE=off``: nothing compiled
or checked before, as on a new machine or after editing every prompt) and warm
(``bench/_work/usercache``, filled by the first run). Stage names follow the modules
(DESIGN.md §7); a stage whose function is gone is reported as such, not as a crash.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PY, Result, child_env, median, table  # noqa: E402
from commands import DEPTH, USER_CACHE, board_dir  # noqa: E402
from generate import generate  # noqa: E402

SIZES = (1000, 10_000)
QUICK_SIZES = (20,)

CHILD = r"""
import json, sys, time
path = sys.argv[1]
out = {}
def timed(name, fn):
    t = time.perf_counter()
    try:
        value = fn()
    except (AttributeError, ImportError, TypeError) as exc:  # an API that moved: say so
        out[name] = None
        out.setdefault("_missing", []).append(f"{name}: {type(exc).__name__}: {exc}")
        return None
    out[name] = time.perf_counter() - t
    return value
def imports():
    import yaml, jsonschema, jinja2, jinja2.sandbox, networkx  # what validate and plan use
    import shotflow.api, shotflow.load, shotflow.expand, shotflow.graph, shotflow.plan, shotflow.validate
timed("imports", imports)
from shotflow import api, expand, graph, load, validate
source = timed("yaml", lambda: load.read_source(__import__("pathlib").Path(path).resolve()))
timed("schema", lambda: validate.check(source, "storyboard"))
loaded = timed("load", lambda: load.load(path))
project = timed("expand", lambda: expand.expand(loaded))
timed("graph", lambda: graph.build(project))
timed("plan", lambda: api.plan(project))
print(json.dumps(out))
"""

STAGES = ("imports", "yaml", "schema", "load", "expand", "graph", "plan")


def run_child(path: Path, user_cache: str) -> dict:
    done = subprocess.run(
        [PY, "-c", CHILD, str(path)],
        capture_output=True,
        text=True,
        env=child_env({"SHOTFLOW_USER_CACHE": user_cache}),
        cwd=path.parent,
    )
    if done.returncode != 0:
        raise RuntimeError(f"stages child failed: {done.stderr.strip()[-800:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench(quick: bool = False, sizes: tuple[int, ...] | None = None, runs: int | None = None) -> list[Result]:
    sizes = sizes or (QUICK_SIZES if quick else SIZES)
    runs = runs or (1 if quick else 3)
    results = []
    for n in sizes:
        folder = board_dir(n)
        generate(n, folder, depth=DEPTH)
        path = folder / "storyboard.yaml"
        rendered = (folder / ".shotflow" / "storyboard.last-run.json").is_file()
        for mode, cache in (("user cache off", "off"), ("warm", str(USER_CACHE))):
            if mode == "warm":
                run_child(path, cache)  # fill it
            # a cold 10 000-shot run is ~25 s: one shows it
            samples = [run_child(path, cache) for _ in range(1 if n >= 10_000 and cache == "off" else runs)]
            missing = sorted({m for s in samples for m in s.get("_missing", [])})
            for stage in STAGES:
                values = [s[stage] for s in samples if s.get(stage) is not None]
                note = ""
                if stage == "load":
                    note = "includes yaml + schema of every file"
                if stage == "plan" and not rendered:
                    note = "board not rendered yet: nothing is fresh"
                if not values:
                    note = "; ".join(m for m in missing if m.startswith(stage)) or "not measured"
                results.append(
                    Result(
                        bench="stages",
                        case=f"{stage}, N={n}, {mode}",
                        value=median(values) if values else None,
                        unit="s",
                        runs=values,
                        command=f"python bench/stages.py --sizes {n} --runs {runs}",
                        note=note,
                    )
                )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/stages.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", default=None)
    parser.add_argument("--runs", type=int, default=None)
    args = parser.parse_args(argv)
    sizes = tuple(int(s) for s in args.sizes.split(",")) if args.sizes else None
    print(table(bench(args.quick, sizes, args.runs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
