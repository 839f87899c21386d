"""Loading YAML: marks, safety, includes, overrides."""

from __future__ import annotations

import json

import pytest

from shotflow.errors import ConfigError, ErrorList, InputError, LoadError
from shotflow.load import load, parse_overrides, read_source


def test_marks_point_at_values_and_keys(write):
    path = write("""
        shotflow: 1
        scenes:
          - id: a
            shots:
              - id: wide
                prompt: hello
        """)
    src = read_source(path)
    assert src.data["scenes"][0]["shots"][0]["prompt"] == "hello"
    mark = src.mark(("scenes", 0, "shots", 0, "prompt"))
    assert (mark.line, mark.column) == (6, 17)
    key = src.mark(("scenes", 0, "shots", 0, "prompt"), key=True)
    assert (key.line, key.column) == (6, 9)
    assert str(mark).endswith("storyboard.yaml:6:17")


def test_python_tags_are_refused_and_never_run(write, tmp_path):
    marker = tmp_path / "pwned"
    path = write(f"shotflow: 1\ntitle: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(LoadError, match="not allowed"):
        read_source(path)
    assert not marker.exists()


def test_custom_tags_are_refused(write):
    path = write("shotflow: 1\ntitle: !secret abc\n")
    with pytest.raises(LoadError, match="YAML tag !secret is not allowed"):
        read_source(path)


def test_duplicate_keys_are_errors(write):
    path = write("shotflow: 1\ntitle: a\ntitle: b\n")
    with pytest.raises(LoadError, match=r"3:1: duplicate key 'title' \(first at line 2\)"):
        read_source(path)


def test_merge_keys_and_anchors_work(write):
    path = write("""
        shotflow: 1
        scenes:
          - id: a
            shots:
              - &base {id: one, prompt: p, takes: 2}
              - <<: *base
                id: two
        """)
    shots = read_source(path).data["scenes"][0]["shots"]
    assert shots[1] == {"id": "two", "prompt": "p", "takes": 2}


def test_the_fast_build_gives_what_pyyaml_gives(write):
    import yaml

    text = """
        shotflow: 1
        n: [1, 0x1f, 1_000, -2.5, .inf, true, no, null, ~, "007", '1', 2026-11-22, !!str 5, !!int "6"]
        nested: {a: {b: [x, {c: d}]}, e: []}
        block: |
          two
          lines
        base: &b {k: 1, l: [1, 2]}
        copy: *b
        over: {<<: [*b, {m: 3, k: 9}], k: 2}
        """
    path = write(text)
    expected = yaml.safe_load(path.read_text())
    expected["n"][11] = "2026-11-22"  # dates stay text in shotflow
    data = read_source(path).data
    assert data == expected
    assert list(data["over"]) == ["l", "m", "k"]  # inherited keys first, as PyYAML orders them


def test_an_alias_is_a_copy_not_a_shared_object(write):
    data = read_source(write("shotflow: 1\na: &x {k: [1]}\nb: *x\n")).data
    data["b"]["k"].append(2)
    assert data["a"] == {"k": [1]}


def test_duplicate_key_deep_inside_names_the_first_line(write):
    path = write("shotflow: 1\nscenes:\n  - id: a\n    shots:\n      - id: s\n        prompt: x\n        prompt: y\n")
    with pytest.raises(LoadError, match=r"7:9: duplicate key 'prompt' \(first at line 6\)"):
        read_source(path)


def test_bad_tags_inside_sequences_and_on_mappings_are_all_reported(write):
    path = write("shotflow: 1\na: [ok, !weird x]\nb: !!python/name:os.system {k: 1}\n")
    with pytest.raises(ErrorList) as info:
        read_source(path)
    text = str(info.value)
    assert "2:9: YAML tag !weird is not allowed" in text and "3:4: YAML tag !!python/name:os.system" in text


@pytest.mark.parametrize(
    "text, message",
    [
        ("shotflow: 1\n---\nshotflow: 1\n", r"2:1: the file holds more than one YAML document"),
        ("shotflow: 1\na: &x [1, *x]\n", r"alias \*x refers to a value that contains it"),
        ("shotflow: 1\n? [a, b]\n: c\n", r"2:3: mapping keys must be plain text"),
        ("shotflow: 1\na: {<<: [1]}\n", r"'<<' merges only mappings"),
        ("shotflow: 1\na: [1\n", r"YAML syntax error"),
    ],
)
def test_yaml_shapes_shotflow_refuses(write, text, message):
    with pytest.raises(LoadError, match=message):
        read_source(write(text))


def test_an_empty_file_is_an_empty_mapping_and_merge_as_a_value_is_text(write):
    assert read_source(write("# nothing\n")).data == {}
    assert read_source(write("a: <<\n")).data == {"a": "<<"}


def test_includes_merge_libraries_and_splice_scenes(write):
    write("characters:\n  mara: {description: a keeper}\nvars: {mood: grim}\n", "lib/cast.yaml")
    write("scenes:\n  - id: middle\n    shots: [{id: x, prompt: y}]\n", "acts/act2.yaml")
    path = write("""
        shotflow: 1
        include: [lib/cast.yaml]
        scenes:
          - id: first
          - include: acts/act2.yaml
          - id: last
        """)
    loaded = load(path)
    assert [s["id"] for s in loaded.document["scenes"]] == ["first", "middle", "last"]
    assert loaded.document["characters"]["mara"]["description"] == "a keeper"
    assert loaded.document["vars"] == {"mood": "grim"}
    where = loaded.where(("scenes", 1, "shots", 0, "prompt"))
    assert where.file.endswith("act2.yaml") and where.line == 3


def test_include_cycle_names_the_chain(write):
    write("include: [b.yaml]\n", "a.yaml")
    write("include: [a.yaml]\n", "b.yaml")
    path = write("shotflow: 1\ninclude: [a.yaml]\n")
    with pytest.raises(LoadError, match=r"include cycle: .*a\.yaml -> .*b\.yaml -> .*a\.yaml"):
        load(path)


def test_scene_include_cycle(write):
    write("scenes:\n  - include: storyboard.yaml\n", "act.yaml")
    path = write("shotflow: 1\nscenes:\n  - include: act.yaml\n")
    with pytest.raises(LoadError, match="include cycle"):
        load(path)


def test_a_name_defined_twice_names_both_files(write):
    write("characters:\n  mara: {description: one}\n", "one.yaml")
    write("characters:\n  mara: {description: two}\n", "two.yaml")
    path = write("shotflow: 1\ninclude: [one.yaml, two.yaml]\n")
    with pytest.raises(LoadError, match=r"character 'mara' is defined twice: in .*one\.yaml and in .*two\.yaml"):
        load(path)


def test_an_included_file_holds_only_what_it_contributes(write):
    write("shotflow: 1\ncharacters: {}\n", "lib.yaml")
    path = write("shotflow: 1\ninclude: [lib.yaml]\n")
    with pytest.raises(InputError, match=r"lib\.yaml:1:1: unknown key 'shotflow'"):
        load(path)


def test_missing_include_suggests_a_name(write):
    write("characters: {}\n", "cast.yaml")
    path = write("shotflow: 1\ninclude: [cats.yaml]\n")
    with pytest.raises(LoadError, match=r"2:11: included file not found: .*cats\.yaml \(did you mean 'cast\.yaml'\?\)"):
        load(path)


def test_scene_ids_are_unique_across_includes(write):
    write("scenes:\n  - id: a\n", "act.yaml")
    path = write("shotflow: 1\nscenes:\n  - id: a\n  - include: act.yaml\n")
    with pytest.raises(LoadError, match="scene id 'a' is used twice"):
        load(path)


def test_overrides_parse_as_yaml_scalars_and_nest():
    assert parse_overrides(["n=3", "flag=true", "name=Mara Lane", "look.grade=teal", "empty="]) == {
        "n": 3,
        "flag": True,
        "name": "Mara Lane",
        "look": {"grade": "teal"},
        "empty": "",
    }
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["novalue"])


def test_overrides_replace_vars(write):
    path = write("shotflow: 1\nvars: {city: Lisbon, look: {grade: amber, grain: fine}}\n")
    doc = load(path, {"city": "Porto", "look": {"grade": "teal"}}).document
    assert doc["vars"] == {"city": "Porto", "look": {"grade": "teal", "grain": "fine"}}


def test_schema_errors_of_several_files_come_together(write):
    write("characters:\n  mara: {descripton: typo}\n", "cast.yaml")
    path = write("shotflow: 1\ninclude: [cast.yaml]\nscenes: [{id: a, shots: [{id: b, promt: c}]}]\n")
    with pytest.raises(ErrorList) as info:
        load(path)
    text = str(info.value)
    assert "cast.yaml:2:10" in text and "storyboard.yaml:3:" in text


def test_the_schema_check_is_remembered_scene_by_scene(write):
    from shotflow import _usercache

    scenes = "".join(f"  - id: s{i}\n    shots:\n      - {{id: a, prompt: p{i}}}\n" for i in range(3))
    path = write("shotflow: 1\nscenes:\n" + scenes.replace("prompt: p1", "promt: p1"))
    with pytest.raises(InputError) as info:  # the error is in the second scene; its place is exact
        load(path)
    assert "storyboard.yaml:8:17: scenes[1].shots[0]: unknown key 'promt' (did you mean 'prompt'?)" in str(info.value)

    def markers() -> int:
        return sum(1 for p in (_usercache.user_cache_dir() / "valid").rglob("*") if p.is_file())

    before = markers()
    path.write_text("shotflow: 1\nscenes:\n" + scenes)
    load(path)
    assert markers() == before + 2  # the scene that was wrong, and the file
    path.write_text("shotflow: 1\nscenes:\n" + scenes.replace("prompt: p2", "prompt: p2, takes: 0"))
    with pytest.raises(InputError, match=r"11:36: scenes\[2\]\.shots\[0\]\.takes: must be at least 1, got 0"):
        load(path)


def test_a_big_file_is_read_again_for_its_marks(write):
    from shotflow import api
    from shotflow.load import _KEEP_TEXT

    shots = "".join(
        f'      - {{id: s{i:05d}, prompt: "{"wide shot of the harbour at dusk " * 4}"}}\n'
        for i in range(_KEEP_TEXT // 140)
    )
    path = write(
        "shotflow: 1\nscenes:\n  - id: a\n    shots:\n" + shots + "      - {id: last, prompt: x, refs: [nope]}\n"
    )
    assert path.stat().st_size > _KEEP_TEXT
    line = path.read_text().count("\n")
    with pytest.raises(InputError, match=rf"storyboard.yaml:{line}:\d+: a/last: unknown reference 'nope'"):
        api.load_project(path)


def test_every_yaml_file_of_the_examples_reads_as_pyyaml_reads_it():
    import datetime
    from pathlib import Path

    import yaml

    def dates_as_text(value):
        if isinstance(value, dict):
            return {str(k): dates_as_text(v) for k, v in value.items()}
        if isinstance(value, list):
            return [dates_as_text(v) for v in value]
        return value.isoformat() if isinstance(value, (datetime.date, datetime.datetime)) else value

    files = sorted((Path(__file__).parent.parent / "examples").rglob("*.yaml"))
    assert len(files) >= 4
    for path in files:
        assert read_source(path).data == dates_as_text(yaml.safe_load(path.read_text()) or {}), path


def test_set_of_a_var_the_storyboard_lacks_is_an_error_with_a_did_you_mean(write):
    path = write("shotflow: 1\nvars: {look: noir, era: 1970s, palette: {grade: amber}}\n")
    with pytest.raises(ConfigError) as info:
        load(path, parse_overrides(["lok=neon"]))
    assert "no var 'lok'" in str(info.value) and "did you mean 'look'?" in str(info.value)
    assert "--set-new lok=VALUE" in str(info.value)
    with pytest.raises(ConfigError, match=r"no var 'palette\.grde'.*did you mean 'palette\.grade'\?"):
        load(path, parse_overrides(["palette.grde=teal"]))
    # on purpose: --set-new KEY=VALUE, written --set +KEY=VALUE too
    doc = load(path, parse_overrides(["+lok=neon", "+palette.tint=cold", "+extra.deep.key=1"])).document
    assert doc["vars"] == {
        "look": "noir",
        "era": "1970s",
        "palette": {"grade": "amber", "tint": "cold"},
        "lok": "neon",
        "extra": {"deep": {"key": 1}},
    }


def test_set_of_a_key_of_a_var_that_is_not_a_mapping_is_an_error(write):
    path = write("shotflow: 1\nvars: {look: noir, shots: [a, b]}\n")
    for pair in ("look.grade=teal", "+look.grade=teal", "shots.first=x"):
        with pytest.raises(ConfigError, match="not a mapping") as info:
            load(path, parse_overrides([pair]))
        assert "set the whole var" in str(info.value)


def test_set_and_set_new_on_the_command_line(write, cli):
    path = write(
        "shotflow: 1\nvars: {look: noir}\n"
        'scenes: [{id: a, shots: [{id: b, prompt: \'{{ vars.look }} {{ vars.get("tint", "") }}\'}]}]\n'
    )
    typo = cli("plan", path, "--set", "lok=neon", "--json")
    assert typo.code == 2 and "no var 'lok'" in typo.err and "did you mean 'look'?" in typo.err
    assert "Traceback" not in typo.err
    sub = cli("plan", path, "--set", "look.grade=teal", "--json")
    assert sub.code == 2 and "not a mapping" in sub.err
    ok = cli("plan", path, "--set", "look=neon", "--set-new", "tint=cold", "--json")
    assert ok.code == 0, ok.err
    assert json.loads(ok.out)["nodes"][0]["prompt"].startswith("neon cold")
    plus = cli("plan", path, "--set", "+tint=warm", "--json")
    assert plus.code == 0 and json.loads(plus.out)["nodes"][0]["prompt"].startswith("noir warm")
