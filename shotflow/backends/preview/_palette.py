"""The 256 levels of a panel and the colours they stand for.

    0 ……………………… FG        the paper ramp: the location's tone (0) to paper white (FG);
                               sky, ground, grid, plates and all text live here
    HUES + 3·k + 0/1/2         character colour k (see staging.CHARACTER_COLOURS):
                               body, shade (limbs, hair, bands), light (eyelines, name swatches)
    the rest                   paper (unused)

A panel is drawn in these levels (mode L) and written as a palette PNG. Text is
drawn on the paper ramp only: its anti-aliased edges then blend along the ramp.
"""

from __future__ import annotations

from functools import lru_cache

from ...staging import CHARACTER_COLOURS, tone_rgb

FG = 191
HUES = 192
PAPER = (238, 234, 226)

# levels of the paper ramp with a meaning
SKY = 30
GROUND = 14
GRID = 34
HORIZON = 112
PLATE = 3  # behind text
DIM = FG // 2
OBJECT = 150  # an insert's object marker
LOCATION_CHIP = 58


def body(slot: int) -> int:
    return HUES + 3 * (slot % len(CHARACTER_COLOURS))


def shade(slot: int) -> int:
    return body(slot) + 1


def light(slot: int) -> int:
    return body(slot) + 2


@lru_cache(maxsize=32)
def palette(tone: int | None) -> bytes:
    """The palette of a panel set in location tone ``tone`` (None: no location)."""
    bg = tone_rgb(tone)
    out = bytearray(768)
    for i in range(256):
        rgb = [round(b + (p - b) * i / FG) for b, p in zip(bg, PAPER, strict=True)] if i <= FG else list(PAPER)
        out[3 * i : 3 * i + 3] = bytes(rgb)
    for k, colour in enumerate(CHARACTER_COLOURS):
        base = HUES + 3 * k
        out[3 * base : 3 * base + 3] = bytes(colour)
        out[3 * base + 3 : 3 * base + 6] = bytes(round(c * 0.55) for c in colour)
        out[3 * base + 6 : 3 * base + 9] = bytes(round(c + (p - c) * 0.45) for c, p in zip(colour, PAPER, strict=True))
    return bytes(out)


TO_PAPER = [v * FG // 255 for v in range(256)]  # a photo's grey levels into the paper ramp
