"""validate: each way a schema error is put into words (``_translate``'s branches), in process.

Each test writes a small storyboard, checks it as ``load`` does, and reads the one error:
its place (line:column, the key's for an unknown key), its words and its hint. The
branches the storyboard schema cannot reach (a ``const`` without its own message, an
exclusive maximum, a keyword with no words of its own) are checked on a tiny schema.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from shotflow import load, validate

SHOT = """\
shotflow: 1
scenes:
  - id: s
    shots:
      - id: a
        prompt: a lighthouse
"""


def errors(tmp_path: Path, text: str, definition: str = "storyboard") -> list[tuple[str, str, str | None]]:
    """(line:column, message, hint) of each schema error of ``text``."""
    path = tmp_path / "storyboard.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    source = load.read_source(path.resolve())
    return [(f"{e.where.line}:{e.where.column}", e.message, e.hint) for e in validate.check(source, definition)]


def one(tmp_path: Path, text: str) -> tuple[str, str, str | None]:
    found = errors(tmp_path, text)
    assert len(found) == 1, found
    return found[0]


def shot(extra: str) -> str:
    """The one-shot storyboard with ``extra`` lines added to its shot (8 spaces in)."""
    return SHOT + textwrap.indent(textwrap.dedent(extra), " " * 8)


# -- the file as a whole ---------------------------------------------------------------------


def test_a_valid_storyboard_has_no_error(tmp_path):
    assert errors(tmp_path, shot("takes: 2\ncamera: {framing: wide}\n")) == []


def test_a_file_that_is_not_a_mapping(tmp_path):
    assert errors(tmp_path, "- a\n- b\n") == [("1:1", "the file must be a YAML mapping (key: value lines)", None)]


def test_a_mapping_without_the_format_version_is_not_a_storyboard(tmp_path):
    ((where, message, _),) = errors(tmp_path, "title: x\n")
    assert where == "1:1" and message.startswith("not a shotflow storyboard") and "'shotflow: 1'" in message


def test_a_library_file_needs_no_format_version(tmp_path):
    assert errors(tmp_path, "characters:\n  mara: {image: a.png}\n", "library") == []


# -- additionalProperties: an unknown key, at the key, with a did-you-mean -------------------


def test_unknown_key_is_reported_at_the_key_with_did_you_mean(tmp_path):
    assert one(tmp_path, shot("promt: x\n")) == (
        "7:9",
        "scenes[0].shots[0]: unknown key 'promt'",
        "did you mean 'prompt'?",
    )


def test_unknown_key_with_no_close_match_lists_the_allowed_keys(tmp_path):
    where, message, hint = one(tmp_path, shot("zzzzqqq: x\n"))
    assert message == "scenes[0].shots[0]: unknown key 'zzzzqqq'"
    assert hint.startswith("allowed keys: id, title, prompt,")


def test_unknown_key_in_a_nested_object(tmp_path):
    assert one(tmp_path, shot("camera: {framng: wide}\n")) == (
        "7:18",
        "scenes[0].shots[0].camera: unknown key 'framng'",
        "did you mean 'framing'?",
    )


def test_unknown_key_beside_a_scene_include(tmp_path):
    """scene_item is an if/then: an item with include takes nothing else."""
    text = "shotflow: 1\nscenes:\n  - include: act2.yaml\n    id: s\n"
    assert one(tmp_path, text) == ("4:5", "scenes[0]: unknown key 'id'", "allowed keys: include")


# -- required, dependentRequired, not ---------------------------------------------------------


def test_missing_required_key(tmp_path):
    text = SHOT + "      - prompt: no id\n"
    assert one(tmp_path, text) == ("7:9", "scenes[0].shots[1]: missing required key 'id'", None)


def test_width_without_height(tmp_path):
    assert one(tmp_path, shot("width: 1920\n")) == (
        "5:9",
        "scenes[0].shots[0]: width and height go together: give both, or a named size",
        None,
    )


def test_size_and_width_together(tmp_path):
    assert one(tmp_path, shot("size: 1K-16:9\nwidth: 1920\nheight: 1080\n")) == (
        "5:9",
        "scenes[0].shots[0]: give either size or width + height, not both",
        None,
    )


def test_an_entity_with_both_a_sheet_and_an_image(tmp_path):
    text = "shotflow: 1\ncharacters:\n  mara: {image: a.png, sheet: {prompt: x}}\n"
    assert one(tmp_path, text) == (
        "3:9",
        "characters.mara: give either sheet (generated) or image (existing), not both",
        None,
    )


# -- pattern: a model, an x-message, ECMA's $ ------------------------------------------------


def test_a_model_id_that_is_no_model_id_names_the_models(tmp_path):
    where, message, hint = one(tmp_path, "shotflow: 1\ndefaults:\n  model: runway gen4\n")
    assert (where, message) == ("3:10", "defaults.model: unknown model 'runway gen4'")
    assert "runway:4@1" in hint and "runway:4@2" in hint


def test_a_pattern_with_its_own_message(tmp_path):
    text = SHOT + "      - id: Wide!\n        prompt: x\n"
    where, message, hint = one(tmp_path, text)
    assert where == "7:13" and message.startswith('scenes[0].shots[1].id: "Wide!" is not a valid id: use lower-case')


def test_a_pattern_on_a_key_name(tmp_path):
    """propertyNames: the error is on the mapping, and names the key."""
    where, message, _ = one(tmp_path, "shotflow: 1\ncharacters:\n  Mara: {image: a.png}\n")
    assert where == "3:3" and message.startswith('characters: "Mara" is not a valid id')


def test_a_dollar_in_a_pattern_is_the_end_of_the_text_not_before_a_final_newline(tmp_path):
    text = SHOT + '      - id: "wide\\n"\n        prompt: x\n'
    where, message, _ = one(tmp_path, text)
    assert where == "7:13" and "is not a valid id" in message


def test_max_length_with_its_own_message(tmp_path):
    text = SHOT + f"      - id: {'a' * 65}\n        prompt: x\n"
    _, message, _ = one(tmp_path, text)
    assert message.startswith(f'scenes[0].shots[1].id: "{"a" * 65}" is not a valid id')


def test_a_timecode(tmp_path):
    assert one(tmp_path, "shotflow: 1\neditorial: {start: '1:00'}\n")[1] == (
        'editorial.start: "1:00" is not a timecode: write HH:MM:SS:FF in quotes, e.g. "01:00:00:00"'
    )


# -- const, oneOf and if/then of references ---------------------------------------------------


def test_const_with_its_own_message(tmp_path):
    assert one(tmp_path, "shotflow: 2\n") == (
        "1:11",
        "shotflow: 2 is not a format this shotflow reads: write 'shotflow: 1'",
        None,
    )


def test_a_reference_object_naming_two_targets(tmp_path):
    """oneOf with an x-message: the schema's words, not jsonschema's best guess at a branch."""
    assert one(tmp_path, shot("refs: [{shot: a, file: b.png}]\n")) == (
        "7:16",
        "scenes[0].shots[0].refs[0]: a reference object names exactly one of shot, file or url (and optionally a tag)",
        None,
    )


def test_an_empty_reference_string(tmp_path):
    """if/then: a string reference must not be empty."""
    assert one(tmp_path, shot("refs: ['']\n")) == ("7:16", "scenes[0].shots[0].refs[0]: must not be empty", None)


def test_a_reference_that_is_a_number_is_one_error_that_says_what_a_reference_is(tmp_path):
    """if/else: neither text nor an object. One error (not the object branch's oneOf noise too)."""
    fix = "is not a reference: write a shot id, a file path or a URL as text, or {shot|file|url: …, tag: …}"
    assert one(tmp_path, shot("refs: [3]\n")) == ("7:16", f"scenes[0].shots[0].refs[0]: 3 {fix}", None)
    assert one(tmp_path, shot("refs: [[a]]\n")) == ("7:16", f"scenes[0].shots[0].refs[0]: a list {fix}", None)


def test_a_bad_tag_in_a_reference_object(tmp_path):
    where, message, _ = one(tmp_path, shot("refs: [{file: b.png, tag: x}]\n"))
    assert where == "7:35" and message.startswith('scenes[0].shots[0].refs[0].tag: "x" is not a valid tag')


# -- type ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "where", "words"),
    [
        ("takes: two\n", "7:16", 'takes: must be an integer, got text "two"'),
        ("takes:\n", "7:15", "takes: must be an integer, got nothing"),
        ("camera: {lens: [1]}\n", "7:24", "camera.lens: must be a string or number, got a list"),
        ("camera: wide\n", "7:17", 'camera: must be an object, got text "wide"'),
    ],
)
def test_a_value_of_the_wrong_type(tmp_path, extra, where, words):
    assert one(tmp_path, shot(extra)) == (where, f"scenes[0].shots[0].{words}", None)


# -- enum ---------------------------------------------------------------------------------------


def test_enum_in_the_wrong_case_suggests_the_right_one(tmp_path):
    assert one(tmp_path, shot("output: {format: png}\n")) == (
        "7:26",
        'scenes[0].shots[0].output.format: "png" is not one of PNG, JPG, WEBP',
        "did you mean 'PNG'?",
    )


def test_enum_with_a_typo_suggests_the_closest(tmp_path):
    assert one(tmp_path, "shotflow: 1\nbackend: runwar\n") == (
        "2:10",
        'backend: "runwar" is not one of preview, runware',
        "did you mean 'runware'?",
    )


def test_enum_with_nothing_close_has_no_hint(tmp_path):
    assert one(tmp_path, shot("output: {format: GIF}\n"))[2] is None


# -- bounds, unique items -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ("takes: 0\n", "takes: must be at least 1, got 0"),
        ("takes: 21\n", "takes: must be at most 20, got 21"),
        ("duration: 0\n", "duration: must be more than 0, got 0"),
    ],
)
def test_a_number_out_of_bounds(tmp_path, extra, words):
    assert one(tmp_path, shot(extra))[1] == f"scenes[0].shots[0].{words}"


def test_a_list_with_an_item_twice(tmp_path):
    assert one(tmp_path, shot("cast: [mara, mara]\n"))[1] == "scenes[0].shots[0].cast: lists the same item twice"


# -- where: scene by scene, sorted, said once ---------------------------------------------------


def test_an_error_in_a_later_scene_keeps_its_path_when_checked_scene_by_scene(tmp_path):
    """With the user cache on (as in the tests), a storyboard of several scenes is checked one
    scene at a time: the error's path and place are those of the whole file."""
    text = (
        "shotflow: 1\nscenes:\n  - id: s\n    shots: [{id: a, prompt: x}]\n"
        "  - id: t\n    shots: [{id: b, prompt: x, takes: 0}]\n"
    )
    assert one(tmp_path, text) == ("6:39", "scenes[1].shots[0].takes: must be at least 1, got 0", None)


def test_errors_come_in_file_order(tmp_path):
    text = SHOT + "        takes: 0\n      - id: b\n        promt: x\n        duration: 0\n"
    lines = [int(where.split(":")[0]) for where, _, _ in errors(tmp_path, text)]
    assert len(lines) == 3 and lines == sorted(lines)


# -- branches no keyword of the storyboard schema reaches --------------------------------------


@pytest.mark.parametrize(
    ("schema", "data", "words"),
    [
        ({"const": 3}, 4, "must be 3, got 4"),
        ({"exclusiveMaximum": 10}, 10, "must be less than 10, got 10"),
        ({"type": "string", "minLength": 1}, "", "must not be empty"),
        ({"maxItems": 1}, [1, 2], "[1, 2] is too long"),  # no words of ours: jsonschema's
    ],
)
def test_other_keywords_on_a_tiny_schema(tmp_path, schema, data, words):
    path = tmp_path / "x.yaml"
    path.write_text("x: 1\n", encoding="utf-8")
    source = load.read_source(path)
    checker = validate._Validator()({"type": "object", "properties": {"x": schema}})
    found = validate._errors(source, checker, {"x": data})
    assert [e.message for e in found] == [f"x: {words}"]
    assert (found[0].where.line, found[0].where.column) == (1, 4)
