"""The editorial round trip: export -> the editor retimes, reorders, drops -> conform --write -> export
gives the edited cut back, frame for frame (read back with OpenTimelineIO), at 23.976 and 25 fps."""

from __future__ import annotations

import re
import shutil
from fractions import Fraction
from pathlib import Path

import pytest
from conftest import EXAMPLES
from helpers import run_cli_subprocess

from shotflow import api
from shotflow.render import RenderOptions
from shotflow.report import RecordingReporter

otio = pytest.importorskip("opentimelineio")  # in the test extra: CI always has it

RATES = {"23.976": 24000 / 1001, "25": 25.0}


def project(tmp_path: Path, fps: str, *, code: bool = True) -> Path:
    target = tmp_path / "lighthouse"
    shutil.copytree(EXAMPLES / "lighthouse", target, ignore=shutil.ignore_patterns("renders", ".shotflow", "*.lock"))
    story = target / "storyboard.yaml"
    extra = f'editorial: {{fps: {fps}, start: "01:00:00:00"'
    extra += ', shot_code: "{scene_number:03d}_{shot_number:04d}"}\n' if code else "}\n"
    story.write_text(story.read_text() + extra)
    api.render(story, RenderOptions(), RecordingReporter())
    return story


def export(story: Path, out: Path, adapter: str | None = None) -> None:
    """``shotflow export`` in-process (the CLI path is tested in test_exports): fast tests."""
    from shotflow.exports._frames import load_sequence
    from shotflow.exports.timeline import write_timeline

    write_timeline(load_sequence(story), out, adapter=adapter)


def cut_of(timeline) -> list[tuple[str, int, int]]:
    """(shot id, first frame, frames) of every clip: what 'frame for frame' compares."""
    out = []
    for clip in timeline.find_clips():
        span = clip.range_in_parent()
        meta = clip.metadata.get("shotflow") or {}
        out.append((meta.get("id", clip.name), round(span.start_time.value), round(span.duration.value)))
    return out


def edit(timeline, rate: float) -> None:
    """What an editor does: retime two shots, swap two shots of a scene, drop one."""
    rt = otio.opentime
    track = timeline.tracks[0]
    by_id = {c.metadata["shotflow"]["id"]: c for c in track}

    def retime(shot: str, frames: int) -> None:
        clip = by_id[shot]
        clip.source_range = rt.TimeRange(clip.source_range.start_time, rt.RationalTime(frames, rate))

    retime("arrival/lamp", 61)
    retime("rescue/trawler", 55)
    door = track.index(by_id["arrival/door"])
    clip = track.pop(door)
    track.insert(door - 1, clip)  # door before lamp
    track.remove(by_id["radio/reaction"])


@pytest.mark.parametrize("fps", ["23.976", "25"])
def test_otio_round_trip_is_frame_exact(tmp_path, fps):
    rate = RATES[fps]
    story = project(tmp_path, fps)
    cut = tmp_path / "cut.otio"
    assert run_cli_subprocess("export", story, "--otio", cut).code == 0  # once through the CLI
    timeline = otio.adapters.read_from_file(str(cut))
    assert timeline.global_start_time.to_timecode() == "01:00:00:00"
    assert all(c.source_range.duration.rate == pytest.approx(rate) for c in timeline.find_clips())
    edit(timeline, rate)
    edited = tmp_path / "edited.otio"
    otio.adapters.write_to_file(timeline, str(edited))
    before = story.read_text()

    report = run_cli_subprocess("conform", edited, "--storyboard", story)
    assert report.code == 0, report.err
    assert "duration arrival/lamp: 1.5 s ->" in report.out and "(61 frames)" in report.out
    assert "order of scene arrival: wide, door, lamp, stairs (was wide, lamp, door, stairs)" in report.out
    assert "omit radio/reaction" in report.out and "run again with --write" in report.out
    assert story.read_text() == before  # a report writes nothing

    done = run_cli_subprocess("conform", edited, "--storyboard", story, "--write")
    assert done.code == 0, done.err
    text = story.read_text()
    assert "omit: true" in text and "# yaml-language-server" in text  # comments kept
    again = tmp_path / "again.otio"
    export(story, again)
    result = otio.adapters.read_from_file(str(again))
    assert cut_of(result) == cut_of(timeline)
    assert result.duration().value == timeline.duration().value
    assert result.global_start_time.value == timeline.global_start_time.value
    names = [c.name for c in result.find_clips()]
    assert names[:3] == ["010_0010", "010_0020", "010_0030"] and "020_0030" not in names  # codes; reaction omitted
    settled = run_cli_subprocess("conform", again, "--storyboard", story)
    assert "the storyboard already matches the cut" in settled.out


def test_final_cut_xml_round_trip_matches_by_frame_file(tmp_path):
    """FCP XML keeps no shotflow metadata: clips are matched by their frame's file."""
    rate = RATES["23.976"]
    story = project(tmp_path, "23.976", code=False)
    cut = tmp_path / "cut.xml"
    export(story, cut, "fcp_xml")
    timeline = otio.adapters.read_from_file(str(cut))
    for clip in timeline.find_clips():  # what the adapter keeps: the name (the id) and the file
        clip.metadata["shotflow"] = {"id": clip.name}
    expected = cut_of(timeline)
    track = timeline.tracks[0]
    rt = otio.opentime
    first = track[0]
    first.source_range = rt.TimeRange(first.source_range.start_time, rt.RationalTime(100, rate))
    track.remove(track[4])  # radio/console
    expected = cut_of(timeline)
    for clip in timeline.find_clips():
        del clip.metadata["shotflow"]
        clip.name = "renamed in the edit"  # only the file is left to match on
    edited = tmp_path / "edited.xml"
    otio.adapters.write_to_file(timeline, str(edited), adapter_name="fcp_xml")
    done = run_cli_subprocess("conform", edited, "--storyboard", story, "--write")
    assert done.code == 0, done.err
    assert "10 matched to shots (10 by media)" in done.out and "omit radio/console" in done.out
    again = tmp_path / "again.otio"
    export(story, again)
    assert cut_of(otio.adapters.read_from_file(str(again))) == expected


def test_edl_round_trip_at_25(tmp_path):
    story = project(tmp_path, "25")
    cut = tmp_path / "cut.edl"
    done = run_cli_subprocess("export", story, "--edl", cut)
    assert done.code == 0, done.err
    text = cut.read_text(encoding="ascii")
    lines = text.splitlines()
    assert lines[0] == "TITLE: The Lighthouse Keeper" and lines[1] == "FCM: NON-DROP FRAME"
    assert all(len(line) <= 80 for line in lines)
    events = [line for line in lines if line[:3].isdigit()]
    assert events[0].split()[1] == "010_0010" and events[0].split()[-2] == "01:00:00:00"
    assert "* SHOT: arrival/wide" in lines
    timeline = otio.adapters.read_from_file(str(cut), rate=25)
    track = timeline.tracks[0]
    rt = otio.opentime
    clip = track[2]
    clip.source_range = rt.TimeRange(clip.source_range.start_time, rt.RationalTime(40, 25))
    track.remove(track[9])
    edited = tmp_path / "edited.edl"
    otio.adapters.write_to_file(timeline, str(edited), adapter_name="cmx_3600", rate=25)

    def shots(tl):
        return [
            (
                str(c.metadata["cmx_3600"]["comments"]),
                round(c.range_in_parent().start_time.value),
                round(c.duration().value),
            )
            for c in tl.find_clips()
        ]

    expected = shots(otio.adapters.read_from_file(str(edited), rate=25))
    done = run_cli_subprocess("conform", edited, "--storyboard", story, "--write")
    assert done.code == 0, done.err
    assert "by metadata" in done.out and "omit rescue/signal" in done.out
    again = tmp_path / "again.edl"
    export(story, again, "cmx_3600")
    assert shots(otio.adapters.read_from_file(str(again), rate=25)) == expected


def test_an_edl_read_at_another_rate_than_its_export_says_to_give_that_rate(tmp_path):
    """The README's two examples: export --edl --fps 23.976, then conform --fps 23.976. An EDL
    does not say its rate; read at another one, the error says which --fps to give."""
    story = project(tmp_path, "24")
    cut = tmp_path / "cut.edl"
    assert run_cli_subprocess("export", story, "--edl", cut, "--fps", "23.976").code == 0
    wrong = run_cli_subprocess("conform", cut, "--storyboard", story, "--fps", "25")
    assert wrong.code == 2 and "Traceback" not in wrong.err, wrong.text
    assert re.search(r"does not read at 25 fps: give --fps the rate it was exported at", wrong.err), wrong.err
    right = run_cli_subprocess("conform", cut, "--storyboard", story, "--fps", "23.976", "--write")
    assert right.code == 0 and "11 matched to shots" in right.out, right.text
    assert "the storyboard already matches the cut" in right.out


def test_clips_that_are_no_shots_and_moves_across_scenes_are_reported_not_applied(tmp_path):
    story = project(tmp_path, "24")
    cut = tmp_path / "cut.otio"
    export(story, cut)
    timeline = otio.adapters.read_from_file(str(cut))
    track = timeline.tracks[0]
    rt = otio.opentime
    track.append(
        otio.schema.Clip(name="END CARD", source_range=rt.TimeRange(rt.RationalTime(0, 24), rt.RationalTime(48, 24)))
    )
    dawn = track.pop(len(track) - 2)  # rescue/dawn, cut into the arrival scene
    track.insert(1, dawn)
    edited = tmp_path / "edited.otio"
    otio.adapters.write_to_file(timeline, str(edited))
    before = story.read_text()
    done = run_cli_subprocess("conform", edited, "--storyboard", story, "--write")
    assert done.code == 0, done.err
    assert "not a shot: clip 12 'END CARD' (48 frames at 01:00:31:00)" in done.out
    # only the shot that left its scene is blamed, not every shot after it
    moved = (
        "moved: rescue/dawn is cut among the shots of scene arrival; a shot stays in its scene, so move it "
        "in the storyboard by hand"
    )
    assert [line for line in done.out.splitlines() if line.startswith("moved:")] == [moved]
    assert "note: the storyboard cannot reproduce this cut exactly" in done.out
    assert "nothing to write back" in done.out and story.read_text() == before  # nothing invented, nothing moved


def test_an_omitted_shot_leaves_the_cut_and_the_render_and_a_conform_restores_it(tmp_path):
    story = project(tmp_path, "24")
    full = tmp_path / "full.otio"
    export(story, full)
    text = story.read_text()
    # radio/station is referenced by no shot; arrival/wide is a reference of arrival/door
    text = text.replace("      - id: station\n", "      - id: station\n        omit: true\n")
    text = text.replace("      - id: wide\n", "      - id: wide\n        omit: true\n", 1)
    story.write_text(text)
    plan = run_cli_subprocess("plan", story, "--json")
    import json

    nodes = {n["id"] for n in json.loads(plan.out)["nodes"]}
    assert "radio/station" not in nodes  # out of the render
    assert "arrival/wide" in nodes  # still a reference of arrival/door
    cut = tmp_path / "cut.otio"
    export(story, cut)
    ids = [c.metadata["shotflow"]["id"] for c in otio.adapters.read_from_file(str(cut)).find_clips()]
    assert "radio/station" not in ids and "arrival/wide" not in ids and len(ids) == 9
    csv_path = tmp_path / "shots.csv"
    assert run_cli_subprocess("export", story, "--csv", csv_path).code == 0
    assert ",radio,station," not in csv_path.read_text() and ",radio,console," in csv_path.read_text()
    done = run_cli_subprocess("conform", full, "--storyboard", story, "--write")
    assert done.code == 0, done.err
    assert "restore arrival/wide" in done.out and "restore radio/station" in done.out
    assert "omit: true" not in story.read_text()


def test_seconds_for_picks_the_shortest_decimal_that_lands_on_the_frame():
    from shotflow.editorial import frame_counts, seconds_for

    fps = Fraction(24000, 1001)
    assert seconds_for(61, fps) == 2.544
    durations, before, done = [], Fraction(0), 0
    wanted = [61, 1, 240, 17, 3000, 2]
    for frames in wanted:
        d = seconds_for(frames, fps, before=before, done=done)
        durations.append(d)
        before += Fraction(str(d))
        done += frames
    assert frame_counts(durations, fps) == wanted


@pytest.mark.parametrize(
    "fps, frame, text",
    [
        (Fraction(24), 86400, "01:00:00:00"),
        (Fraction(24000, 1001), 86400, "01:00:00:00"),
        (Fraction(30000, 1001), 107892, "01:00:00;00"),
        (Fraction(30000, 1001), 1800, "00:01:00;02"),
        (Fraction(60000, 1001), 215784, "01:00:00;00"),
        (Fraction(25), 90000 + 24, "01:00:00:24"),
    ],
)
def test_timecode_both_ways(fps, frame, text):
    from shotflow.editorial import format_timecode, parse_timecode

    assert format_timecode(frame, fps) == text
    assert parse_timecode(text, fps) == frame


def test_bad_editorial_values_are_one_line_errors(tmp_path):
    from shotflow.errors import InputError

    story = tmp_path / "storyboard.yaml"
    base = "shotflow: 1\nscenes:\n  - id: a\n    shots:\n      - id: b\n        prompt: a lighthouse\n"
    for editorial, message in [
        ("editorial: {fps: 23.98}", "editorial.fps"),
        ('editorial: {start: "01:00:00:30"}', "not a timecode at 24 fps"),
        ('editorial: {shot_code: "{scene.__class__}"}', "unknown field {scene.__class__}"),
        ('editorial: {shot_code: "{shot_number:>99999d}"}', "is not allowed"),
        ('editorial: {shot_code: "SHOT"}', "has no field"),
    ]:
        story.write_text(base + editorial + "\n")
        with pytest.raises(InputError, match=re.escape(message)):
            api.load_project(story)
    done = run_cli_subprocess("validate", story)  # the last one, as a user sees it
    assert done.code == 2 and "storyboard.yaml:7:" in done.err and "has no field" in done.err
    assert "Traceback" not in done.err
    bad = run_cli_subprocess("export", story, "--fps", "23.98", "--csv", tmp_path / "x.csv")
    assert bad.code == 2 and "--fps 23.98" in bad.err and "23.976" in bad.err
