"""What each command path imports, and what that costs (``python -X importtime``).

    python bench/startup.py [--quick] [--runs 5] [--top 12]

For ``shotflow --help``, a no-op ``render`` and ``plan`` (on a 100-shot storyboard):
the median wall clock of the process, and from one ``-X importtime`` run the total
import time and the cumulative cost of each heavy package that was imported.
DESIGN/STYLE: ``--help`` and a no-op render must not import httpx, Pillow, networkx
or jsonschema (nor jinja2 or PyYAML, which the no-op path exists to skip).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PY, WORK, Result, check, median, quote, run, shotflow_cmd, table  # noqa: E402
from generate import generate  # noqa: E402

HEAVY = ("httpx", "PIL", "networkx", "jsonschema", "jinja2", "yaml", "rich", "click", "filelock", "asyncio")
FORBIDDEN = {
    "--help": ("httpx", "PIL", "networkx", "jsonschema", "jinja2", "yaml", "rich"),
    "render (no-op)": ("httpx", "PIL", "networkx", "jsonschema", "jinja2", "yaml"),
}


@dataclass
class Imported:
    name: str
    self_us: int
    cumulative_us: int
    children: list[Imported] = field(default_factory=list)


def parse_importtime(stderr: str) -> list[Imported]:
    """The tree of ``-X importtime`` lines (children are printed before their parent)."""
    pending: dict[int, list[Imported]] = {}
    roots: list[Imported] = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative, name = line[len("import time:") :].split("|", 2)
        level = (len(name) - len(name.lstrip(" ")) - 1) // 2
        node = Imported(name.strip(), int(self_us), int(cumulative), pending.pop(level + 1, []))
        if level == 0:
            roots.append(node)
        else:
            pending.setdefault(level, []).append(node)
    return roots


def costs(roots: list[Imported]) -> tuple[float, dict[str, float]]:
    """(total import ms, {heavy package: cumulative ms of its outermost imports})."""
    total = 0
    found: dict[str, float] = {}

    def walk(node: Imported, inside: frozenset[str]) -> None:
        nonlocal total
        total += node.self_us
        top = node.name.split(".")[0]
        now = inside
        if top in HEAVY and top not in inside:
            found[top] = found.get(top, 0.0) + node.cumulative_us / 1000
            now = inside | {top}
        for child in node.children:
            walk(child, now)

    for root in roots:
        walk(root, frozenset())
    return total / 1000, found


def top_level(roots: list[Imported], count: int) -> list[tuple[str, float]]:
    """The most expensive top-level imports (what the entry point pulled in directly or first)."""
    flat: dict[str, float] = {}
    for node in roots:
        flat[node.name] = flat.get(node.name, 0.0) + node.cumulative_us / 1000
    return sorted(flat.items(), key=lambda kv: -kv[1])[:count]


def bench(quick: bool = False, runs: int | None = None, top: int = 0) -> list[Result]:
    runs = runs or (1 if quick else 5)
    folder = WORK / ("startup-20" if quick else "startup-100")
    generate(20 if quick else 100, folder)
    if not (folder / ".shotflow" / "storyboard.last-run.json").is_file():
        shutil.rmtree(folder / ".shotflow", ignore_errors=True)
        check(run([*shotflow_cmd(), "render", "storyboard.yaml"], cwd=folder, keep_output=False), "setup render")
    sf = shotflow_cmd()
    script = sf if sf[0] != PY else sf[1:]
    cases = {
        "--help": ["--help"],
        "render (no-op)": ["render", "storyboard.yaml"],
        "plan": ["plan", "storyboard.yaml"],
        "validate": ["validate", "storyboard.yaml"],
    }
    results = []
    for name, args in cases.items():
        if not quick:
            check(run([*sf, *args], cwd=folder), name)  # warm-up: page cache, bytecode cache
        walls = [check(run([*sf, *args], cwd=folder), name).wall for _ in range(runs)]
        traced = check(run([PY, "-X", "importtime", *script, *args], cwd=folder), f"{name} -X importtime")
        roots = parse_importtime(traced.err)
        total, heavy = costs(roots)
        bad = [m for m in FORBIDDEN.get(name, ()) if m in heavy]
        shown = ", ".join(f"{m} {ms:.0f}" for m, ms in sorted(heavy.items(), key=lambda kv: -kv[1]))
        note = f"imports {total:.0f} ms in all; heavy (cumulative ms): {shown or 'none'}"
        if bad:
            note += f"; must not import: {', '.join(bad)}"
        if top:
            note += "; top-level: " + ", ".join(f"{n} {ms:.0f}" for n, ms in top_level(roots, top))
        results.append(
            Result(
                bench="startup",
                case=f"shotflow {name}",
                value=median(walls),
                unit="s",
                runs=walls,
                target="no " + "/".join(FORBIDDEN[name]) if name in FORBIDDEN else "",
                ok=None if quick or name not in FORBIDDEN else not bad,
                command=f"python bench/startup.py  # runs `{quote([*sf, *args])}` "
                f"in {folder.relative_to(WORK.parent.parent)}",
                note=note,
            )
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/startup.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--top", type=int, default=12, help="also list the N costliest top-level imports")
    args = parser.parse_args(argv)
    results = bench(args.quick, args.runs, args.top)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
