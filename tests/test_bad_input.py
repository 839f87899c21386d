"""Bad input, end to end: exit code 2, the place in the message, never a traceback.

Each case is a storyboard a user could plausibly write, run through the real CLI.
"""

from __future__ import annotations

import re

import pytest

BASE = """
shotflow: 1
characters:
  mara:
    description: a keeper
    sheet:
      prompt: portrait of {{ character.description }}
scenes:
  - id: arrival
    shots:
      - id: wide
        prompt: a lighthouse at dusk
{extra}
"""


def board(extra: str = "", base: str = BASE) -> str:
    return base.format(extra=extra)


CASES = {
    "yaml syntax": ("shotflow: 1\nscenes:\n  - id: a\n    shots: [\n", r"storyboard\.yaml:\d+:\d+: YAML syntax error"),
    "python tag": (
        "shotflow: 1\ntitle: !!python/object/apply:os.system ['echo pwned']\n",
        r"storyboard\.yaml:2:8: YAML tag !!python/object/apply:os\.system is not allowed",
    ),
    "unknown key": (
        board("        promt: typo"),
        r"storyboard\.yaml:12:9: .*unknown key 'promt' \(did you mean 'prompt'\?\)",
    ),
    "wrong type": (board("        takes: three"), r"storyboard\.yaml:12:16: .*takes: must be an integer"),
    "bad size for model": (
        board("        size: 4K-16:9"),
        r"storyboard\.yaml:12:15: arrival/wide: size '4K-16:9' is not a size of runway:4@1",
    ),
    "too many references": (
        board("""      - id: b
        cast: [mara]
        refs: [wide, {file: a.png}, {file: b.png}]
        prompt: x"""),
        r"storyboard\.yaml:12:9: arrival/b has 4 reference images, runway:4@1 takes at most 3: "
        r"1\. character:mara \(cast mara: drop_refs: \[mara\]\), 2\. arrival/wide \(refs\)",
    ),
    "turbo without references": (
        board("""      - id: quick
        model: runway:4@2
        prompt: x"""),
        r"storyboard\.yaml:12:9: arrival/quick has 0 reference images.*at least 1",
    ),
    "cycle": (
        board("""      - id: a
        refs: [b]
        prompt: x
      - id: b
        refs: [a]
        prompt: y"""),
        r"reference cycle: arrival/(a|b) -> arrival/(a|b) -> arrival/\1",
    ),
    "unknown reference": (
        board("""      - id: door
        refs: [arrival/wdie]
        prompt: x"""),
        r"storyboard\.yaml:13:16: arrival/door: unknown reference 'arrival/wdie' \(did you mean 'arrival/wide'\?\)",
    ),
    "duplicate id": (
        board("""      - id: wide
        prompt: again"""),
        r"storyboard\.yaml:12:13: shot id 'arrival/wide' is used twice",
    ),
    "id with a path": (
        board("""      - id: ../../etc/passwd
        prompt: x"""),
        r"storyboard\.yaml:12:13: .*\"\.\./\.\./etc/passwd\" is not a valid id",
    ),
    "undefined template name": (
        board("""      - id: door
        prompt: "{{ cast.marra.description }} opens the door\""""),
        r"storyboard\.yaml:13:17: arrival/door: prompt, line 1: .*marra",
    ),
    "sandbox escape": (
        board("""      - id: door
        prompt: "{{ ''.__class__.__mro__[1].__subclasses__() }}\""""),
        r"storyboard\.yaml:13:17: arrival/door: prompt, line 1: the template tried something the sandbox forbids",
    ),
    "prompt too long": (
        board("""      - id: long
        prompt: "{{ 'very long ' * 120 }}\""""),
        r"storyboard\.yaml:13:17: arrival/long: the expanded prompt has 1\d{3} characters; runway:4@1 takes 1 to 1000",
    ),
    "missing reference file": (
        board("""      - id: door
        refs: [{file: refs/nothere.png}]
        prompt: x"""),
        r"storyboard\.yaml:13:16: arrival/door: reference file not found: refs/nothere\.png",
    ),
    "pick beyond takes": (
        board("""      - id: door
        takes: 2
        pick: 3
        prompt: x"""),
        r"storyboard\.yaml:14:15: arrival/door: pick 3 but the shot has only 2 takes",
    ),
    "wrong format version": (
        "shotflow: 2\nscenes: []\n",
        r"storyboard\.yaml:1:11: shotflow: 2 is not a format this shotflow reads",
    ),
    "not a storyboard": ("scenes: []\n", r"storyboard\.yaml:1:1: not a shotflow storyboard"),
    "unknown cast member": (
        board("""      - id: door
        cast: [mra]
        prompt: x"""),
        r"storyboard\.yaml:13:16: arrival/door: unknown character 'mra' in cast \(did you mean 'mara'\?\)",
    ),
    "unknown @tag": (
        board("""      - id: door
        cast: [mara]
        prompt: "@marra opens the door\""""),
        r"arrival/door: the prompt names @marra but no reference of the shot has that tag .*did you mean 'mara'",
    ),
    "template syntax error": (
        board("""      - id: door
        prompt: "{{ cast.mara.description "
        cast: [mara]"""),
        r"storyboard\.yaml:13:17: arrival/door: prompt, line 1: template syntax error",
    ),
    "duplicate yaml key": (
        board("""      - id: door
        prompt: a
        prompt: b"""),
        r"storyboard\.yaml:14:9: duplicate key 'prompt'",
    ),
    "unknown model": (
        board("        model: runway:5@1"),
        r"storyboard\.yaml:12:16: arrival/wide: unknown model 'runway:5@1'",
    ),
    "width without height": (board("        width: 1920"), r"storyboard\.yaml:10:9: .*width and height go together"),
    "bad output format": (
        board("        output: {format: TIFF}"),
        r"storyboard\.yaml:12:26: .*\"TIFF\" is not one of PNG, JPG, WEBP",
    ),
    "a scene called characters": (
        board("""  - id: characters
    shots:
      - id: mara
        prompt: x"""),
        r"storyboard\.yaml:14:9: character:mara and characters/mara would both write "
        r"renders/characters/mara",
    ),
    "takes beside a take name": (
        board("""      - id: door
        takes: 2
        prompt: x
      - id: door-take2
        prompt: y"""),
        r"storyboard\.yaml:15:9: arrival/door and arrival/door-take2 would both write "
        r"renders/arrival/door-take2",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_exits_2_with_location_and_no_traceback(name, write, cli):
    text, expected = CASES[name]
    path = write(text)
    from PIL import Image

    for name in ("a.png", "b.png"):  # real images: a file that is not one is an error of its own
        Image.new("RGB", (8, 8)).save(path.parent / name)
    result = cli("validate", path, cwd=path.parent)
    assert result.code == 2, result.text
    assert "Traceback" not in result.text
    assert re.search(expected, result.err), f"expected /{expected}/ in:\n{result.err}"


def test_independent_errors_are_all_reported(write, cli):
    path = write("""
        shotflow: 1
        titel: typo one
        scenes:
          - id: arrival
            shots:
              - id: wide
                promt: typo two
              - id: door
                takes: many
        """)
    result = cli("validate", path, cwd=path.parent)
    assert result.code == 2
    lines = [line for line in result.err.splitlines() if line.startswith("error:")]
    assert len(lines) == 3, result.err
    assert "storyboard.yaml:2:1" in lines[0] and "did you mean 'title'" in lines[0]
    assert "storyboard.yaml:7:9" in lines[1]
    assert "storyboard.yaml:9:16" in lines[2]


def test_render_with_bad_input_changes_nothing(example, cli):
    story = example("lighthouse")
    assert cli("render", story).code == 0
    lock_before = story.with_suffix(".lock").read_bytes()
    story.write_text(story.read_text().replace("prompt: the great lamp", "promt: the great lamp"))
    result = cli("render", story)
    assert result.code == 2 and "Traceback" not in result.text
    assert "did you mean 'prompt'" in result.err
    assert story.with_suffix(".lock").read_bytes() == lock_before
    assert (story.parent / "renders/arrival/lamp.png").exists()


def test_validate_several_files_reports_each(write, cli, tmp_path):
    good = write("shotflow: 1\nscenes: []\n", "good.yaml")
    bad = write("shotflow: 1\nscenes: [{id: Bad Id}]\n", "bad.yaml")
    result = cli("validate", good, bad, cwd=tmp_path)
    assert result.code == 2
    assert "ok: good.yaml" in result.out
    assert "bad.yaml:2:" in result.err


# -- the errors a newcomer meets first: one line each, with the fix ---------------------------


def errors_of(write, text: str) -> list[str]:
    """The error lines ``shotflow validate`` would print for a storyboard (in-process)."""
    from shotflow import api, graph
    from shotflow.errors import InputError

    path = write(text)
    with pytest.raises(InputError) as info:
        graph.build(api.load_project(path))
    return [line.replace(f"{path.parent}/", "") for line in info.value.lines()]


@pytest.mark.parametrize(
    "value,fix",
    [
        ("@kenji runs", 'quote the value: prompt: "@kenji runs"'),
        ("{{ cast.mara.description }}", 'quote the value: prompt: "{{ cast.mara.description }}"'),
        ("{{ cast.mara.description }} walks in", 'quote the value: prompt: "{{ cast.mara.description }} walks in"'),
        ("*kenji", 'quote the value: prompt: "*kenji"'),
        ("%kenji runs  # a comment", 'quote the value: prompt: "%kenji runs"'),
    ],
)
def test_an_unquoted_value_yaml_reserves_gets_the_fix(write, value, fix):
    lines = errors_of(write, board(f"      - id: door\n        prompt: {value}"))
    assert len(lines) == 1 and lines[0].startswith("storyboard.yaml:13:") and fix in lines[0], lines


def test_the_quote_fix_on_the_command_line(write, cli):
    path = write(board('      - id: door\n        prompt: @mara opens "the" door'))
    result = cli("validate", path, cwd=path.parent)
    assert result.code == 2 and "Traceback" not in result.err
    assert result.err.strip().endswith('(quote the value: prompt: "@mara opens \\"the\\" door")'), result.err


def test_a_misspelt_attribute_names_the_value_and_its_attributes(write):
    lines = errors_of(
        write,
        board("""      - id: door
        cast: [mara]
        prompt: "{{ cast.mara.desciption }} opens the door\""""),
    )
    assert lines == [
        "storyboard.yaml:14:17: arrival/door: prompt, line 1: cast.mara has no attribute 'desciption' "
        "(did you mean 'description'? cast.mara has: name, description, tag, notes)"
    ]
    lines = errors_of(
        write,
        board("""      - id: door
        cast: [mara]
        prompt: "{{ cast.tom.description }} and {{ vars.look.grde }}\""""),
    )
    assert "'tom' is not in this shot's cast (cast: mara)" in lines[0]
    lines = errors_of(
        write,
        "shotflow: 1\nvars: {look: {grade: teal}}\nscenes: [{id: a, shots: [{id: b, "
        "prompt: '{{ vars.look.grde }} and {{ shot.nmae }}'}]}]\n",
    )
    assert "vars.look has no attribute 'grde' (did you mean 'grade'? vars.look has: grade)" in lines[0]


def test_one_bad_value_in_defaults_is_reported_once(write):
    shots = "".join(f"      - {{id: s{i}, prompt: x}}\n" for i in range(16))
    lines = errors_of(
        write,
        f"""shotflow: 1
defaults: {{size: 1K-16:10}}
scenes:
  - id: a
    shots:
{shots}""",
    )
    assert len(lines) == 1, lines
    assert lines[0].startswith("storyboard.yaml:2:18: a/s0, a/s1 and 14 more: size '1K-16:10' is not a size")


def test_a_missing_image_is_reported_once(write):
    shots = "".join(f"      - {{id: s{i}, prompt: x, cast: [tom]}}\n" for i in range(5))
    lines = errors_of(
        write,
        f"""shotflow: 1
characters:
  tom: {{description: a radio operator, image: refs/tom.png}}
scenes:
  - id: a
    shots:
{shots}""",
    )
    assert len(lines) == 1, lines
    assert lines[0].startswith("storyboard.yaml:3:47: character 'tom': reference file not found: refs/tom.png")


@pytest.mark.parametrize(
    "model,close",
    [("gen4", None), ("runway-gen4", "runway:4@"), ("runway:4@9", "runway:4@"), ("gen4 turbo", "runway:4@2")],
)
def test_a_model_not_in_the_catalog_gets_the_list(write, model, close):
    lines = errors_of(write, board(f"        model: '{model}'"))
    assert len(lines) == 1 and f"unknown model '{model}'" in lines[0], lines
    assert "does not match" not in lines[0] and "^" not in lines[0]
    assert "models: runway:4@1 (Runway Gen-4 Image), runway:4@2 (Runway Gen-4 Image Turbo)" in lines[0]
    assert ("did you mean" in lines[0]) == (close is not None)
    if close:
        assert f"did you mean '{close}" in lines[0]


def test_an_unknown_location_is_one_error(write):
    lines = errors_of(
        write,
        """shotflow: 1
locations:
  harbor: {description: a harbor}
scenes:
  - id: a
    location: harbour
    shots:
      - {id: one, prompt: "{{ location.description }} at night"}
      - {id: two, prompt: "{{ location.name }} at dawn", model: "runway:4@2"}
""",
    )
    assert lines == ["storyboard.yaml:6:15: scene 'a' is set in unknown location 'harbour' (did you mean 'harbor'?)"]


def test_a_shot_that_references_itself_is_an_error(write):
    lines = errors_of(write, board("      - {id: door, prompt: x, refs: [wide, door]}"))
    assert lines == [
        "storyboard.yaml:12:44: arrival/door: refs names the shot itself ('arrival/door') "
        "(a shot cannot be its own reference: name an earlier shot, a file or a URL)"
    ]


def test_an_empty_section_is_one_plain_error(write):
    got = errors_of(write, "shotflow: 1\ndefaults:\n")
    assert got == ["storyboard.yaml:2:10: defaults: must be an object, got nothing"]
