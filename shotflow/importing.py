"""``shotflow import script.fountain``: a screenplay to a storyboard to start from, and back in.

    script.fountain ──fountain.read──► Screenplay ──draft──► storyboard.yaml (commented, validates)

    EXT. LIGHTHOUSE - DUSK  ──►  scene lighthouse-dusk, title "EXT. LIGHTHOUSE - DUSK"
                                 location ext-lighthouse ("exterior: lighthouse")
                                 one shot "master": prompt from the first action, action,
                                 dialogue ("MARA: (to herself) Not tonight."), duration from the words
    speakers (MARA, TOM …)  ──►  characters mara, tom … each with a description to fill
    transitions (CUT TO:)   ──►  the scene's notes

``--update storyboard.yaml`` reads a revised script into a storyboard imported before
(through writeback.Editor: comments and formatting kept). A scene of the script is
matched to a scene of the storyboard by id, then by title (its heading), then by its
words (a heading that changed: "renamed"); unmatched script scenes are new and are
inserted where the script has them; storyboard scenes whose title is a heading no longer
in the script are reported as removed and kept. New speakers and places are added.
Nothing in an existing scene is touched: its shots are the user's.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .fountain import Scene, Screenplay, Speech, split_heading

SHOT_ID = "master"
#: Words a second on screen, to estimate a scene's length (dialogue at ~150 words a minute).
DIALOGUE_WPS = 2.5
ACTION_WPS = 4.0
MIN_SECONDS, MAX_SECONDS = 2.0, 120.0
PROMPT_ACTION_CHARS = 600
RENAMED_SIMILARITY = 0.6
_SETTING_WORDS = {"INT": "interior", "EXT": "exterior", "INT/EXT": "interior and exterior", "EST": "establishing"}
_ID_MAX = 48


def slug(text: str, *, limit: int = _ID_MAX) -> str:
    """An id from free text: ``CAPTAIN ELLIS`` -> ``captain-ellis``, ``Café du Port`` -> ``cafe-du-port``."""
    import unicodedata

    flat = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    words = re.sub(r"[^a-z0-9]+", "-", flat).strip("-")
    if len(words) > limit:
        words = words[:limit].rsplit("-", 1)[0] or words[:limit]
    return words or "x"


def _unique(base: str, taken: set[str]) -> str:
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    taken.add(name)
    return name


def character_id(name: str) -> str:
    return slug(name)


def location_id(scene: Scene) -> str:
    setting = (scene.setting or "").replace("/", " ")
    return slug(f"{setting} {scene.place}")


def location_description(scene: Scene) -> str:
    where = scene.place.lower().replace(" - ", ", ")
    setting = _SETTING_WORDS.get(scene.setting or "")
    return f"{setting}: {where}" if setting else where


def scene_base_id(scene: Scene) -> str:
    parts = [scene.place] + ([scene.time] if scene.time else [])
    return slug(" ".join(parts))


def dialogue_text(speeches: tuple[Speech, ...]) -> str:
    """``MARA: Not tonight.`` a line each; two speeches spoken at once say so."""
    lines: list[str] = []
    for s in speeches:
        cue = s.cue + (" (at the same time)" if s.dual and lines and speeches[len(lines) - 1].dual else "")
        lines.append(f"{cue}: {s.text}".rstrip())
    return "\n".join(lines)


def estimate_seconds(scene: Scene) -> float:
    """A first timing for the animatic, from the words: the script's own pace."""
    spoken = sum(len(s.text.split()) for s in scene.speeches)
    acted = sum(len(a.split()) for a in scene.action)
    seconds = spoken / DIALOGUE_WPS + acted / ACTION_WPS
    return min(MAX_SECONDS, max(MIN_SECONDS, round(seconds * 2) / 2))


def _prompt(scene: Scene) -> str:
    first = scene.action[0] if scene.action else scene.heading
    first = " ".join(first.split())
    if len(first) > PROMPT_ACTION_CHARS:
        first = first[:PROMPT_ACTION_CHARS].rsplit(" ", 1)[0] + " …"
    when = f" at {scene.time.lower()}" if scene.time else ""
    # the location by reference: describing the place once updates every shot set there
    return "{{ location.description }}" + when + ": " + first.replace("{", "(").replace("}", ")")


def _notes(scene: Scene) -> str | None:
    parts = []
    if scene.opens_on:
        parts.append(f"opens on {scene.opens_on}")
    if scene.ends_on:
        parts.append(f"ends on {scene.ends_on}")
    parts += [f"card: {c}" for c in scene.centered]
    if scene.number:
        parts.append(f"script scene {scene.number}")
    return "; ".join(parts) or None


def scene_mapping(scene: Scene, scene_id: str, location: str, cast: list[str]) -> dict[str, Any]:
    shot: dict[str, Any] = {"id": SHOT_ID}
    if cast:
        shot["cast"] = cast
    seconds = estimate_seconds(scene)
    shot.update(
        prompt=_prompt(scene), camera={"framing": "wide"}, duration=int(seconds) if seconds.is_integer() else seconds
    )
    if scene.action:
        shot["action"] = "\n".join(scene.action)
    if scene.speeches:
        shot["dialogue"] = dialogue_text(scene.speeches)
    mapping: dict[str, Any] = {"id": scene_id, "title": scene.heading, "location": location}
    if scene.synopsis:
        mapping["description"] = scene.synopsis
    notes = _notes(scene)
    if notes:
        mapping["notes"] = notes
    mapping["shots"] = [shot]
    return mapping


@dataclass
class Draft:
    """The storyboard a screenplay starts: plain data, in the script's order."""

    title: str | None
    characters: dict[str, str] = field(default_factory=dict)  # id -> the name as cued
    locations: dict[str, str] = field(default_factory=dict)  # id -> description
    scenes: list[tuple[Scene, dict[str, Any]]] = field(default_factory=list)


def draft(play: Screenplay, *, taken_scenes: set[str] | None = None, characters: dict[str, str] | None = None) -> Draft:
    """Scenes, characters and locations of ``play``; ``taken_scenes`` are ids already in use."""
    result = Draft(title=play.title)
    taken = set(taken_scenes or ())
    names = dict(characters or {})  # cued name -> id
    for name in play.characters:
        if name not in names:
            names[name] = _unique(character_id(name), set(names.values()))
            result.characters[names[name]] = name
    for scene in play.scenes:
        loc = location_id(scene)
        result.locations.setdefault(loc, location_description(scene))
        cast = [names[c] for c in scene.characters]
        sid = _unique(scene_base_id(scene), taken)
        result.scenes.append((scene, scene_mapping(scene, sid, loc, cast)))
    return result


HEADER = """\
Imported from {source} by `shotflow import` ({count} scenes, {speakers} speakers).
One scene per scene heading, with one wide master shot to start: split it into shots,
describe the characters and places (their descriptions reach the prompts), then render.
`shotflow import {source} --update {name}` reads a revised script in: it adds new
scenes and never touches the ones here."""


def to_yaml(d: Draft, *, source: str, name: str) -> str:
    """The draft as a commented storyboard (ruamel, so comments sit where they belong)."""
    import io

    from ruamel.yaml import YAML
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    doc = CommentedMap()
    doc["shotflow"] = 1
    if d.title:
        doc["title"] = d.title
    doc["characters"] = CommentedMap()
    for cid, cued in d.characters.items():
        entry = CommentedMap(description="")
        entry.yaml_add_eol_comment(f"# who is {cued}? age, look, wardrobe", "description")
        doc["characters"][cid] = entry
    doc["locations"] = CommentedMap()
    for lid, description in d.locations.items():
        doc["locations"][lid] = CommentedMap(description=description)
    doc["scenes"] = CommentedSeq(_tree(mapping) for _, mapping in d.scenes)
    for i, (scene, _) in enumerate(d.scenes):
        doc["scenes"].yaml_set_comment_before_after_key(
            i, before=f"{scene.heading} (script line {scene.line})", indent=2
        )
    header = HEADER.format(source=source, name=name, count=len(d.scenes), speakers=len(d.characters))
    doc.yaml_set_start_comment(header)
    doc.yaml_set_comment_before_after_key(
        "characters", before="\nthe speakers of the script, in order of their first line"
    )
    doc.yaml_set_comment_before_after_key("locations", before="\nfrom the scene headings: INT./EXT. and the place")
    doc.yaml_set_comment_before_after_key("scenes", before="\nin the script's order")
    y = YAML()
    y.width = 1 << 16
    y.indent(mapping=2, sequence=4, offset=2)
    out = io.StringIO()
    y.dump(doc, out)
    return out.getvalue()


def _tree(value: Any) -> Any:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq
    from ruamel.yaml.scalarstring import LiteralScalarString

    if isinstance(value, dict):
        return CommentedMap((k, _tree(v)) for k, v in value.items())
    if isinstance(value, list):
        seq = CommentedSeq(_tree(v) for v in value)
        if all(isinstance(v, str) for v in value):
            seq.fa.set_flow_style()
        return seq
    if isinstance(value, str) and "\n" in value:
        return LiteralScalarString(value)
    return value


# -- --update -------------------------------------------------------------------------------------------------------


@dataclass
class Update:
    """What re-importing a revised script did (and did not) do."""

    added: list[str] = field(default_factory=list)  # scene ids
    renamed: list[tuple[str, str]] = field(default_factory=list)  # (storyboard scene id, the script's new heading)
    removed: list[str] = field(default_factory=list)  # storyboard scene ids whose heading left the script
    kept: int = 0
    characters: list[str] = field(default_factory=list)
    locations: list[str] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"added scene {s}" for s in self.added]
        out += [
            f"renamed: scene {old} is '{heading}' in the script (its shots are kept; rename it by hand if you like)"
            for old, heading in self.renamed
        ]
        out += [
            f"removed: scene {s} is not in the script any more (kept: delete it, or mark its shots omit: true)"
            for s in self.removed
        ]
        out += [f"added character {c}" for c in self.characters] + [f"added location {loc}" for loc in self.locations]
        out.append(f"{self.kept} scene{'s' if self.kept != 1 else ''} already in the storyboard, untouched")
        return out


def update(play: Screenplay, storyboard: Path, *, write: bool = True) -> Update:
    """Merge a revised script into ``storyboard`` (see the module docstring)."""
    from .load import load
    from .writeback import Editor

    doc = load(storyboard).document
    existing = [s for s in (doc.get("scenes") or []) if isinstance(s, dict) and "id" in s]
    by_id = {s["id"]: s for s in existing}
    by_title = {str(s.get("title", "")).strip().upper(): s["id"] for s in existing if s.get("title")}
    defined = set(doc.get("characters") or {})
    cued = {name: character_id(name) for name in play.characters if character_id(name) in defined}
    d = draft(play, taken_scenes=set(by_id), characters=cued)
    result = Update()
    matched: dict[int, str] = {}  # script scene index -> storyboard scene id
    used: set[str] = set()
    for i, (scene, _mapping) in enumerate(d.scenes):
        base = scene_base_id(scene)
        if base in by_id and base not in used:
            matched[i] = base
        elif scene.heading.strip().upper() in by_title and by_title[scene.heading.strip().upper()] not in used:
            matched[i] = by_title[scene.heading.strip().upper()]
        if i in matched:
            used.add(matched[i])
    # a heading that changed: the unmatched storyboard scene that reads most like it
    orphans = [s for s in existing if s["id"] not in used and _is_heading(s.get("title"))]
    for i, (scene, _) in enumerate(d.scenes):
        if i in matched or not orphans:
            continue
        words = _words(scene)
        best = max(orphans, key=lambda s: _similarity(words, _scene_words(s)))
        if _similarity(words, _scene_words(best)) >= RENAMED_SIMILARITY:
            matched[i] = best["id"]
            used.add(best["id"])
            orphans.remove(best)
            result.renamed.append((best["id"], scene.heading))
    result.removed = [s["id"] for s in orphans]
    result.kept = len(matched)
    editor = Editor(storyboard)
    previous: str | None = None
    defined_locations = set(doc.get("locations") or {})
    for i, (scene, mapping) in enumerate(d.scenes):
        if i in matched:
            previous = matched[i]
            continue
        for cid in mapping["shots"][0].get("cast", []):
            if cid in d.characters and cid not in result.characters:
                editor.add_entry(
                    "characters", cid, {"description": ""}, comment=f"who is {d.characters[cid]}? age, look, wardrobe"
                )
                result.characters.append(cid)
        loc = mapping["location"]
        if loc not in defined_locations:
            editor.add_entry("locations", loc, {"description": d.locations[loc]})
            defined_locations.add(loc)
            result.locations.append(loc)
        editor.insert_scene(
            _literal(mapping),
            after=previous,
            comment=f"{scene.heading} (script line {scene.line}, added by shotflow import --update)",
        )
        result.added.append(mapping["id"])
        previous = mapping["id"]
    if write:
        result.written = editor.save()
    return result


def _literal(value: Any) -> Any:
    """Text of several lines as a YAML block (``|-``), the way the first import wrote it."""
    from ruamel.yaml.scalarstring import LiteralScalarString

    if isinstance(value, dict):
        return {k: _literal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_literal(v) for v in value]
    if isinstance(value, str) and "\n" in value:
        return LiteralScalarString(value)
    return value


def _is_heading(title: Any) -> bool:
    if not isinstance(title, str):
        return False
    setting, _, _ = split_heading(title)
    return setting is not None


def _words(scene: Scene) -> str:
    return " ".join([*scene.action, *(f"{s.cue}: {s.text}" for s in scene.speeches)])


def _scene_words(scene: dict) -> str:
    parts = []
    for shot in scene.get("shots") or []:
        if isinstance(shot, dict):
            parts += [str(shot.get("action") or ""), str(shot.get("dialogue") or "")]
    return " ".join(parts)


def _similarity(a: str, b: str) -> float:
    if not a or not b:
        return 0.0
    return difflib.SequenceMatcher(None, a.split(), b.split(), autojunk=False).ratio()
