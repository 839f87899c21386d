"""shotflow animatic: exact durations, one frame size (letterboxed), H.264 yuv420p, GIF,
placeholders for shots never rendered, and a clear error without ffmpeg."""

from __future__ import annotations

import shutil
import sys
import textwrap
import time
from pathlib import Path

import pytest
from helpers import run_cli_in_process, run_cli_subprocess

from shotflow import api
from shotflow.render import RenderOptions
from shotflow.report import RecordingReporter

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="the animatic tests read videos back with imageio-ffmpeg")

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

SHAPES = """\
shotflow: 1
title: Shapes
defaults: {model: "runway:4@1", size: 1K-16:9, output: {format: PNG}}
scenes:
  - id: s
    shots:
      - id: a
        prompt: a wide shot of a field at noon
        duration: 1.01
      - id: b
        prompt: a square portrait of a farmer
        size: 1K-1:1
        duration: 1.01
      - id: c
        prompt: a wide shot of a road at dusk
        duration: 1.01
        dialogue: "FARMER: The road goes on."
"""
LATE = """\
      - id: d
        prompt: the road at night, added after the render
        duration: 0.7
"""


def render(story: Path) -> None:
    api.render(story, RenderOptions(), RecordingReporter())


@pytest.fixture(scope="module")
def lighthouse(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("animatic") / "lighthouse"
    shutil.copytree(EXAMPLES / "lighthouse", root, ignore=shutil.ignore_patterns("renders", ".shotflow", "*.lock"))
    story = root / "storyboard.yaml"
    render(story)
    return story


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    """Two aspects (16:9 and 1:1), awkward durations, and a shot added after rendering."""
    story = tmp_path_factory.mktemp("shapes") / "storyboard.yaml"
    story.write_text(SHAPES, encoding="utf-8")
    render(story)
    story.write_text(SHAPES + LATE, encoding="utf-8")
    return story


def probe(path: Path) -> dict:
    frames, seconds = imageio_ffmpeg.count_frames_and_secs(str(path))
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    reader.close()
    return {"frames": frames, "seconds": seconds, **meta}


def frames(path: Path, size: tuple[int, int]) -> list[bytes]:
    reader = imageio_ffmpeg.read_frames(str(path), pix_fmt="rgb24")
    next(reader)
    return list(reader)


def pixel(frame: bytes, size: tuple[int, int], x: int, y: int) -> tuple[int, int, int]:
    i = (y * size[0] + x) * 3
    return tuple(frame[i : i + 3])


@pytest.mark.slow
def test_lighthouse_mp4_is_exact_h264_yuv420p_and_quick(lighthouse, tmp_path):
    out = tmp_path / "cut.mp4"
    started = time.perf_counter()
    done = run_cli_subprocess("animatic", lighthouse, "-o", out)
    elapsed = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    assert "11 shots" in done.stdout and "744 frames at 24 fps" in done.stdout
    info = probe(out)
    assert info["frames"] == 744  # 31 s × 24, every cut on its frame
    assert info["seconds"] == pytest.approx(31.0, abs=1e-6)
    assert info["size"] == (1360, 768) and info["fps"] == 24
    assert info["codec"] == "h264" and info["pix_fmt"].startswith("yuv420p")
    assert elapsed < 60, f"the lighthouse animatic took {elapsed:.1f} s"


def test_cuts_are_exact_to_the_frame_and_other_aspects_are_letterboxed(shapes, tmp_path):
    out = tmp_path / "shapes.mp4"
    done = run_cli_in_process("animatic", shapes, "-o", out, "--size", "321x181")  # odd: rounded down to even
    assert done.returncode == 0, done.stderr
    info = probe(out)
    size = (320, 180)
    assert info["size"] == size
    assert info["frames"] == 90  # round((3 × 1.01 + 0.7) × 24) = round(89.52): cuts at 24, 48, 73, 90
    video = frames(out, size)
    assert len(video) == 90
    a, b, c, d = video[12], video[36], video[60], video[85]
    assert sum(pixel(a, size, 4, 90)) > 60  # a 16:9 frame fills the 16:9 picture
    assert sum(pixel(b, size, 4, 90)) < 30 and sum(pixel(b, size, 315, 90)) < 30  # 1:1: pillarboxed, black sides
    assert sum(pixel(b, size, 160, 90)) > 60
    assert difference(d, c) > 5  # the shot never rendered is a placeholder card, not the previous frame held
    for start, end in ((0, 24), (24, 48), (48, 73), (73, 90)):  # each shot is still from its first frame to its last
        assert difference(video[start], video[end - 1]) < 3, (start, end)  # (encoder noise only)
        if end < 90:
            assert difference(video[end - 1], video[end]) > 10, f"no cut at frame {end}"


def difference(one: bytes, other: bytes) -> float:
    """Mean absolute difference of two frames' bytes (sampled)."""
    step = 7
    return sum(abs(x - y) for x, y in zip(one[::step], other[::step], strict=True)) / (len(one) // step)


def test_captions_are_burned_in(shapes, tmp_path):
    plain, captioned = tmp_path / "plain.mp4", tmp_path / "captioned.mp4"
    for out, extra in ((plain, []), (captioned, ["--captions"])):
        done = run_cli_in_process("animatic", shapes, "-o", out, "--size", "320x180", *extra)
        assert done.returncode == 0, done.stderr
    size = (320, 180)
    p, c = frames(plain, size)[60], frames(captioned, size)[60]  # shot c, with dialogue

    def region(frame, y0, y1):
        return [frame[(y * size[0] + x) * 3] for y in range(y0, y1) for x in range(0, 320, 2)]

    top_diff = sum(abs(x - y) for x, y in zip(region(p, 0, 20), region(c, 0, 20), strict=True))
    bottom_diff = sum(abs(x - y) for x, y in zip(region(p, 150, 180), region(c, 150, 180), strict=True))
    assert top_diff > 2000 and bottom_diff > 2000  # the id at the top, the dialogue at the bottom


def test_gif_holds_each_shot_for_its_duration(lighthouse, tmp_path):
    from PIL import Image

    out = tmp_path / "cut.gif"
    done = run_cli_in_process("animatic", lighthouse, "-o", out)
    assert done.returncode == 0, done.stderr
    with Image.open(out) as gif:
        assert gif.size == (960, 542)  # the default GIF size: the first shot's, at most 960 wide, even
        durations = []
        for i in range(gif.n_frames):
            gif.seek(i)
            durations.append(gif.info["duration"])
    assert sum(durations) == 31000
    assert durations[:3] == [4000, 1500, 2500]


def test_no_ffmpeg_is_a_clear_error_and_gif_still_works(lighthouse, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)  # import imageio_ffmpeg raises ImportError
    monkeypatch.setenv("PATH", str(tmp_path))  # and no ffmpeg on the PATH
    result = run_cli_in_process("animatic", lighthouse, "-o", tmp_path / "cut.mp4")
    assert result.code == 2
    assert "needs ffmpeg" in result.text and "shotflow[video]" in result.text
    assert "Traceback" not in result.text
    assert not (tmp_path / "cut.mp4").exists()
    result = run_cli_in_process("animatic", lighthouse, "-o", tmp_path / "cut.gif", "--size", "160x90")
    assert result.code == 0, result.text
    assert (tmp_path / "cut.gif").stat().st_size > 1000


def test_unknown_extension_and_empty_storyboard_are_refused(lighthouse, tmp_path):
    done = run_cli_in_process("animatic", lighthouse, "-o", tmp_path / "cut.avi")
    assert done.returncode == 2 and "use .mp4" in done.stderr and "Traceback" not in done.stderr
    empty = tmp_path / "empty.yaml"
    empty.write_text(
        textwrap.dedent("""\
        shotflow: 1
        characters:
          mara:
            description: a keeper
            sheet: {prompt: a keeper, size: 1K-1:1}
        scenes: []
        """),
        encoding="utf-8",
    )
    done = run_cli_in_process("animatic", empty, "-o", tmp_path / "x.mp4")
    assert done.returncode == 2 and "has no shots: there is nothing to put on an animatic" in done.stderr
