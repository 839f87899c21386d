"""Stage 4: the DAG of shots and sheets (networkx).

    character:mara ──► arrival/door ──► arrival/close
    arrival/wide   ──┘

Nodes are node ids with their NodeSpec as attribute ``spec``; an edge runs from a
reference to the node that uses it. Execution order is topological, ties broken by
story order so that plans are stable.
"""

from __future__ import annotations

from collections.abc import Iterable

from .errors import GraphError
from .model import NodeSpec, Project, RefKind


def build(project: Project):
    """The DiGraph of a project; a cycle is a GraphError that prints the cycle."""
    import networkx as nx

    graph = nx.DiGraph()
    graph.add_nodes_from((node_id, {"spec": spec}) for node_id, spec in project.nodes.items())
    graph.add_edges_from(
        (ref.target, node_id)
        for node_id, spec in project.nodes.items()
        for ref in spec.refs
        if ref.kind is RefKind.NODE
    )
    try:
        # execution order: topological, story order among nodes ready together
        graph.graph["order"] = list(
            nx.lexicographical_topological_sort(graph, key=lambda n: project.nodes[n].story_index)
        )
        return graph
    except nx.NetworkXUnfeasible:
        cycle = nx.find_cycle(graph)
    path = [edge[0] for edge in cycle] + [cycle[0][0]]
    # the cycle as the user reads it: each shot references the one before it
    first = project.nodes[path[1]]
    raise GraphError(
        f"reference cycle: {' -> '.join(path)}",
        where=first.where,
        hint="a shot cannot depend on itself through its references; drop one of these refs",
    )


def check_acyclic(project: Project) -> None:
    """Raise ``build``'s GraphError when the references form a cycle, without loading networkx:
    the standard library's graphlib finds a cycle in a millisecond, so a render can send its
    first shots while networkx (~0.1 s to import) builds the graph. ``build`` words the cycle."""
    import graphlib

    deps = {n: [r.target for r in s.refs if r.kind is RefKind.NODE] for n, s in project.nodes.items()}
    try:
        graphlib.TopologicalSorter(deps).prepare()
    except graphlib.CycleError:
        build(project)  # raises the GraphError that prints the cycle


def order(graph) -> list[str]:
    """Execution order: topological, story order among nodes that are ready together."""
    return list(graph.graph["order"])


def heights(graph, order_: list[str], weight: dict[str, float] | None = None) -> dict[str, float]:
    """Length of the longest chain from each node to the end (the node included).

    The resolver starts the ready node with the longest remaining chain first, which
    keeps the critical path busy.
    """
    result: dict[str, float] = {}
    for node in reversed(order_):
        w = 1.0 if weight is None else weight.get(node, 0.0)
        result[node] = w + max((result[s] for s in graph.successors(node)), default=0.0)
    return result


def critical_path(graph, order_: list[str], weight: dict[str, float] | None = None) -> list[str]:
    """The longest chain of dependent nodes (weighted by ``weight``, 1 each by default)."""
    h = heights(graph, order_, weight)
    roots = [n for n in order_ if graph.in_degree(n) == 0]
    if not roots:
        return []
    position = {n: i for i, n in enumerate(order_)}
    node = max(roots, key=lambda n: (h[n], -position[n]))
    path = [node]
    while True:
        successors = list(graph.successors(node))
        if not successors:
            return path
        node = max(successors, key=lambda n: h[n])
        path.append(node)


def upstream(graph, nodes: Iterable[str]) -> set[str]:
    """The nodes and everything they depend on."""
    import networkx as nx

    result: set[str] = set()
    for node in nodes:
        result.add(node)
        result |= nx.ancestors(graph, node)
    return result


def downstream(graph, nodes: Iterable[str]) -> set[str]:
    """The nodes and everything that depends on them."""
    import networkx as nx

    result: set[str] = set()
    for node in nodes:
        result.add(node)
        result |= nx.descendants(graph, node)
    return result


# -- drawing ---------------------------------------------------------------------


def _label(spec: NodeSpec) -> str:
    return spec.id


def to_mermaid(project: Project, graph, status: dict[str, str] | None = None) -> str:
    """A Mermaid flowchart, scenes as subgraphs."""
    ids = {node: f"n{i}" for i, node in enumerate(project.nodes)}
    lines = ["flowchart LR"]
    sheets = [n for n, s in project.nodes.items() if s.scene is None]
    if sheets:
        lines.append("  subgraph sheets[Sheets]")
        lines += [f'    {ids[n]}["{n}"]' for n in sheets]
        lines.append("  end")
    for scene in project.scenes:
        title = (scene.title or scene.id).replace('"', "'")
        lines.append(f'  subgraph s_{scene.id.replace("-", "_")}["{title}"]')
        lines += [f'    {ids[n]}["{n}"]' for n in scene.shots]
        lines.append("  end")
    for a, b in graph.edges:
        lines.append(f"  {ids[a]} --> {ids[b]}")
    if status:
        lines.append("  classDef fresh fill:#d7f5dd,stroke:#2e7d32")
        lines.append("  classDef render fill:#fff3cd,stroke:#b7791f")
        for node, state in status.items():
            lines.append(f"  class {ids[node]} {state}")
    return "\n".join(lines) + "\n"


def to_dot(project: Project, graph, status: dict[str, str] | None = None) -> str:
    """Graphviz DOT, scenes as clusters."""

    def q(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    colors = {"fresh": "#d7f5dd", "render": "#fff3cd"}
    lines = [
        f"digraph {q(project.title or 'storyboard')} {{",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fillcolor="#ffffff", fontname="Helvetica"];',
    ]

    def node_line(n: str) -> str:
        fill = colors.get((status or {}).get(n, ""), "#ffffff")
        return f"    {q(n)} [fillcolor={q(fill)}];"

    sheets = [n for n, s in project.nodes.items() if s.scene is None]
    if sheets:
        lines.append('  subgraph cluster_sheets { label="Sheets";')
        lines += [node_line(n) for n in sheets]
        lines.append("  }")
    for scene in project.scenes:
        lines.append(f"  subgraph {q('cluster_' + scene.id)} {{ label={q(scene.title or scene.id)};")
        lines += [node_line(n) for n in scene.shots]
        lines.append("  }")
    for a, b in graph.edges:
        lines.append(f"  {q(a)} -> {q(b)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_svg(dot_source: str) -> str:
    """SVG through Graphviz's ``dot`` (it must be on the PATH)."""
    import shutil
    import subprocess

    from .errors import ConfigError

    exe = shutil.which("dot")
    if exe is None:
        raise ConfigError(
            "--format svg needs Graphviz's 'dot' on the PATH",
            hint="install graphviz (apt install graphviz, brew install graphviz) or use --format dot",
        )
    done = subprocess.run([exe, "-Tsvg"], input=dot_source.encode(), capture_output=True, check=False)
    if done.returncode != 0:
        raise ConfigError(f"dot failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout.decode()
