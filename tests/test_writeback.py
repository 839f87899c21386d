"""Writing decisions back into the user's YAML keeps every other byte of the file."""

from __future__ import annotations

import difflib
import shutil
from pathlib import Path

import pytest

from shotflow.writeback import Editor, WriteBackError

ROOT = Path(__file__).resolve().parent.parent


def changed_lines(before: str, after: str) -> list[str]:
    """Lines of ``before`` removed or replaced, and lines of ``after`` added."""
    out = []
    for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0):
        if line.startswith(("---", "+++", "@@")):
            continue
        out.append(line)
    return out


@pytest.fixture
def heist(tmp_path):
    shutil.copytree(
        ROOT / "examples" / "heist", tmp_path / "heist", ignore=shutil.ignore_patterns("renders", ".shotflow", "*.lock")
    )
    return tmp_path / "heist" / "storyboard.yaml"


ODD = """\
# a storyboard written by hand, with its own habits
shotflow: 1
title:   "Odd spacing"    # kept as is
vars: {weather: 'rain',  mood: dark}
scenes:
- id: one          # zero-indented sequence
  shots:
  - id: a
    prompt: >-
      a folded prompt that
      spans two lines
    # a comment inside the shot
    duration: 2.50
  - {id: b, prompt: "flow style shot", takes: 2}

  # the second scene
- id: two
  shots:
  - id: c
    prompt: 'single quoted'
"""


def test_a_new_key_changes_one_line_and_keeps_comments(tmp_path):
    path = tmp_path / "storyboard.yaml"
    path.write_text(ODD)
    editor = Editor(path)
    editor.set_shot("one/a", "pick", 1)
    assert editor.save() == [path]
    after = path.read_text()
    assert changed_lines(ODD, after) == ["+    pick: 1"]
    assert "# a comment inside the shot" in after and "# the second scene" in after


def test_an_existing_value_changes_in_place(tmp_path):
    path = tmp_path / "storyboard.yaml"
    path.write_text(ODD)
    editor = Editor(path)
    editor.set_shot("one/b", "takes", 3)
    editor.set_shot("two/c", "duration", 4)
    editor.save()
    diff = changed_lines(ODD, path.read_text())
    assert diff == [
        '-  - {id: b, prompt: "flow style shot", takes: 2}',
        '+  - {id: b, prompt: "flow style shot", takes: 3}',
        "+    duration: 4",
    ]


def test_a_review_goes_under_the_shot_before_the_blank_line(tmp_path):
    path = tmp_path / "storyboard.yaml"
    path.write_text(ODD)
    editor = Editor(path)
    editor.set_shot("one/a", "review", {"status": "approved", "notes": ["tighter: 'a'"]})
    editor.save()
    text = path.read_text()
    assert "    review:\n      status: approved\n" in text
    assert "\n\n  # the second scene" in text
    import yaml

    data = yaml.safe_load(text)
    assert data["scenes"][0]["shots"][0]["review"] == {"status": "approved", "notes": ["tighter: 'a'"]}


def test_reorder_moves_whole_shots_and_nothing_else(tmp_path):
    path = tmp_path / "storyboard.yaml"
    path.write_text(ODD)
    editor = Editor(path)
    editor.reorder_shots("one", ["b", "a"])
    editor.save()
    import yaml

    after = path.read_text()
    assert [s["id"] for s in yaml.safe_load(after)["scenes"][0]["shots"]] == ["b", "a"]
    assert after.splitlines()[:6] == ODD.splitlines()[:6]
    assert after.splitlines()[-5:] == ODD.splitlines()[-5:]


def test_the_file_that_defines_the_shot_is_the_one_edited(heist):
    act2 = heist.parent / "act2.yaml"
    main_before, act2_before = heist.read_text(), act2.read_text()
    editor = Editor(heist)
    assert editor.file_of("inside/door") == act2.resolve()
    editor.set_shot("inside/door", "pick", 2)
    assert editor.save() == [act2.resolve()]
    assert heist.read_text() == main_before
    assert changed_lines(act2_before, act2.read_text()) == ["-        pick: 1", "+        pick: 2"]


def test_crlf_files_stay_crlf(tmp_path):
    path = tmp_path / "storyboard.yaml"
    path.write_bytes(ODD.replace("\n", "\r\n").encode())
    editor = Editor(path)
    editor.set_shot("two/c", "pick", 1)
    editor.save()
    raw = path.read_bytes()
    assert b"\r\n    pick: 1\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")


def test_a_file_changed_meanwhile_is_not_overwritten(tmp_path):
    path = tmp_path / "storyboard.yaml"
    path.write_text(ODD)
    editor = Editor(path)
    editor.set_shot("one/a", "pick", 1)
    path.write_text(ODD + "# saved by an editor\n")
    with pytest.raises(WriteBackError, match="changed on disk"):
        editor.save()
    assert path.read_text().endswith("# saved by an editor\n")


def test_unknown_shots_name_the_nearest(tmp_path):
    path = tmp_path / "storyboard.yaml"
    path.write_text(ODD)
    editor = Editor(path)
    with pytest.raises(WriteBackError, match="did you mean 'one'"):
        editor.set_shot("onne/a", "pick", 1)
    with pytest.raises(WriteBackError, match="no shot 'one/x'"):
        editor.set_shot("one/x", "pick", 1)


def test_nothing_to_change_writes_nothing(tmp_path):
    path = tmp_path / "storyboard.yaml"
    path.write_text(ODD)
    editor = Editor(path)
    editor.set_shot("one/b", "takes", 2)
    assert editor.save() == []
    assert path.read_text() == ODD


def test_update_review_edits_in_place_and_appends_notes_once(tmp_path):
    path = tmp_path / "storyboard.yaml"
    path.write_text(ODD)
    editor = Editor(path)
    assert editor.update_review("one/a", status="approved", notes=["tighter: 'a'"])
    editor.save()
    first = path.read_text()
    assert changed_lines(ODD, first) == [
        "+    review:",
        "+      status: approved",
        "+      notes:",
        "+      - \"tighter: 'a'\"",
    ]
    assert "\n\n  # the second scene" in first  # the blank line and comment stay after the shot
    editor = Editor(path)
    assert editor.update_review("one/a", status="changes", notes=["tighter: 'a'", "second"])
    assert not editor.update_review("one/a", notes=["second"])  # already there: nothing to do
    editor.set_shot("one/a", "pick", 1)  # a new key goes before review:, which stays last
    editor.update_review("one/b", notes=["flow shot"])
    editor.save()
    second = path.read_text()
    assert sorted(changed_lines(first, second)) == sorted(
        [
            "+    pick: 1",
            "-      status: approved",
            "+      status: changes",
            "+      - second",
            '-  - {id: b, prompt: "flow style shot", takes: 2}',
            '+  - {id: b, prompt: "flow style shot", takes: 2, review: {notes: [flow shot]}}',
        ]
    )
    import yaml

    data = yaml.safe_load(second)["scenes"][0]["shots"]
    assert list(data[0]) == ["id", "prompt", "duration", "pick", "review"]
    assert data[0]["review"] == {"status": "changes", "notes": ["tighter: 'a'", "second"]}


def test_notes_appended_before_what_followed_the_list(tmp_path):
    text = (
        "shotflow: 1\nscenes:\n  - id: s\n    shots:\n      - id: a\n        review:\n          notes:\n"
        "            - first\n\n  # next scene\n  - id: t\n    shots:\n      - id: b\n"
    )
    path = tmp_path / "storyboard.yaml"
    path.write_text(text)
    editor = Editor(path)
    editor.update_review("s/a", notes=["second"])
    editor.save()
    assert changed_lines(text, path.read_text()) == ["+            - second"]
    assert "- second\n\n  # next scene\n" in path.read_text()
