"""Stage 3: a loaded document to expanded nodes (prompts, sizes, references).

For every shot and sheet::

    defaults ◄─ shot fields            (a shot overrides; mappings merge key by key)
    model ─► catalog: size, prompt limits, reference counts
    prompt ─► Jinja (sandboxed, StrictUndefined) ─► template (shot.j2 …) ─► normalised text
    location, cast, refs ─► RefSpec list (deduplicated, tagged)

Errors are collected across nodes and raised together; each names the shot and the
file:line:column it came from.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from . import catalog
from ._resources import data_dir
from .errors import ConfigError, InputError, RefError, ShotflowError, TemplateError, did_you_mean, raise_all
from .load import Loaded, Path_, display_path
from .model import Camera, NodeKind, NodeSpec, Project, RefKind, RefSpec, SceneInfo

DEFAULT_MODEL = "runway:4@1"
DEFAULT_SIZE = "1K-16:9"
DEFAULT_FORMAT = "PNG"
DEFAULT_QUALITY = 95
DEFAULT_DURATION = 2.0
SHOT_TEMPLATE = "shot.j2"
SHEET_TEMPLATE = "sheet.j2"

_TAG_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,15}$")
_MENTION_RE = re.compile(r"(?<![\w@])@([A-Za-z][A-Za-z0-9_-]*)")
_MERGED_FIELDS = ("output", "camera", "safety", "provider_settings")


def expand(loaded: Loaded, *, backend: str | None = None) -> Project:
    """Expand every node of a loaded storyboard (see the module docstring)."""
    return _Expander(loaded, backend).run()


class _Expander:
    def __init__(self, loaded: Loaded, backend: str | None):
        self.loaded = loaded
        self.doc = loaded.document
        self.root = loaded.main.path.parent
        self.backend = backend or self.doc.get("backend") or "preview"
        self.defaults: dict[str, Any] = self.doc.get("defaults") or {}
        self.characters: dict[str, dict] = self.doc.get("characters") or {}
        self.locations: dict[str, dict] = self.doc.get("locations") or {}
        self.errors: list[ShotflowError] = []
        self.inputs: dict[Path, None] = {s.path: None for s in loaded.sources}
        self.templates = _Templates(self.root)
        self.shot_ids: dict[str, list[str]] = {}  # scene id -> shot ids
        self.all_ids: set[str] = set()
        self.files: dict[tuple[Path, str], str] = {}  # (folder, relative path) -> resolved file

    # -- the whole storyboard -------------------------------------------------

    def run(self) -> Project:
        plans: list[tuple[str, NodeKind, str, str | None, dict, Path_, dict]] = []
        for kind, section in ((NodeKind.CHARACTER, "characters"), (NodeKind.LOCATION, "locations")):
            for name, entity in (self.doc.get(section) or {}).items():
                if entity.get("sheet") is not None:
                    node_id = f"{kind.value}:{name}"
                    self.all_ids.add(node_id)
                    plans.append((node_id, kind, name, None, entity["sheet"], (section, name, "sheet"), entity))
        scenes: list[SceneInfo] = []
        for si, scene in enumerate(self.doc.get("scenes") or []):
            sid = scene["id"]
            ids: list[str] = []
            seen: dict[str, Any] = {}
            for hi, shot in enumerate(scene.get("shots") or []):
                path = ("scenes", si, "shots", hi)
                if shot["id"] in seen:
                    self.errors.append(
                        InputError(f"shot id '{sid}/{shot['id']}' is used twice in scene '{sid}' (first at {seen[shot['id']]})",
                                   where=self.loaded.where((*path, "id")))
                    )
                    continue
                seen[shot["id"]] = self.loaded.where((*path, "id"))
                node_id = f"{sid}/{shot['id']}"
                ids.append(node_id)
                self.all_ids.add(node_id)
                plans.append((node_id, NodeKind.SHOT, shot["id"], sid, shot, path, scene))
            self.shot_ids[sid] = ids
            location = scene.get("location")
            if location is not None and location not in self.locations:
                self.errors.append(
                    RefError(f"scene '{sid}' is set in unknown location '{location}'",
                             where=self.loaded.where(("scenes", si, "location")),
                             hint=did_you_mean(location, self.locations) or self._known("locations", self.locations))
                )
            scenes.append(SceneInfo(id=sid, title=scene.get("title"), location=location,
                                    description=scene.get("description"), notes=scene.get("notes"), shots=tuple(ids)))
        self.style = self._style()
        nodes: dict[str, NodeSpec] = {}
        for index, (node_id, kind, name, scene_id, fields, path, owner) in enumerate(plans):
            try:
                nodes[node_id] = self.node(index, node_id, kind, name, scene_id, fields, path, owner)
            except ShotflowError as exc:
                self.errors.append(exc)
        self.templates.save()
        raise_all(self.errors)
        return Project(
            path=self.loaded.main.path,
            title=self.doc.get("title"),
            backend=self.backend,
            style=self.style,
            settings=dict(self.doc.get("runware") or {}),
            nodes=nodes,
            scenes=tuple(scenes),
            inputs=tuple(self.inputs) + self.templates.used(),
            remote=self.doc.get("remote"),
        )

    def _style(self) -> str:
        """The project's style, itself a template of project and vars (rendered once)."""
        source = self.doc.get("style") or ""
        try:
            return _normalise(self.templates.render_string(
                source, {"project": {"title": self.doc.get("title")}, "vars": self.doc.get("vars") or {}},
                "style", self.loaded.where(("style",))))
        except TemplateError as exc:
            self.errors.append(exc)
            return ""

    @staticmethod
    def _known(what: str, names) -> str:
        return f"known {what}: {', '.join(names)}" if names else f"the storyboard defines no {what}"

    # -- one node -------------------------------------------------------------

    def node(self, index, node_id, kind, name, scene_id, fields, path, owner) -> NodeSpec:
        where = self.loaded.where(path)
        merged = dict(self.defaults)
        for key, value in fields.items():
            if key in _MERGED_FIELDS and isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = {**merged[key], **value}
            else:
                merged[key] = value

        def at(key: str) -> Any:
            """Mark of a field: in the node when set there, else in defaults."""
            if key in fields:
                return self.loaded.where((*path, key))
            return self.loaded.where(("defaults", key))

        model_id = merged.get("model", DEFAULT_MODEL)
        try:
            spec = catalog.get(model_id)
        except ConfigError as exc:
            raise InputError(f"{node_id}: {exc.message}", where=at("model"), hint=exc.hint) from None
        width, height = self._size(node_id, spec, merged, at)
        output = merged.get("output") or {}
        takes = merged.get("takes", 1)
        pick = merged.get("pick", 1)
        if pick > takes:
            raise InputError(f"{node_id}: pick {pick} but the shot has only {takes} take{'s' if takes > 1 else ''}",
                             where=at("pick"), hint=f"use a pick from 1 to {takes}, or raise takes")
        refs = self._refs(node_id, kind, name, scene_id, fields, path, owner, at)
        context = self._context(node_id, kind, name, scene_id, merged, owner, refs)
        template = merged.get("template", SHEET_TEMPLATE if kind is not NodeKind.SHOT else SHOT_TEMPLATE)
        prompt = self._prompt(node_id, fields, merged, template, context, path, at)
        tagged = self._check_tags(node_id, prompt, refs, where)
        if not spec.prompt_min <= len(prompt) <= spec.prompt_max:
            raise InputError(
                f"{node_id}: the expanded prompt has {len(prompt)} characters; {spec.id} takes "
                f"{spec.prompt_min} to {spec.prompt_max}",
                where=at("prompt") if "prompt" in merged else where,
                hint="shorten the prompt, the style or the template" if len(prompt) else "write a prompt",
            )
        if len(refs) > spec.max_refs or len(refs) < spec.min_refs:
            listed = ", ".join(f"{r.label} ({r.via})" for r in refs) or "none"
            limit = (f"at most {spec.max_refs}" if len(refs) > spec.max_refs
                     else f"at least {spec.min_refs} (it is image-to-image only)")
            raise RefError(f"{node_id} has {len(refs)} reference image{'s' if len(refs) != 1 else ''} ({listed}); "
                           f"{spec.id} takes {limit}", where=where,
                           hint="drop a reference" if len(refs) > spec.max_refs else "add a cast member, a location or refs")
        camera = merged.get("camera") or {}
        options = {api: merged[key] for key, api in (("ttl", "ttl"), ("webhook_url", "webhookURL"),
                                                     ("upload_endpoint", "uploadEndpoint")) if key in merged}
        return NodeSpec(
            id=node_id, kind=kind, name=name, scene=scene_id, story_index=index, where=where,
            model=spec.id, width=width, height=height,
            output_format=output.get("format", DEFAULT_FORMAT), output_quality=output.get("quality", DEFAULT_QUALITY),
            takes=takes, pick=pick, prompt=prompt, refs=tuple(refs), tagged=tagged, template=template,
            safety=_safety(merged.get("safety")), provider_settings=_provider(merged.get("provider_settings")),
            options=options, title=fields.get("title"),
            camera=Camera(**{k: (str(v) if v is not None else None) for k, v in camera.items()}),
            duration=float(merged.get("duration", DEFAULT_DURATION)),
            dialogue=fields.get("dialogue"), action=fields.get("action"), notes=fields.get("notes"),
        )

    def _size(self, node_id, spec, merged, at) -> tuple[int, int]:
        if "width" in merged and "size" not in merged:
            wh = (merged["width"], merged["height"])
            if wh not in spec.sizes.values():
                raise InputError(f"{node_id}: {wh[0]}x{wh[1]} is not a size of {spec.id}", where=at("width"),
                                 hint="sizes: " + ", ".join(spec.sizes))
            return wh
        name = merged.get("size", DEFAULT_SIZE if DEFAULT_SIZE in spec.sizes else next(iter(spec.sizes)))
        wh = spec.size_named(name)
        if wh is None:
            hint = did_you_mean(name, spec.sizes) or "sizes: " + ", ".join(spec.sizes)
            raise InputError(f"{node_id}: size '{name}' is not a size of {spec.id}", where=at("size"), hint=hint)
        return wh

    # -- references -------------------------------------------------------------

    def _refs(self, node_id, kind, name, scene_id, fields, path, owner, at) -> list[RefSpec]:
        refs: list[RefSpec] = []
        seen: set[tuple[RefKind, str]] = set()

        def add(ref: RefSpec | None):
            if ref is not None and (ref.kind, ref.target) not in seen and ref.target != node_id:
                seen.add((ref.kind, ref.target))
                refs.append(ref)

        if kind is NodeKind.SHOT:
            location = owner.get("location")
            if location in self.locations:
                add(self._entity_ref("location", location, self.locations[location], "location"))
            for ci, member in enumerate(fields.get("cast") or []):
                if member not in self.characters:
                    raise RefError(f"{node_id}: unknown character '{member}' in cast",
                                   where=self.loaded.where((*path, "cast", ci)),
                                   hint=did_you_mean(member, self.characters) or self._known("characters", self.characters))
                add(self._entity_ref("character", member, self.characters[member], "cast"))
        for ri, item in enumerate(fields.get("refs") or []):
            add(self._ref_item(node_id, scene_id, item, (*path, "refs", ri)))
        return refs

    def _entity_ref(self, kind: str, name: str, entity: dict, via: str) -> RefSpec | None:
        tag = entity.get("tag", name)
        if entity.get("sheet") is not None:
            return RefSpec(RefKind.NODE, f"{kind}:{name}", tag, f"{kind}:{name}", via)
        image = entity.get("image")
        if image is None:
            return None  # described in words only
        section = "characters" if kind == "character" else "locations"
        where = self.loaded.where((section, name, "image"))
        if _is_url(image):
            return RefSpec(RefKind.URL, image, tag, image, via)
        source, _ = self.loaded.origin.get((section, name), (self.loaded.main, ()))
        return RefSpec(RefKind.FILE, self._file(image, source.path.parent, where, f"{kind} '{name}'"),
                       tag, image, via)

    def _ref_item(self, node_id, scene_id, item, path) -> RefSpec:
        where = self.loaded.where(path)
        tag = None
        if isinstance(item, dict):
            tag = item.get("tag")
            if "url" in item:
                return RefSpec(RefKind.URL, item["url"], tag, item["url"], "refs")
            if "file" in item:
                return RefSpec(RefKind.FILE, self._file(item["file"], self._base(path), where, node_id),
                               tag, item["file"], "refs")
            text = item["shot"]
            target = self._node_id(text, scene_id)
            if target is None:
                raise self._unknown(node_id, text, scene_id, where)
            return RefSpec(RefKind.NODE, target, tag or _default_tag(target), target, "refs")
        text = item
        if _is_url(text):
            return RefSpec(RefKind.URL, text, None, text, "refs")
        target = self._node_id(text, scene_id)
        if target is not None:
            return RefSpec(RefKind.NODE, target, _default_tag(target), target, "refs")
        candidate = (self._base(path) / text)
        if candidate.suffix and candidate.is_file():
            return RefSpec(RefKind.FILE, self._file(text, self._base(path), where, node_id),
                           Path(text).stem if _TAG_RE.match(Path(text).stem) else None, text, "refs")
        if candidate.suffix:
            raise RefError(f"{node_id}: reference file not found: {text}", where=where,
                           hint=f"looked for {display_path(candidate)}")
        raise self._unknown(node_id, text, scene_id, where)

    def _base(self, path: Path_) -> Path:
        """The folder a relative path is resolved against: that of the file the item came from."""
        for n in range(len(path), 0, -1):
            hit = self.loaded.origin.get(tuple(path[:n]))
            if hit:
                return hit[0].path.parent
        return self.root

    def _file(self, rel: str, base: Path, where, owner: str) -> str:
        known = self.files.get((base, rel))
        if known is not None:
            return known
        target = (base / rel).resolve()
        if not target.is_file():
            hint = None
            if target.parent.is_dir():
                hint = did_you_mean(target.name, [p.name for p in target.parent.iterdir()])
            raise RefError(f"{owner}: reference file not found: {rel}", where=where,
                           hint=hint or f"looked for {display_path(target)}")
        self.inputs[target] = None
        self.files[(base, rel)] = str(target)
        return str(target)

    def _node_id(self, text: str, scene_id: str | None) -> str | None:
        if text in self.all_ids:
            return text
        if scene_id is not None and f"{scene_id}/{text}" in self.all_ids:
            return f"{scene_id}/{text}"
        return None

    def _unknown(self, node_id, text, scene_id, where) -> RefError:
        candidates = sorted(self.all_ids) + [i.split("/", 1)[1] for i in self.shot_ids.get(scene_id, [])]
        hint = did_you_mean(text, candidates)
        if hint is None and ":" in text:
            kind, _, name = text.partition(":")
            table = self.characters if kind == "character" else self.locations if kind == "location" else {}
            if name in table:
                hint = f"{kind} '{name}' has no sheet: give it a sheet, or reference its image through cast/location"
        return RefError(f"{node_id}: unknown reference '{text}'", where=where,
                        hint=hint or "write 'scene/shot', 'character:NAME', 'location:NAME', a file path or a URL")

    def _check_tags(self, node_id: str, prompt: str, refs: list[RefSpec], where) -> bool:
        if "@" not in prompt:
            return False
        mentions = list(dict.fromkeys(_MENTION_RE.findall(prompt)))
        if not mentions:
            return False
        tags = {r.tag: r for r in refs if r.tag}
        for mention in mentions:
            if mention not in tags:
                listed = ", ".join(f"@{t}" for t in tags) or "none"
                raise RefError(f"{node_id}: the prompt names @{mention} but no reference of the shot has that tag "
                               f"(tags: {listed})", where=where,
                               hint=did_you_mean(mention, tags) or "add it to cast or refs, or give a reference that tag")
        seen: dict[str, RefSpec] = {}
        for ref in refs:
            if not ref.tag or not _TAG_RE.match(ref.tag):
                raise RefError(f"{node_id}: reference {ref.label} has no valid tag ({ref.tag!r}); with @tags in the prompt "
                               "every reference needs one: 3-16 letters and digits, starting with a letter",
                               where=where, hint="give it one with {shot: ..., tag: name} or a character's tag:")
            if ref.tag in seen:
                raise RefError(f"{node_id}: references {seen[ref.tag].label} and {ref.label} have the same tag '{ref.tag}'",
                               where=where, hint="give one of them another tag")
            seen[ref.tag] = ref
        return True

    # -- prompts ----------------------------------------------------------------

    def _context(self, node_id, kind, name, scene_id, merged, owner, refs) -> dict[str, Any]:
        def entity(section: dict, key: str) -> dict[str, Any]:
            data = section[key]
            return {"name": key, "description": data.get("description", ""), "tag": data.get("tag", key),
                    "notes": data.get("notes")}

        camera = {"framing": None, "angle": None, "lens": None, "move": None, **(merged.get("camera") or {})}
        context: dict[str, Any] = {
            "project": {"title": self.doc.get("title")},
            "style": self.style,
            "vars": self.doc.get("vars") or {},
            "camera": camera,
            "refs": [{"position": i + 1, "tag": r.tag, "id": r.target if r.kind is RefKind.NODE else None,
                      "label": r.label, "kind": r.kind.value, "via": r.via} for i, r in enumerate(refs)],
            "character": None, "location": None, "cast": {}, "scene": None,
        }
        shot = {"id": node_id, "name": name, "title": merged.get("title"), "takes": merged.get("takes", 1),
                "duration": merged.get("duration", DEFAULT_DURATION), "dialogue": merged.get("dialogue"),
                "action": merged.get("action"), "notes": merged.get("notes")}
        if kind is NodeKind.SHOT:
            location = owner.get("location")
            context["scene"] = {"id": scene_id, "title": owner.get("title"), "description": owner.get("description"),
                                "notes": owner.get("notes"), "location": location}
            if location in self.locations:
                context["location"] = entity(self.locations, location)
            context["cast"] = {m: entity(self.characters, m) for m in merged.get("cast") or [] if m in self.characters}
        elif kind is NodeKind.CHARACTER:
            context["character"] = entity(self.characters, name)
        else:
            context["location"] = entity(self.locations, name)
        context["shot"] = shot
        return context

    def _prompt(self, node_id, fields, merged, template, context, path, at) -> str:
        source = merged.get("prompt")
        if source is None and template == SHEET_TEMPLATE:
            owner = context["character"] or context["location"]
            source = owner["description"] if owner else ""
        own = ""
        if source:
            own = self.templates.render_string(source, context, node_id, at("prompt"))
        context["prompt"] = _normalise(own)
        if template is None:
            return context["prompt"]
        return _normalise(self.templates.render_file(template, context, node_id, at("template")))


def _normalise(text: str) -> str:
    return " ".join(text.split())


def _is_url(text: str) -> bool:
    return text.startswith(("https://", "http://"))


def _default_tag(node_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", node_id.rsplit("/", 1)[-1].rsplit(":", 1)[-1])


def _safety(value: dict | None) -> dict | None:
    if not value:
        return None
    out: dict[str, Any] = {}
    if "check_content" in value:
        out["checkContent"] = value["check_content"]
    if "mode" in value:
        out["mode"] = value["mode"]
    return out


def _provider(value: dict | None) -> dict | None:
    runway = (value or {}).get("runway") or {}
    if "public_figure_threshold" not in runway:
        return None
    return {"runway": {"contentModeration": {"publicFigureThreshold": runway["public_figure_threshold"]}}}


class _Templates:
    """The sandboxed Jinja environment: the project's templates/, then the built-in ones."""

    def __init__(self, root: Path):
        self.root = root
        self.project_dir = root / "templates"
        self._env = None
        self._compiled: dict[str, Any] = {}
        self._used: dict[Path, None] = {}
        self._codes: _CodeCache | None = None

    @property
    def env(self):
        if self._env is None:
            import jinja2
            from jinja2.sandbox import SandboxedEnvironment

            search = [str(self.project_dir)] if self.project_dir.is_dir() else []
            search.append(str(data_dir("templates")))
            self._env = SandboxedEnvironment(
                loader=jinja2.FileSystemLoader(search),
                undefined=jinja2.StrictUndefined,
                autoescape=False,
                auto_reload=False,
            )
        return self._env

    def used(self) -> tuple[Path, ...]:
        return tuple(self._used)

    def render_string(self, source: str, context: dict, node_id: str, where) -> str:
        if "{" not in source:
            return source  # plain text: nothing to expand
        text = _substitute(source, context, lambda: self.env.filters)
        if text is not None:
            return text
        template = self._compiled.get(source)
        if template is None:
            import jinja2

            try:
                template = self.codes.template(self.env, source)
            except jinja2.TemplateSyntaxError as exc:
                raise _template_error(exc, node_id, where, "prompt") from None
            self._compiled[source] = template
        return self._render(template, context, node_id, where, "prompt")

    def save(self) -> None:
        if self._codes is not None:
            self._codes.save()

    @property
    def codes(self) -> _CodeCache:
        if self._codes is None:
            self._codes = _CodeCache()
        return self._codes

    def render_file(self, name: str, context: dict, node_id: str, where) -> str:
        import jinja2

        template = self._compiled.get("\0" + name)
        if template is None:
            try:
                template = self.env.get_template(name)
            except jinja2.TemplateNotFound:
                names = self.env.list_templates()
                raise TemplateError(f"{node_id}: template '{name}' not found in {display_path(self.project_dir)}/ "
                                    "or the built-in templates", where=where,
                                    hint=did_you_mean(name, names) or "templates: " + ", ".join(names)) from None
            except jinja2.TemplateError as exc:
                raise _template_error(exc, node_id, where, f"template {name}") from None
            self._compiled["\0" + name] = template
            if template.filename:
                self._used[Path(template.filename)] = None
        return self._render(template, context, node_id, where, f"template {name}")

    def _render(self, template, context, node_id, where, what) -> str:
        import jinja2

        try:
            return template.render(context)
        except (jinja2.TemplateError, ArithmeticError, LookupError, TypeError, ValueError, AttributeError) as exc:
            # errors of the template's own expressions ({{ 1/0 }}, {{ x[5] }}) are the user's to fix
            raise _template_error(exc, node_id, where, what) from None


class _CodeCache:
    """Compiled prompt templates by the hash of their source, kept between runs.

    Jinja needs about a millisecond to parse and compile a template: for a storyboard
    of a thousand distinct prompts that is most of a plan. The compiled code is a pure
    function of the source (and of the Jinja and Python versions, which name the file),
    so it is kept in the user cache, as Jinja's own bytecode caches do.
    """

    LIMIT = 50_000

    def __init__(self):
        import sys

        import jinja2

        from . import __version__
        from ._usercache import user_cache_dir

        root = user_cache_dir()
        tag = f"jinja{jinja2.__version__}-py{sys.version_info[0]}{sys.version_info[1]}-shotflow{__version__}"
        self.path = None if root is None else root / f"templates-{tag}.marshal"
        self.codes: dict[str, bytes] = {}
        self.dirty = False
        if self.path is not None:
            import marshal

            try:
                self.codes = marshal.loads(self.path.read_bytes())
            except (OSError, ValueError, EOFError, TypeError):
                self.codes = {}

    def template(self, env, source: str):
        import hashlib
        import marshal

        key = hashlib.sha256(source.encode()).hexdigest()
        raw = self.codes.get(key)
        if raw is None:
            code = env.compile(source)
            self.codes[key] = marshal.dumps(code)
            self.dirty = True
        else:
            code = marshal.loads(raw)
        return env.template_class.from_code(env, code, env.make_globals(None), None)

    def save(self) -> None:
        if not self.dirty or self.path is None:
            return
        import marshal

        from .store import atomic_write

        codes = self.codes
        if len(codes) > self.LIMIT:
            codes = dict(list(codes.items())[-self.LIMIT:])
        try:
            atomic_write(self.path, marshal.dumps(codes))
        except OSError:
            pass
        self.dirty = False


_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_TEXT_FILTERS = ("upper", "lower", "title", "capitalize", "trim")
_LOOKUP = re.compile(r"\{\{\s*(%s(?:\.%s)*(?:\s*\|\s*(?:%s))*)\s*\}\}"
                     % (_NAME, _NAME, "|".join(_TEXT_FILTERS)))
_MISSING = object()


def _substitute(source: str, context: dict, filters) -> str | None:
    """A prompt that is only text and ``{{ name.key.key }}`` lookups of plain values
    (optionally through ``upper``, ``lower``, ``title``, ``capitalize`` or ``trim``),
    expanded without compiling it; None when Jinja must do it.

    Most prompts are like that, and Jinja needs a millisecond to compile each distinct
    one. The result is exactly Jinja's: text holds no ``{`` (so no other tag hides in
    it); every lookup goes through dicts by keys that are not attributes of a dict (the
    sandbox's ``getattr`` would find the attribute first) and ends at text or a number;
    filters are Jinja's own functions (``filters()`` gives the environment's table).
    Anything else (another filter, a missing name, None, a list) goes to Jinja, which
    renders it or reports it with its line.
    """
    parts = _LOOKUP.split(source)  # text, lookup, text, lookup, ..., text
    texts = parts[0::2]
    if any("{" in text for text in texts):
        return None
    out = [texts[0]]
    for lookup, text in zip(parts[1::2], texts[1:]):
        path, *applied = lookup.split("|")
        names = path.strip().split(".")
        value = context.get(names[0], _MISSING)
        for name in names[1:]:
            if type(value) is not dict or hasattr(value, name):
                return None
            value = value.get(name, _MISSING)
        if type(value) not in (str, int, float, bool) or (applied and type(value) is not str):
            return None
        if applied:
            table = filters()
            for name in applied:
                value = table[name.strip()](value)
        out.append(str(value))
        out.append(text)
    return "".join(out)


def _template_error(exc: Exception, node_id: str, where, what: str) -> TemplateError:
    import traceback

    import jinja2
    from jinja2.sandbox import SecurityError

    line = getattr(exc, "lineno", None)
    if line is None:
        for frame, lineno in traceback.walk_tb(exc.__traceback__):
            filename = frame.f_code.co_filename
            if filename == "<template>" or filename.endswith((".j2", ".jinja", ".jinja2", ".txt")):
                line = lineno
    at = f"{what}, line {line}" if line else what
    if isinstance(exc, SecurityError):
        message = f"{node_id}: {at}: the template tried something the sandbox forbids ({exc})"
        hint = "templates may only read the storyboard's values"
    elif isinstance(exc, jinja2.UndefinedError):
        message = f"{node_id}: {at}: {exc.message}"
        hint = "check the spelling; names: project, style, vars, scene, shot, camera, location, cast, character, refs, prompt"
    elif isinstance(exc, jinja2.TemplateSyntaxError):
        message = f"{node_id}: {at}: template syntax error: {exc.message}"
        hint = None
    else:
        message = f"{node_id}: {at}: {type(exc).__name__}: {exc}"
        hint = None
    return TemplateError(message, where=where, hint=hint)
