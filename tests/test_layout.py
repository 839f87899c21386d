"""The shape of the code: shotflow's import graph, read from the sources (nothing is imported).

The modules stand on floors; a module imports only modules on lower floors (or, inside
one floor, modules that do not import it back). The stages keep the order of DESIGN.md §7,
from the ground up::

    cli  _cliopts  _editcli  exports._cli  __main__              the command line: parses and wires
    shotflow (the public face)  api  testing                      what a Python user calls
    exports.*  conform  live.*                                    read what a render left; the live board
    render  noop  node  references  clean                         run a plan, record what it produced
    report                                                        the events of a run, and their reporters
    backends.*                                                    one request → images
    resolve                                                       the scheduler: many nodes in flight
    plan  tables                                                  keys, fresh/render, cost; prepare()
    graph                                                         the DAG
    remote  review  verify  state                                 the team cache; decisions; checks; .shotflow/
    expand                                                        Jinja, references → Project; load_project()
    load  _sandbox  fetch  outputs  fountain  importing  scaffold read (and write) the user's files
    validate                                                      the JSON Schema check
    store  trust  writeback                                       the project's memory; the trust model
    model  staging  editorial  catalog  userconfig  options       the typed vocabulary every stage shares
    errors  _version  _resources  _usercache  _text  _glibc  _process  status  statefile  _gitignore   the ground

``store`` sits low, not after the backends as in the flow of data: planning reads it
(keys, records), and backends see it only through the Journal and Memo protocols, never
by import. Imports inside functions and under ``TYPE_CHECKING`` count like the others: a
lazy import is still a dependency. Issue 12's size rules hold too: render.py under 350
lines (``test_the_render_hub_stays_small``), no function in the package over 80 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "shotflow"

PREVIEW = {
    "backends.preview",
    *(f"backends.preview.{m}" for m in ("_lru", "_png", "_text", "_camera", "_palette", "_stage", "_panel")),
}
FLOORS: list[tuple[str, set[str]]] = [  # from the ground up
    (
        "ground",
        {
            "errors",
            "_version",
            "_resources",
            "_usercache",
            "_text",
            "_glibc",
            "_process",
            "status",
            "statefile",
            "_gitignore",
        },
    ),
    ("vocabulary", {"model", "staging", "editorial", "catalog", "userconfig", "options"}),
    ("memory", {"store", "trust", "writeback"}),
    ("validate", {"validate"}),
    ("load", {"load", "_sandbox", "fetch", "outputs", "fountain", "importing", "scaffold"}),
    ("expand", {"expand"}),
    ("remote", {"remote", "review", "verify", "state"}),
    ("graph", {"graph"}),
    ("plan", {"plan", "tables"}),
    ("resolve", {"resolve"}),
    ("backends", {"backends", "backends._base", "backends._runware_http", "backends.runware", *PREVIEW}),
    ("report", {"report"}),
    ("render", {"render", "noop", "node", "references", "clean"}),
    (
        "exports",
        {
            "exports._frames",
            "exports._draw",
            "exports._browser",
            "exports.board",
            "exports.contact",
            "exports.animatic",
            "exports.timeline",
            "exports.shotlist",
            "conform",
            "live",
            "live.rounds",
            "live.server",
            "exports.strip",
        },
    ),
    ("api", {"", "api", "testing", "testing.emulator", "testing.__main__"}),
    ("cli", {"cli", "_cliopts", "_editcli", "exports", "exports._cli", "__main__"}),
]


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name under ``shotflow`` ("" is the package itself)."""
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of the package that ``name`` imports, anywhere in its source."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    package = [p for p in package if p]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                stem = ".".join([*base, *(node.module.split(".") if node.module else [])])
            else:
                stem = node.module or ""
                if stem != "shotflow" and not stem.startswith("shotflow."):
                    continue
                stem = stem.removeprefix("shotflow").removeprefix(".")
            # "from . import graph" names a module; "from .store import Record" a name in one
            targets = []
            for alias in node.names:
                sub = f"{stem}.{alias.name}" if stem else alias.name
                targets.append(sub if sub in known else stem)
            found.update(t for t in targets if t in known)
            continue
        else:
            continue
        for target in targets:
            if target == "shotflow" or target.startswith("shotflow."):
                inner = target.removeprefix("shotflow").removeprefix(".")
                if inner in known:
                    found.add(inner)
    found.discard(name)
    return found


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def floor_of() -> dict[str, int]:
    return {module: i for i, (_, members) in enumerate(FLOORS) for module in members}


def test_every_module_has_a_floor():
    placed = floor_of()
    missing = sorted(set(modules()) - set(placed))
    assert not missing, f"give these modules a floor in FLOORS: {missing}"
    gone = sorted(set(placed) - set(modules()))
    assert not gone, f"FLOORS names modules that do not exist: {gone}"


def test_no_import_cycle():
    edges = graph()
    cycles = [sorted(c) for c in _strongly_connected(edges) if len(c) > 1]
    assert not cycles, f"import cycles: {cycles}"


def test_no_module_imports_a_floor_above_its_own():
    floor = floor_of()
    names = [name for name, _ in FLOORS]
    upward = [
        f"{a or 'shotflow'} ({names[floor[a]]}) imports {b or 'shotflow'} ({names[floor[b]]})"
        for a, targets in graph().items()
        for b in targets
        if floor[b] > floor[a]
    ]
    assert not upward, "imports that run back up:\n  " + "\n  ".join(sorted(upward))


def test_nothing_imports_the_api():
    """``api`` is the Python user's face: inside shotflow every module calls the stage itself."""
    users = sorted(name for name, targets in graph().items() if "api" in targets and name != "")
    assert not users


def test_the_graph_reader_sees_lazy_relative_and_type_only_imports(tmp_path):
    """The reader itself: the three kinds of import a cycle could hide in."""
    (tmp_path / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import B\n")
    (tmp_path / "c.py").write_text("def f():\n    from . import b\n    from .d import thing\n")
    known = {"a", "b", "c", "d"}
    assert imports("a", tmp_path / "a.py", known) == {"b"}
    assert imports("c", tmp_path / "c.py", known) == {"b", "d"}
    components = _strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()})
    assert sorted(map(sorted, components)) == [["a", "b", "c"], ["d"]]


def _strongly_connected(edges: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components, iteratively (a cycle is a component of two or more)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    counter = 0
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    components.append(component)
    return components


def test_the_render_hub_stays_small():
    """render.py runs a plan and records what it produced; the rest of the road lives beside it."""
    assert len(modules()["render"].read_text(encoding="utf-8").splitlines()) < 350


def test_no_function_is_over_80_lines():
    """A function that needs a scroll to read is several functions (drawing code included:
    none of it needs the exemption the issue allowed)."""
    long = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno >= 80:
                long.append(f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert not long


def test_jobs_is_read_by_the_scheduler_alone():
    """``--jobs`` is scheduling, and scheduling is resolve's: no backend and no part of a node's
    road reads it (a backend limits its own load against its service with settings of its own)."""
    import dataclasses
    import io
    import tokenize

    from shotflow.backends import Services

    readers = []
    for name, path in modules().items():
        if name.startswith("backends") or name in ("node", "references", "state"):
            for token in tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline):
                if token.type == tokenize.NAME and token.string == "jobs":
                    readers.append(f"{name}:{token.start[0]}")
    assert not readers
    assert "jobs" not in {f.name for f in dataclasses.fields(Services)}
