"""The DAG: edges, order, cycles, drawings."""

from __future__ import annotations

import itertools
import shutil

import pytest

from shotflow import api, graph
from shotflow.errors import GraphError


def test_edges_run_from_reference_to_user(example):
    p = api.load_project(example("lighthouse"))
    g = graph.build(p)
    assert g.has_edge("character:mara", "arrival/door")
    assert g.has_edge("arrival/wide", "arrival/door")
    assert not g.has_edge("arrival/door", "arrival/wide")
    order = graph.order(g)
    assert all(order.index(a) < order.index(b) for a, b in g.edges)
    assert order[0] == "character:mara"  # ties broken by story order: sheets come first


def test_a_cycle_is_printed_as_a_path(write):
    path = write("""
        shotflow: 1
        scenes:
          - id: s
            shots:
              - {id: a, refs: [c], prompt: x}
              - {id: b, refs: [a], prompt: x}
              - {id: c, refs: [b], prompt: x}
        """)
    with pytest.raises(GraphError) as info:
        graph.build(api.load_project(path))
    message = str(info.value)
    assert "reference cycle:" in message
    chain = message.split("reference cycle: ")[1].split(" (")[0].split(" -> ")
    assert chain[0] == chain[-1] and set(chain) == {"s/a", "s/b", "s/c"} and len(chain) == 4


def test_critical_path_and_heights(example):
    p = api.load_project(example("lighthouse"))
    g = graph.build(p)
    order = graph.order(g)
    path = graph.critical_path(g, order)
    assert path[0] == "character:mara" and len(path) == 6
    assert all(g.has_edge(a, b) for a, b in itertools.pairwise(path))
    h = graph.heights(g, order)
    assert h["character:mara"] == 6 and h["rescue/dawn"] == 1


def test_upstream_and_downstream(example):
    p = api.load_project(example("lighthouse"))
    g = graph.build(p)
    assert graph.upstream(g, ["arrival/stairs"]) == {"arrival/stairs", "arrival/door", "arrival/wide", "character:mara"}
    assert graph.downstream(g, ["rescue/trawler"]) == {"rescue/trawler", "rescue/signal", "rescue/dawn"}


def test_mermaid_and_dot(example, cli):
    story = example("lighthouse")
    mermaid = cli("graph", story)
    assert mermaid.code == 0
    assert mermaid.out.startswith("flowchart LR") and 'subgraph s_arrival["The storm arrives"]' in mermaid.out
    assert mermaid.out.count("-->") == len(graph.build(api.load_project(story)).edges)
    dot = cli("graph", story, "--format", "dot")
    assert dot.code == 0 and dot.out.startswith('digraph "The Lighthouse Keeper"')
    assert '"arrival/wide" -> "arrival/door";' in dot.out


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed on this machine")
def test_svg_through_graphviz(example, cli, tmp_path):
    out = tmp_path / "g.svg"
    result = cli("graph", example("lighthouse"), "--format", "svg", "-o", out)
    assert result.code == 0 and out.read_text().lstrip().startswith("<?xml")


def test_svg_without_graphviz_is_a_clear_error(example, cli, tmp_path):
    result = cli("graph", example("lighthouse"), "--format", "svg", env={"PATH": str(tmp_path)})
    if shutil.which("dot", path=str(tmp_path)) is None:
        assert result.code == 2 and "needs Graphviz's 'dot'" in result.err
