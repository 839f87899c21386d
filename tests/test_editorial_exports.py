"""Editorial settings in the exports: the animatic at 23.976, drop-frame EDLs, shot codes on the
board, contact-sheet pages and fields."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import pytest
from helpers import run_cli_subprocess

from shotflow import api
from shotflow.render import RenderOptions
from shotflow.report import RecordingReporter

STORY = """\
shotflow: 1
title: Codes
editorial: {{fps: {fps}, start: "{start}", shot_code: "SQ{{scene_number:03d}}_{{shot_number:04d}}"}}
scenes:
  - id: one
    shots:
      - id: a
        prompt: a wide shot of a field at noon
        duration: 1.01
        notes: the first shot
      - id: b
        prompt: a road at dusk
        duration: 1.01
        dialogue: "FARMER: The road goes on."
  - id: two
    shots:
      - id: c
        prompt: a barn at night
        duration: 1.01
"""


def make(tmp_path: Path, fps: str = "23.976", start: str = "00:00:00:00") -> Path:
    story = tmp_path / "storyboard.yaml"
    story.write_text(STORY.format(fps=fps, start=start), encoding="utf-8")
    api.render(story, RenderOptions(), RecordingReporter())
    return story


def test_animatic_runs_at_the_exact_ntsc_rate(tmp_path):
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    story = make(tmp_path)
    out = tmp_path / "cut.mp4"
    done = run_cli_subprocess("animatic", story, "-o", out, "--size", "320x180")
    assert done.code == 0, done.err
    assert "73 frames at 23.976 fps" in done.out  # round(3.03 × 24000/1001) = round(72.65)
    import subprocess

    # framemd5 lists every frame with its timestamp and the stream's exact time base
    listing = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(out), "-f", "framemd5", "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert "#tb 0: 1001/24000" in listing  # one tick a frame at 24000/1001, not 1/24
    packets = [line.split(",") for line in listing if line and not line.startswith("#")]
    assert len(packets) == 73 and [int(p[2]) for p in packets] == list(range(73))  # a frame on every tick
    bad = run_cli_subprocess("animatic", story, "-o", out, "--fps", "23.97")
    assert bad.code == 2 and "--fps 23.97" in bad.err and "Traceback" not in bad.err


def test_drop_frame_edl_at_29_97(tmp_path):
    pytest.importorskip("opentimelineio")
    story = make(tmp_path, "29.97", "01:00:00;00")
    cut = tmp_path / "cut.edl"
    done = run_cli_subprocess("export", story, "--edl", cut)
    assert done.code == 0, done.err
    lines = cut.read_text(encoding="ascii").splitlines()
    assert lines[1] == "FCM: DROP FRAME"
    events = [line.split() for line in lines if re.match(r"^\d{3} ", line)]
    assert [e[1] for e in events] == ["SQ010_00", "SQ010_00", "SQ020_00"]  # reels: 8 characters at most
    assert events[0][-2] == "01:00:00;00"
    assert "* FROM CLIP NAME:  SQ010_0020" in lines  # the full code as the clip name
    assert "* LOC: 00:00:00;00 YELLOW  DIALOGUE: FARMER: THE ROAD GOES ON." in lines
    assert all(len(line) <= 80 and line.isascii() for line in lines)


def test_shot_codes_number_the_board_and_the_otio_clips(tmp_path):
    otio = pytest.importorskip("opentimelineio")
    story = make(tmp_path, "25")
    board = tmp_path / "board.html"
    assert run_cli_subprocess("board", story, "-o", board).code == 0
    html = board.read_text(encoding="utf-8")
    assert '<span class="num">SQ010_0010</span>' in html and '<span class="num">SQ020_0010</span>' in html
    cut = tmp_path / "cut.otio"
    assert run_cli_subprocess("export", story, "--otio", cut, "--fps", "50").code == 0  # --fps wins over the storyboard
    timeline = otio.adapters.read_from_file(str(cut))
    clips = list(timeline.find_clips())
    assert [c.name for c in clips] == ["SQ010_0010", "SQ010_0020", "SQ020_0010"]
    # cuts at 50.5 -> 51, 101, 151.5 -> 152: half a frame rounds up, as a person rounds
    assert [c.source_range.duration.value for c in clips] == [51, 50, 51]
    assert {c.source_range.duration.rate for c in clips} == {50.0}
    assert timeline.metadata["shotflow"]["fps"] == "50" and timeline.metadata["shotflow"]["frames"] == 152


def test_contact_sheet_pdf_pages_columns_and_fields(tmp_path):
    from shotflow.exports._frames import load_sequence
    from shotflow.exports.contact import Page, _Sheet

    story = make(tmp_path, "24")
    letter = tmp_path / "letter.pdf"
    done = run_cli_subprocess(
        "contact-sheet",
        story,
        "-o",
        letter,
        "--page",
        "letter",
        "--orientation",
        "portrait",
        "--columns",
        "1",
        "--fields",
        "code,duration,notes",
    )
    assert done.code == 0, done.err
    assert re.search(rb"/MediaBox \[\s*0 0 612(\.0+)? 792(\.0+)?\s*\]", letter.read_bytes())  # 8.5 × 11 in
    a4 = tmp_path / "a4.pdf"
    assert run_cli_subprocess("contact-sheet", story, "-o", a4, "--columns", "4").code == 0
    box = re.search(rb"/MediaBox \[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", a4.read_bytes())
    assert (round(float(box.group(1))), round(float(box.group(2)))) == (842, 595)  # A4 landscape, in points
    five = run_cli_subprocess("contact-sheet", story, "-o", a4, "--columns", "5")
    assert five.code == 2 and "1 to 4 columns" in five.err
    unknown = run_cli_subprocess("contact-sheet", story, "-o", a4, "--fields", "code,dialog")
    assert unknown.code == 2 and "unknown field 'dialog'" in unknown.err and "dialogue" in unknown.err
    paper = run_cli_subprocess("contact-sheet", story, "-o", tmp_path / "x.png", "--page", "a4")
    assert paper.code == 2 and "PDF" in paper.err
    seq = load_sequence(story)
    bare = _Sheet(seq, seq.shots, columns=2, fields=("code",), page=Page())
    full = _Sheet(
        seq, seq.shots, columns=2, fields=("code", "duration", "camera", "dialogue", "action", "notes"), page=Page()
    )
    assert full.caption_h > bare.caption_h and full.width == bare.width == Page().size[0]
    portrait = _Sheet(seq, seq.shots, columns=1, page=Page("a4", "portrait"))
    assert portrait.page.size == (1240, 1754) and portrait.cell_w <= 1240


def test_editorial_fps_reaches_frame_counts_exactly():
    from shotflow.editorial import frame_counts, parse_fps

    assert parse_fps("23.976") == Fraction(24000, 1001) == parse_fps(23.976) == parse_fps("24000/1001")
    assert parse_fps(25.0) == 25 and parse_fps("59.94") == Fraction(60000, 1001)
    # an hour at 23.976 is 86 313.6 frames: 3600 one-second shots end on frame 86 314, not a float's neighbour
    assert sum(frame_counts([1.0] * 3600, Fraction(24000, 1001))) == 86314
