"""Camera notes, as written in a storyboard, to what a panel can draw.

    framing "medium close-up"  ─► scale MCU, layout single
    framing "over the shoulder"─► scale MCU, layout OTS
    angle   "low dutch angle"  ─► camera low, roll 12°
    move    "slow push in"     ─► Move("in", label "SLOW PUSH IN")
    lens    "85mm"             ─► 85 (the slug shows it; the ground grid narrows)

Notes are free text (the schema only suggests values), so they are read word by
word: known phrases are taken out, filler words ("shot", "angle", "slow" …) are
dropped, and whatever is left is returned in ``notes``: the panel writes it as a
caption, so nothing a storyboard says about the camera is silently lost.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from ...model import Camera

# scale: (figure height / frame height, top of the head / frame height); EWS stands on the ground
SCALES = {
    "EWS": (0.13, None),
    "WS": (0.58, None),
    "FS": (0.72, None),
    "MWS": (1.05, 0.12),
    "MS": (1.55, 0.10),
    "MCU": (2.2, 0.10),
    "CU": (3.6, 0.08),
    "ECU": (9.0, -0.18),
}
ORDER = tuple(SCALES)  # wide to tight

_FRAMINGS = [  # (phrase, scale, layout); longest phrases first
    ("extreme close up", "ECU", None),
    ("extreme closeup", "ECU", None),
    ("big close up", "ECU", None),
    ("medium close up", "MCU", None),
    ("medium closeup", "MCU", None),
    ("extreme wide", "EWS", None),
    ("extreme long", "EWS", None),
    ("very wide", "EWS", None),
    ("medium wide", "MWS", None),
    ("medium long", "MWS", None),
    ("medium full", "MWS", None),
    ("full body", "FS", None),
    ("full length", "FS", None),
    ("over the shoulder", None, "OTS"),
    ("over shoulder", None, "OTS"),
    ("point of view", None, "POV"),
    ("two shot", None, "TWO"),
    ("2 shot", None, "TWO"),
    ("close up", "CU", None),
    ("closeup", "CU", None),
    ("establishing", "EWS", None),
    ("cowboy", "MWS", None),
    ("american", "MWS", None),
    ("medium", "MS", None),
    ("mid", "MS", None),
    ("waist", "MS", None),
    ("close", "CU", None),
    ("tight", "CU", None),
    ("wide", "WS", None),
    ("long", "WS", None),
    ("full", "FS", None),
    ("detail", "ECU", None),
    ("macro", "ECU", None),
    ("insert", None, "INSERT"),
    ("cutaway", None, "INSERT"),
    ("pov", None, "POV"),
    ("ots", None, "OTS"),
    ("2shot", None, "TWO"),
    ("ecu", "ECU", None),
    ("xcu", "ECU", None),
    ("mcu", "MCU", None),
    ("cu", "CU", None),
    ("ms", "MS", None),
    ("mws", "MWS", None),
    ("mls", "MWS", None),
    ("ews", "EWS", None),
    ("els", "EWS", None),
    ("xws", "EWS", None),
    ("xls", "EWS", None),
    ("ws", "WS", None),
    ("ls", "WS", None),
    ("fs", "FS", None),
    ("single", None, None),
    ("shot", None, None),
    ("framing", None, None),
]
_ANGLES = [  # (phrase, camera, roll)
    ("birds eye", "bird", None),
    ("bird eye", "bird", None),
    ("gods eye", "bird", None),
    ("top down", "bird", None),
    ("overhead", "bird", None),
    ("aerial", "bird", None),
    ("worms eye", "worm", None),
    ("worm eye", "worm", None),
    ("ground level", "worm", None),
    ("low angle", "low", None),
    ("high angle", "high", None),
    ("eye level", "eye", None),
    ("eye line", "eye", None),
    ("shoulder level", "eye", None),
    ("hip level", "low", None),
    ("knee level", "low", None),
    ("straight on", "eye", None),
    ("neutral", "eye", None),
    ("dutch", None, 12.0),
    ("canted", None, 12.0),
    ("oblique", None, 12.0),
    ("low", "low", None),
    ("high", "high", None),
    ("angle", None, None),
    ("shot", None, None),
    ("slight", None, None),
]
_MOVES = [  # (phrase, kind, direction); the arrow's label is the note itself
    ("locked off", "static", None),
    ("push in", "in", None),
    ("dolly in", "in", None),
    ("track in", "in", None),
    ("truck in", "in", None),
    ("move in", "in", None),
    ("creep in", "in", None),
    ("zoom in", "in", None),
    ("crash zoom", "in", None),
    ("pull out", "out", None),
    ("pull back", "out", None),
    ("dolly out", "out", None),
    ("dolly back", "out", None),
    ("track out", "out", None),
    ("track back", "out", None),
    ("zoom out", "out", None),
    ("pan left", "pan", "left"),
    ("pan right", "pan", "right"),
    ("tilt up", "tilt", "up"),
    ("tilt down", "tilt", "down"),
    ("truck left", "truck", "left"),
    ("truck right", "truck", "right"),
    ("track left", "truck", "left"),
    ("track right", "truck", "right"),
    ("crab left", "truck", "left"),
    ("crab right", "truck", "right"),
    ("dolly left", "truck", "left"),
    ("dolly right", "truck", "right"),
    ("slide left", "truck", "left"),
    ("slide right", "truck", "right"),
    ("crane up", "crane", "up"),
    ("crane down", "crane", "down"),
    ("boom up", "crane", "up"),
    ("boom down", "crane", "down"),
    ("jib up", "crane", "up"),
    ("jib down", "crane", "down"),
    ("pedestal up", "crane", "up"),
    ("pedestal down", "crane", "down"),
    ("arc left", "arc", "left"),
    ("arc right", "arc", "right"),
    ("hand held", "handheld", None),
    ("walk and talk", "follow", None),
    ("static", "static", None),
    ("locked", "static", None),
    ("fixed", "static", None),
    ("tripod", "static", None),
    ("none", "static", None),
    ("handheld", "handheld", None),
    ("shaky", "handheld", None),
    ("steadicam", "follow", None),
    ("gimbal", "follow", None),
    ("follow", "follow", None),
    ("tracking", "follow", None),
    ("orbit", "arc", "right"),
    ("arc", "arc", "right"),
    ("push", "in", None),
    ("pull", "out", None),
    ("zoom", "in", None),
    ("pan", "pan", None),
    ("tilt", "tilt", None),
    ("crane", "crane", "up"),
    ("rise", "crane", "up"),
    ("boom", "crane", "up"),
    ("track", "follow", None),
    ("dolly", "in", None),
]
_MOVE_WORDS = {
    "slow",
    "slowly",
    "fast",
    "quick",
    "quickly",
    "gentle",
    "gently",
    "subtle",
    "slight",
    "slightly",
    "whip",
    "snap",
    "camera",
    "move",
    "movement",
    "the",
    "a",
    "and",
    "then",
    "to",
    "on",
    "with",
}
_LENS = re.compile(r"(\d+(?:\.\d+)?)\s*mm\b")


@dataclass(frozen=True)
class Move:
    kind: str  # in | out | pan | tilt | truck | crane | arc | handheld | follow
    direction: str | None  # left | right | up | down, or None
    label: str  # what the storyboard wrote, upper-cased: the arrow's caption


@dataclass(frozen=True)
class Shot:
    scale: str  # EWS … ECU (see SCALES)
    layout: str  # SINGLE | TWO | OTS | INSERT | POV
    camera: str  # eye | low | high | worm | bird
    roll: float  # degrees of dutch tilt
    move: Move | None
    lens: float | None  # focal length in mm
    slug: str  # "MCU · LOW ANGLE · 50mm": what the top-left corner says
    notes: tuple[str, ...]  # what the panel cannot draw: written as a caption


def _words(text: str) -> str:
    text = text.lower().replace("'", "").replace("’", "")
    return " " + " ".join(re.sub(r"[^a-z0-9.]+", " ", text).split()) + " "


def _take(text: str, table) -> tuple[str, list]:
    """Known phrases found in ``text`` (as words), and the text left once they are taken out."""
    found = []
    for row in table:
        phrase = f" {row[0]} "
        if phrase in text:
            found.append(row)
            text = text.replace(phrase, " ", 1)
    return text, found


@lru_cache(maxsize=256)
def read(camera: Camera, cast: int) -> Shot:
    """What the panel draws for these camera notes (``cast``: how many people the shot has)."""
    notes: list[str] = []
    scale = layout = None
    if camera.framing:
        rest, found = _take(_words(camera.framing), _FRAMINGS)
        for _, s, lay in found:
            scale = scale or s
            layout = layout or lay
        if rest.strip():
            notes.append(f"framing: {camera.framing}")
    layout = layout or "SINGLE"
    if scale is None:
        scale = {"OTS": "MCU", "TWO": "MS", "INSERT": "CU", "POV": "WS"}.get(layout, "MS" if cast else "WS")

    view, roll = "eye", 0.0
    if camera.angle:
        rest, found = _take(_words(camera.angle), _ANGLES)
        for _, v, r in found:
            if v and view == "eye":
                view = v
            if r:
                roll = r
        if rest.strip():
            notes.append(f"angle: {camera.angle}")

    move = None
    if camera.move:
        rest, found = _take(_words(camera.move), _MOVES)
        kinds = [(k, d) for _, k, d in found]
        if kinds and kinds[0][0] != "static":
            kind, direction = kinds[0]
            move = Move(kind, direction, " ".join(camera.move.split()).upper())
        leftover = [w for w in rest.split() if w not in _MOVE_WORDS]
        if not kinds or leftover and move is None:
            notes.append(f"move: {camera.move}")

    lens = None
    if camera.lens:
        hit = _LENS.search(camera.lens.lower()) or re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*", camera.lens)
        if hit:
            lens = float(hit.group(1))
            left = (camera.lens[: hit.start()] + camera.lens[hit.end() :]).strip(" ,;·-")
            if left and left.lower() not in ("lens",):
                notes.append(f"lens: {camera.lens}")
        else:
            notes.append(f"lens: {camera.lens}")

    parts = []
    if layout == "TWO":
        parts.append(f"2-SHOT {scale}" if camera.framing and scale != "MS" else "2-SHOT")
    elif layout in ("OTS", "POV", "INSERT"):
        parts.append(layout)
    else:
        parts.append(scale)
    angle_label = {
        "eye": "EYE LEVEL",
        "low": "LOW ANGLE",
        "high": "HIGH ANGLE",
        "worm": "WORM'S EYE",
        "bird": "BIRD'S EYE",
    }[view]
    if camera.angle and (view != "eye" or not roll):
        parts.append(angle_label)
    if roll:
        parts.append("DUTCH")
    if lens:
        parts.append(f"{lens:g}mm")
    return Shot(scale, layout, view, roll, move, lens, " · ".join(parts), tuple(notes))
