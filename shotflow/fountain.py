"""Reading a screenplay in Fountain (https://fountain.io) into scenes, speeches and action.

    script.fountain ──screenplay-tools──► elements ──► Screenplay
                                                       ├── title (from the title page)
                                                       ├── characters: speakers, in order of first line
                                                       └── scenes: Scene(heading, setting, place, time,
                                                                         action, speeches, transitions)

The parser is ``screenplay-tools`` (MIT, maintained, no dependencies). ``jouvence``, the
other Fountain parser on PyPI, was tried on the screenplay of our tests and set aside: it
never returns on a boneyard (``/* … */``), reads a dual-dialogue cue (``MARA ^``) as action
and takes a first ``FADE IN:`` for a title-page key. screenplay-tools gets scene headings,
characters and their extensions, parentheticals, dual dialogue, forced elements and
transitions right; what it does not do is corrected here, each at one place:

- it reads ``FADE IN:`` as a scene heading: here it is the transition it is;
- it leaves ``[[notes]]`` and ``/* boneyard */`` as placeholders in the action
  (``/*0*/``): they are removed, and an action left empty is dropped;
- emphasis markup (``*italic*``, ``**bold**``, ``_underline_``) is taken off: the text goes
  to prompts, not to a typesetter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError, InputError

#: The longest screenplay read (a feature is ~200 KB; a file far past it is not a script).
MAX_BYTES = 8 * 1024 * 1024

_SETTING = re.compile(r"^\s*(INT\.?\s*/\s*EXT|EXT\.?\s*/\s*INT|I\s*/\s*E|INT|EXT|EST)(\.|\s)\s*(.*)$", re.IGNORECASE)
_TIMES = {
    "DAY",
    "NIGHT",
    "DAWN",
    "DUSK",
    "MORNING",
    "EVENING",
    "AFTERNOON",
    "SUNSET",
    "SUNRISE",
    "LATER",
    "CONTINUOUS",
    "MOMENTS LATER",
    "SAME",
    "SAME TIME",
    "MIDNIGHT",
    "NOON",
    "MAGIC HOUR",
}
_PLACEHOLDER = re.compile(r"\[\[\d+\]\]|/\*\d+\*/")
_EMPHASIS = re.compile(r"(\*{1,3}|_)(?=\S)(.+?)(?<=\S)\1")


@dataclass(frozen=True)
class Speech:
    """One character's turn: ``TOM (V.O.): (quietly) There's a trawler on the rocks.``"""

    character: str  # the name as cued, without extension: TOM
    extension: str | None  # V.O., O.S., CONT'D …
    text: str  # parentheticals inline, in parentheses
    dual: bool = False  # spoken at the same time as the speech next to it

    @property
    def cue(self) -> str:
        return f"{self.character} ({self.extension})" if self.extension else self.character


@dataclass(frozen=True)
class Scene:
    heading: str  # as written: EXT. LIGHTHOUSE - DUSK
    setting: str | None  # INT | EXT | INT/EXT | EST; None for a forced heading (.FLASHBACK)
    place: str  # LIGHTHOUSE - LAMP ROOM
    time: str | None  # NIGHT
    number: str | None  # the #12A# scene number, when the script has one
    line: int  # 1-based line of the heading in the file
    synopsis: str | None = None
    action: tuple[str, ...] = ()
    speeches: tuple[Speech, ...] = ()
    opens_on: str | None = None  # a transition into the scene: FADE IN:
    ends_on: str | None = None  # a transition out of it: CUT TO:
    centered: tuple[str, ...] = ()  # centred text (> THE END <): titles and cards, not action

    @property
    def characters(self) -> list[str]:
        return list(dict.fromkeys(s.character for s in self.speeches))


@dataclass(frozen=True)
class Screenplay:
    path: Path
    title: str | None
    scenes: tuple[Scene, ...]
    characters: tuple[str, ...] = field(default=())  # speakers in order of their first speech


def read(path: Path | str) -> Screenplay:
    """Read a Fountain screenplay; an unreadable or empty one is one clear error."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the screenplay {path.name}: {exc.strerror or exc}", where=str(path)) from None
    if len(raw) > MAX_BYTES:
        raise InputError(
            f"{path.name} is {len(raw) // 1024} KiB; a screenplay shotflow imports is at most "
            f"{MAX_BYTES // 1024 // 1024} MiB",
            where=str(path),
        )
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path.name} is not UTF-8 text (byte {exc.start})",
            where=str(path),
            hint="save the screenplay as UTF-8 (Fountain files are plain text)",
        ) from None
    return parse(text, path)


def parse(text: str, path: Path | str = "script.fountain") -> Screenplay:
    path = Path(path)
    try:
        from screenplay_tools.fountain.parser import Parser
        from screenplay_tools.screenplay import ElementType
    except ImportError as exc:
        raise ConfigError(
            "importing a Fountain screenplay needs the screenplay-tools package",
            hint="pip install 'shotflow[fountain]'",
        ) from exc
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    parser = Parser()
    parser.add_text(text)
    script = parser.script
    title = next((_clean(t.text_raw) for t in script.titleEntries if t.key.strip().lower() == "title"), None) or None
    builder = _Builder(text.split("\n"))
    for element in script.elements:
        kind = element.type
        if kind is ElementType.HEADING:
            heading = _clean(element.text_raw)
            if heading.upper().rstrip(":").strip() in ("FADE IN", "FADE IN:") and not element.forced:
                builder.transition(heading)
            else:
                builder.heading(heading, element.scene_number, forced=element.forced)
        elif kind is ElementType.TRANSITION:
            builder.transition(_clean(element.text_raw))
        elif kind is ElementType.ACTION:
            builder.action(_clean(element.text_raw), centered=element.centered)
        elif kind is ElementType.CHARACTER:
            builder.cue(element.name.strip(), (element.extension or "").strip() or None, element.is_dual_dialogue)
        elif kind is ElementType.PARENTHETICAL:
            builder.spoken(f"({_clean(element.text_raw)})")
        elif kind is ElementType.DIALOGUE:
            builder.spoken(_clean(element.text_raw))
        elif kind is ElementType.LYRIC:
            builder.spoken("♪ " + _clean(element.text_raw) + " ♪")
        elif kind is ElementType.SYNOPSIS:
            builder.synopsis(_clean(element.text_raw))
        # notes, boneyards, sections and page breaks are the writer's, not the picture's
    scenes = builder.finish()
    if not scenes:
        raise InputError(
            f"{path.name} has no scene heading, so there is no scene to import",
            where=str(path),
            hint="a scene heading is a line of its own starting with INT. or EXT., "
            "e.g. 'INT. LIGHTHOUSE - NIGHT' (or forced with a leading '.')",
        )
    speakers = tuple(dict.fromkeys(s.character for scene in scenes for s in scene.speeches))
    return Screenplay(path=path, title=title, scenes=tuple(scenes), characters=speakers)


def split_heading(heading: str, *, forced: bool = False) -> tuple[str | None, str, str | None]:
    """``EXT./INT. LIGHTHOUSE - DAWN`` -> (``INT/EXT``, ``LIGHTHOUSE``, ``DAWN``)."""
    text = heading.lstrip(".").strip() if forced else heading.strip()
    setting = None
    match = _SETTING.match(text)
    if match and not forced:
        word = re.sub(r"[.\s]", "", match.group(1).upper())
        setting = {"INT/EXT": "INT/EXT", "EXT/INT": "INT/EXT", "I/E": "INT/EXT"}.get(word, word)
        text = match.group(3).strip()
    place, time = text, None
    parts = [p.strip() for p in re.split(r"\s+[-–—]+\s+", text)]
    if len(parts) > 1 and parts[-1].upper() in _TIMES:
        place, time = " - ".join(parts[:-1]), parts[-1]
    return setting, place.strip(" .-") or text, time


def _clean(text: str) -> str:
    text = _PLACEHOLDER.sub("", text or "")
    text = _EMPHASIS.sub(r"\2", text)
    text = text.replace("\\*", "*").replace("\\_", "_")
    lines = [" ".join(line.split()) for line in text.split("\n")]
    return "\n".join(line for line in lines if line).strip()


class _Builder:
    """Scenes from the parser's element stream, in order."""

    def __init__(self, lines: list[str]):
        self.lines = lines
        self.searched = 0  # headings are found in the file in order, for their line numbers
        self.scenes: list[dict] = []
        self.pending_in: str | None = None
        self.speech: dict | None = None

    def _line_of(self, heading: str) -> int:
        wanted = heading.strip().lstrip(".").upper()
        for i in range(self.searched, len(self.lines)):
            if self.lines[i].strip().lstrip(".").upper().startswith(wanted[:40]):
                self.searched = i + 1
                return i + 1
        return self.searched + 1

    def heading(self, text: str, number, *, forced: bool) -> None:
        self._end_speech()
        setting, place, time = split_heading(text, forced=forced)
        self.scenes.append(
            {
                "heading": text.lstrip(".").strip() if forced else text,
                "setting": setting,
                "place": place,
                "time": time,
                "number": (str(number).strip() or None) if number else None,
                "line": self._line_of(text),
                "synopsis": None,
                "action": [],
                "speeches": [],
                "opens_on": self.pending_in,
                "ends_on": None,
                "centered": [],
            }
        )
        self.pending_in = None

    def transition(self, text: str) -> None:
        self._end_speech()
        if self.scenes and not self.scenes[-1]["ends_on"]:
            self.scenes[-1]["ends_on"] = text
        else:
            self.pending_in = text

    def action(self, text: str, *, centered: bool = False) -> None:
        self._end_speech()
        if text and self.scenes:
            self.scenes[-1]["centered" if centered else "action"].append(text)

    def synopsis(self, text: str) -> None:
        if text and self.scenes and not self.scenes[-1]["synopsis"]:
            self.scenes[-1]["synopsis"] = text

    def cue(self, name: str, extension: str | None, dual: bool) -> None:
        self._end_speech()
        if not self.scenes:
            return
        speeches = self.scenes[-1]["speeches"]
        if dual and speeches:
            speeches[-1] = Speech(speeches[-1].character, speeches[-1].extension, speeches[-1].text, dual=True)
        self.speech = {"character": name, "extension": extension, "parts": [], "dual": dual}

    def spoken(self, text: str) -> None:
        if self.speech is not None and text:
            self.speech["parts"].append(" ".join(text.split()))  # a speech is one line of dialogue

    def _end_speech(self) -> None:
        if self.speech is not None and self.scenes:
            s = self.speech
            self.scenes[-1]["speeches"].append(
                Speech(s["character"], s["extension"], " ".join(s["parts"]), dual=s["dual"])
            )
        self.speech = None

    def finish(self) -> list[Scene]:
        self._end_speech()
        return [
            Scene(
                heading=s["heading"],
                setting=s["setting"],
                place=s["place"],
                time=s["time"],
                number=s["number"],
                line=s["line"],
                synopsis=s["synopsis"],
                action=tuple(s["action"]),
                speeches=tuple(s["speeches"]),
                opens_on=s["opens_on"],
                ends_on=s["ends_on"],
                centered=tuple(s["centered"]),
            )
            for s in self.scenes
        ]
