"""The set and the people on it, as the camera sees them: what a panel's frame shows.

    horizon ───────────────────────────── at the camera's height on every standing figure
          ╲    ╲    │    ╱    ╱           ground rays meet at the vanishing point
       ●        ●                         figures: head, body, limbs in their colour;
      ▐█▌ ─ ─► ▐█▌                        a nose and an eyeline arrow show where they look
       ╱╲       ╱╲

Geometry, all in frame pixels (y down):

- **Framing** sets a figure's height ``hf`` and where its head is (``_camera.SCALES``):
  an extreme wide is a small figure in a large space, a close-up a head and shoulders
  filling the frame.
- **Angle** sets the camera's height: the horizon crosses every standing figure at that
  height (eye level: through the eyes; low angle: at the knees, so the horizon drops and
  the figures tower, narrower at the head; high angle: above the heads, the ground fills
  the frame). A bird's eye looks straight down (no horizon, figures seen from above);
  a dutch angle rolls the whole set.
- The ground's rays depend only on the camera's height; its depth lines on the lens.

Only ``+ - * /`` on floats and Pillow's primitives: the same request gives the same
pixels on every machine (the few trigonometric values are rounded once, at import).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ...staging import CHARACTER_COLOURS, Figure
from . import _palette as P
from ._camera import Shot

# camera height by angle, in figure heights (a person is ~1.7 m: eye level is 1.6 m)
CAMERA_HEIGHT = {"eye": 0.94, "low": 0.30, "worm": 0.05, "high": 2.1}
TAPER = {"eye": 0.0, "low": 0.28, "worm": 0.42, "high": -0.24, "bird": 0.0}  # wider feet when seen from below
HORIZON_EWS = {"eye": 0.52, "low": 0.80, "worm": 0.94, "high": 0.26}  # of the drawing's height: no one to stand it on

_CIRCLE = [(round(math.cos(2 * math.pi * i / 24), 6), round(math.sin(2 * math.pi * i / 24), 6)) for i in range(24)]


def _rotation(degrees: float) -> tuple[float, float]:
    return round(math.cos(math.radians(degrees)), 6), round(math.sin(math.radians(degrees)), 6)


@dataclass
class View:
    """The frame: its size, the bottom of what the drawing may use, the dutch roll."""

    w: int
    h: int
    bottom: int  # the panel's caption band starts here
    roll: float = 0.0

    def __post_init__(self):
        self.cos, self.sin = _rotation(self.roll)
        self.cx, self.cy = self.w / 2, self.h / 2

    def pt(self, x: float, y: float) -> tuple[float, float]:
        if not self.roll:
            return (x, y)
        dx, dy = x - self.cx, y - self.cy
        return (self.cx + dx * self.cos - dy * self.sin, self.cy + dx * self.sin + dy * self.cos)

    def poly(self, pts) -> list[tuple[float, float]]:
        return [self.pt(x, y) for x, y in pts]


@dataclass
class Placed:
    """A figure where the panel draws it: centre x, top of the head, height, facing."""

    figure: Figure
    cx: float
    top: float
    hf: float
    facing: str
    role: str = "stand"  # stand | near (OTS foreground) | hand (insert, POV) | above (bird's eye)
    target: tuple[float, float] | None = None  # where a hand reaches

    @property
    def feet(self) -> float:
        return self.top + self.hf


# -- the set ---------------------------------------------------------------------------


def horizon_for(shot: Shot, placed: list[Placed], bottom: int) -> float | None:
    """Where the horizon crosses the frame (None: a bird's eye sees no horizon)."""
    if shot.camera == "bird":
        return None
    c = CAMERA_HEIGHT[shot.camera]
    standing = [p for p in placed if p.role == "stand"]
    if standing and shot.scale != "EWS":  # the horizon crosses the (first) figure at the camera's height
        p = standing[0]
        return p.top + (1 - c) * p.hf
    return HORIZON_EWS[shot.camera] * bottom


def draw_set(draw, view: View, horizon: float | None, camera: str, lens: float | None) -> None:
    """Sky, ground, the horizon line and the ground's perspective."""
    w, h = view.w, view.h
    if horizon is None:  # looking straight down: the floor, a square grid
        draw.rectangle([0, 0, w, h], fill=P.GROUND)
        step = max(8.0, w / 8)
        for i in range(-12, 13):
            x = view.cx + i * step
            draw.line(view.poly([(x, -h), (x, 2 * h)]), fill=P.GRID, width=max(1, h // 400))
            y = view.cy + i * step
            draw.line(view.poly([(-w, y), (2 * w, y)]), fill=P.GRID, width=max(1, h // 400))
        return
    draw.rectangle([0, 0, w, h], fill=P.SKY)
    draw.polygon(view.poly([(-w, horizon), (2 * w, horizon), (2 * w, 3 * h), (-w, 3 * h)]), fill=P.GROUND)
    height_m = CAMERA_HEIGHT[camera] * 1.7
    # rays: ground lines 1 m apart, straight ahead; they meet on the horizon, fanned by the camera's height
    line_w = max(1, h // 360)
    for i in range(-24, 25):
        slope = i / height_m
        far = 4 * h
        x2 = view.cx + slope * far
        if abs(slope) * (h - horizon) > 2.5 * w and i:
            continue
        draw.line(view.poly([(view.cx, horizon), (x2, horizon + far)]), fill=P.GRID, width=line_w)
    # depth lines: 2, 3, 4.5 … m away; a long lens pushes them towards the horizon
    focal = w * (lens or 35.0) / 36.0
    z = 2.0
    while z < 400:
        y = horizon + focal * height_m / z
        if horizon < y < h * 1.5:
            draw.line(view.poly([(-w, y), (2 * w, y)]), fill=P.GRID, width=line_w)
        z *= 1.5
    draw.line(view.poly([(-w, horizon), (2 * w, horizon)]), fill=P.HORIZON, width=max(2, h // 300))


# -- figures ---------------------------------------------------------------------------------

# parts of a standing figure, in figure heights: x right of the centre line, y down from the head's top;
# drawn facing the camera (or screen right, for a profile), mirrored for the other side
_TORSO_FRONT = [
    (-0.06, 0.172),
    (0.06, 0.172),
    (0.115, 0.185),
    (0.135, 0.205),
    (0.138, 0.235),
    (0.122, 0.36),
    (0.108, 0.53),
    (-0.108, 0.53),
    (-0.122, 0.36),
    (-0.138, 0.235),
    (-0.135, 0.205),
    (-0.115, 0.185),
]
_ARM_FRONT = [
    (-0.128, 0.2),
    (-0.158, 0.215),
    (-0.176, 0.35),
    (-0.170, 0.49),
    (-0.139, 0.49),
    (-0.141, 0.36),
    (-0.126, 0.27),
]
_HAND_FRONT = (-0.155, 0.505, 0.021)
_LEG_FRONT = [(-0.105, 0.52), (-0.006, 0.52), (-0.018, 0.75), (-0.026, 0.972), (-0.080, 0.972), (-0.094, 0.75)]
_FOOT_FRONT = [(-0.086, 0.962), (-0.018, 0.962), (-0.012, 1.0), (-0.096, 1.0)]
_TORSO_SIDE = [
    (-0.055, 0.175),
    (0.04, 0.172),
    (0.07, 0.195),
    (0.078, 0.26),
    (0.068, 0.36),
    (0.062, 0.53),
    (-0.062, 0.53),
    (-0.072, 0.36),
    (-0.076, 0.25),
    (-0.07, 0.2),
]
_ARM_SIDE = [(-0.026, 0.19), (0.03, 0.19), (0.047, 0.35), (0.062, 0.48), (0.024, 0.49), (0.0, 0.35)]
_HAND_SIDE = (0.046, 0.5, 0.021)
_LEG_SIDE_A = [(-0.04, 0.52), (0.05, 0.52), (0.085, 0.75), (0.105, 0.972), (0.058, 0.975), (0.028, 0.76)]
_LEG_SIDE_B = [(-0.055, 0.52), (0.035, 0.52), (0.0, 0.76), (-0.055, 0.972), (-0.10, 0.968), (-0.06, 0.75)]
_FOOT_SIDE_A = [(0.055, 0.962), (0.15, 0.972), (0.152, 1.0), (0.052, 1.0)]
_FOOT_SIDE_B = [(-0.10, 0.958), (-0.01, 0.966), (-0.012, 0.996), (-0.104, 0.992)]
_NECK = [(-0.03, 0.115), (0.03, 0.115), (0.034, 0.19), (-0.034, 0.19)]
_HEAD = (0.0, 0.072, 0.068)  # centre x, centre y, radius


def _map(p: Placed, pts, mirror: bool, taper: float):
    """Figure units to set coordinates (before the roll)."""
    out = []
    for x, y in pts:
        x = -x if mirror else x
        k = 1 + taper * (y - 0.5)
        out.append((p.cx + x * k * p.hf, p.top + y * p.hf))
    return out


def draw_figure(draw, view: View, p: Placed, taper: float) -> tuple[float, float, float]:
    """One figure in its character's colour; returns its head (x, y, radius) in the frame.

    Head, neck and body are the character's colour (one connected shape), limbs and
    hair its shade; a thin dark contour keeps overlapping parts apart at larger sizes.
    """
    slot = p.figure.colour
    body, shade = P.body(slot), P.shade(slot)
    facing = p.facing
    mirror = facing == "left"
    edge = max(1, int(p.hf / 260)) if p.hf > 120 else 0

    def poly(pts, level: int, outline: bool = True) -> None:
        pts = view.poly(_map(p, pts, mirror, taper))
        if edge and outline:
            draw.polygon(pts, fill=level, outline=P.PLATE, width=edge)
        else:
            draw.polygon(pts, fill=level)

    def disc(spec, level: int) -> None:
        (x, y), r = view.pt(*_map(p, [spec[:2]], mirror, taper)[0]), spec[2] * p.hf
        draw.ellipse([x - r, y - r, x + r, y + r], fill=level, outline=P.PLATE if edge else None, width=edge)

    if facing in ("left", "right"):
        for pts in (_LEG_SIDE_B, _FOOT_SIDE_B, _LEG_SIDE_A, _FOOT_SIDE_A):
            poly(pts, shade)
        poly(_TORSO_SIDE, body)
        poly(_ARM_SIDE, shade)
        disc(_HAND_SIDE, shade)
    else:
        for sign in (1, -1):
            for pts in (_LEG_FRONT, _FOOT_FRONT, _ARM_FRONT):
                poly([(sign * x, y) for x, y in pts], shade)
            disc((sign * _HAND_FRONT[0], *_HAND_FRONT[1:]), shade)
        poly(_TORSO_FRONT, body)
    if slot >= len(CHARACTER_COLOURS):  # a second round of colours: a band across the body
        poly([(-0.125, 0.30), (0.125, 0.30), (0.12, 0.36), (-0.122, 0.36)], shade, outline=False)
    hx, hy, hr = _HEAD
    head_k = 1 - taper * 0.5  # seen from below the head is further away: smaller
    ux, uy = _map(p, [(hx, hy * (2 - head_k))], mirror, taper)[0]  # the head's centre before the roll
    r = hr * head_k * p.hf
    cx, cy = view.pt(ux, uy)
    head = [cx - r, cy - r, cx + r, cy + r]
    outline = {"outline": P.PLATE, "width": edge} if edge else {}
    if facing == "away":
        draw.ellipse(head, fill=shade, **outline)  # the back of the head: hair
        poly(_NECK, body, outline=False)
        return cx, cy, r
    draw.ellipse(head, fill=body, **outline)
    poly(_NECK, body, outline=False)  # over the contours: head, neck and body are one shape
    eye_r = max(1.0, r * 0.13)

    def dot(x: float, y: float) -> None:
        x, y = view.pt(ux + x * r, uy + y * r)
        draw.ellipse([x - eye_r, y - eye_r, x + eye_r, y + eye_r], fill=P.PLATE)

    if facing == "camera" or p.hf > 4 * view.h:  # an extreme close-up: both eyes, glancing where it looks
        glance = {"left": -0.14, "right": 0.14}.get(facing, 0.0)
        dot(-0.36 + glance, -0.05)
        dot(0.36 + glance, -0.05)
        return cx, cy, r
    d = 1 if facing == "right" else -1
    # hair on the back of the head, a nose and one eye on the side it faces (angles: clockwise from +x)
    start = (90 if d > 0 else -90) + view.roll
    inner = [cx - r * 0.9, cy - r * 0.9, cx + r * 0.9, cy + r * 0.9]
    draw.pieslice(inner, start + 10, start + 170, fill=shade)
    nose = [(0.9, -0.24), (1.3, 0.10), (0.9, 0.28)]
    draw.polygon([view.pt(ux + d * x * r, uy + y * r) for x, y in nose], fill=body)
    dot(d * 0.5, -0.08)
    return cx, cy, r


def draw_eyeline(draw, view: View, p: Placed, head: tuple[float, float, float], length: float) -> None:
    """A dashed arrow from the face in the direction the figure looks (screen left or right)."""
    if p.facing not in ("left", "right"):
        return
    d = 1 if p.facing == "right" else -1
    ux, uy = d * view.cos, d * view.sin  # along the (rolled) set's horizontal
    cx, cy, r = head
    x0, y0 = cx + ux * r * 1.5, cy + uy * r * 1.5
    width = max(2, min(int(r * 0.14), view.h // 90), view.h // 220)
    dash = max(6.0, length / 7)
    colour = P.light(p.figure.colour)
    head_len = min(max(width * 3.0, length * 0.18), length * 0.35)
    run = 0.0
    while run + dash <= length - head_len:
        draw.line(
            [(x0 + ux * run, y0 + uy * run), (x0 + ux * (run + dash), y0 + uy * (run + dash))], fill=colour, width=width
        )
        run += dash * 1.6
    tip = (x0 + ux * length, y0 + uy * length)
    back = (tip[0] - ux * head_len, tip[1] - uy * head_len)
    draw.polygon(
        [
            tip,
            (back[0] - uy * head_len * 0.6, back[1] + ux * head_len * 0.6),
            (back[0] + uy * head_len * 0.6, back[1] - ux * head_len * 0.6),
        ],
        fill=colour,
    )


def draw_from_above(draw, view: View, p: Placed) -> tuple[float, float, float]:
    """A figure seen from straight above: shoulders, the top of the head, a nose towards its facing."""
    slot = p.figure.colour
    s = p.hf  # shoulder width
    dx, dy = {"right": (1, 0), "left": (-1, 0), "camera": (0, 1), "away": (0, -1)}[p.facing]
    cx, cy = p.cx, p.top
    # shoulders: an ellipse across the facing direction
    half_across, half_along = s * 0.5, s * 0.2
    pts = [
        (cx + (-dy) * half_across * c + dx * half_along * si, cy + dx * half_across * c + dy * half_along * si)
        for c, si in _CIRCLE
    ]
    draw.polygon(view.poly(pts), fill=P.body(slot))
    hx, hy = view.pt(cx + dx * s * 0.05, cy + dy * s * 0.05)
    r = s * 0.19
    nose = [
        (hx + dx * r * 1.5, hy + dy * r * 1.5),
        (hx - dy * r * 0.6, hy + dx * r * 0.6),
        (hx + dy * r * 0.6, hy - dx * r * 0.6),
    ]
    draw.polygon(nose, fill=P.body(slot))
    draw.ellipse([hx - r, hy - r, hx + r, hy + r], fill=P.shade(slot))
    return hx, hy, r


def draw_hand(draw, view: View, p: Placed, target: tuple[float, float]) -> tuple[float, float, float]:
    """An arm reaching into the frame from its bottom edge towards ``target`` (an insert, a POV)."""
    slot = p.figure.colour
    x0, y0 = p.cx, view.bottom + p.hf * 0.5
    tx, ty = target
    length = math.hypot(tx - x0, ty - y0) or 1.0
    ux, uy = (tx - x0) / length, (ty - y0) / length
    half = p.hf * 0.5
    end = 0.82
    ex, ey = x0 + (tx - x0) * end, y0 + (ty - y0) * end
    arm = [
        (x0 - uy * half * 1.2, y0 + ux * half * 1.2),
        (x0 + uy * half * 1.2, y0 - ux * half * 1.2),
        (ex + uy * half, ey - ux * half),
        (ex - uy * half, ey + ux * half),
    ]
    draw.polygon(view.poly(arm), fill=P.body(slot))
    hx, hy = view.pt(ex, ey)
    r = half * 1.45
    draw.ellipse([hx - r, hy - r, hx + r, hy + r], fill=P.body(slot), outline=P.PLATE, width=max(1, int(r / 20)))
    # a thumb, on the side towards the middle of the frame
    side = 1 if tx < x0 else -1
    tb = (ex + side * uy * r * 0.8 - ux * r * 0.1, ey - side * ux * r * 0.8 - uy * r * 0.1)
    thumb = [
        view.pt(tb[0] - ux * r * 0.35, tb[1] - uy * r * 0.35),
        view.pt(tb[0] + ux * r * 0.75, tb[1] + uy * r * 0.75),
        view.pt(tb[0] + side * uy * r * 0.45, tb[1] - side * ux * r * 0.45),
    ]
    draw.polygon(thumb, fill=P.body(slot))
    cuff = [
        (x0 - uy * half * 1.25, y0 + ux * half * 1.25),
        (x0 + uy * half * 1.25, y0 - ux * half * 1.25),
        (x0 + (ex - x0) * 0.45 + uy * half * 1.1, y0 + (ey - y0) * 0.45 - ux * half * 1.1),
        (x0 + (ex - x0) * 0.45 - uy * half * 1.1, y0 + (ey - y0) * 0.45 + ux * half * 1.1),
    ]
    draw.polygon(view.poly(cuff), fill=P.shade(slot))
    return hx, hy, r


def draw_object(draw, view: View, cx: float, cy: float, size: float) -> None:
    """The marker of an insert's object: a rounded block with a crosshair (the prompt says what it is)."""
    half = size / 2
    box = [cx - half, cy - half * 0.8, cx + half, cy + half * 0.8]
    draw.rounded_rectangle(box, radius=int(size * 0.12), fill=P.OBJECT, outline=P.FG, width=max(2, int(size / 60)))
    line = max(2, int(size / 80))
    draw.line([(cx - half * 0.6, cy), (cx + half * 0.6, cy)], fill=P.DIM, width=line)
    draw.line([(cx, cy - half * 0.5), (cx, cy + half * 0.5)], fill=P.DIM, width=line)
    r = half * 0.22
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=P.DIM, width=line)
