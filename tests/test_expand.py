"""Expansion: defaults, sizes, templates (sandboxed), references and tags."""

from __future__ import annotations

import pytest

from shotflow import api
from shotflow.errors import InputError, RefError, TemplateError
from shotflow.model import RefKind

HEAD = """
shotflow: 1
style: grainy 16mm
defaults: {model: runway:4@1, size: 1K-16:9, duration: 3}
characters:
  mara:
    description: a keeper
    sheet: {prompt: "portrait of {{ character.description }}", size: 1K-1:1}
  tom: {description: a radio operator, image: tom.png}
locations:
  tower: {description: a lighthouse, image: tower.png}
"""


@pytest.fixture
def project(write, image):
    image("tom.png")
    image("tower.png", color=(20, 20, 200))

    def make(scenes: str, head: str = HEAD, **kw):
        return api.load_project(write(head + scenes), **kw)

    return make


def test_defaults_merge_and_shots_override(project):
    p = project("""
scenes:
  - id: a
    shots:
      - {id: one, prompt: hi}
      - {id: two, prompt: hi, size: 720p-9:16, duration: 1.5, output: {format: JPG}}
""")
    one, two = p.nodes["a/one"], p.nodes["a/two"]
    assert (one.width, one.height, one.duration, one.output_format) == (1360, 768, 3.0, "PNG")
    assert (two.width, two.height, two.duration, two.output_format, two.output_quality) == (720, 1280, 1.5, "JPG", 95)
    assert p.nodes["character:mara"].width == 1024


def test_the_builtin_shot_template_composes_camera_prompt_and_style(project):
    p = project("""
scenes:
  - id: a
    location: tower
    shots:
      - id: wide
        prompt: "  {{ location.description }}\\n   at dusk  "
        camera: {framing: extreme wide, angle: low angle, lens: 24mm, move: dolly in}
      - id: still
        prompt: a door
        camera: {lens: 50, move: static}
""")
    assert p.nodes["a/wide"].prompt == (
        "extreme wide shot, low angle: a lighthouse at dusk, 24mm lens, camera dolly in. grainy 16mm"
    )
    assert p.nodes["a/still"].prompt == "a door, 50mm lens. grainy 16mm"
    assert p.nodes["character:mara"].prompt == "portrait of a keeper. grainy 16mm"


def test_context_has_scene_shot_cast_refs_vars(project):
    p = project(
        """
vars: {time: night}
scenes:
  - id: a
    title: Arrival
    location: tower
    shots:
      - id: one
        cast: [tom, mara]
        template: null
        prompt: >-
          {{ scene.title }}/{{ shot.id }}/{{ shot.name }} {{ vars.time }}
          {% for name, c in cast.items() %}{{ name }}={{ c.description }};{% endfor %}
          {% for r in refs %}{{ r.position }}:{{ r.tag }}:{{ r.kind }} {% endfor %}
""",
        overrides={"time": "dawn"},
    )
    assert p.nodes["a/one"].prompt == (
        "Arrival/a/one/one dawn tom=a radio operator;mara=a keeper; 1:tower:file 2:tom:file 3:mara:node"
    )


def test_a_project_template_overrides_the_builtin(project, write):
    write("{{ prompt | upper }} !", "templates/shot.j2")
    write("[{{ prompt }}]", "templates/custom.j2")
    p = project("""
scenes:
  - id: a
    shots:
      - {id: one, prompt: quiet sea}
      - {id: two, prompt: loud sea, template: custom.j2}
""")
    assert p.nodes["a/one"].prompt == "QUIET SEA !"
    assert p.nodes["a/two"].prompt == "[loud sea]"
    assert any(path.name == "shot.j2" and "templates" in str(path) for path in p.inputs)


def test_unknown_template_suggests_a_name(project):
    with pytest.raises(TemplateError, match=r"template 'shoot\.j2' not found.*did you mean 'shot\.j2'"):
        project("""
scenes:
  - id: a
    shots: [{id: one, prompt: x, template: shoot.j2}]
""")


def test_an_error_in_a_template_file_names_its_line(project, write):
    write("line one {{ prompt }}\nline two {{ shot.nope }}\n", "templates/bad.j2")
    with pytest.raises(TemplateError, match=r"a/one: template bad\.j2, line 2: .*nope"):
        project("""
scenes:
  - id: a
    shots: [{id: one, prompt: x, template: bad.j2}]
""")


@pytest.mark.parametrize(
    "expr",
    [
        "{{ ''.__class__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ vars.__class__.__base__.__subclasses__() }}",
        "{{ (1).__class__.__mro__ }}",
    ],
)
def test_the_sandbox_blocks_python_internals(project, expr):
    with pytest.raises(TemplateError, match="sandbox forbids|is undefined|has no attribute"):
        project(f"""
scenes:
  - id: a
    shots: [{{id: one, prompt: "{expr}"}}]
""")


def test_errors_of_independent_shots_are_all_reported(project):
    with pytest.raises(InputError) as info:
        project("""
scenes:
  - id: a
    shots:
      - {id: one, prompt: "{{ nope }}"}
      - {id: two, prompt: x, size: 9K-1:1}
      - {id: three, cast: [ghost], prompt: x}
""")
    text = str(info.value)
    assert "a/one" in text and "a/two" in text and "a/three" in text


def test_references_come_location_cast_refs_deduplicated(project, image):
    image("extra.png")
    p = project("""
scenes:
  - id: a
    location: tower
    shots:
      - {id: one, prompt: x}
      - id: two
        cast: [mara]
        refs: [one, character:mara, {file: tower.png}]
        prompt: x
""")
    refs = p.nodes["a/two"].refs
    assert [(r.kind, r.label, r.via) for r in refs] == [
        (RefKind.FILE, "tower.png", "location"),
        (RefKind.NODE, "character:mara", "cast"),
        (RefKind.NODE, "a/one", "refs"),
    ]
    assert [r.tag for r in refs] == ["tower", "mara", "one"]


def test_tags_switch_on_with_at_names_and_must_match(project):
    p = project("""
scenes:
  - id: a
    shots:
      - {id: one, prompt: x}
      - {id: two, cast: [tom], refs: [{shot: one, tag: harbor}], prompt: "@tom walks to @harbor"}
      - {id: three, cast: [tom], prompt: "tom walks, mail me at a@b.com"}
""")
    assert p.nodes["a/two"].tagged and [r.tag for r in p.nodes["a/two"].refs] == ["tom", "harbor"]
    assert not p.nodes["a/three"].tagged


def test_a_tag_too_short_for_runway_is_an_error_when_tags_are_used(project):
    with pytest.raises(RefError, match=r"reference a/ab has no valid tag \('ab'\)"):
        project("""
scenes:
  - id: a
    shots:
      - {id: ab, prompt: x}
      - {id: two, cast: [tom], refs: [ab], prompt: "@tom looks"}
""")


def test_url_references(project):
    p = project("""
scenes:
  - id: a
    shots: [{id: one, refs: ["https://example.com/ref.jpg", {url: "http://127.0.0.1:9/x.png", tag: photo}], prompt: x}]
""")
    refs = p.nodes["a/one"].refs
    assert [r.kind for r in refs] == [RefKind.URL, RefKind.URL] and refs[1].tag == "photo"


def test_turbo_with_a_reference_is_fine(project):
    p = project("""
scenes:
  - id: a
    shots: [{id: one, model: runway:4@2, cast: [tom], prompt: x}]
""")
    assert p.nodes["a/one"].model == "runway:4@2"


def test_flash_forward_reference_to_a_later_shot(project):
    p = project("""
scenes:
  - id: a
    shots:
      - {id: early, refs: [b/late], prompt: x}
  - id: b
    shots:
      - {id: late, prompt: y}
""")
    assert p.nodes["a/early"].refs[0].target == "b/late"
    from shotflow import graph

    assert graph.order(graph.build(p)).index("b/late") < graph.order(graph.build(p)).index("a/early")


def test_provider_and_safety_settings_reach_the_request_shape(project):
    p = project("""
scenes:
  - id: a
    shots:
      - id: one
        prompt: x
        safety: {check_content: true, mode: fast}
        provider_settings: {runway: {public_figure_threshold: low}}
        ttl: 3600
        webhook_url: https://example.com/hook
""")
    node = p.nodes["a/one"]
    assert node.safety == {"checkContent": True, "mode": "fast"}
    assert node.provider_settings == {"runway": {"contentModeration": {"publicFigureThreshold": "low"}}}
    assert node.options == {"ttl": 3600, "webhookURL": "https://example.com/hook"}


def test_the_examples_expand(example):
    assert len(api.load_project(example("lighthouse")).nodes) == 12
    heist = api.load_project(example("heist"))
    assert [s.id for s in heist.scenes] == ["casing", "inside", "escape"]
    assert heist.nodes["escape/tram"].tagged


@pytest.mark.parametrize(
    "source",
    [
        "plain {{ shot.id }} and {{vars.grade}} then {{ cast.mara.description }}",
        "{{ shot.takes }} takes, {{ shot.duration }} s, flag {{ vars.flag }}",
        "{{ vars.items }}",  # an attribute of dict: Jinja finds the method first
        "{{ vars.grade | upper }} and {{vars.grade|title|lower}} {{ cast.mara.description | title }}",
        "{{ vars.grade | replace('t', 'T') }}",  # a filter with arguments
        "{{ shot.takes | title }}",  # a text filter of a number
        "{{ vars.none }}",  # None
        "{{ vars.list }}",  # a list
        "{{- vars.grade -}} x",  # whitespace control
        "{{{ vars.grade }}",  # a brace in the text
        "{% if vars.flag %}yes{% endif %} {{ vars.grade }}",
        "{# note #}{{ vars.grade }}",
    ],
)
def test_simple_lookups_skip_jinja_and_give_what_jinja_gives(source, tmp_path):
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

    from shotflow.expand import _substitute

    context = {
        "shot": {"id": "a/b", "takes": 2, "duration": 2.5},
        "vars": {"grade": "teal", "flag": True, "none": None, "list": [1], "items": "shadowed"},
        "cast": {"mara": {"description": "a keeper"}},
    }
    env = SandboxedEnvironment(undefined=jinja2.StrictUndefined)
    fast = _substitute(source, context, lambda: env.filters)
    try:
        slow = env.from_string(source).render(context)
    except jinja2.TemplateError:
        slow = None
    if fast is not None:
        assert fast == slow
    simple = source.startswith(("plain", "{{ shot.takes }}", "{{ vars.grade | upper"))
    assert (fast is not None) == simple


def test_a_missing_name_in_a_simple_prompt_is_still_jinjas_error(project):
    with pytest.raises(TemplateError, match=r"a/one: prompt, line 1: vars has no attribute 'nope' \(vars has: grade\)"):
        project(
            """
scenes:
  - id: a
    shots:
      - {id: one, prompt: "{{ vars.nope }} at sea"}
""",
            head=HEAD + "vars: {grade: teal}\n",
        )


def test_the_builtin_template_says_shot_once(project):
    p = project("""
scenes:
  - id: a
    shots:
      - {id: two, prompt: two people argue, camera: {framing: two shot, angle: low angle}}
      - {id: est, prompt: a harbor, camera: {framing: Establishing Shot}}
      - {id: ins, prompt: a key, camera: {framing: insert}}
""")
    assert p.nodes["a/two"].prompt.startswith("two shot, low angle: two people argue")
    assert p.nodes["a/est"].prompt.startswith("Establishing Shot: a harbor")
    assert p.nodes["a/ins"].prompt.startswith("insert shot: a key")
    assert not any("shot shot" in n.prompt.lower() for n in p.nodes.values())


def test_drop_refs_makes_room_under_the_cap_and_keeps_the_context(project):
    """location, cast, then refs; drop_refs leaves the location's or a cast member's image out."""
    p = project("""
scenes:
  - id: a
    location: tower
    shots:
      - {id: one, prompt: x}
      - id: two
        cast: [mara, tom]
        refs: [one]
        drop_refs: [tower]
        prompt: "{{ location.description }}, {{ cast.tom.description }};
          {% for r in refs %}{{ r.position }}={{ r.label }} {% endfor %}"
      - id: three
        cast: [mara, tom]
        refs: [one]
        drop_refs: [tom]
        prompt: "@mara and @tower"
""")
    two = p.nodes["a/two"]
    assert [(r.label, r.via) for r in two.refs] == [("character:mara", "cast"), ("tom.png", "cast"), ("a/one", "refs")]
    assert "a lighthouse, a radio operator; 1=character:mara 2=tom.png 3=a/one" in two.prompt
    three = p.nodes["a/three"]
    assert [r.label for r in three.refs] == ["tower.png", "character:mara", "a/one"]


def test_too_many_references_lists_each_with_the_key_that_drops_it(project):
    with pytest.raises(RefError) as info:
        project("""
scenes:
  - id: a
    location: tower
    shots:
      - {id: one, prompt: x}
      - {id: two, prompt: x, cast: [mara, tom], refs: [one]}
""")
    message = str(info.value)
    assert (
        "a/two has 4 reference images, runway:4@1 takes at most 3: 1. tower.png (the location tower: "
        "drop_refs: [tower]), 2. character:mara (cast mara: drop_refs: [mara]), 3. tom.png (cast tom: "
        "drop_refs: [tom]), 4. a/one (refs)"
    ) in message
    assert "leave one out: drop_refs: [tower] keeps tower in the prompt but sends no image of it" in message


def test_drop_refs_names_the_location_or_the_cast(project):
    with pytest.raises(
        RefError,
        match=r"a/two: drop_refs names 'towr', which is neither the scene's location nor "
        r"in the shot's cast \(did you mean 'tower'\?\)",
    ):
        project("""
scenes:
  - id: a
    location: tower
    shots:
      - {id: two, prompt: x, cast: [mara], drop_refs: [towr]}
""")
    with pytest.raises(
        RefError, match=r"@tom but no reference of the shot has that tag .*drop_refs leaves out tom's image"
    ):
        project("""
scenes:
  - id: a
    shots:
      - {id: two, prompt: "@tom waves", cast: [tom], drop_refs: [tom]}
""")


def test_the_schema_documents_drop_refs():
    from shotflow.validate import storyboard_schema

    shot = storyboard_schema()["$defs"]["shot"]["properties"]
    assert "drop_refs" in shot and "3-reference cap" in shot["drop_refs"]["description"]
