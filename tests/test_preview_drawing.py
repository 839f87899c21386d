"""The preview panel's drawing, checked by measuring the image (never by hashing it).

A figure is measured as what a viewer sees: a connected shape in one of the
characters' documented colours (``staging.CHARACTER_COLOURS``: head, neck and body;
limbs, eyelines and name swatches are other shades). The horizon is the brightest
line at the frame's right edge; a character's colour is the colour of its shape.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import pytest
from PIL import Image, ImageChops

from shotflow import api
from shotflow.backends import Request
from shotflow.backends.preview import PreviewBackend
from shotflow.model import Camera
from shotflow.staging import CHARACTER_COLOURS, Figure, SceneBlocking, Staging

W, H = 1360, 768
BAND = 0.85  # the caption band starts below this fraction of the height (the drawing is above it)


@dataclass
class Blob:
    colour: tuple[int, int, int]
    area: int  # in pixels of the half-size image
    box: tuple[int, int, int, int]  # in full-size pixels
    rows: dict[int, int]  # half-size row -> width of the shape on that row

    @property
    def cx(self) -> float:
        return (self.box[0] + self.box[2]) / 2

    def head(self) -> int:
        """The head's height in full-size pixels: from the top down to the neck (the first narrowing)."""
        ys = sorted(self.rows)
        widest = 0
        for y in ys:
            width = self.rows[y]
            widest = max(widest, width)
            if width < widest * 0.6:
                return (y - ys[0]) * 2
        return (ys[-1] - ys[0] + 1) * 2


def draw(
    staging: Staging | None, *, seed: int = 7, width: int = W, height: int = H, prompt: str = "a shot"
) -> Image.Image:
    request = Request(
        key="k" * 64,
        node_id="t/t",
        model="runway:4@1",
        prompt=prompt,
        width=width,
        height=height,
        seed=seed,
        staging=staging,
    )
    return Image.open(io.BytesIO(PreviewBackend().draw_all(request)[0].data)).convert("RGB")


def shot(
    *names: str,
    framing: str | None = None,
    angle: str | None = None,
    move: str | None = None,
    blocking: dict | None = None,
    location: str | None = "harbor",
    tone: int | None = 1,
) -> Staging:
    figures = SceneBlocking().place(list(names), blocking or {}, {n: i for i, n in enumerate(["mara", "tom", "ines"])})
    return Staging(
        "shot", cast=figures, location=location, tone=tone, camera=Camera(framing=framing, angle=angle, move=move)
    )


def mask(img: Image.Image, rgb: tuple[int, int, int]) -> Image.Image:
    """Where the image is exactly ``rgb`` (255), at half size (a pixel set if any of its four was)."""
    diff = ImageChops.difference(img, Image.new("RGB", img.size, rgb)).convert("L")
    return diff.point(lambda v: 255 if v == 0 else 0).reduce(2).point(lambda v: 255 if v else 0)


def blobs(img: Image.Image, min_area: int = 40) -> list[Blob]:
    """Connected shapes in the characters' colours, in the drawing (above the caption band)."""
    found = []
    top_band = int(img.height * BAND) // 2
    present = {rgb for _, rgb in img.getcolors(img.width * img.height)}
    for rgb in CHARACTER_COLOURS:
        if rgb not in present:
            continue
        m = mask(img, rgb)
        w = m.width
        data = m.tobytes()[: w * top_band]
        seen = bytearray(len(data))
        start = data.find(255)
        while start != -1:
            if not seen[start]:
                stack, pixels = [start], []
                seen[start] = 1
                while stack:
                    i = stack.pop()
                    pixels.append(i)
                    x = i % w
                    for j in (i - 1 if x else -1, i + 1 if x + 1 < w else -1, i - w, i + w):
                        if 0 <= j < len(data) and data[j] and not seen[j]:
                            seen[j] = 1
                            stack.append(j)
                if len(pixels) >= min_area:
                    xs = [i % w for i in pixels]
                    ys = [i // w for i in pixels]
                    rows: dict[int, int] = {}
                    for y in ys:
                        rows[y] = rows.get(y, 0) + 1
                    found.append(
                        Blob(rgb, len(pixels), (min(xs) * 2, min(ys) * 2, max(xs) * 2 + 2, max(ys) * 2 + 2), rows)
                    )
            start = data.find(255, start + 1)
    return found


def saturated(img: Image.Image) -> int:
    """How many pixels are of a clearly saturated, bright colour (no location tone, text or plate is)."""
    _, s, v = img.convert("HSV").split()
    both = ImageChops.multiply(s.point(lambda x: 255 if x > 140 else 0), v.point(lambda x: 255 if x > 115 else 0))
    return both.histogram()[255]


def bright_rows(region: Image.Image, level: int = 200) -> tuple[int, int] | None:
    """The first and last rows of ``region`` holding a pixel brighter than ``level`` (bright text)."""
    box = region.convert("L").point(lambda v: 255 if v > level else 0).getbbox()
    return (box[1], box[3]) if box else None


def horizon(img: Image.Image, x: int | None = None) -> int | None:
    """The row of the horizon at column ``x`` (default: the right edge): the brightest line of the set."""
    x = img.width - 3 if x is None else x
    column = [sum(img.getpixel((x, y))) for y in range(int(img.height * 0.12), int(img.height * BAND) - 4)]
    brightest = max(column)
    if brightest < sorted(column)[len(column) // 2] + 150:
        return None  # no line stands out: the horizon is out of the frame
    rows = [y for y, v in enumerate(column) if v >= brightest - 10]
    return int(img.height * 0.12) + sum(rows) // len(rows)


# -- cast -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "framing", ["extreme wide", "wide", "medium", "close-up", "medium two shot", "over the shoulder", "insert"]
)
@pytest.mark.parametrize("cast", [("mara",), ("mara", "tom"), ("mara", "tom", "ines")])
def test_one_figure_per_cast_member(framing, cast):
    found = blobs(draw(shot(*cast, framing=framing)))
    assert len(found) == len(cast), [(b.colour, b.area, b.box) for b in found]
    assert {b.colour for b in found} == {CHARACTER_COLOURS[i] for i in range(len(cast))}


@pytest.mark.parametrize("framing", [None, "extreme wide", "insert", "close-up"])
def test_a_shot_without_cast_has_no_figure(framing):
    img = draw(shot(framing=framing, move="pan right"))
    assert blobs(img, min_area=1) == []
    assert saturated(img) == 0
    assert saturated(draw(shot("mara", framing=framing))) > 500


def test_a_location_sheet_shows_the_place_and_no_one():
    img = draw(Staging("location", location="harbor", tone=2))
    assert saturated(img) == 0 and horizon(img) is not None


def test_a_character_sheet_shows_that_character_in_their_colour():
    img = draw(Staging("character", cast=(Figure("mara", 4, "center", "camera"),)), width=1024, height=1024)
    found = blobs(img)
    assert len(found) == 3  # front, side, back
    assert {b.colour for b in found} == {CHARACTER_COLOURS[4]}


def test_a_character_has_one_colour_in_every_panel(write):
    """Through the whole pipeline: render a storyboard, measure its frames."""
    story = write("""
        shotflow: 1
        characters:
          mara: {description: a keeper}
          tom: {description: an operator}
        locations:
          harbor: {description: a harbour}
          tavern: {description: a tavern}
        scenes:
          - id: one
            location: harbor
            shots:
              - {id: a, cast: [mara], prompt: mara alone, camera: {framing: medium}}
              - {id: b, cast: [tom], prompt: tom alone, camera: {framing: close-up, angle: low angle}}
          - id: two
            location: tavern
            shots:
              - {id: c, cast: [tom, mara], prompt: both, camera: {framing: wide, angle: high angle}}
    """)
    summary = api.render(story)
    assert summary.failed == 0
    frames = {
        name: Image.open(story.parent / "renders" / scene / f"{name}.png").convert("RGB")
        for scene, name in (("one", "a"), ("one", "b"), ("two", "c"))
    }
    colours = {name: [b.colour for b in blobs(img)] for name, img in frames.items()}
    assert len(colours["a"]) == len(colours["b"]) == 1 and len(colours["c"]) == 2
    mara, tom = colours["a"][0], colours["b"][0]
    assert mara != tom
    assert set(colours["c"]) == {mara, tom}
    # the places differ: their tones do (the sky at the top right, under no label)
    assert frames["a"].getpixel((4, H - 4)) != frames["c"].getpixel((4, H - 4))
    assert frames["a"].getpixel((4, H - 4)) == frames["b"].getpixel((4, H - 4))


# -- framing -------------------------------------------------------------------------------------------------


def test_the_figure_grows_from_extreme_wide_to_close_up():
    heads = []
    for framing in ["extreme wide", "wide", "full", "medium", "medium close-up", "close-up"]:
        (figure,) = blobs(draw(shot("mara", framing=framing)), min_area=8)
        heads.append(figure.head())
    assert heads == sorted(heads) and len(set(heads)) == len(heads), heads
    assert heads[0] < H * 0.04 and heads[-1] > H * 0.3  # small in a large space; filling the frame
    ecu = blobs(draw(shot("mara", framing="extreme close-up")))
    assert ecu and ecu[0].box[2] - ecu[0].box[0] > W * 0.5  # a face detail: wider than half the frame


def test_an_over_the_shoulder_has_the_near_shoulder_large_and_the_far_face_to_camera():
    img = draw(shot("mara", "tom", framing="over the shoulder"))
    by_colour = {b.colour: b for b in blobs(img)}
    near, far = by_colour[CHARACTER_COLOURS[0]], by_colour[CHARACTER_COLOURS[1]]  # mara nearest (listed first)
    assert near.cx < W / 2 < far.cx  # mara keeps the left, tom the right
    assert near.box[0] <= 2  # cut by the frame's edge
    assert near.box[2] - near.box[0] > (far.box[2] - far.box[0]) * 1.1  # the near shoulder: larger
    assert far.head() > H * 0.15  # the far one: a face to camera, at medium close-up


# -- angle ------------------------------------------------------------------------------------------------------


def test_the_horizon_moves_with_the_angle():
    empty = {a: horizon(draw(shot(framing="extreme wide", angle=a))) for a in ("high angle", "eye level", "low angle")}
    assert None not in empty.values()
    assert empty["high angle"] < empty["eye level"] < empty["low angle"], empty
    # with someone in the frame: the horizon crosses them at the camera's height
    eye = horizon(draw(shot("mara", framing="wide", angle="eye level")))
    low = horizon(draw(shot("mara", framing="wide", angle="low angle")))
    (figure,) = blobs(draw(shot("mara", framing="wide", angle="eye level")))
    assert figure.box[1] < eye < figure.box[1] + figure.head()  # eye level: through the head
    assert low > eye + H * 0.2  # low angle: near the feet


def test_a_dutch_angle_tilts_the_frame():
    level = draw(shot(framing="extreme wide"))
    dutch = draw(shot(framing="extreme wide", angle="dutch angle"))
    assert abs(horizon(level, 3) - horizon(level, W - 3)) <= 2
    assert abs(horizon(dutch, 3) - horizon(dutch, W - 3)) > W * 0.15  # about 12°


def test_seen_from_below_the_figure_narrows_to_the_head():
    def head_to_hips(angle):
        (figure,) = blobs(draw(shot("mara", framing="full", angle=angle)))
        return figure.head() / (figure.box[3] - figure.box[1])

    assert head_to_hips("low angle") < head_to_hips("eye level") < head_to_hips("high angle")


# -- blocking and screen direction ----------------------------------------------------------------------------


def test_blocking_places_and_turns_the_figures():
    img = draw(
        shot(
            "mara",
            "tom",
            framing="medium",
            blocking={"mara": {"x": "right", "facing": "left"}, "tom": {"x": "left", "facing": "right"}},
        )
    )
    by_colour = {b.colour: b for b in blobs(img)}
    mara, tom = by_colour[CHARACTER_COLOURS[0]], by_colour[CHARACTER_COLOURS[1]]
    assert tom.cx < W / 2 < mara.cx
    # eyelines: each looks towards the other (the dashed arrows in the lighter tint, beside the head)
    for figure, towards in ((mara, -1), (tom, 1)):
        light = tuple(round(c + (p - c) * 0.45) for c, p in zip(figure.colour, (238, 234, 226), strict=True))
        box = mask(img.crop((0, 0, W, int(H * 0.5))), light).getbbox()
        assert box, "no eyeline drawn"
        assert ((box[0] + box[2]) - figure.cx) * towards > 0  # (half-size box: its centre is the sum)


def test_without_blocking_a_lone_figure_faces_the_camera_and_two_face_each_other():
    lone = draw(shot("mara", framing="medium"))
    (figure,) = blobs(lone)
    assert abs(figure.cx - W / 2) < W * 0.05
    light = tuple(round(c + (p - c) * 0.45) for c, p in zip(CHARACTER_COLOURS[0], (238, 234, 226), strict=True))
    swatch_free = lone.crop((0, 0, W, int(H * 0.6)))
    assert mask(swatch_free, light).getbbox() is None  # no eyeline: looking into the lens


def test_screen_direction_holds_across_a_scene(example):
    """The lighthouse's radio call: Mara left looking right, Tom right looking left, Mara again on the left."""
    project = api.load_project(example("lighthouse"))
    sides = {}
    for name in ("console", "station", "reaction"):
        node = project.nodes[f"radio/{name}"]
        (figure,) = blobs(draw(node.staging, width=node.width, height=node.height))
        sides[name] = figure.cx < node.width / 2
    assert sides == {"console": True, "station": False, "reaction": True}


# -- the camera move and what cannot be drawn -----------------------------------------------------------------


@pytest.mark.parametrize(
    "move",
    [
        "slow push in",
        "pull out",
        "pan left",
        "tilt up",
        "truck right",
        "crane down",
        "handheld",
        "arc left",
        "tracking",
    ],
)
def test_a_camera_move_is_drawn_and_static_is_not(move):
    still = draw(shot("mara", framing="wide", move="static"))
    moving = draw(shot("mara", framing="wide", move=move))
    diff = ImageChops.difference(still, moving).convert("L").point(lambda v: 255 if v > 40 else 0)
    box = diff.getbbox()
    assert box is not None and box[1] < H * BAND  # drawn in the frame, not only in the caption band
    assert diff.histogram()[255] > 2000


def test_camera_notes_the_panel_cannot_draw_become_a_caption():
    from shotflow.backends.preview._camera import read

    noted = read(
        Camera(framing="medium close-up, profile", angle="low angle", lens="85mm anamorphic", move="rack focus"), 1
    )
    assert noted.scale == "MCU" and noted.camera == "low" and noted.lens == 85.0 and noted.move is None
    assert noted.notes == ("framing: medium close-up, profile", "move: rack focus", "lens: 85mm anamorphic")
    plain = read(Camera(framing="close-up", angle="low angle", lens="85mm", move="slow push in"), 1)
    assert plain.notes == () and plain.move.kind == "in" and plain.slug == "CU · LOW ANGLE · 85mm"
    # the caption is written on the panel: the slug's plate grows by a line
    assert (
        _slug_height(draw(shot("mara", framing="close-up", move="rack focus")))
        > _slug_height(draw(shot("mara", framing="close-up", move="static"))) * 1.3
    )


def _slug_height(img: Image.Image) -> int:
    """The height of the dark plate at the top left (the slug and its caption lines)."""
    x = int(min(W, H) / 42) + 3
    plate = img.getpixel((x, x + 2))
    y = x + 2
    while y < H // 2 and img.getpixel((x, y)) == plate:
        y += 1
    return y


# -- readable at board and contact-sheet size ----------------------------------------------------------------


def test_the_slug_and_names_stay_readable_at_board_size():
    """On the board a panel is ~330 px wide: the slug's capitals must still be ≥ 8 px tall there."""
    img = draw(shot("mara", framing="medium"))
    top, bottom = bright_rows(img.crop((0, 0, int(W * 0.45), int(H * 0.2))))
    assert (bottom - top) * 330 / W >= 8, (top, bottom)
    # the name label under the figure: bright text on a dark plate, as tall
    top, bottom = bright_rows(img.crop((int(W * 0.35), int(H * 0.7), int(W * 0.65), int(H * BAND))))
    assert (bottom - top) * 330 / W >= 7, (top, bottom)


# -- determinism ---------------------------------------------------------------------------------------------------


def test_same_request_same_bytes_and_takes_differ_a_little():
    staging = shot("mara", "tom", framing="medium two shot", angle="dutch angle", move="arc left")
    request = Request(
        key="k" * 64, node_id="a/b", model="runway:4@1", prompt="p", width=W, height=H, seed=3, staging=staging, takes=2
    )
    first = PreviewBackend().draw_all(request)
    again = PreviewBackend().draw_all(request)
    assert [i.data for i in first] == [i.data for i in again]
    assert first[0].data != first[1].data
    a, b = (blobs(Image.open(io.BytesIO(i.data)).convert("RGB")) for i in first)
    assert len(a) == len(b) == 2  # a take nudges the staging, never changes it
    for x, y in zip(sorted(a, key=lambda f: f.cx), sorted(b, key=lambda f: f.cx), strict=True):
        assert x.colour == y.colour and abs(x.cx - y.cx) < W * 0.05


@pytest.mark.parametrize("size", [(1920, 1080), (720, 1280), (1024, 1024), (1808, 768)])
def test_every_aspect_draws_the_cast(size):
    img = draw(shot("mara", "tom", framing="wide"), width=size[0], height=size[1])
    assert img.size == size
    assert len(blobs(img, min_area=8)) == 2


# -- the README's strip ----------------------------------------------------------------------------------------


def test_the_strip_command_lays_out_the_examples_panels(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    out = tmp_path / "strip.png"
    renders = (root / "examples/lighthouse/renders").exists()
    story = str(root / "examples/lighthouse/storyboard.yaml")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "shotflow.exports.strip",
            story,
            "--strip",
            str(out),
            "--shots",
            "radio/console",
            "radio/station",
            "--columns",
            "2",
            "--width",
            "400",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    with Image.open(out) as strip:
        img = strip.convert("RGB")
    assert img.width == 2 * 400 + 3 * (400 // 30)
    left, right = img.crop((13, 13, 413, 13 + 226)), img.crop((426, 13, 826, 13 + 226))
    (mara,), (tom,) = blobs(left, min_area=4), blobs(right, min_area=4)
    assert mara.colour != tom.colour and mara.cx < 200 < tom.cx  # the call, across the cut
    assert (root / "examples/lighthouse/renders").exists() == renders  # rendered in a temporary copy
    bad = subprocess.run(
        [sys.executable, "-m", "shotflow.exports.strip", story, "--strip", str(out), "--shots", "radio/nope"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "no such shot: radio/nope" in bad.stderr
