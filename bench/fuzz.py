"""A seeded mutator over the example storyboards: every case must end in exit 0 or 2.

    python bench/fuzz.py [--cases 10000] [--seed 1] [--workers 2] [--save DIR]

Each case is an example storyboard (lighthouse or heist, with its refs/, templates/ and
includes) with a few mutations: hostile YAML (tags, aliases, merges, deep nesting, NUL
and non-UTF-8 bytes), hostile values (ids that are lists or end in a newline, paths that
leave the project, devices, 300-character names, URLs of private addresses), hostile
Jinja (huge powers and repetitions, recursion, self-includes, mutation of the context),
plain damage (deleted, duplicated, swapped and cut lines, flipped characters) and odd
``--set`` values. A case runs what ``shotflow validate`` and ``shotflow plan`` run, in a
worker process, and ends in one of:

    0 / 2        as it should: ok, or a clear error
    3            a traceback (an exception that is not a shotflow error): a bug
    timeout      over 10 s (the worker is killed and replaced)
    memory       the worker's peak RSS went over 1 GB during the case

The figures are printed at the end; a case that is not 0 or 2 is saved (``--save``) so
that it can join the regression corpus in ``tests/fuzz_corpus/``. ``tests/test_fuzz.py``
runs a few hundred cases of the same mutator in CI.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import random
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
PROJECTS = ("lighthouse", "heist")
CASE_SECONDS = 10.0
CASE_BYTES = 1 << 30

DEEP = "{{ " + "(" * 100 + "1" + ")" * 100 + " }}"
VALUES = [
    "!!python/object/apply:os.system ['id']",
    "!!int abc",
    "!!float x1",
    "!!bool maybe",
    "!!null x",
    "!!timestamp 2024-13-45",
    "2024-02-30",
    "2024-02-28",
    "!!binary aGk=",
    "!!set {a}",
    "!!omap [a: 1]",
    "&a [*a]",
    "*nowhere",
    "&x {a: 1}",
    "[a, b]",
    "{a: 1}",
    "{id: x}",
    "[[[[[[[[[[]]]]]]]]]]",
    "~",
    "null",
    ".inf",
    "-.nan",
    "1e999",
    "0x1F",
    "-1",
    "0",
    "99999999999999999999999",
    "3.5",
    "true",
    '""',
    "''",
    '"wide\\n"',
    '"x\\0y"',
    '"\\xff\\u2028"',
    "x" * 300,
    "a/" * 150,
    '"' + "é" * 300 + '"',
    "../../../etc/passwd",
    "/etc/passwd",
    "/proc/self/mem",
    "/dev/zero",
    "/dev/stdin",
    "../../x.png",
    "/etc/hosts.png",
    "refs/",
    "refs",
    ".",
    "..",
    "refs/tom.jpg",
    "refs/../refs/tom.jpg",
    "http://127.0.0.1:9/x.png",
    "http://169.254.169.254/latest",
    "https://[::1]/x.png",
    "file:///etc/passwd",
    "ftp://x/y.png",
    "https://",
    "'{{ 9 ** 999999 }}'",
    "'{{ \"a\" * 1000000000 }}'",
    "'{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}'",
    "'{% include \"shot.j2\" %}'",
    "'" + DEEP + "'",
    "'{{ vars.update({\"a\": 1}) }}'",
    "'{{ lipsum(1000000) }}'",
    "'{{ range(100000)|join(\"x\" * 1000) }}'",
    "'{{ \"\".__class__.__mro__ }}'",
    "'{{ refs[99] }}'",
    "'{{ 1/0 }}'",
    "'{{ \"%999999999s\" % 1 }}'",
    "'{{ \"{:>999999999}\".format(1) }}'",
    "'{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}'",
    "'{{ nope }}'",
    "'{% if %}'",
    "'{{ cast.nobody.description }}'",
    "'@nobody walks'",
    "'{{ \"a\".ljust(10**9) }}'",
    "runway:4@2",
    "runway:9@9",
    "99999x99999",
    "1K-16:9",
    "4K-1:1",
    "PNG",
    "TIFF",
    "shot.j2",
    "../shot.j2",
    "/etc/passwd",
    "nothere.j2",
    "insert.j2",
    "act2.yaml",
    "cast.yaml",
    "storyboard.yaml",
]
LINES = [
    "x: !!python/name:os.system",
    "<<: *nowhere",
    "<<: [1, 2]",
    "? [a, b]\n  : c",
    "? {a: 1}\n  : c",
    "a: &a [*a]",
    "dup: 1\ndup: 2",
    "id: [x]",
    "id: {x: 1}",
    'id: "wide\\n"',
    "- id: [a]",
    "include: /etc/passwd",
    "include: [../../../../etc/passwd]",
    "include: [storyboard.yaml]",
    "- include: storyboard.yaml",
    "- include: /dev/zero",
    "refs: [/proc/self/mem]",
    "refs: [{file: /dev/zero}]",
    "image: /etc/passwd",
    "image: refs",
    "template: ../../../etc/passwd",
    'template: "a\\0b"',
    "vars: {a: &a [1,2], b: [*a, *a, *a]}",
    "---\nshotflow: 1",
    "%YAML 1.1",
    "%TAG ! tag:x,2000:",
    "takes: 20\npick: 21",
    "width: 1920",
    "height: -1",
    "size: !!int 5",
    "duration: -1",
    "duration: .nan",
    "camera: {lens: !!float abc}",
    "cast: [[a]]",
    "refs: [[a]]",
    "scenes: {a: 1}",
    "shots: 1",
    "- 1",
    "- [a]",
    "\t- tab",
    "key: [unclosed",
    "key: {unclosed",
    "'unclosed",
    "@reserved",
    "`reserved",
    "&anchor",
    "runware: {timeout: -1}",
    "runware: {batch: abc}",
    "backend: runware",
    "defaults: {model: runway:4@2}",
    "a: " + "[" * 80 + "]" * 80,
    "a: " + "{b: " * 80 + "1" + "}" * 80,
]
SETS = [
    "date=2024-02-30",
    "x=!!int abc",
    "a.b=1",
    "=1",
    "a..b=1",
    "x=[1",
    "x={a: 1}",
    "vars=1",
    "x=\0",
    "x=é",
    "weather=" + "x" * 5000,
    "a.b.c.d.e.f=1",
    "x=!!python/object:os.system",
    "x=&a [*a]",
    "x=2024-02-28",
]
CHARS = list("{}[]:-&*!%|>\"'#@,?\t\n ") + ["\0", "\x80", "\u2028", "\ufeff", "é", "9", "a"]


def mutate(text: str, rng: random.Random) -> str:
    lines = text.split("\n")
    for _ in range(rng.randint(1, 4)):
        roll = rng.random()
        i = rng.randrange(len(lines)) if lines else 0
        if not lines:
            lines = [""]
        if roll < 0.35:  # a value replaced
            line = lines[i]
            if ": " in line:
                key, _, _ = line.partition(": ")
                lines[i] = f"{key}: {rng.choice(VALUES)}"
            elif line.lstrip().startswith("- "):
                lines[i] = line[: len(line) - len(line.lstrip())] + "- " + rng.choice(VALUES)
        elif roll < 0.55:  # a line added, indented like its neighbour
            indent = len(lines[i]) - len(lines[i].lstrip())
            extra = rng.choice(LINES).replace("\n", "\n" + " " * indent)
            lines.insert(i, " " * indent + extra)
        elif roll < 0.65:
            del lines[i]
        elif roll < 0.72:
            lines.insert(i, lines[i])
        elif roll < 0.78:
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif roll < 0.93:  # characters flipped
            line = lines[i]
            for _ in range(rng.randint(1, 3)):
                k = rng.randrange(len(line) + 1)
                line = line[:k] + rng.choice(CHARS) + line[k + 1 :]
            lines[i] = line
        else:  # cut short
            lines = lines[: i + 1]
            lines[-1] = lines[-1][: rng.randrange(len(lines[-1]) + 1)]
    return "\n".join(lines)


def make_case(seed: int, index: int) -> dict:
    """Case ``index`` of run ``seed``: which project, which file is mutated, its text, --set pairs."""
    rng = random.Random(f"{seed}:{index}")
    project = rng.choice(PROJECTS)
    files = ["storyboard.yaml"] + (["act2.yaml", "cast.yaml", "templates/shot.j2"] if project == "heist" else [])
    name = files[0] if rng.random() < 0.8 else rng.choice(files)
    text = (EXAMPLES / project / name).read_text(encoding="utf-8")
    mutated = mutate(text, rng)
    sets = [rng.choice(SETS) for _ in range(rng.randint(1, 2))] if rng.random() < 0.15 else []
    raw = mutated.encode("utf-8", "surrogatepass")
    if rng.random() < 0.03:  # bytes that are not UTF-8
        k = rng.randrange(len(raw) + 1)
        raw = raw[:k] + rng.choice([b"\xff", b"\xc3", b"\x80\x80", b"\xed\xa0\x80"]) + raw[k:]
    return {"project": project, "file": name, "data": raw, "sets": sets}


def prepare(project: str, into: Path) -> Path:
    """A copy of an example project (without renders or cache); returns its folder."""
    target = into / project
    if not target.exists():
        shutil.copytree(EXAMPLES / project, target, ignore=shutil.ignore_patterns("renders", ".shotflow", "*.lock"))
    return target


def run_case(case: dict, folder: Path) -> tuple[int, str]:
    """What ``validate`` and ``plan`` do with the case, in this process: (exit code, detail)."""
    from shotflow.errors import ShotflowError

    original = EXAMPLES / case["project"] / case["file"]
    target = folder / case["file"]
    target.write_bytes(case["data"])
    try:
        from shotflow import graph as graphs
        from shotflow.api import load_project, plan
        from shotflow.load import parse_overrides

        overrides = parse_overrides(case["sets"]) if case["sets"] else None
        project = load_project(folder / "storyboard.yaml", overrides)
        graphs.build(project)
        plan(project)
        return 0, ""
    except ShotflowError as exc:
        return exc.exit_code, str(exc)[:300]
    except Exception:  # noqa: BLE001 - what the CLI would report as an internal error (exit 3)
        return 3, traceback.format_exc()
    finally:
        shutil.copyfile(original, target)


# -- the long run: worker processes, each case watched for time and memory ------------------------


def _worker(seed: int, indices: list[int], work: str, queue) -> None:
    import resource

    with contextlib.suppress(ValueError, OSError):  # a runaway case fails here, not taking the machine's memory
        resource.setrlimit(resource.RLIMIT_AS, (4 * CASE_BYTES, 4 * CASE_BYTES))
    folders = {p: prepare(p, Path(work) / f"w{os.getpid()}") for p in PROJECTS}
    for index in indices:
        case = make_case(seed, index)
        queue.put(("start", index, time.monotonic()))
        started = time.perf_counter()
        code, detail = run_case(case, folders[case["project"]])
        elapsed = time.perf_counter() - started
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        queue.put(("done", index, code, detail, elapsed, rss))
    queue.put(("exit", os.getpid()))


def long_run(cases: int, seed: int, workers: int, save: Path | None) -> dict:
    ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    queue = ctx.Queue()
    todo = list(range(cases))
    chunks = [todo[i::workers] for i in range(workers)]
    results: dict[int, tuple] = {}
    with tempfile.TemporaryDirectory(prefix="shotflow-fuzz-") as work:
        # the workers' own user cache, key and (absent) config: never the user's
        os.environ["SHOTFLOW_USER_CACHE"] = os.path.join(work, "usercache")
        os.environ["SHOTFLOW_USER_KEY"] = os.path.join(work, "key", "usercache.key")
        os.environ["SHOTFLOW_CONFIG"] = os.path.join(work, "config.toml")
        running: dict[int, dict] = {}

        def spawn(indices: list[int]) -> None:
            if not indices:
                return
            proc = ctx.Process(target=_worker, args=(seed, indices, work, queue), daemon=True)
            proc.start()
            running[proc.pid] = {"proc": proc, "left": list(indices), "current": None, "since": 0.0, "rss": 0}

        for chunk in chunks:
            spawn(chunk)
        by_index: dict[int, int] = {}
        started = time.perf_counter()
        while running:
            try:
                message = queue.get(timeout=0.5)
            except Exception:  # noqa: BLE001 - queue.Empty: look at the clocks
                message = None
            if message is not None:
                kind = message[0]
                if kind == "start":
                    pid = next(p for p, w in running.items() if w["left"] and w["left"][0] == message[1])
                    running[pid].update(current=message[1], since=message[2])
                    by_index[message[1]] = pid
                elif kind == "done":
                    _, index, code, detail, elapsed, rss = message
                    worker = running.get(by_index.get(index))
                    grew = worker is not None and rss > CASE_BYTES and worker["rss"] <= CASE_BYTES
                    outcome = "memory" if grew else str(code)
                    results[index] = (outcome, elapsed, rss, detail)
                    if worker is not None:
                        worker["left"].pop(0)
                        worker["current"] = None
                        worker["rss"] = rss
                        if len(results) % 1000 == 0:
                            print(f"  {len(results)} cases, {time.perf_counter() - started:.0f} s", file=sys.stderr)
                elif kind == "exit":
                    running.pop(message[1], None)
            now = time.monotonic()
            for pid, worker in list(running.items()):
                late = worker["current"] is not None and now - worker["since"] > CASE_SECONDS
                dead = not worker["proc"].is_alive() and worker["left"]
                if late or dead:
                    worker["proc"].kill()
                    worker["proc"].join()
                    index = worker["left"].pop(0)
                    results[index] = ("timeout" if late else "crash", now - worker["since"], 0, "")
                    running.pop(pid)
                    spawn(worker["left"])
                elif not worker["proc"].is_alive():
                    running.pop(pid)
        total = time.perf_counter() - started
    counts: dict[str, int] = {}
    for outcome, *_ in results.values():
        counts[outcome] = counts.get(outcome, 0) + 1
    bad = {i: r for i, r in results.items() if r[0] not in ("0", "2")}
    if save and bad:
        save.mkdir(parents=True, exist_ok=True)
        for index, (outcome, _, _, detail) in bad.items():
            case = make_case(seed, index)
            stem = f"{case['project']}-{seed}-{index}"
            (save / f"{stem}.{case['file'].replace('/', '_')}").write_bytes(case["data"])
            (save / f"{stem}.json").write_text(
                json.dumps({"outcome": outcome, "file": case["file"], "sets": case["sets"], "detail": detail}, indent=1)
            )
    slowest = max(results.values(), key=lambda r: r[1])
    return {
        "cases": len(results),
        "seconds": round(total, 1),
        "outcomes": counts,
        "tracebacks": counts.get("3", 0),
        "over_10s": counts.get("timeout", 0),
        "over_1GB": counts.get("memory", 0),
        "crashed": counts.get("crash", 0),
        "slowest_case_s": round(slowest[1], 2),
        "peak_rss_mb": round(max(r[2] for r in results.values()) / 1e6),
        "bad": {i: (r[0], r[3].strip().splitlines()[-1] if r[3].strip() else "") for i, r in sorted(bad.items())[:50]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--save", type=Path, default=None, help="write every case that is not 0 or 2 here")
    args = parser.parse_args()
    report = long_run(args.cases, args.seed, args.workers, args.save)
    print(json.dumps(report, indent=1, ensure_ascii=False))
    sys.exit(0 if report["tracebacks"] == report["over_10s"] == report["over_1GB"] == report["crashed"] == 0 else 1)


if __name__ == "__main__":
    main()
