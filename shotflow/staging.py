"""Staging: who is in a shot, where they stand and which way they look — what a previs panel draws.

    characters (definition order) ──► a colour of their own   (one per project, from the name)
    locations  (definition order) ──► a tone of their own     (one per project, from the name)
    each scene, shot by shot ───────► Figure(name, colour, x, facing) per cast member

    shot keys:  cast: [mara, tom]
                blocking: {mara: {x: left, facing: right}}      (optional, per shot)
                camera: {framing, angle, lens, move}

Placement (``SceneBlocking``): a figure goes where the shot's ``blocking`` puts it;
otherwise it keeps the side of the frame it had earlier in the scene (the 180° rule:
screen direction holds from shot to shot until the storyboard moves someone);
otherwise figures are spread evenly (one: centre; two: left, right; three: left,
centre, right), facing the centre of the frame (a lone figure on a side looks across
the frame, towards where the other person of the scene stands).

Pure and cheap (no Pillow): the planner puts ``Staging.as_key()`` into the request key
of a preview frame, the preview backend draws it, the board shows the same colours.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .model import Camera

# Bump when the preview drawing changes: preview frames of an older drawing render again
# (Runware keys never carry it: they depend only on what is sent to Runware).
DRAWING_VERSION = 2

X = ("left", "center", "right")
FACING = ("left", "right", "camera", "away")

# Saturated, well-separated hues, none of them a location tone (those are dark and
# muted) nor the panel's own ink (paper white, near-black). Ordered dark to light:
# their grey levels step apart, so a greyscale print still tells most of them apart
# (and every figure carries its name besides).
CHARACTER_COLOURS: tuple[tuple[int, int, int], ...] = (
    (30, 70, 230),  # blue
    (225, 35, 45),  # red
    (135, 60, 245),  # violet
    (220, 45, 170),  # magenta
    (240, 100, 10),  # orange
    (35, 205, 95),  # green
    (60, 210, 250),  # cyan
    (205, 245, 40),  # lime
)
COLOUR_NAMES = ("blue", "red", "violet", "magenta", "orange", "green", "cyan", "lime")

# Dark, muted backgrounds: one per location (hue, saturation, value), far from the
# characters' saturation so a figure always stands out from its place.
LOCATION_TONES: tuple[tuple[float, float, float], ...] = (
    (0.58, 0.45, 0.22),  # slate blue
    (0.08, 0.45, 0.22),  # umber
    (0.35, 0.40, 0.20),  # moss
    (0.75, 0.35, 0.22),  # plum
    (0.50, 0.45, 0.20),  # teal
    (0.00, 0.40, 0.22),  # oxblood
    (0.14, 0.45, 0.21),  # olive
    (0.66, 0.30, 0.24),  # indigo grey
)
NO_LOCATION_TONE = (0.0, 0.0, 0.20)  # neutral grey: a shot set nowhere in particular


def tone_rgb(slot: int | None) -> tuple[int, int, int]:
    """The background colour of a location's panels (``None``: no location)."""
    import colorsys

    hsv = NO_LOCATION_TONE if slot is None else LOCATION_TONES[slot % len(LOCATION_TONES)]
    return tuple(round(c * 255) for c in colorsys.hsv_to_rgb(*hsv))  # type: ignore[return-value]


def colour_rgb(slot: int) -> tuple[int, int, int]:
    return CHARACTER_COLOURS[slot % len(CHARACTER_COLOURS)]


def css(rgb: tuple[int, int, int]) -> str:
    r, g, b = rgb
    return f"#{r:02x}{g:02x}{b:02x}"


def slots(names: Iterable[str], size: int) -> dict[str, int]:
    """A slot for each name: the one its sha256 picks, or the next free one after it.

    Names are taken in definition order, so adding a character later never changes
    the colour of one defined before. Beyond ``size`` names the slots go round again
    (``slot // size`` counts the rounds: the drawing marks those figures with a band).
    """
    taken: set[int] = set()
    out: dict[str, int] = {}
    for name in names:
        preferred = hashlib.sha256(name.encode()).digest()[0] % size
        rounds = len(taken) // size
        for step in range(size):
            slot = rounds * size + (preferred + step) % size
            if slot not in taken:
                break
        taken.add(slot)
        out[name] = slot
    return out


@dataclass(frozen=True, slots=True)
class Figure:
    """One cast member in one shot: their colour slot, side of the frame and facing."""

    name: str
    colour: int
    x: str  # left | center | right
    facing: str  # left | right | camera | away

    def as_key(self) -> list:
        return [self.name, self.colour, self.x, self.facing]


@dataclass(frozen=True, slots=True)
class Staging:
    """What a preview panel draws beyond the prompt: a shot's cast, place and camera.

    ``kind`` is ``shot``, ``character`` (a sheet: a turnaround of that character) or
    ``location`` (a sheet: the place, no one in it).
    """

    kind: str
    cast: tuple[Figure, ...] = ()
    location: str | None = None
    tone: int | None = None
    camera: Camera = Camera()

    def as_key(self) -> dict:
        return {
            "v": DRAWING_VERSION,
            "kind": self.kind,
            "cast": [f.as_key() for f in self.cast],
            "location": self.location,
            "tone": self.tone,
            "camera": [self.camera.framing, self.camera.angle, self.camera.lens, self.camera.move],
        }


class SceneBlocking:
    """The sides characters hold within one scene, shot after shot (see the module docstring)."""

    def __init__(self) -> None:
        self.sides: dict[str, str] = {}

    def place(
        self, cast: list[str], blocking: Mapping[str, Mapping[str, str]], colours: Mapping[str, int]
    ) -> tuple[Figure, ...]:
        x: dict[str, str] = {}
        for name in cast:
            given = (blocking.get(name) or {}).get("x")
            if given:
                x[name] = given
        for name in cast:
            if name not in x and self.sides.get(name) in ("left", "right"):
                x[name] = self.sides[name]
        free = list(_spread(len(cast)))
        for side in x.values():
            if side in free:
                free.remove(side)
        for name in cast:
            if name not in x:
                x[name] = free.pop(0) if free else "center"
        figures = []
        for name in cast:
            placed = blocking.get(name) or {}
            if placed.get("x") or x[name] != "center":
                self.sides[name] = x[name]
            facing = placed.get("facing") or {"left": "right", "right": "left"}.get(x[name], "camera")
            figures.append(Figure(name, colours.get(name, 0), x[name], facing))
        return tuple(figures)


def _spread(n: int) -> tuple[str, ...]:
    """The sides of ``n`` figures spread evenly across the frame, left to right."""
    if n <= 1:
        return ("center",)
    return tuple(X[min(2, int(3 * (i + 0.5) / n))] for i in range(n))
