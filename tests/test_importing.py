"""shotflow import: a Fountain screenplay written for these tests (tests/data/fountain/lighthouse.fountain:
5 scenes, 4 speakers, INT., EXT. and EXT./INT., transitions, a dual dialogue, a boneyard and a note)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from helpers import run_cli_subprocess

from shotflow.fountain import parse, read, split_heading
from shotflow.importing import draft, to_yaml

SCRIPT = Path(__file__).parent / "data" / "fountain" / "lighthouse.fountain"


def test_the_parser_reads_headings_speakers_dual_dialogue_and_transitions():
    play = read(SCRIPT)
    assert play.title == "The Lighthouse Keeper"
    assert [s.heading for s in play.scenes] == [
        "EXT. LIGHTHOUSE - DUSK",
        "INT. LIGHTHOUSE - LAMP ROOM - NIGHT",
        "INT. COAST GUARD STATION - NIGHT",
        "EXT. SEA - TRAWLER DECK - NIGHT",
        "EXT./INT. LIGHTHOUSE - DAWN",
    ]
    assert [(s.setting, s.place, s.time) for s in play.scenes][:2] == [
        ("EXT", "LIGHTHOUSE", "DUSK"),
        ("INT", "LIGHTHOUSE - LAMP ROOM", "NIGHT"),
    ]
    assert play.scenes[4].setting == "INT/EXT"
    assert play.characters == ("MARA", "TOM", "CAPTAIN ELLIS", "McBRIDE")  # @McBRIDE: a forced cue
    first = play.scenes[0]
    assert first.opens_on == "FADE IN:" and first.ends_on == "CUT TO:"  # FADE IN: is no scene heading
    assert play.scenes[3].ends_on == "SMASH CUT TO:"  # a forced transition (> …)
    lamp = play.scenes[1].speeches
    assert [(s.cue, s.dual) for s in lamp] == [
        ("TOM (V.O.)", False),
        ("MARA", False),
        ("TOM (V.O.)", True),
        ("MARA", True),
    ]
    assert first.speeches[0].text == "(to herself) Not tonight."
    trawler = play.scenes[3]
    assert trawler.action == ("Waves break over the deck. A FISHERMAN clings to the rail.",)  # no boneyard, no note
    assert play.scenes[4].centered == ("THE END",)
    assert [s.line for s in play.scenes] == [8, 20, 36, 49, 62]


@pytest.mark.parametrize(
    "heading, expected",
    [
        ("INT. HOUSE - DAY", ("INT", "HOUSE", "DAY")),
        ("int. house - kitchen - night", ("INT", "house - kitchen", "night")),
        ("I/E CAR - MOVING", ("INT/EXT", "CAR - MOVING", None)),
        ("EST. CITY SKYLINE", ("EST", "CITY SKYLINE", None)),
    ],
)
def test_scene_headings_split_into_setting_place_and_time(heading, expected):
    assert split_heading(heading) == expected


def test_the_draft_is_a_commented_valid_storyboard_in_the_scripts_order():
    d = draft(read(SCRIPT))
    text = to_yaml(d, source="lighthouse.fountain", name="storyboard.yaml")
    doc = yaml.safe_load(text)
    assert [s["id"] for s in doc["scenes"]] == [
        "lighthouse-dusk",
        "lighthouse-lamp-room-night",
        "coast-guard-station-night",
        "sea-trawler-deck-night",
        "lighthouse-dawn",
    ]
    assert list(doc["characters"]) == ["mara", "tom", "captain-ellis", "mcbride"]
    assert all(c == {"description": ""} for c in doc["characters"].values())
    assert "# who is CAPTAIN ELLIS? age, look, wardrobe" in text and text.startswith("# Imported from")
    assert doc["locations"]["int-lighthouse-lamp-room"] == {"description": "interior: lighthouse, lamp room"}
    assert doc["locations"]["int-ext-lighthouse"] == {"description": "interior and exterior: lighthouse"}
    lamp = doc["scenes"][1]
    assert lamp["title"] == "INT. LIGHTHOUSE - LAMP ROOM - NIGHT" and lamp["location"] == "int-lighthouse-lamp-room"
    shot = lamp["shots"][0]
    assert shot["id"] == "master" and shot["cast"] == ["tom", "mara"] and shot["camera"] == {"framing": "wide"}
    assert shot["dialogue"].splitlines() == [
        "TOM (V.O.): Lighthouse, this is coast guard. Do you read?",
        "MARA: I read you, Tom.",
        "TOM (V.O.): There's a trawler on the rocks.",
        "MARA (at the same time): Where?",
    ]
    assert shot["action"] == "The great lens turns. MARA trims the wick."
    assert doc["scenes"][0]["notes"] == "opens on FADE IN:; ends on CUT TO:"
    assert 2 <= shot["duration"] <= 120


def test_import_validates_and_renders_on_preview(tmp_path):
    script = tmp_path / "lighthouse.fountain"
    shutil.copy(SCRIPT, script)
    done = run_cli_subprocess("import", script, "-o", tmp_path / "storyboard.yaml")
    assert done.code == 0, done.err
    assert "5 scenes, 4 characters, 5 locations" in done.out
    story = tmp_path / "storyboard.yaml"
    assert run_cli_subprocess("validate", story).code == 0
    rendered = run_cli_subprocess("render", story)
    assert rendered.code == 0, rendered.err
    assert (tmp_path / "renders" / "lighthouse-lamp-room-night" / "master.png").is_file()
    again = run_cli_subprocess("import", script, "-o", story)  # never overwrites
    assert again.code == 2 and "--update" in again.err and "Traceback" not in again.err


REVISED_EXTRA = """
EXT. HARBOUR - NIGHT

The lifeboat crew runs to the slipway.

COXSWAIN
Launch!

"""


def test_update_adds_new_scenes_in_place_reports_renamed_and_removed_and_keeps_user_shots(tmp_path):
    story = tmp_path / "storyboard.yaml"
    story.write_text(to_yaml(draft(read(SCRIPT)), source="a.fountain", name="storyboard.yaml"))
    mine = story.read_text().replace(
        "        dialogue: 'MARA: (to herself) Not tonight.'\n",
        "        dialogue: 'MARA: (to herself) Not tonight.'\n"
        "      - id: close   # my own shot\n"
        "        prompt: close on MARA's hands on the rail\n",
    )
    story.write_text(mine)
    revised = SCRIPT.read_text()
    revised = revised.replace("INT. COAST GUARD STATION - NIGHT", "INT. COAST GUARD STATION - RADIO ROOM - NIGHT")
    revised = revised.replace(
        "EXT. SEA - TRAWLER DECK - NIGHT", REVISED_EXTRA.strip() + "\n\nEXT. SEA - TRAWLER DECK - NIGHT"
    )
    revised = revised[: revised.index("EXT./INT. LIGHTHOUSE - DAWN")]
    script = tmp_path / "revised.fountain"
    script.write_text(revised)
    done = run_cli_subprocess("import", script, "--update", story)
    assert done.code == 0, done.err
    assert "added scene harbour-night" in done.out
    assert "renamed: scene coast-guard-station-night is 'INT. COAST GUARD STATION - RADIO ROOM - NIGHT'" in done.out
    assert "removed: scene lighthouse-dawn" in done.out
    assert "added character coxswain" in done.out and "added location ext-harbour" in done.out
    after = story.read_text()
    # every line that was there is still there, in order: only lines were added
    old_lines = mine.splitlines()
    new_lines = iter(after.splitlines())
    assert all(any(line == n for n in new_lines) for line in old_lines)
    doc = yaml.safe_load(after)
    assert [s["id"] for s in doc["scenes"]] == [
        "lighthouse-dusk",
        "lighthouse-lamp-room-night",
        "coast-guard-station-night",
        "harbour-night",
        "sea-trawler-deck-night",
        "lighthouse-dawn",
    ]
    assert [s["id"] for s in doc["scenes"][0]["shots"]] == ["master", "close"]
    assert "# my own shot" in after and "# who is McBRIDE? age, look, wardrobe" in after
    assert run_cli_subprocess("validate", story).code == 0
    unchanged = story.read_text()
    second = run_cli_subprocess("import", script, "--update", story)  # nothing new the second time
    assert second.code == 0 and "added" not in second.out and story.read_text() == unchanged


def test_a_script_without_scene_headings_is_one_clear_error(tmp_path):
    bad = tmp_path / "notes.fountain"
    bad.write_text("Just some notes.\n\nNo headings here.\n")
    done = run_cli_subprocess("import", bad)
    assert done.code == 2 and "has no scene heading" in done.err and "Traceback" not in done.err
    with pytest.raises(Exception, match="has no scene heading"):
        parse("Hello.\n")
