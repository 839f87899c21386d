"""One previs panel: the frame's drawing, then what a storyboard artist writes on it.

    ┌────────────────────────────────────────────────────────────────┐
    │ MCU · LOW ANGLE · 50mm             [ LIGHTHOUSE ]               │  slug; location (its tone)
    │ not drawn: rack focus                      ↗ SLOW PUSH IN ↖     │  notes the drawing can't show
    │          ●  ─ ─ ►        ◄ ─ ─  ●                               │  figures, eyelines, move arrows
    ┤ ────────▐█▌──────────────────▐█▌──────── horizon                ├  ticks: the thirds
    │        [■ MARA]            [■ TOM]                               │  names, in their colours
    ├────────────────────────────────────────────────────────────────┤
    │ the prompt, small, two lines …            [ref] [ref] [ref]     │  caption band
    │ PREVIEW · runway:4@1 · 1360×768 · take 2/3 · seed 1234  @mara   │
    └────────────────────────────────────────────────────────────────┘

``draw_grey`` is a pure function of the request (and, through the thumbnails, of
its references' bytes): the node's name is not used, and the seed only nudges the
staging a little so that takes differ.
"""

from __future__ import annotations

import itertools
import random

from ...staging import Figure, Staging
from . import _palette as P
from ._camera import SCALES, Shot, read
from ._stage import (
    CAMERA_HEIGHT,
    TAPER,
    Placed,
    View,
    draw_eyeline,
    draw_figure,
    draw_from_above,
    draw_hand,
    draw_object,
    draw_set,
    horizon_for,
)
from ._text import font, plate, prompt_layout, text

_INTERVALS = {"left": (0.06, 0.47), "center": (0.30, 0.70), "right": (0.53, 0.94)}
_SHEET_VIEWS = (("camera", "FRONT"), ("right", "SIDE"), ("away", "BACK"))


def band_height(w: int, h: int) -> int:
    return max(30, int(h * 0.15))


def ref_box(w: int, h: int) -> tuple[int, int]:
    """The box a w×h panel fits each reference thumbnail into."""
    unit = min(w, h)
    label = max(9, unit // 52) + 4
    th = max(8, band_height(w, h) - label - 2 * max(4, unit // 90))
    return max(8, int(th * 16 / 9)), th


def draw_grey(request, take: int, seed: int, thumbnail):
    """One panel in grey levels (mode L) and the palette its levels map to."""
    from PIL import Image as PILImage
    from PIL import ImageDraw

    w, h = request.width, request.height
    staging: Staging = request.staging or Staging("shot")
    img = PILImage.new("L", (w, h), P.SKY)
    draw = ImageDraw.Draw(img)
    rng = random.Random(seed)
    unit = min(w, h)
    margin = max(6, unit // 42)
    bottom = h - band_height(w, h)

    cast = staging.cast
    shot = read(staging.camera, len(cast))
    view = View(w, h, bottom, shot.roll)
    placed = _place(staging, shot, w, h, bottom, rng)
    horizon = h * 0.48 if staging.kind == "location" else horizon_for(shot, placed, bottom)
    if horizon is not None:
        horizon += (rng.random() - 0.5) * 0.02 * h
        if shot.scale == "EWS" or not placed:
            _stand_on_ground(placed, shot, horizon, bottom, h)
    draw_set(draw, view, horizon, "eye" if staging.kind != "shot" else shot.camera, shot.lens)
    tick, line = max(6, unit // 28), max(2, unit // 300)  # the thirds, marked on the frame's edges
    for i in (1, 2):
        x, y = w * i // 3, h * i // 3
        draw.line([(x, 0), (x, tick)], fill=P.DIM, width=line)
        draw.line([(x, bottom - tick), (x, bottom)], fill=P.DIM, width=line)
        draw.line([(0, y), (tick, y)], fill=P.DIM, width=line)
        draw.line([(w - tick, y), (w, y)], fill=P.DIM, width=line)

    overlay = _Overlay(img, draw, w, h, bottom, unit, margin)
    move = shot.move if staging.kind == "shot" else None
    if move is not None:
        overlay.move(move, placed, over=False)
    if shot.layout == "INSERT" and staging.kind == "shot":
        draw_object(draw, view, w * 0.5, bottom * 0.47, min(w * 0.42, bottom * 0.62))
    heads = []
    taper = TAPER[shot.camera] if staging.kind == "shot" else 0.0
    for p in sorted(placed, key=lambda p: p.role == "near"):
        if p.role == "above":
            head = draw_from_above(draw, view, p)
        elif p.role == "hand" and p.target is not None:  # a hand always has its target
            head = draw_hand(draw, view, p, p.target)
        else:
            head = draw_figure(draw, view, p, taper)
        heads.append((p, head))
    if staging.kind == "shot":
        _eyelines(draw, view, heads, unit)
        if shot.layout == "POV":  # the edges of someone's sight
            r = int(unit * 0.07)
            draw.rounded_rectangle(
                [-r // 2, -r // 2, w + r // 2, bottom + r // 2], radius=r * 4, outline=P.PLATE, width=r
            )

    if move is not None:
        overlay.move(move, placed, over=True)
    overlay.slug(staging, shot)
    if move is not None:
        overlay.move_label(move)
    overlay.names(heads, staging, shot)
    overlay.band(request, take, seed, thumbnail)
    return img, P.palette(staging.tone)


def _eyelines(draw, view: View, heads, unit: int) -> None:
    """An eyeline for each figure looking screen left or right; two who face each other meet halfway."""
    for p, head in heads:
        if p.role not in ("stand", "above") or p.facing not in ("left", "right"):
            continue
        length = min(view.w * 0.16, max(view.w * 0.06, p.hf * 0.35))
        d = 1 if p.facing == "right" else -1
        for q, (qx, _, qr) in heads:
            gap = (qx - head[0]) * d - head[2] * 1.5 - qr * 1.5
            if q is not p and gap > 0:
                length = min(length, gap / 2 - unit * 0.01)
        if length > unit * 0.03:
            draw_eyeline(draw, view, p, head, length)


def _place(staging: Staging, shot: Shot, w: int, h: int, bottom: int, rng) -> list[Placed]:
    """Where each cast member is drawn (see the module docstring of ``_stage``)."""
    if staging.kind == "character":
        figure = staging.cast[0]
        hf = bottom * 0.64
        return [
            Placed(Figure(figure.name, figure.colour, "center", facing), w * x, bottom * 0.2, hf, facing)
            for (facing, _), x in zip(_SHEET_VIEWS, (0.2, 0.5, 0.8), strict=True)
        ]
    if staging.kind == "location" or not staging.cast:
        return []
    figures = list(staging.cast)
    jitter = {f.name: (rng.random() - 0.5) * 0.03 * w for f in figures}
    hf_frac, top_frac = SCALES[shot.scale]
    size = min(w, h)  # figures scale with the frame's short side: a portrait frame is not a taller stage
    placed: list[Placed] = []
    if shot.layout == "INSERT":  # hands reach in from the bottom edge, spread across it, towards the object
        order = sorted(figures, key=lambda f: ("left", "center", "right").index(f.x) if f.x in _INTERVALS else 1)
        for i, f in enumerate(order):
            x0 = w * (0.5 + (i + 0.5 - len(order) / 2) * min(0.3, 0.8 / len(order)))
            if len(order) == 1:
                x0 = w * (0.72 if f.x != "left" else 0.28)
            target = (w * 0.5 + (x0 - w * 0.5) * 0.45, bottom * 0.58)
            placed.append(Placed(f, x0 + jitter[f.name], 0.0, min(w, h) * 0.12, f.facing, role="hand", target=target))
        return placed
    if shot.layout == "POV":
        viewer, figures = figures[0], figures[1:]
        side = 1 if viewer.x == "right" else -1
        placed.append(
            Placed(
                viewer,
                w * (0.5 + side * 0.40),
                0.0,
                min(w, h) * 0.12,
                "camera",
                role="hand",
                target=(w * (0.5 + side * 0.14), bottom * 0.66),
            )
        )
    near = None
    if shot.layout == "OTS":
        near = next((f for f in figures if f.facing == "away"), figures[0])
        figures = [f for f in figures if f is not near]
        near_side = "right" if near.x == "right" else "left"
        placed.append(
            Placed(near, w * (0.12 if near_side == "left" else 0.88), h * 0.10, size * 3.5, "away", role="near")
        )
        interval = (0.48, 0.86) if near_side == "left" else (0.14, 0.52)
        for i, f in enumerate(figures):
            x = interval[0] + (interval[1] - interval[0]) * (i + 1) / (len(figures) + 1)
            facing = "away" if f.facing == "away" else "camera"
            placed.append(Placed(f, w * x + jitter[f.name], h * 0.10, size * hf_frac, facing))
        return placed
    groups: dict[str, list[Figure]] = {}
    for f in figures:
        groups.setdefault(f.x, []).append(f)
    for label, members in groups.items():
        a, b = _INTERVALS.get(label, _INTERVALS["center"])
        for i, f in enumerate(members):
            cx = w * (a + (b - a) * (i + 1) / (len(members) + 1)) + jitter[f.name]
            facing = f.facing
            if shot.layout == "POV" and facing in ("left", "right"):
                facing = "camera"  # they look at the one whose eyes the camera is
            if shot.camera == "bird":
                across = min(max(size * hf_frac * 0.32, size * 0.06), bottom * 0.6)
                placed.append(Placed(f, cx, bottom * (0.5 + 0.08 * ((i % 2) - 0.5)), across, facing, role="above"))
                continue
            hf = size * hf_frac
            # no top_frac: the feet show, so stand them above the caption band
            top = h * top_frac if top_frac is not None else bottom - h * (0.03 if shot.scale != "EWS" else 0.2) - hf
            placed.append(Placed(f, cx, top, hf, facing))
    return placed


def _stand_on_ground(placed: list[Placed], shot: Shot, horizon: float, bottom: int, h: int) -> None:
    """In an extreme wide shot the figures stand on the ground, where the horizon says (perspective)."""
    c = CAMERA_HEIGHT.get(shot.camera, 0.94)
    for p in placed:
        if p.role == "stand":
            feet = min(horizon + max(c * p.hf, 0.08 * h), bottom - 0.02 * h)
            p.top = feet - p.hf


class _Overlay:
    """What is written and drawn on top of the frame: labels, the camera move, the caption band."""

    def __init__(self, img, draw, w: int, h: int, bottom: int, unit: int, margin: int):
        self.img, self.draw, self.w, self.h, self.bottom, self.unit, self.margin = img, draw, w, h, bottom, unit, margin
        self.pad = max(3, unit // 110)
        self.top_h = 0  # how far down the slug reaches
        self.right_h = 0  # how far down the location's label reaches

    # -- the slug and the location --------------------------------------------------------

    def slug(self, staging: Staging, shot: Shot) -> None:
        big = font(max(11, self.unit // 16), bold=True)
        small = font(max(9, self.unit // 30))
        if staging.kind == "character":
            lines = [(f"CHARACTER · {staging.cast[0].name.upper()}", big)]
        elif staging.kind == "location":
            lines = [(f"LOCATION · {(staging.location or '').upper()}", big)]
        else:
            lines = [(shot.slug, big)]
            lines += [(_fit(f"not drawn: {n}", small, self.w * 0.6), small) for n in shot.notes]
        box = plate(self.draw, self.margin, self.margin, lines, P.PLATE, P.FG, self.pad * 2)
        self.top_h = box[3]
        self.right_h = self.margin
        if staging.kind == "shot" and staging.location:
            loc = font(max(10, self.unit // 18), bold=True)
            box = plate(
                self.draw,
                self.w - self.margin,
                self.margin,
                [(staging.location.upper(), loc)],
                P.LOCATION_CHIP,
                P.FG,
                self.pad * 2,
                right=True,
            )
            self.right_h = box[3]

    # -- names --------------------------------------------------------------------------------

    def names(self, heads, staging: Staging, shot: Shot) -> None:
        fnt = font(max(10, self.unit // 16), bold=True)
        pad = self.pad
        chips = []
        for p, (_hx, hy, hr) in heads:
            name = p.figure.name.upper()
            if staging.kind == "character":
                name = dict(_SHEET_VIEWS)[p.facing]
            elif p.role == "hand" and shot.layout == "POV":
                name += " · POV"
            sw = fnt.size * 0.8
            cw = int(fnt.getlength(name) + sw + pad * 5)
            ch = int(fnt.size * 1.2 + pad * 2)
            if p.role == "stand" and p.feet + ch + pad * 2 < self.bottom:
                y = p.feet + pad * 2
            elif p.role == "above":
                y = min(p.top + p.hf * 0.45, self.bottom - ch - pad)
            elif p.role == "near":  # above the head: the shoulder runs out of the frame below
                y = max(self.top_h + pad * 2, hy - hr - ch - pad * 2)
            else:  # on the caption band's edge: a label over a body never cuts it in two
                y = self.bottom - ch
            chips.append([p.cx - cw / 2, y, cw, ch, name, p.figure.colour])
        chips.sort(key=lambda c: c[0])
        for i, chip in enumerate(chips):
            chip[0] = max(self.margin, min(chip[0], self.w - self.margin - chip[2]))
            if i and abs(chips[i - 1][1] - chip[1]) < chip[3] and chip[0] < chips[i - 1][0] + chips[i - 1][2] + pad:
                chip[0] = chips[i - 1][0] + chips[i - 1][2] + pad
        for x, y, cw, ch, name, colour in chips:
            x, y = int(x), int(y)
            self.draw.rectangle([x, y, x + cw, y + ch], fill=P.PLATE)
            sw = int(fnt.size * 0.8)
            sy = y + (ch - sw) // 2
            self.draw.rectangle([x + pad * 2, sy, x + pad * 2 + sw, sy + sw], fill=P.light(colour))
            text(self.draw, (x + pad * 3 + sw, y + pad - fnt.size * 0.05), name, fnt, P.FG)

    # -- the camera move --------------------------------------------------------------------------

    def move(self, move, placed: list[Placed], over: bool) -> None:
        """The camera move's arrows: those on the set (truck, follow, arc, the end frame of a push)
        are drawn before the figures, those on the frame's edges after them (``over``)."""
        w, b, u = self.w, self.bottom, self.unit
        width = max(3, u // 110)
        head = max(10.0, u / 30)
        kind, direction = move.kind, move.direction
        if kind in ("in", "out"):
            ix, iy = w * 0.24, b * 0.26
            ox, oy = w * 0.07, b * 0.08
            inner = [(ix, iy), (w - ix, iy), (w - ix, b - iy), (ix, b - iy), (ix, iy)]
            if not over:
                for a, z in itertools.pairwise(inner):
                    self._dashes(a, z, max(2, width // 2), u / 28)
                return
            outer = [(ox, oy), (w - ox, oy), (w - ox, b - oy), (ox, b - oy)]
            for (x0, y0), (x1, y1) in zip(outer, inner, strict=False):  # inner closes its loop: one point more
                pts = [(x0, y0), (x1, y1)] if kind == "in" else [(x1, y1), (x0, y0)]
                self._arrow(pts, width, head)
        elif kind in ("pan", "truck", "follow"):
            if over != (kind == "pan"):
                return
            y = b * (0.26 if kind == "pan" else 0.8)
            x0, x1 = w * 0.3, w * 0.7
            if direction == "left":
                x0, x1 = x1, x0
            if kind == "follow" and direction is None:
                facing = next((p.facing for p in placed if p.facing in ("left", "right")), "right")
                if facing == "left":
                    x0, x1 = x1, x0
            sag = b * 0.05 if kind == "pan" else 0.0
            pts = [(x0 + (x1 - x0) * t / 12, y - sag * 4 * (t / 12) * (1 - t / 12)) for t in range(13)]
            self._arrow(pts, width * 1.5, head * 1.3, both=direction is None and kind != "follow")
        elif kind in ("tilt", "crane") and over:
            x = w * (0.95 if kind == "tilt" else 0.05)
            y0, y1 = b * 0.74, b * 0.3
            if direction == "down":
                y0, y1 = y1, y0
            bulge = -w * 0.025 if kind == "tilt" else 0.0
            pts = [(x + bulge * 4 * (t / 12) * (1 - t / 12), y0 + (y1 - y0) * t / 12) for t in range(13)]
            self._arrow(pts, width * 1.5, head * 1.3, both=direction is None)
        elif kind == "arc" and not over:
            from ._stage import _CIRCLE

            cx, cy, rx, ry = w / 2, b * 0.8, w * 0.3, b * 0.07
            arc = [(cx + c * rx, cy + s * ry) for c, s in _CIRCLE[1:12]]  # the near half, right to left
            if direction != "left":
                arc.reverse()
            self._arrow(arc, width * 1.5, head * 1.3)
        elif kind == "handheld" and over:
            x0, x1 = w - self.margin - u * 0.36, w - self.margin
            y0 = self.margin + u * 0.27
            zig = [(x0 + (x1 - x0) * t / 10, y0 + (u * 0.022 if t % 2 else -u * 0.022)) for t in range(11)]
            self._line(zig, width * 1.5)

    def move_label(self, move) -> None:
        """What the storyboard says of the move, in the top right corner under the location."""
        label = font(max(10, self.unit // 19), bold=True)
        self._label(move.label, label, self.w - self.margin, self.right_h + self.pad * 2, right=True)

    def _dashes(self, a, z, width: float, dash: float) -> None:
        (x0, y0), (x1, y1) = a, z
        length = ((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5 or 1.0
        ux, uy = (x1 - x0) / length, (y1 - y0) / length
        run = 0.0
        while run < length:
            end = min(length, run + dash)
            self._line([(x0 + ux * run, y0 + uy * run), (x0 + ux * end, y0 + uy * end)], width)
            run += dash * 1.7

    def _line(self, pts, width: float) -> None:
        self.draw.line(pts, fill=P.PLATE, width=int(width * 2.2), joint="curve")
        self.draw.line(pts, fill=P.FG, width=int(width), joint="curve")

    def _arrow(self, pts, width: float, head: float, both: bool = False) -> None:
        self._line(pts, width)
        ends = [(pts[-2], pts[-1])] + ([(pts[1], pts[0])] if both else [])
        for (x0, y0), (x1, y1) in ends:
            dx, dy = x1 - x0, y1 - y0
            norm = (dx * dx + dy * dy) ** 0.5 or 1.0
            ux, uy = dx / norm, dy / norm
            tip = (x1 + ux * head * 0.5, y1 + uy * head * 0.5)
            back = (x1 - ux * head * 0.7, y1 - uy * head * 0.7)
            tri = [
                tip,
                (back[0] - uy * head * 0.6, back[1] + ux * head * 0.6),
                (back[0] + uy * head * 0.6, back[1] - ux * head * 0.6),
            ]
            self.draw.polygon(tri, fill=P.FG, outline=P.PLATE, width=max(1, int(width * 0.6)))

    def _label(self, words: str, fnt, x: float, y: float, right: bool = False, left: bool = False) -> None:
        words = _fit(words, fnt, self.w * 0.5)
        width = fnt.getlength(words) + self.pad * 4
        if right:
            x -= width
        elif not left:
            x -= width / 2
        x = max(self.margin, min(x, self.w - self.margin - width))
        y = max(self.margin, min(y, self.bottom - fnt.size * 2))
        plate(self.draw, x, y, [(words, fnt)], P.PLATE, P.FG, self.pad * 2)

    # -- the caption band: prompt, references, what this frame is ----------------------------------

    def band(self, request, take: int, seed: int, thumbnail) -> None:
        w, h, b, u, m, pad = self.w, self.h, self.bottom, self.unit, self.margin, self.pad
        draw = self.draw
        draw.rectangle([0, b, w, h], fill=P.PLATE)
        draw.line([(0, b), (w, b)], fill=P.DIM, width=max(1, u // 400))
        right = w - m
        if request.references:
            box = ref_box(w, h)
            label_font = font(max(9, u // 52), bold=True)
            top = b + pad * 2
            x = right
            for i in reversed(range(len(request.references))):
                ref = request.references[i]
                thumb = thumbnail(ref.data, ref.sha256, box)
                x -= thumb.width
                if x < w * 0.45:
                    break
                draw.rectangle([x - 1, top - 1, x + thumb.width, top + thumb.height], outline=P.DIM, width=1)
                self.img.paste(thumb, (x, top))
                if request.tagged and ref.tag:
                    name = f"@{ref.tag}"
                else:
                    name = f"ref {i + 1}" + (f" · {ref.tag}" if ref.tag else "")
                text(draw, (x, top + thumb.height + pad), _fit(name, label_font, thumb.width), label_font, P.FG)
                x -= m
            right = x
        small = font(max(8, u // 54))
        size = max(9, u // 36)
        fnt, lines, line_h = prompt_layout(request.prompt, int(right - 2 * m), size, 2)
        y = b + pad * 2
        for line in lines:
            text(draw, (m, y), line, fnt, P.FG)
            y += line_h
        tech = f"PREVIEW · {request.model} · {w}×{h} · take {take + 1}/{request.takes} · seed {seed}"
        text(draw, (m, h - pad * 2 - small.size * 1.2), _fit(tech, small, right - 2 * m), small, P.DIM)


def _fit(line: str, fnt, width: float) -> str:
    from ._text import fit

    return fit(line, fnt, width)
