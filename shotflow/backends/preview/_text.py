"""Text on a panel: the bundled font, rendered glyph masks kept, plates behind labels.

Rendered text (FreeType) is much of a panel's drawing: the labels recur frame after
frame and the takes of a shot draw the same prompt lines, so the masks are kept.
Text is only ever drawn on levels of the paper ramp (see ``_palette``): its
anti-aliased edges blend towards the paper along that ramp, never into a character's colour.
"""

from __future__ import annotations

import math
import textwrap
from functools import lru_cache
from typing import Any  # a Pillow FreeTypeFont (Pillow is imported only when drawing)

from ..._resources import font_path
from ._lru import Lru


@lru_cache(maxsize=48)
def font(size: int, bold: bool = False):
    from PIL import ImageFont

    return ImageFont.truetype(str(font_path(bold)), size)


MASKS = Lru(max_entries=512, max_bytes=2 << 20)


def text(draw, xy: tuple[float, float], line: str, fnt, fill: int) -> None:
    """``draw.text(xy, line, font=fnt, fill=fill)`` on an L image, with the rendered mask kept.

    The same steps as ``ImageDraw.text`` for one line with the default anchor: the
    glyphs are rendered at the fractional part of ``xy`` and the mask is blended at
    its integer part plus the mask's offset. Same pixels, whether or not it was kept.
    """
    if "\n" in line or draw.fontmode != "L":
        draw.text(xy, line, font=fnt, fill=fill)
        return
    start = (math.modf(xy[0])[0], math.modf(xy[1])[0])
    key = (fnt, line, start, fill)
    found = MASKS.get(key)
    if found is None:
        found = fnt.getmask2(line, "L", None, None, None, 0, "la", fill, start, stroke_filled=True)
        MASKS.put(key, found, found[0].size[0] * found[0].size[1])
    mask, offset = found
    draw.draw.draw_bitmap((int(xy[0]) + offset[0], int(xy[1]) + offset[1]), mask, fill)


def fit(line: str, fnt, width: float) -> str:
    """``line``, cut with an ellipsis where it would run past ``width`` pixels."""
    if fnt.getlength(line) <= width:
        return line
    while line and fnt.getlength(line + "…") > width:
        line = line[:-1]
    return line.rstrip() + "…" if line else ""


def plate(
    draw, x: float, y: float, lines: list[tuple[str, Any]], level: int, fill: int, pad: int, right: bool = False
) -> tuple[int, int, int, int]:
    """Lines of text on a solid plate at (x, y) (its top-right corner when ``right``); the plate's box."""
    widths = [fnt.getlength(s) for s, fnt in lines]
    heights = [fnt.size for _, fnt in lines]
    w = int(max(widths, default=0)) + 2 * pad
    h = int(sum(hh * 1.25 for hh in heights) - heights[-1] * 0.25) + 2 * pad if lines else 0
    if right:
        x -= w
    x, y = int(x), int(y)
    draw.rectangle([x, y, x + w, y + h], fill=level)
    ty = y + pad
    for (s, fnt), hh in zip(lines, heights, strict=True):
        text(draw, (x + pad, ty - hh * 0.12), s, fnt, fill)
        ty += int(hh * 1.25)
    return x, y, x + w, y + h


@lru_cache(maxsize=16)  # the takes of a shot share it
def prompt_layout(prompt: str, width: int, size: int, max_lines: int):
    """The prompt wrapped to ``width`` pixels at ``size``, at most ``max_lines`` (the last one cut)."""
    fnt = font(size)
    avg = fnt.getlength("abcdefghijklmnopqrstuvwxyz ") / 27
    chars = max(8, int(width / max(avg, 1)))
    lines = textwrap.wrap(prompt, width=chars) or [""]
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1].rstrip(" .,;:") + "…"
    lines = [fit(line, fnt, width) for line in lines]
    return fnt, tuple(lines), int(size * 1.3)
