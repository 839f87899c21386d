"""Staging: colours and tones per project, placement, the 180° rule, the blocking: key."""

from __future__ import annotations

import colorsys
import itertools

import pytest

from shotflow import api
from shotflow.staging import CHARACTER_COLOURS, LOCATION_TONES, Figure, SceneBlocking, _spread, slots, tone_rgb


def placed(figures) -> dict[str, tuple[str, str]]:
    return {f.name: (f.x, f.facing) for f in figures}


# -- colours and tones ------------------------------------------------------------------------------


def test_each_character_a_colour_of_its_own_derived_from_its_name():
    names = ["mara", "tom", "ines", "oskar", "leni", "bruno", "yara", "felix"]
    given = slots(names, len(CHARACTER_COLOURS))
    assert len(set(given.values())) == len(names)  # eight characters: eight colours
    # a character keeps its colour when others are added after it, whatever their names
    for extra in (["zofia"], ["a", "b", "c"]):
        assert {n: s for n, s in slots(names + extra, 8).items() if n in names} == given
    # from the name, not the position: alone, a character gets the slot its name picks
    assert slots(["tom"], 8)["tom"] == slots(["tom", "mara"], 8)["tom"]
    assert slots(["mara", "tom"], 8) != {"mara": 0, "tom": 1} or slots(["tom", "mara"], 8)["tom"] == 1
    # beyond the palette: a second round (the drawing adds a band), still distinct slots
    many = slots([f"c{i}" for i in range(20)], 8)
    assert len(set(many.values())) == 20


def test_the_palette_is_saturated_separated_and_unlike_any_location_tone():
    hsv = [colorsys.rgb_to_hsv(*(c / 255 for c in rgb)) for rgb in CHARACTER_COLOURS]
    assert all(s >= 0.7 and v >= 0.75 for _, s, v in hsv)  # clearly saturated, bright
    for a, b in itertools.combinations(CHARACTER_COLOURS, 2):
        assert sum((x - y) ** 2 for x, y in zip(a, b, strict=True)) ** 0.5 > 70  # well apart in RGB
    for slot in [None, *range(len(LOCATION_TONES))]:
        h, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in tone_rgb(slot)))
        assert s <= 0.5 and v <= 0.3  # tones are dark and muted: no figure blends into its place
    # greyscale: the colours step apart in lightness (Rec. 601 luma), no two within 8 levels
    luma = sorted(0.299 * r + 0.587 * g + 0.114 * b for r, g, b in CHARACTER_COLOURS)
    assert min(b - a for a, b in itertools.pairwise(luma)) >= 8
    assert len({tone_rgb(s) for s in range(len(LOCATION_TONES))}) == len(LOCATION_TONES)


# -- placement and the 180° rule ---------------------------------------------------------------------------


def test_without_blocking_figures_spread_evenly_facing_the_centre():
    assert _spread(1) == ("center",)
    assert _spread(2) == ("left", "right")
    assert _spread(3) == ("left", "center", "right")
    assert _spread(5) == ("left", "left", "center", "right", "right")
    scene = SceneBlocking()
    assert placed(scene.place(["mara", "tom", "ines"], {}, {})) == {
        "mara": ("left", "right"),
        "tom": ("center", "camera"),
        "ines": ("right", "left"),
    }


def test_a_character_keeps_their_side_of_the_frame_within_a_scene():
    scene = SceneBlocking()
    assert placed(scene.place(["mara", "tom"], {}, {})) == {"mara": ("left", "right"), "tom": ("right", "left")}
    # the reverse: tom alone stays on the right, looking left (towards mara, off screen)
    assert placed(scene.place(["tom"], {}, {})) == {"tom": ("right", "left")}
    assert placed(scene.place(["mara"], {}, {})) == {"mara": ("left", "right")}
    # listed the other way round, they still do not swap sides
    assert placed(scene.place(["tom", "mara"], {}, {})) == {"tom": ("right", "left"), "mara": ("left", "right")}
    # a newcomer takes the side that is free
    assert placed(scene.place(["ines", "tom"], {}, {})) == {"ines": ("left", "right"), "tom": ("right", "left")}
    # another scene starts afresh
    assert placed(SceneBlocking().place(["tom"], {}, {})) == {"tom": ("center", "camera")}


def test_blocking_places_and_turns_and_moves_for_the_rest_of_the_scene():
    scene = SceneBlocking()
    scene.place(["mara", "tom"], {}, {})
    moved = scene.place(["mara", "tom"], {"mara": {"x": "right", "facing": "away"}, "tom": {"x": "left"}}, {})
    assert placed(moved) == {"mara": ("right", "away"), "tom": ("left", "right")}
    assert placed(scene.place(["mara", "tom"], {}, {})) == {"mara": ("right", "left"), "tom": ("left", "right")}
    assert placed(scene.place(["tom"], {"tom": {"facing": "camera"}}, {})) == {"tom": ("left", "camera")}
    colours = {"mara": 5}
    assert scene.place(["mara"], {}, colours) == (Figure("mara", 5, "right", "left"),)


# -- from the storyboard -------------------------------------------------------------------------------------


def test_the_example_is_staged(example):
    project = api.load_project(example("lighthouse"))
    sheet = project.nodes["character:mara"].staging
    assert sheet.kind == "character" and [f.name for f in sheet.cast] == ["mara"]
    door = project.nodes["arrival/door"].staging
    assert door.kind == "shot" and door.location == "lighthouse" and door.camera.framing == "medium"
    assert [f.name for f in door.cast] == ["mara"] and door.tone is not None
    assert project.nodes["arrival/wide"].staging.cast == ()
    mara = {f.colour for n in project.nodes.values() for f in n.staging.cast if f.name == "mara"}
    tom = {f.colour for n in project.nodes.values() for f in n.staging.cast if f.name == "tom"}
    assert len(mara) == len(tom) == 1 and mara != tom  # one colour each, in every panel
    # the radio call: Mara left looking right, Tom right looking left, across the cut
    console, station, reaction = (
        project.nodes[f"radio/{s}"].staging.cast[0] for s in ("console", "station", "reaction")
    )
    assert (console.x, console.facing) == ("left", "right")
    assert (station.x, station.facing) == ("right", "left")
    assert (reaction.x, reaction.facing) == ("left", "right")  # she keeps her side: nothing moved her
    lineup = {(e.kind.value, e.name): e for e in project.entities}
    assert set(lineup) == {("character", "mara"), ("character", "tom"), ("location", "lighthouse")}
    assert lineup[("character", "mara")].picture.target == "character:mara"
    assert lineup[("character", "tom")].picture.label == "refs/tom.jpg"
    assert lineup[("character", "mara")].slot == next(iter(mara))


def test_blocking_a_character_who_is_not_in_the_shot_is_an_error(write, cli):
    story = write("""
        shotflow: 1
        characters: {mara: {description: a keeper}, tom: {description: an operator}}
        scenes:
          - id: a
            shots:
              - id: b
                cast: [mara]
                prompt: mara waits
                blocking:
                  tom: {x: left}
    """)
    result = cli("validate", story)
    assert result.code == 2, result.text
    assert (
        "storyboard.yaml:10:16: a/b: blocking places 'tom', who is not in the shot's cast (cast: mara) "
        "(add tom to cast, or remove the blocking entry)"
    ) in result.err
    assert "Traceback" not in result.text


@pytest.mark.parametrize(
    "entry,message",
    [
        ("{mara: {x: middle}}", 'blocking.mara.x: "middle" is not one of left, center, right'),
        ("{mara: {facing: north}}", 'blocking.mara.facing: "north" is not one of left, right, camera, away'),
        ("{mara: {side: left}}", "unknown key 'side'"),
        ("[mara]", "blocking"),
    ],
)
def test_blocking_values_are_checked_by_the_schema(write, cli, entry, message):
    story = write(f"""
        shotflow: 1
        characters: {{mara: {{description: a keeper}}}}
        scenes:
          - id: a
            shots:
              - {{id: b, cast: [mara], prompt: mara waits, blocking: {entry}}}
    """)
    result = cli("validate", story)
    assert result.code == 2, result.text
    assert "storyboard.yaml:6:" in result.err and message in result.err, result.err
    assert "Traceback" not in result.text


def test_the_plan_says_why_a_preview_frame_renders_after_a_blocking_change(example, cli):
    story = example("lighthouse")
    assert cli("render", story).code == 0
    text = story.read_text()
    story.write_text(
        text.replace("blocking: {tom: {x: right, facing: left}}", "blocking: {tom: {x: right, facing: away}}")
    )
    table = cli("plan", story).out
    assert "render  radio/station" in table and "cast or blocking changed" in table, table
    assert "fresh   radio/console" in table
    runware = cli("plan", story, "--backend", "runware", "--json")
    assert runware.code == 0
