"""Planning: keys, statuses, cost, the JSON contract."""

from __future__ import annotations

import json

from shotflow import api
from shotflow.model import Camera, NodeKind, NodeSpec
from shotflow.errors import Mark
from shotflow.plan import KEY_VERSION, EmptyCache, key_payload, make_plan, request_key


def spec(**kw) -> NodeSpec:
    base = dict(id="a/b", kind=NodeKind.SHOT, name="b", scene="a", story_index=0, where=Mark("f", 1, 1),
                model="runway:4@1", width=1360, height=768, output_format="PNG", output_quality=95, takes=1, pick=1,
                prompt="a lighthouse at dusk", refs=(), tagged=False)
    base.update(kw)
    return NodeSpec(**base)


def test_the_key_is_pinned():
    """An accidental change of the key's recipe must fail here (it would re-render every project)."""
    payload = key_payload(spec(), "preview", [])
    assert KEY_VERSION == 1
    assert request_key(payload) == "2f3af4a6e6d513c000e84e6934e685944e8a771a5dcfc3b1c6cd59d9e98a1ad4"


def test_the_key_ignores_names_and_presentation_but_not_pixels():
    k = request_key(key_payload(spec(), "preview", []))
    assert request_key(key_payload(spec(id="z/renamed", name="renamed", scene="z", duration=9, notes="n",
                                        camera=Camera(framing="wide"), pick=1, options={"ttl": 100}), "preview", [])) == k
    for changed in (spec(prompt="a lighthouse at dawn"), spec(width=1920, height=1080), spec(takes=2),
                    spec(output_format="JPG"), spec(model="runway:4@2")):
        assert request_key(key_payload(changed, "preview", [])) != k
    assert request_key(key_payload(spec(), "runware", [])) != k


def test_reference_bytes_are_in_the_key(example):
    story = example("lighthouse")
    project = api.load_project(story)
    node = project.nodes["radio/station"]
    a = request_key(key_payload(node, "preview", ["0" * 64, "1" * 64]))
    b = request_key(key_payload(node, "preview", ["0" * 64, "2" * 64]))
    assert a != b


def test_plan_of_a_new_project_renders_everything_with_reasons(example):
    project = api.load_project(example("lighthouse"))
    from shotflow import graph

    plan = make_plan(project, graph.build(project), EmptyCache(), backend="runware")
    assert all(n.status.value == "render" for n in plan.nodes.values())
    assert plan.nodes["arrival/wide"].reason == "new: never rendered"
    assert plan.nodes["arrival/door"].reason == "upstream character:mara renders"
    assert plan.nodes["arrival/wide"].key is not None and plan.nodes["arrival/door"].key is None
    # 10 single-take Gen-4 nodes + door (3 takes) at $0.08, signal (2 Turbo takes) at $0.02
    assert round(plan.cost, 4) == round(0.08 * (10 + 3) + 0.02 * 2, 4)
    assert plan.critical_path[0] == "character:mara"


def test_plan_json_follows_the_contract(example, cli):
    story = example("lighthouse")
    result = cli("plan", story, "--json")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert set(data) == {"nodes", "order", "cost"}
    assert data["cost"] == 0.0  # the preview backend is free
    node = next(n for n in data["nodes"] if n["id"] == "radio/station")
    assert set(node) == {"id", "status", "model", "width", "height", "refs", "prompt", "key"}
    assert node["refs"] == ["refs/lighthouse.jpg", "refs/tom.jpg"] and node["status"] == "render"
    assert [n["id"] for n in data["nodes"]][0] == "character:mara"
    assert sorted(data["order"]) == sorted(n["id"] for n in data["nodes"])
    runware = json.loads(cli("plan", story, "--json", "--backend", "runware").out)
    assert runware["cost"] == 1.08


def test_plan_table_after_a_render(example, cli):
    story = example("lighthouse")
    assert cli("render", story).code == 0
    story.write_text(story.read_text().replace("the great lamp", "the huge lamp"))
    table = cli("plan", story).out
    assert "render  arrival/lamp" in table and "prompt changed" in table
    assert "fresh   arrival/wide" in table
    assert "12 nodes: 1 to render, 11 fresh" in table


def test_plan_has_no_side_effects(example, cli):
    story = example("lighthouse")
    before = sorted(p.name for p in story.parent.iterdir())
    assert cli("plan", story).code == 0
    assert sorted(p.name for p in story.parent.iterdir()) == before


def test_a_pick_change_says_so_and_the_plan_counts_its_words(example):
    from shotflow.render import RenderOptions
    from shotflow.report import RecordingReporter
    from shotflow.tables import plan_table

    story = example("lighthouse")
    api.render(story, RenderOptions(), RecordingReporter())
    story.write_text(story.read_text().replace("pick: 2 ", "pick: 3 ", 1))
    p = api.plan(api.load_project(story))
    stairs = p.nodes["arrival/stairs"]
    assert stairs.reason == "another take of arrival/door is picked"
    assert p.nodes["arrival/door"].status.value == "fresh"  # nothing of it re-renders
    table = plan_table(p)
    assert "re-rendered" not in table and "critical path (4 renders in a chain)" in table
    story.write_text(story.read_text().replace("pick: 3 ", "pick: 2 ", 1))
    one = api.plan(api.load_project(story), force=["rescue/dawn"])
    assert "critical path (1 render): rescue/dawn" in plan_table(one)
    assert "1 renders" not in plan_table(one)
