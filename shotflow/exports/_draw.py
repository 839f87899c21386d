"""Pillow helpers the raster exports share (contact sheet, animatic): fitting a frame
into a box, drawing a placeholder, text that fits. Imports Pillow: import this module
from inside a function, never at the top of a module the CLI loads.
"""

from __future__ import annotations

import io
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from .._resources import font_path
from ..status import Status
from ._frames import Panel

STATE_COLOURS = {
    Status.FRESH: (63, 178, 127),
    Status.STALE: (224, 160, 48),
    Status.FAILED: (229, 83, 75),
    Status.SKIPPED: (165, 139, 216),
    Status.NOT_RENDERED: (123, 132, 148),
}


@lru_cache(maxsize=32)
def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    """DejaVu Sans, shipped with shotflow, so every machine draws the same glyphs."""
    return ImageFont.truetype(str(font_path(bold)), size)


def open_picked(panel: Panel, box: tuple[int, int]) -> Image.Image | None:
    """The panel's picked frame as RGB, decoded at about ``box`` (JPEG draft mode), or None."""
    take = panel.picked
    if take is None:
        return None
    with Image.open(io.BytesIO(take.read_bytes())) as img:
        img.draft("RGB", box)
        return img.convert("RGB")


def fit(img: Image.Image, box: tuple[int, int], background=(0, 0, 0)) -> Image.Image:
    """``img`` scaled to fit ``box`` whole, centred on ``background`` (letterbox / pillarbox)."""
    w, h = box
    scale = min(w / img.width, h / img.height)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    canvas = Image.new("RGB", box, background)
    scaled = img if size == img.size else img.resize(size, Image.Resampling.LANCZOS)
    canvas.paste(scaled, ((w - size[0]) // 2, (h - size[1]) // 2))
    return canvas


def placeholder(
    box: tuple[int, int], label: str, detail: str | None = None, *, dark: bool = True, accent=(123, 132, 148)
) -> Image.Image:
    """A hatched box that says why there is no frame ("NOT RENDERED", "FAILED" …)."""
    w, h = box
    bg, stripe, ink = (
        ((20, 22, 26), (30, 33, 38), (205, 210, 218)) if dark else ((248, 248, 246), (232, 232, 228), (40, 40, 40))
    )
    img = Image.new("RGB", box, bg)
    draw = ImageDraw.Draw(img)
    step = max(8, w // 24)
    for x in range(-h, w, step * 2):
        draw.polygon([(x, h), (x + step, h), (x + step + h, 0), (x + h, 0)], fill=stripe)
    inset = max(2, w // 120)
    draw.rectangle([inset, inset, w - 1 - inset, h - 1 - inset], outline=accent, width=max(2, w // 240))
    big = font(max(10, w // 22), bold=True)
    small = font(max(9, w // 42))
    lines = [(label.upper(), big, accent if accent != (123, 132, 148) else ink)]
    if detail:
        lines.extend((line, small, ink) for line in wrap(detail, small, int(w * 0.8), max_lines=3))
    heights = [f.getbbox("Ag")[3] + max(4, w // 160) for _, f, _ in lines]
    y = (h - sum(heights)) // 2
    for (text, f, colour), lh in zip(lines, heights, strict=True):
        tw = f.getlength(text)
        pad = max(4, w // 100)
        if f is big:
            draw.rectangle([(w - tw) / 2 - pad, y - pad / 2, (w + tw) / 2 + pad, y + lh - pad / 2], fill=bg)
        draw.text(((w - tw) / 2, y), text, font=f, fill=colour)
        y += lh
    return img


def ellipsize(text: str, f: ImageFont.FreeTypeFont, width: float) -> str:
    """``text`` cut with "…" so that it fits ``width`` pixels."""
    if f.getlength(text) <= width:
        return text
    while text and f.getlength(text + "…") > width:
        text = text[:-1]
    return text.rstrip() + "…"


def wrap(text: str, f: ImageFont.FreeTypeFont, width: float, max_lines: int = 2) -> list[str]:
    """Greedy word wrap to ``width`` pixels; the last line is ellipsized when text remains."""
    words, lines, line = text.split(), [], ""
    for i, word in enumerate(words):
        trial = f"{line} {word}".strip()
        if f.getlength(trial) <= width or not line:
            line = trial
            continue
        lines.append(line)
        line = word
        if len(lines) == max_lines:
            lines[-1] = ellipsize(lines[-1] + " " + " ".join(words[i:]), f, width)
            return lines
    if line:
        lines.append(ellipsize(line, f, width))
    return lines[:max_lines]


def state_label(panel: Panel) -> tuple[str, str | None]:
    """What a placeholder says for a panel without a frame: (label, detail)."""
    if panel.state is Status.FAILED:
        return "failed", panel.message
    if panel.state is Status.SKIPPED:
        return "skipped", panel.message
    if panel.takes:
        return "frame missing", "not in renders/ nor in the cache"
    return "not rendered", None
