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

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from . import catalog
from ._resources import data_dir
from .editorial import Editorial, shot_code
from .errors import ConfigError, InputError, RefError, ShotflowError, TemplateError, did_you_mean, raise_all
from .load import Loaded, Path_, display_path
from .model import Camera, Entity, NodeKind, NodeSpec, Project, RefKind, RefSpec, Review, ReviewStatus, SceneInfo
from .staging import CHARACTER_COLOURS, LOCATION_TONES, Figure, SceneBlocking, Staging, slots

DEFAULT_MODEL = "runway:4@1"
DEFAULT_SIZE = "1K-16:9"
DEFAULT_FORMAT = "PNG"
DEFAULT_QUALITY = 95
DEFAULT_DURATION = 2.0
SHOT_TEMPLATE = "shot.j2"
SHEET_TEMPLATE = "sheet.j2"

_TAG_RE = re.compile(r"[A-Za-z][A-Za-z0-9]{2,15}\Z")
_MENTION_RE = re.compile(r"(?<![\w@])@([A-Za-z][A-Za-z0-9_-]*)")
_MERGED_FIELDS = ("output", "camera", "safety", "provider_settings")


def _review(data: dict | None) -> Review:
    """A shot's ``review:`` (the schema checked its shape)."""
    if not data:
        return Review()
    status = data.get("status")
    return Review(status=ReviewStatus(status) if status else None, notes=tuple(data.get("notes") or ()))


def expand(loaded: Loaded, *, backend: str | None = None) -> Project:
    """Expand every node of a loaded storyboard (see the module docstring)."""
    return _Expander(loaded, backend).run()


class _Item(NamedTuple):
    """One node to expand, as ``_Expander.run`` finds it in the storyboard."""

    id: str  # "scene/shot", "character:name" or "location:name"
    kind: NodeKind
    name: str  # the shot's id, or the character's or location's name
    scene: str | None  # the shot's scene id (None for a sheet)
    fields: dict  # what the storyboard writes for the node (a shot, or an entity's sheet)
    path: Path_  # where ``fields`` are in the merged document
    owner: dict  # the shot's scene, or the sheet's character or location


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
        self.colours = slots(self.characters, len(CHARACTER_COLOURS))  # one per character, project-wide
        self.tones = slots(self.locations, len(LOCATION_TONES))  # one per location, project-wide
        self.blocking: dict[str, SceneBlocking] = {}  # scene id -> the sides its characters hold

    # -- the whole storyboard -------------------------------------------------

    def run(self) -> Project:
        plans = self._sheet_items()
        editorial = self._editorial()
        codes: dict[str, str] = {}
        omitted: list[str] = []
        scenes = [
            self._scene(si, scene, editorial, plans, codes, omitted)
            for si, scene in enumerate(self.doc.get("scenes") or [])
        ]
        self.style = self._style()
        nodes: dict[str, NodeSpec] = {}
        failed: list[tuple[str, ShotflowError]] = []
        with self.templates.session():
            for index, item in enumerate(plans):
                try:
                    nodes[item.id] = self.node(index, item)
                except ShotflowError as exc:
                    failed.append((item.id, exc))
        self.errors.extend(_once(failed))
        self.templates.save()
        raise_all(self.errors)
        entities = self._entities()
        if omitted:
            nodes = _without_unused(nodes, set(omitted))
        return Project(
            path=self.loaded.main.path,
            title=self.doc.get("title"),
            backend=self.backend,
            style=self.style,
            settings=dict(self.doc.get("runware") or {}),
            nodes=nodes,
            scenes=tuple(scenes),
            inputs=tuple(self.inputs) + self.templates.used(),
            entities=entities,
            editorial=editorial,
            codes=codes,
            omitted=tuple(omitted),
            remote=self.doc.get("remote"),
        )

    def _sheet_items(self) -> list[_Item]:
        """The character and location sheets to generate, as items to expand."""
        plans: list[_Item] = []
        for kind, section in ((NodeKind.CHARACTER, "characters"), (NodeKind.LOCATION, "locations")):
            for name, entity in (self.doc.get(section) or {}).items():
                if entity.get("sheet") is not None:
                    node_id = f"{kind.value}:{name}"
                    self.all_ids.add(node_id)
                    plans.append(_Item(node_id, kind, name, None, entity["sheet"], (section, name, "sheet"), entity))
        return plans

    def _scene(
        self, si: int, scene: dict, editorial, plans: list[_Item], codes: dict[str, str], omitted: list[str]
    ) -> SceneInfo:
        """One scene: its shots become items (ids checked once each, codes given), its info kept."""
        sid = scene["id"]
        ids: list[str] = []
        seen: dict[str, Any] = {}
        for hi, shot in enumerate(scene.get("shots") or []):
            path = ("scenes", si, "shots", hi)
            if shot["id"] in seen:
                self.errors.append(
                    InputError(
                        f"shot id '{sid}/{shot['id']}' is used twice in scene '{sid}' (first at {seen[shot['id']]})",
                        where=self.loaded.where((*path, "id")),
                    )
                )
                continue
            seen[shot["id"]] = self.loaded.where((*path, "id"))
            node_id = f"{sid}/{shot['id']}"
            codes[node_id] = shot_code(
                editorial.code_format, scene_index=si + 1, shot_index=len(seen), scene=sid, shot=shot["id"]
            )
            (omitted if shot.get("omit") else ids).append(node_id)
            self.all_ids.add(node_id)
            plans.append(_Item(node_id, NodeKind.SHOT, shot["id"], sid, shot, path, scene))
        self.shot_ids[sid] = ids
        location = scene.get("location")
        if location is not None and location not in self.locations:
            self.errors.append(
                RefError(
                    f"scene '{sid}' is set in unknown location '{location}'",
                    where=self.loaded.where(("scenes", si, "location")),
                    hint=did_you_mean(location, self.locations) or self._known("locations", self.locations),
                )
            )
        return SceneInfo(
            id=sid,
            title=scene.get("title"),
            location=location,
            description=scene.get("description"),
            notes=scene.get("notes"),
            shots=tuple(ids),
        )

    def _entities(self) -> tuple[Entity, ...]:
        """Every character and location with its picture, for the board's lineup."""
        out = []
        for kind, table, slot in (
            (NodeKind.CHARACTER, self.characters, self.colours),
            (NodeKind.LOCATION, self.locations, self.tones),
        ):
            for name, entity in table.items():
                try:
                    picture = self._entity_ref(kind.value, name, entity, "lineup")
                except ShotflowError:
                    picture = None  # an image that no shot uses and that is missing: words only
                out.append(Entity(kind, name, entity.get("description"), slot[name], picture))
        return tuple(out)

    def _editorial(self) -> Editorial:
        try:
            return Editorial.from_mapping(
                self.doc.get("editorial"), where=lambda key: self.loaded.where(("editorial", key))
            )
        except InputError as exc:
            self.errors.append(exc)
            return Editorial()

    def _style(self) -> str:
        """The project's style, itself a template of project and vars (rendered once)."""
        source = self.doc.get("style") or ""
        try:
            return _normalise(
                self.templates.render_string(
                    source,
                    {"project": {"title": self.doc.get("title")}, "vars": self.doc.get("vars") or {}},
                    "style",
                    self.loaded.where(("style",)),
                )
            )
        except TemplateError as exc:
            self.errors.append(exc)
            return ""

    @staticmethod
    def _known(what: str, names) -> str:
        return f"known {what}: {', '.join(names)}" if names else f"the storyboard defines no {what}"

    # -- one node -------------------------------------------------------------

    def node(self, index: int, item: _Item) -> NodeSpec:
        node_id, kind, name, scene_id, fields, path, owner = item
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
            raise InputError(
                f"{node_id}: pick {pick} but the shot has only {takes} take{'s' if takes > 1 else ''}",
                where=at("pick"),
                hint=f"use a pick from 1 to {takes}, or raise takes",
            )
        refs, implicit, dropped = self._refs(item, at)
        context = self._context(item, merged, refs)
        template = merged.get("template", SHEET_TEMPLATE if kind is not NodeKind.SHOT else SHOT_TEMPLATE)
        prompt = self._prompt(node_id, fields, merged, template, context, path, at)
        tagged = self._check_tags(node_id, prompt, refs, where, dropped)
        _check_prompt_length(node_id, spec, prompt, at("prompt") if "prompt" in merged else where)
        self._check_ref_count(item, spec, refs, implicit, dropped, where)
        camera = Camera(**{k: (str(v) if v is not None else None) for k, v in (merged.get("camera") or {}).items()})
        staging = self._staging(item, camera)
        options = {
            api: merged[key]
            for key, api in (("ttl", "ttl"), ("webhook_url", "webhookURL"), ("upload_endpoint", "uploadEndpoint"))
            if key in merged
        }
        return NodeSpec(
            id=node_id,
            kind=kind,
            name=name,
            scene=scene_id,
            story_index=index,
            where=where,
            model=spec.id,
            width=width,
            height=height,
            output_format=output.get("format", DEFAULT_FORMAT),
            output_quality=output.get("quality", DEFAULT_QUALITY),
            takes=takes,
            pick=pick,
            prompt=prompt,
            refs=tuple(refs),
            tagged=tagged,
            template=template,
            safety=_safety(merged.get("safety")),
            provider_settings=_provider(merged.get("provider_settings")),
            options=options,
            title=fields.get("title"),
            camera=camera,
            duration=float(merged.get("duration", DEFAULT_DURATION)),
            dialogue=fields.get("dialogue"),
            action=fields.get("action"),
            notes=fields.get("notes"),
            staging=staging,
            omit=bool(fields.get("omit")) and kind is NodeKind.SHOT,
            review=_review(fields.get("review")),
        )

    def _check_ref_count(self, item: _Item, spec, refs: list, implicit, dropped: dict, where) -> None:
        """As many references as the model takes: the cap (naming what to drop), the minimum."""
        node_id, kind, owner = item.id, item.kind, item.owner
        # a scene set in an unknown location is one error (said once, for the scene), not a
        # second one in each of its shots for the reference the location would have given
        lost_location = kind is NodeKind.SHOT and owner.get("location") not in (None, *self.locations)
        if len(refs) > spec.max_refs:
            raise _too_many_refs(node_id, spec, refs, implicit, where)
        if len(refs) < spec.min_refs and not lost_location:
            listed = ", ".join(f"{r.label} ({r.via})" for r in refs) or "none"
            hint = "add a cast member, a location or refs"
            if dropped:
                hint += f"; drop_refs leaves out {', '.join(sorted(dropped.values()))}"
            raise RefError(
                f"{node_id} has {len(refs)} reference image{'s' if len(refs) != 1 else ''} ({listed}); "
                f"{spec.id} takes at least {spec.min_refs} (it is image-to-image only)",
                where=where,
                hint=hint,
            )

    def _staging(self, item: _Item, camera: Camera) -> Staging:
        """Who stands where, in which place, seen how: what a preview panel draws (see staging)."""
        node_id, kind, name, scene_id, fields, path, owner = item
        if kind is NodeKind.CHARACTER:
            return Staging("character", cast=(Figure(name, self.colours[name], "center", "camera"),), camera=camera)
        if kind is NodeKind.LOCATION:
            return Staging("location", location=name, tone=self.tones[name], camera=camera)
        cast = list(fields.get("cast") or [])
        blocking = fields.get("blocking") or {}
        for member in blocking:
            if member not in cast:
                listed = ", ".join(cast) or "none"
                raise InputError(
                    f"{node_id}: blocking places '{member}', who is not in the shot's cast (cast: {listed})",
                    where=self.loaded.where((*path, "blocking", member)),
                    hint=did_you_mean(member, cast) or f"add {member} to cast, or remove the blocking entry",
                )
        assert scene_id is not None  # a shot is always in a scene
        location = owner.get("location")
        figures = self.blocking.setdefault(scene_id, SceneBlocking()).place(cast, blocking, self.colours)
        tone = self.tones.get(location) if location is not None else None
        return Staging("shot", cast=figures, location=location, tone=tone, camera=camera)

    def _size(self, node_id, spec, merged, at) -> tuple[int, int]:
        if "width" in merged and "size" not in merged:
            wh = (merged["width"], merged["height"])
            if wh not in spec.sizes.values():
                raise InputError(
                    f"{node_id}: {wh[0]}x{wh[1]} is not a size of {spec.id}",
                    where=at("width"),
                    hint="sizes: " + ", ".join(spec.sizes),
                )
            return wh
        name = merged.get("size", DEFAULT_SIZE if DEFAULT_SIZE in spec.sizes else next(iter(spec.sizes)))
        wh = spec.size_named(name)
        if wh is None:
            hint = did_you_mean(name, spec.sizes) or "sizes: " + ", ".join(spec.sizes)
            raise InputError(f"{node_id}: size '{name}' is not a size of {spec.id}", where=at("size"), hint=hint)
        return wh

    # -- references -------------------------------------------------------------

    def _refs(self, item: _Item, at):
        """The node's references in request order: the scene's location, each cast member,
        then refs (duplicates dropped), less what ``drop_refs`` leaves out. Also returns, for
        the implicit ones, the name that ``drop_refs`` would take ({(kind, target): name}),
        and the tags of those it left out ({tag: name})."""
        node_id, kind, name, scene_id, fields, path, owner = item
        refs: list[RefSpec] = []
        seen: set[tuple[RefKind, str]] = set()
        implicit: dict[tuple[RefKind, str], str] = {}
        dropped: dict[str, str] = {}

        def add(ref: RefSpec | None, entity: str | None = None):
            if ref is not None and (ref.kind, ref.target) not in seen:
                seen.add((ref.kind, ref.target))
                refs.append(ref)
                if entity is not None:
                    implicit[(ref.kind, ref.target)] = entity

        if kind is NodeKind.SHOT:
            location = owner.get("location")
            drop = self._drop_refs(node_id, fields, path, location)
            if location in self.locations:
                entity = self.locations[location]
                if location in drop:
                    dropped[entity.get("tag", location)] = location
                else:
                    add(self._entity_ref("location", location, entity, "location"), location)
            for ci, member in enumerate(fields.get("cast") or []):
                if member not in self.characters:
                    raise RefError(
                        f"{node_id}: unknown character '{member}' in cast",
                        where=self.loaded.where((*path, "cast", ci)),
                        hint=did_you_mean(member, self.characters) or self._known("characters", self.characters),
                    )
                if member in drop:
                    dropped[self.characters[member].get("tag", member)] = member
                    continue
                add(self._entity_ref("character", member, self.characters[member], "cast"), member)
        for ri, item in enumerate(fields.get("refs") or []):
            ref = self._ref_item(node_id, scene_id, item, (*path, "refs", ri))
            if ref.kind is RefKind.NODE and ref.target == node_id:
                what = "shot" if kind is NodeKind.SHOT else "sheet"
                raise RefError(
                    f"{node_id}: refs names the {what} itself ('{ref.label}')",
                    where=self.loaded.where((*path, "refs", ri)),
                    hint=f"a {what} cannot be its own reference: name an earlier shot, a file or a URL",
                )
            add(ref)
        return refs, implicit, dropped

    def _drop_refs(self, node_id, fields, path, location) -> set[str]:
        """``drop_refs: [NAME, ...]``: the scene's location or cast members whose image the shot
        does not send (they stay in the prompt's context). Each must be one of those."""
        drop = fields.get("drop_refs") or []
        names = ([location] if location is not None else []) + list(fields.get("cast") or [])
        for i, entry in enumerate(drop):
            if entry not in names:
                raise RefError(
                    f"{node_id}: drop_refs names '{entry}', which is neither the scene's location nor "
                    "in the shot's cast",
                    where=self.loaded.where((*path, "drop_refs", i)),
                    hint=did_you_mean(entry, names)
                    or (
                        f"this shot's location and cast: {', '.join(names)}"
                        if names
                        else "this shot has no location or cast"
                    ),
                )
        return set(drop)

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
        return RefSpec(RefKind.FILE, self._file(image, source.path.parent, where, f"{kind} '{name}'"), tag, image, via)

    def _ref_item(self, node_id, scene_id, item, path) -> RefSpec:
        where = self.loaded.where(path)
        tag = None
        if isinstance(item, dict):
            tag = item.get("tag")
            if "url" in item:
                return RefSpec(RefKind.URL, item["url"], tag, item["url"], "refs")
            if "file" in item:
                return RefSpec(
                    RefKind.FILE, self._file(item["file"], self._base(path), where, node_id), tag, item["file"], "refs"
                )
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
        if Path(text).suffix:  # a file name: the file must be there
            return RefSpec(
                RefKind.FILE,
                self._file(text, self._base(path), where, node_id),
                Path(text).stem if _TAG_RE.match(Path(text).stem) else None,
                text,
                "refs",
            )
        raise self._unknown(node_id, text, scene_id, where)

    def _base(self, path: Path_) -> Path:
        """The folder a relative path is resolved against: that of the file the item came from."""
        for n in range(len(path), 0, -1):
            hit = self.loaded.origin.get(tuple(path[:n]))
            if hit:
                return hit[0].path.parent
        return self.root

    def _file(self, rel: str, base: Path, where, owner: str) -> str:
        """A reference file's real path, once it is known to be a readable image of the
        project (or of a folder the user allows) within the pixel limit."""
        from .trust import Refused, check_path_text, project_folder, readable_file

        known = self.files.get((base, rel))
        if known is not None:
            return known
        shown = rel if len(rel) <= 80 else rel[:77] + "..."
        try:
            check_path_text(rel)
            target = base / rel
            if not os.path.lexists(target):
                hint = None
                if target.parent.is_dir():
                    hint = did_you_mean(target.name, [p.name for p in target.parent.iterdir()])
                raise RefError(
                    f"{owner}: reference file not found: {shown}",
                    where=where,
                    hint=hint or f"looked for {display_path(target)}",
                )
            real = readable_file(target, project_folder(self.root), "reference file")
            _check_image(real)
        except Refused as exc:
            raise RefError(f"{owner}: reference {shown}: {exc.message}", where=where, hint=exc.hint) from None
        except OSError as exc:  # a name too long for the file system, a loop of links
            raise RefError(f"{owner}: reference {shown}: {exc.strerror or exc}", where=where) from None
        self.inputs[real] = None
        self.files[(base, rel)] = str(real)
        return str(real)

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
        return RefError(
            f"{node_id}: unknown reference '{text}'",
            where=where,
            hint=hint or "write 'scene/shot', 'character:NAME', 'location:NAME', a file path or a URL",
        )

    def _check_tags(self, node_id: str, prompt: str, refs: list[RefSpec], where, dropped: dict[str, str]) -> bool:
        if "@" not in prompt:
            return False
        mentions = list(dict.fromkeys(_MENTION_RE.findall(prompt)))
        if not mentions:
            return False
        tags = {r.tag: r for r in refs if r.tag}
        for mention in mentions:
            if mention not in tags:
                listed = ", ".join(f"@{t}" for t in tags) or "none"
                hint = (
                    f"drop_refs leaves out {dropped[mention]}'s image"
                    if mention in dropped
                    else did_you_mean(mention, tags) or "add it to cast or refs, or give a reference that tag"
                )
                raise RefError(
                    f"{node_id}: the prompt names @{mention} but no reference of the shot has that tag "
                    f"(tags: {listed})",
                    where=where,
                    hint=hint,
                )
        seen: dict[str, RefSpec] = {}
        for ref in refs:
            if not ref.tag or not _TAG_RE.match(ref.tag):
                raise RefError(
                    f"{node_id}: reference {ref.label} has no valid tag ({ref.tag!r}); with @tags in "
                    "the prompt every reference needs one: 3-16 letters and digits, starting with a letter",
                    where=where,
                    hint="give it one with {shot: ..., tag: name} or a character's tag:",
                )
            if ref.tag in seen:
                raise RefError(
                    f"{node_id}: references {seen[ref.tag].label} and {ref.label} have the same tag '{ref.tag}'",
                    where=where,
                    hint="give one of them another tag",
                )
            seen[ref.tag] = ref
        return True

    # -- prompts ----------------------------------------------------------------

    def _context(self, item: _Item, merged: dict, refs: list[RefSpec]) -> dict[str, Any]:
        node_id, kind, name, scene_id, owner = item.id, item.kind, item.name, item.scene, item.owner

        def entity(section: dict, key: str) -> dict[str, Any]:
            data = section[key]
            return {
                "name": key,
                "description": data.get("description", ""),
                "tag": data.get("tag", key),
                "notes": data.get("notes"),
            }

        camera = {"framing": None, "angle": None, "lens": None, "move": None, **(merged.get("camera") or {})}
        context: dict[str, Any] = {
            "project": {"title": self.doc.get("title")},
            "style": self.style,
            "vars": self.doc.get("vars") or {},
            "camera": camera,
            "refs": [
                {
                    "position": i + 1,
                    "tag": r.tag,
                    "id": r.target if r.kind is RefKind.NODE else None,
                    "label": r.label,
                    "kind": r.kind.value,
                    "via": r.via,
                }
                for i, r in enumerate(refs)
            ],
            "character": None,
            "location": None,
            "cast": {},
            "scene": None,
        }
        shot = {
            "id": node_id,
            "name": name,
            "title": merged.get("title"),
            "takes": merged.get("takes", 1),
            "duration": merged.get("duration", DEFAULT_DURATION),
            "dialogue": merged.get("dialogue"),
            "action": merged.get("action"),
            "notes": merged.get("notes"),
        }
        if kind is NodeKind.SHOT:
            location = owner.get("location")
            context["scene"] = {
                "id": scene_id,
                "title": owner.get("title"),
                "description": owner.get("description"),
                "notes": owner.get("notes"),
                "location": location,
            }
            if location in self.locations:
                context["location"] = entity(self.locations, location)
            elif location is not None:  # unknown: the scene's error says so; its prompts still expand
                context["location"] = {"name": location, "description": location, "tag": location, "notes": None}
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


def _check_image(path: Path) -> None:
    """The file's header says it is a PNG, JPEG or WebP image within the pixel limit
    (``trust.image_header``). A file that passed, unchanged since (``statefile.signature``),
    is not opened again: the fact is kept in the user cache."""
    from . import _usercache
    from .statefile import signature
    from .trust import image_header

    st = os.stat(path)
    key = "\0".join(map(str, (path, *signature(st))))
    if _usercache.has("image", key):
        return
    with open(path, "rb") as f:
        image_header(f, "file")
    _usercache.remember("image", key)


def _check_prompt_length(node_id: str, spec, prompt: str, where) -> None:
    """The expanded prompt within the model's bounds."""
    if not spec.prompt_min <= len(prompt) <= spec.prompt_max:
        raise InputError(
            f"{node_id}: the expanded prompt has {len(prompt)} characters; {spec.id} takes "
            f"{spec.prompt_min} to {spec.prompt_max}",
            where=where,
            hint="shorten the prompt, the style or the template" if len(prompt) else "write a prompt",
        )


def _too_many_refs(node_id: str, spec, refs: list[RefSpec], implicit: dict, where) -> RefError:
    """More references than the model takes: each listed with why it is there and how to
    leave it out (``drop_refs: [NAME]`` for the location and cast, else removing it from refs)."""
    listed, drops = [], []
    for i, ref in enumerate(refs, 1):
        entity = implicit.get((ref.kind, ref.target))
        if entity is None:
            listed.append(f"{i}. {ref.label} (refs)")
        else:
            what = "the location" if ref.via == "location" else "cast"
            listed.append(f"{i}. {ref.label} ({what} {entity}: drop_refs: [{entity}])")
            drops.append(entity)
    hint = "leave one out"
    if drops:
        hint += (
            f": drop_refs: [{drops[0]}] keeps {drops[0]} in the prompt but sends no image of it"
            f"{'' if len(refs) == len(drops) else '; or remove an item from refs'}"
        )
    else:
        hint += ": remove an item from refs"
    return RefError(
        f"{node_id} has {len(refs)} reference images, {spec.id} takes at most {spec.max_refs}: " + ", ".join(listed),
        where=where,
        hint=hint,
    )


def _once(failed: list[tuple[str, ShotflowError]]) -> list[ShotflowError]:
    """Node errors with one cause reported once: a bad value in ``defaults`` or a character's
    missing image fails every node that uses it, at the same place with the same words.

        a/one: size '1K-16:10' is not …  ×16   →   a/one, a/two and 14 more: size '1K-16:10' is not …
    """
    groups: dict[tuple, list[tuple[str, ShotflowError]]] = {}
    for node_id, exc in failed:
        rest = exc.message.removeprefix(f"{node_id}: ")
        groups.setdefault((type(exc), str(exc.where), rest, exc.hint), []).append((node_id, exc))
    merged = []
    for (_, _, rest, _), items in groups.items():
        first = items[0][1]
        if len(items) == 1 or not first.message.startswith(f"{items[0][0]}: "):
            merged.append(first)  # alone, or its message names no node (a character's image)
            continue
        ids = [node_id for node_id, _ in items]
        names = (
            ", ".join(ids[:-1]) + f" and {ids[-1]}" if len(ids) <= 3 else f"{ids[0]}, {ids[1]} and {len(ids) - 2} more"
        )
        merged.append(type(first)(f"{names}: {rest}", where=first.where, hint=first.hint))
    return merged


def _without_unused(nodes: dict[str, NodeSpec], omitted: set[str]) -> dict[str, NodeSpec]:
    """Drop omitted shots, but those a shot in the cut references (through any chain):
    they stay in the graph as references, out of the cut."""
    needed: set[str] = set()
    stack = [node_id for node_id in nodes if node_id not in omitted]
    while stack:
        node_id = stack.pop()
        if node_id in needed or node_id not in nodes:
            continue
        needed.add(node_id)
        stack.extend(r.target for r in nodes[node_id].refs if r.kind is RefKind.NODE)
    return {node_id: spec for node_id, spec in nodes.items() if node_id in needed}


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
        self._session: contextlib.ExitStack | None = None

    @contextlib.contextmanager
    def session(self) -> Iterator[None]:
        """Every expansion of one load under one watch of the sandbox's time budget
        (``BoundedSandbox.watch``), begun when the sandbox is first needed."""
        self._session = contextlib.ExitStack()
        try:
            with self._session:
                yield
        finally:
            self._session = None

    @property
    def env(self):
        if self._env is None:
            import jinja2

            from ._sandbox import BoundedSandbox, TemplateFiles
            from .trust import inside, policy, project_folder

            builtin = data_dir("templates")
            folders, trusted, refused = [], [builtin], {}
            if self.project_dir.is_dir():
                folders.append(self.project_dir)
                real = os.path.realpath(self.project_dir)
                if inside(real, project_folder(self.root)) or any(inside(real, p) for p in policy().allow_paths):
                    trusted.append(self.project_dir)
                else:
                    refused[self.project_dir] = (
                        f"{display_path(self.project_dir)}/ leads to {real}, outside the project folder"
                    )
            folders.append(builtin)
            self._env = BoundedSandbox(
                loader=TemplateFiles(folders, trusted, refused),
                undefined=jinja2.StrictUndefined,
                autoescape=False,
                auto_reload=False,
                bytecode_cache=_file_codes(self.codes),  # template files: compiled once, as prompts are
            )
            if self._session is not None:
                self._session.enter_context(self._env.watch())
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
            except jinja2.TemplateError as exc:  # syntax, or nested too deeply (_sandbox.Exhausted)
                raise _template_error(exc, node_id, where, "prompt") from None
            self._compiled[source] = template
        return self._render(template, context, node_id, where, "prompt", lambda: source)

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
                raise TemplateError(
                    f"{node_id}: template '{name}' not found in {display_path(self.project_dir)}/ "
                    "or the built-in templates",
                    where=where,
                    hint=did_you_mean(name, names) or "templates: " + ", ".join(names),
                ) from None
            except jinja2.TemplateError as exc:
                raise _template_error(exc, node_id, where, f"template {name}") from None
            self._compiled["\0" + name] = template
            if template.filename:
                self._used[Path(template.filename)] = None
        return self._render(
            template, context, node_id, where, f"template {name}", lambda: self.env.loader.get_source(self.env, name)[0]
        )

    def _render(self, template, context, node_id, where, what, source=lambda: "") -> str:
        """``source()`` gives the template's text, read only to explain an undefined name."""
        import jinja2

        try:
            return self.env.render(template, context)
        except jinja2.UndefinedError as exc:
            raise _undefined_error(exc, node_id, where, what, source(), context) from None
        except (jinja2.TemplateError, ArithmeticError, LookupError, TypeError, ValueError, AttributeError) as exc:
            # errors of the template's own expressions ({{ 1/0 }}, {{ x[5] }}) are the user's to fix
            raise _template_error(exc, node_id, where, what) from None
        except RecursionError as exc:  # a macro calling itself, a template including itself
            error = _template_error(exc, node_id, where, what)
            error.message = error.message.split(": RecursionError")[0] + (
                ": calls or includes nest too deeply (does a macro call itself, or a template include itself?)"
            )
            raise error from None


def _file_codes(codes: _CodeCache):
    """Jinja's bytecode cache hook (``jinja2.BytecodeCache``) over the user cache's compiled
    templates, for template files: their code is kept with the prompts', under the same key
    (``_CodeCache``: authenticated, named by the Jinja, Python and sandbox versions), by the
    file's name and the hash of its source (Jinja's bucket key and checksum). ~20 ms a run."""
    import jinja2

    class FileCodes(jinja2.BytecodeCache):
        def load_bytecode(self, bucket) -> None:
            raw = codes.codes.get(f"file:{bucket.key}:{bucket.checksum}")
            if raw is not None:
                import marshal

                bucket.code = marshal.loads(raw)

        def dump_bytecode(self, bucket) -> None:
            import marshal

            codes.codes[f"file:{bucket.key}:{bucket.checksum}"] = marshal.dumps(bucket.code)
            codes.dirty = True

    return FileCodes()


_SANDBOX_VERSION = 3  # of the code _sandbox's generator writes: in the cache file's name


class _CodeCache:
    """Compiled prompt templates by the hash of their source, kept between runs.

    Jinja needs about a millisecond to parse and compile a template: for a storyboard
    of a thousand distinct prompts that is most of a plan. The compiled code is a pure
    function of the source (and of the Jinja and Python versions, which name the file),
    so it is kept in the user cache, as Jinja's own bytecode caches do, authenticated by
    this user's key (``_usercache.seal``): code that another user, or a CI cache restored
    from elsewhere, put there is never run. Measured at 1000 prompts that each need Jinja:
    a warm plan spends 0.4 s instead of 1.9 s of CPU.
    """

    LIMIT = 50_000

    def __init__(self):
        import sys

        import jinja2

        from ._usercache import user_cache_dir
        from ._version import __version__

        root = user_cache_dir()
        tag = (
            f"jinja{jinja2.__version__}-py{sys.version_info[0]}{sys.version_info[1]}-shotflow{__version__}"
            f"-sandbox{_SANDBOX_VERSION}"
        )
        self.path = None if root is None else root / f"templates-{tag}.marshal"
        self.codes: dict[str, bytes] = {}
        self.dirty = False
        if self.path is not None:
            import marshal

            from ._usercache import unseal

            try:
                # compiled code is run: only if this user's key vouches for the file (else rebuilt)
                payload = unseal(self.path.read_bytes())
                self.codes = marshal.loads(payload) if payload is not None else {}
            except (OSError, ValueError, EOFError, TypeError):
                self.codes = {}
            if not isinstance(self.codes, dict):
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
            codes = dict(list(codes.items())[-self.LIMIT :])
        from ._usercache import seal

        with contextlib.suppress(OSError):
            atomic_write(self.path, seal(marshal.dumps(codes)), mode=0o600)
        self.dirty = False


_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_TEXT_FILTERS = ("upper", "lower", "title", "capitalize", "trim")
_LOOKUP = re.compile(
    r"\{\{\s*(%s(?:\.%s)*(?:\s*\|\s*(?:%s))*)\s*\}\}"  # noqa: UP031 - a regex full of braces
    % (_NAME, _NAME, "|".join(_TEXT_FILTERS))
)
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
    for lookup, text in zip(parts[1::2], texts[1:], strict=False):
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


_CONTEXT_NAMES = (
    "project",
    "style",
    "vars",
    "scene",
    "shot",
    "camera",
    "location",
    "cast",
    "character",
    "refs",
    "prompt",
)
_NO_ATTRIBUTE = re.compile(r"has no attribute '([^']+)'")
_UNDEFINED = re.compile(r"'([^']+)' is undefined")


def _undefined_error(exc, node_id: str, where, what: str, source: str, context: dict) -> TemplateError:
    """An undefined name or attribute, said in the storyboard's words: which value lacks it,
    what that value has, and the closest of those (``cast.ana`` has no attribute 'desciption':
    did you mean 'description'?)."""
    error = _template_error(exc, node_id, where, what)
    at = (
        error.message[: -len(exc.message)]
        if exc.message and error.message.endswith(exc.message)
        else f"{node_id}: {what}: "
    )
    name = _UNDEFINED.search(exc.message or "")
    if name:
        hint = did_you_mean(name[1], context) or "names: " + ", ".join(n for n in _CONTEXT_NAMES if n in context)
        return TemplateError(f"{at}'{name[1]}' is undefined", where=where, hint=hint)
    attribute = _NO_ATTRIBUTE.search(exc.message or "")
    if not attribute:
        return error
    attr = attribute[1]
    for match in re.finditer(r"([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\s*\.\s*" + re.escape(attr) + r"(?!\w)", source):
        path = match[1].split(".")
        value: Any = context
        for part in path:
            value = value.get(part, _MISSING) if isinstance(value, dict) else _MISSING
        if value is _MISSING or (isinstance(value, dict) and attr in value):
            continue  # a loop variable, or not this expression
        dotted = match[1]
        if value is None:
            why = {
                "location": "the scene has no location",
                "character": "only a character sheet has one",
                "scene": "only a shot has one",
            }.get(dotted, "it is none here")
            return TemplateError(
                f"{at}{dotted} is empty ({why}), so it has no attribute '{attr}'",
                where=where,
                hint="give the scene a location: NAME" if dotted == "location" else None,
            )
        if not isinstance(value, dict):
            return TemplateError(
                f"{at}{dotted} is {type(value).__name__}, so it has no attribute '{attr}'", where=where
            )
        keys = [str(k) for k in value]
        if dotted == "cast":
            listed = ", ".join(keys) or "nobody"
            hint = did_you_mean(attr, keys) or f"add {attr} to the shot's cast"
            return TemplateError(f"{at}'{attr}' is not in this shot's cast (cast: {listed})", where=where, hint=hint)
        has = f"{dotted} has: {', '.join(keys)}" if keys else f"{dotted} is empty"
        close = did_you_mean(attr, keys)
        return TemplateError(
            f"{at}{dotted} has no attribute '{attr}'", where=where, hint=f"{close} {has}" if close else has
        )
    return error


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
    from ._sandbox import Exhausted, TemplateRefused

    if isinstance(exc, Exhausted):
        message = f"{node_id}: {at}: {exc}"
        hint = "a prompt template must stay small: a few hundred characters, no deep recursion"
    elif isinstance(exc, TemplateRefused):
        message = f"{node_id}: {at}: {exc}"
        hint = None
    elif isinstance(exc, SecurityError):
        message = f"{node_id}: {at}: the template tried something the sandbox forbids ({exc})"
        hint = "templates may only read the storyboard's values"
    elif isinstance(exc, jinja2.UndefinedError):
        message = f"{node_id}: {at}: {exc.message}"
        hint = (
            "check the spelling; names: project, style, vars, scene, shot, camera, location, cast, character, "
            "refs, prompt"
        )
    elif isinstance(exc, jinja2.TemplateSyntaxError):
        message = f"{node_id}: {at}: template syntax error: {exc.message}"
        hint = None
    else:
        message = f"{node_id}: {at}: {type(exc).__name__}: {exc}"
        hint = None
    return TemplateError(message, where=where, hint=hint)


def load_project(path: Path | str, overrides: dict[str, Any] | None = None, backend: str | None = None) -> Project:
    """Load, check and expand a storyboard (raises InputError with every problem found;
    ConfigError, a UsageError, for overrides that do not fit it)."""
    import gc

    from .load import load
    from .model import check_frame_names

    # Loading builds a few hundred thousand small objects and frees none: the cyclic
    # collector would walk them again and again for nothing (a fifth of the time).
    enabled = gc.isenabled()
    gc.disable()
    try:
        loaded = load(path, overrides)
        project = expand(loaded, backend=backend)
        loaded.release()
        check_frame_names(project.nodes)  # two nodes must never write one file in renders/
        return project
    finally:
        if enabled:
            gc.enable()
