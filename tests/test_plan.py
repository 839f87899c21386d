"""Planning: keys, statuses, cost, the JSON contract."""

from __future__ import annotations

import json

from shotflow import api
from shotflow.errors import Mark
from shotflow.model import Camera, NodeKind, NodeSpec
from shotflow.plan import KEY_VERSION, EmptyCache, key_payload, make_plan, request_key


def spec(**kw) -> NodeSpec:
    base = dict(
        id="a/b",
        kind=NodeKind.SHOT,
        name="b",
        scene="a",
        story_index=0,
        where=Mark("f", 1, 1),
        model="runway:4@1",
        width=1360,
        height=768,
        output_format="PNG",
        output_quality=95,
        takes=1,
        pick=1,
        prompt="a lighthouse at dusk",
        refs=(),
        tagged=False,
    )
    base.update(kw)
    return NodeSpec(**base)


def test_the_key_is_pinned():
    """An accidental change of the key's recipe must fail here (it would re-render every project).

    The Runware key is the one shotflow has always computed (a paid frame must never
    be paid for again); the preview key carries the drawing's staging and version.
    """
    assert KEY_VERSION == 1
    assert (
        request_key(key_payload(spec(), "runware", []))
        == "f7ffd86e1dcbb959a8847882823b8cf2724ca6f83a42c351553ac001ac8da3c1"
    )
    assert (
        request_key(key_payload(spec(), "preview", []))
        == "3bc84b52bd2ffaac8e4f2fd06e8045023e64bc84c94b75e8ec9204997f1bc6a8"
    )


def test_the_key_ignores_names_and_presentation_but_not_pixels():
    for backend in ("preview", "runware"):
        k = request_key(key_payload(spec(), backend, []))
        assert (
            request_key(
                key_payload(
                    spec(
                        id="z/renamed", name="renamed", scene="z", duration=9, notes="n", pick=1, options={"ttl": 100}
                    ),
                    backend,
                    [],
                )
            )
            == k
        )
        for changed in (
            spec(prompt="a lighthouse at dawn"),
            spec(width=1920, height=1080),
            spec(takes=2),
            spec(output_format="JPG"),
            spec(model="runway:4@2"),
        ):
            assert request_key(key_payload(changed, backend, [])) != k
    assert request_key(key_payload(spec(), "runware", [])) != request_key(key_payload(spec(), "preview", []))


def test_what_the_panel_draws_is_in_the_preview_key_only():
    """Cast, blocking, location and camera notes change a preview frame, never a Runware one."""
    from shotflow.staging import Figure, Staging

    base = spec(staging=Staging("shot", cast=(Figure("mara", 0, "center", "camera"),), location="harbor", tone=1))
    variants = [
        Staging("shot", cast=(Figure("mara", 0, "left", "right"),), location="harbor", tone=1),  # blocking
        Staging(
            "shot",
            cast=(Figure("mara", 0, "center", "camera"), Figure("tom", 1, "right", "left")),
            location="harbor",
            tone=1,
        ),  # cast
        Staging("shot", cast=(Figure("mara", 0, "center", "camera"),), location="tavern", tone=2),  # location
        Staging(
            "shot",
            cast=(Figure("mara", 0, "center", "camera"),),
            location="harbor",
            tone=1,
            camera=Camera(framing="close-up", angle="low angle", move="pan left"),
        ),  # camera notes
    ]
    preview = request_key(key_payload(base, "preview", []))
    runware = request_key(key_payload(base, "runware", []))
    assert runware == request_key(key_payload(spec(), "runware", []))  # what Runware is sent: unchanged
    for staging in variants:
        changed = spec(staging=staging)
        assert request_key(key_payload(changed, "preview", [])) != preview
        assert request_key(key_payload(changed, "runware", [])) == runware


def test_runware_keys_of_the_example_did_not_change(example):
    """The lighthouse's Runware keys (reference hashes faked) as shotflow computed them before staging existed."""
    project = api.load_project(example("lighthouse"))
    pinned = {
        "arrival/wide": "455263e4458dbaa7fde5345b62fbe59480c2cff7fc3c3f08097e863490fc4cb3",
        "radio/console": "d28b83fdef12d47ce75aeddf7e4c2876ce5a18dce08f9eb545137b4a26f88f50",
        "radio/station": "9e50a64b008d00b7fa74b3cc02b87d2a3a72dd534c19124a0b86220c9ee67a6f",
        "rescue/signal": "1c77ea3fcc1d17c249f0f100ad9792000640018a1431014b861efae6d664c1d3",
    }
    for node_id, key in pinned.items():
        node = project.nodes[node_id]
        assert request_key(key_payload(node, "runware", ["0" * 64] * len(node.refs))) == key, node_id


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
