"""Exports (shotflow/exports/): the reading layer, the shot list, the timelines, the contact
sheet and the commands' errors. Every test works on a rendered copy of an example.

``mixed`` is the lighthouse rendered, then broken in every way an export must show:

    rescue/trawler   failed   (its prompt changed and the backend refused it)
    rescue/signal    skipped  (upstream trawler failed)      rescue/dawn  skipped
    radio/reaction   stale    (prompt changed, not re-rendered)
    rescue/gallery   stale    (its upstream reaction will re-render)
    rescue/flare     not rendered (added after the renders)
    everything else  fresh
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import RefusingBackend, run_cli_in_process, run_cli_subprocess

from shotflow import api
from shotflow.render import RenderOptions
from shotflow.report import RecordingReporter

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
LIGHTHOUSE_SHOTS = [
    "arrival/wide",
    "arrival/lamp",
    "arrival/door",
    "arrival/stairs",
    "radio/console",
    "radio/station",
    "radio/reaction",
    "rescue/gallery",
    "rescue/trawler",
    "rescue/signal",
    "rescue/dawn",
]

FLARE = """      - id: flare
        prompt: a red distress flare arcs over the sea
        duration: 1.25
        dialogue: "MARA: <Hold on> & \\"wait\\", the flare — ça brûle"
        notes: "comma, \\"quotes\\" and <b>tags</b>"
"""


def copy_example(target: Path, name: str = "lighthouse") -> Path:
    shutil.copytree(EXAMPLES / name, target, ignore=shutil.ignore_patterns("renders", ".shotflow", "*.lock", "*.html"))
    return target / "storyboard.yaml"


def render(story: Path) -> None:
    api.render(story, RenderOptions(), RecordingReporter())


def edit(story: Path, old: str, new: str) -> None:
    text = story.read_text(encoding="utf-8")
    assert old in text, old
    story.write_text(text.replace(old, new, 1), encoding="utf-8")


def make_mixed(target: Path) -> Path:
    story = copy_example(target)
    render(story)
    edit(story, "a small trawler pitching", "a small red trawler pitching")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("shotflow.backends.create", lambda name, services: RefusingBackend("red trawler"))
        render(story)
    edit(story, "her son's", "her brother's")
    story.write_text(story.read_text(encoding="utf-8") + FLARE, encoding="utf-8")
    return story


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    """The lighthouse, rendered (read-only for the tests that use it)."""
    story = copy_example(tmp_path_factory.mktemp("rendered") / "lighthouse")
    render(story)
    return story


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> Path:
    return make_mixed(tmp_path_factory.mktemp("mixed") / "lighthouse")


def sequence(story: Path):
    from shotflow.exports._frames import load_sequence

    return load_sequence(story)


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under root (to prove exports write nothing but their output)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# -- the reading layer ---------------------------------------------------------------------------


def test_sequence_is_in_story_order_with_sheets_first_and_all_fresh(rendered):
    from shotflow.status import Status
    from shotflow.store import LockFile

    seq = sequence(rendered)
    assert list(seq.panels) == ["character:mara", *LIGHTHOUSE_SHOTS]
    assert [p.id for p in seq.shots] == LIGHTHOUSE_SHOTS
    assert [p.number for p in seq.panels.values()][:4] == ["S1", "1.1", "1.2", "1.3"]
    assert [s.info.id for s in seq.scenes] == ["arrival", "radio", "rescue"]
    assert all(p.state is Status.FRESH for p in seq.panels.values())
    lock = LockFile.read(rendered.with_suffix(".lock"))
    for panel in seq.panels.values():
        entry = lock.entries[panel.id]
        assert panel.key == entry.record.key
        assert panel.picked is not None and panel.picked.in_renders
        assert hashlib.sha256(panel.picked.path.read_bytes()).hexdigest() == entry.picked.sha256
    door = seq.panels["arrival/door"]
    assert door.pick == 2 and door.picked.path.name == "door.png"
    assert [t.index for t in door.others] == [1, 3]
    assert seq.duration == pytest.approx(4 + 1.5 + 2.5 + 3 + 2.5 + 2.5 + 3 + 2.5 + 3 + 2.5 + 4)
    assert seq.cost == 0.0 and seq.backend == "preview"


def test_sequence_shows_failed_skipped_stale_and_never_rendered(mixed):
    from shotflow.status import Status

    seq = sequence(mixed)
    states = {p.id: p.state for p in seq.panels.values()}
    assert states["rescue/trawler"] is Status.FAILED
    assert "refused" in seq.panels["rescue/trawler"].message
    assert states["rescue/signal"] is Status.SKIPPED and states["rescue/dawn"] is Status.SKIPPED
    assert seq.panels["rescue/signal"].message == "upstream rescue/trawler failed"
    assert states["radio/reaction"] is Status.STALE and seq.panels["radio/reaction"].message == "prompt changed"
    assert states["rescue/gallery"] is Status.STALE and "radio/reaction" in seq.panels["rescue/gallery"].message
    assert states["rescue/flare"] is Status.NOT_RENDERED
    flare = seq.panels["rescue/flare"]
    assert flare.picked is None and flare.takes == () and flare.key is None
    changed = {"rescue/trawler", "rescue/signal", "rescue/dawn", "radio/reaction", "rescue/gallery", "rescue/flare"}
    assert {i for i, s in states.items() if s is Status.FRESH} == set(seq.panels) - changed
    # the failed, skipped and stale shots still show the frames of their last good render
    assert all(seq.panels[i].picked is not None for i in changed - {"rescue/flare"})
    assert list(seq.panels)[-1] == "rescue/flare"  # story order, not execution order


def test_a_frame_missing_from_renders_is_read_from_the_cache_and_a_changed_one_is_not_trusted(tmp_path):
    story = copy_example(tmp_path / "lh")
    render(story)
    lamp = story.parent / "renders/arrival/lamp.png"
    lamp.unlink()
    wide = story.parent / "renders/arrival/wide.png"
    good = wide.read_bytes()
    wide.write_bytes(good[:-10] + b"0123456789")  # same size, different bytes
    seq = sequence(story)
    for node_id, data in (("arrival/lamp", None), ("arrival/wide", good)):
        take = seq.panels[node_id].picked
        assert take is not None and not take.in_renders
        assert take.path.parent.parent.name == "objects"
        assert hashlib.sha256(take.read_bytes()).hexdigest() == take.sha256
        if data is not None:
            assert take.read_bytes() == data
    # neither in renders/ nor in the cache: no frame, and a placeholder everywhere
    shutil.rmtree(story.parent / ".shotflow" / "objects")
    seq = sequence(story)
    assert seq.panels["arrival/lamp"].picked is None
    assert seq.panels["arrival/lamp"].takes  # the lock still names it


@pytest.mark.parametrize(
    "durations, fps, expected",
    [
        ([1.01, 1.01, 1.01], 24, [24, 24, 25]),
        ([4, 1.5, 2.5], 24, [96, 36, 60]),
        ([0.01, 1.0], 24, [0, 24]),
        ([1 / 3] * 6, 25, [8, 9, 8, 8, 9, 8]),
    ],
)
def test_frame_counts_round_cumulative_times_so_the_total_is_exact(durations, fps, expected):
    from shotflow.exports._frames import frame_counts

    counts = frame_counts(durations, fps)
    assert counts == expected
    assert sum(counts) == round(sum(durations) * fps)


def test_frame_counts_total_is_exact_for_any_durations():
    import math
    import random
    from fractions import Fraction

    from shotflow.exports._frames import frame_counts

    rng = random.Random(5)
    for _ in range(200):
        durations = [round(rng.uniform(0.05, 9), rng.choice([1, 2, 3])) for _ in range(rng.randint(1, 40))]
        fps = rng.choice([12, 24, 25, 30, 60])
        counts = frame_counts(durations, fps)
        # exact: the decimals as written (a float sum would drift), half a frame rounding up
        exact_end = sum(Fraction(str(d)) for d in durations) * fps
        assert min(counts) >= 0 and sum(counts) == math.floor(exact_end + Fraction(1, 2))
        # each cut within half a frame
        assert all(abs(c - d * fps) <= 1 + 1e-9 for c, d in zip(counts, durations, strict=True))


@pytest.mark.parametrize(
    "seconds, text", [(0, "0:00"), (31, "0:31"), (16.5, "0:16.5"), (75.25, "1:15.2"), (600, "10:00"), (59.96, "1:00")]
)
def test_format_duration(seconds, text):
    from shotflow.exports._frames import format_duration

    assert format_duration(seconds) == text


def test_anchors_are_unique_even_when_ids_would_clash():
    from shotflow.exports._frames import anchors

    ids = anchors(["character:mara", "arrival/wide", "a-b/c", "a/b-c"])
    assert ids["character:mara"] == "sheet-character-mara" and ids["arrival/wide"] == "shot-arrival-wide"
    assert len(set(ids.values())) == 4


def test_exports_never_generate_nor_touch_the_project(mixed, tmp_path):
    before = snapshot(mixed.parent)
    out = tmp_path / "out"
    out.mkdir()  # an output folder must exist (a missing one is an error, as in a shell)
    for args in (
        ["board", "-o", out / "b.html"],
        ["contact-sheet", "-o", out / "s.png"],
        ["export", "--csv", out / "s.csv", "--otio", out / "c.otio"],
    ):
        done = run_cli_in_process(*args[:1], mixed, *args[1:])
        assert done.returncode == 0, done.stderr
    assert snapshot(mixed.parent) == before  # no frame, lock entry, status or cache object was added
    assert sorted(p.name for p in out.iterdir()) == ["b.html", "c.otio", "s.csv", "s.png"]


# -- the shot list -------------------------------------------------------------------------------------------


def test_csv_shot_list_in_story_order_utf8_and_quoted(mixed, tmp_path):
    out = tmp_path / "shots.csv"
    done = run_cli_in_process("export", mixed, "--csv", out)
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout and "12 shots" in done.stdout
    rows = list(csv.DictReader(io.StringIO(out.read_bytes().decode("utf-8"))))
    assert [f"{r['scene']}/{r['shot']}" for r in rows] == [*LIGHTHOUSE_SHOTS, "rescue/flare"]
    assert list(rows[0]) == [
        "number",
        "code",
        "scene",
        "shot",
        "duration",
        "frames",
        "tc_in",
        "tc_out",
        "framing",
        "angle",
        "lens",
        "move",
        "dialogue",
        "action",
        "notes",
        "model",
        "size",
        "takes",
        "pick",
        "cost",
        "backend",
        "state",
        "frame",
        "review",
        "review_notes",
    ]
    wide = rows[0]
    assert (wide["number"], wide["duration"], wide["framing"], wide["angle"], wide["lens"], wide["move"]) == (
        "1.1",
        "4",
        "extreme wide",
        "low angle",
        "24mm",
        "slow push in",
    )
    assert (wide["code"], wide["frames"], wide["tc_in"], wide["tc_out"]) == (
        "010_0010",
        "96",
        "00:00:00:00",
        "00:00:04:00",
    )
    assert [r["code"] for r in rows[:3]] == ["010_0010", "010_0020", "010_0030"]
    assert rows[1]["tc_in"] == wide["tc_out"]  # end-exclusive, as in an EDL
    assert wide["notes"] == "hold on the beam sweeping once before cutting"
    assert (wide["model"], wide["size"], wide["takes"], wide["cost"], wide["state"]) == (
        "runway:4@1",
        "1360x768",
        "1",
        "0",
        "fresh",
    )
    assert wide["frame"] == "renders/arrival/wide.png" and (mixed.parent / wide["frame"]).is_file()
    door = rows[2]
    assert (door["takes"], door["pick"], door["frame"]) == ("3", "2", "renders/arrival/door.png")
    assert rows[4]["dialogue"] == "MARA: Coast guard, this is Skerry Light. Do you read?"
    flare = rows[-1]
    assert flare["dialogue"] == 'MARA: <Hold on> & "wait", the flare — ça brûle'
    assert flare["notes"] == 'comma, "quotes" and <b>tags</b>'
    assert (flare["state"], flare["frame"], flare["cost"], flare["duration"]) == ("not rendered", "", "", "1.25")
    assert {r["state"] for r in rows} == {"fresh", "stale", "failed", "skipped", "not rendered"}


# -- timelines -----------------------------------------------------------------------------------------------


def test_otio_timeline_reads_back_with_one_clip_per_shot(mixed, tmp_path):
    import opentimelineio as otio

    from shotflow.exports._frames import frame_counts
    from shotflow.store import LockFile

    out = tmp_path / "cut.otio"
    done = run_cli_in_process("export", mixed, "--otio", out)
    assert done.returncode == 0, done.stderr
    assert "12 clips" in done.stdout and "1 without a frame" in done.stdout
    timeline = otio.adapters.read_from_file(str(out))
    assert timeline.name == "The Lighthouse Keeper"
    assert len(timeline.video_tracks()) == 1
    clips = list(timeline.find_clips())
    assert [c.name for c in clips] == [*LIGHTHOUSE_SHOTS, "rescue/flare"]  # shots only, story order
    durations = [4, 1.5, 2.5, 3, 2.5, 2.5, 3, 2.5, 3, 2.5, 4, 1.25]
    expected = frame_counts(durations, 24)
    assert [c.source_range.duration for c in clips] == [otio.opentime.RationalTime(n, 24) for n in expected]
    assert timeline.duration().to_seconds() == pytest.approx(sum(durations))
    lock = LockFile.read(mixed.with_suffix(".lock"))
    wide = clips[0]
    assert isinstance(wide.media_reference, otio.schema.ExternalReference)
    assert wide.media_reference.target_url == (mixed.parent / "renders/arrival/wide.png").resolve().as_uri()
    meta = wide.metadata["shotflow"]
    assert meta["id"] == "arrival/wide" and meta["request_key"] == lock.entries["arrival/wide"].record.key
    assert meta["model"] == "runway:4@1" and meta["camera"]["lens"] == "24mm" and "lighthouse" in meta["prompt"]
    note = "hold on the beam sweeping once before cutting"
    assert [(m.name, m.comment) for m in wide.markers] == [(f"notes: {note}", note)]
    assert wide.markers[0].marked_range == wide.source_range
    console = clips[4]
    assert [m.metadata["shotflow"]["kind"] for m in console.markers] == ["dialogue"]
    assert console.markers[0].name.startswith("dialogue: MARA: Coast guard")
    door = clips[2]
    assert door.media_reference.target_url.endswith("/renders/arrival/door.png")
    flare = clips[-1]
    assert isinstance(flare.media_reference, otio.schema.MissingReference)
    assert flare.metadata["shotflow"]["state"] == "not rendered"
    assert {m.metadata["shotflow"]["kind"] for m in flare.markers} == {"dialogue", "notes"}
    assert clips[8].metadata["shotflow"]["state"] == "failed" and "refused" in clips[8].metadata["shotflow"]["message"]


def test_otioz_bundles_the_frames_with_unique_names(mixed, tmp_path):
    import opentimelineio as otio

    out = tmp_path / "cut.otioz"
    out.write_bytes(b"an older export")  # replaced, not refused
    done = run_cli_in_process("export", mixed, "--otio", out)
    assert done.returncode == 0, done.stderr
    with zipfile.ZipFile(out) as bundle:
        names = bundle.namelist()
        media = sorted(n for n in names if n.startswith("media/"))
        assert "content.otio" in names and len(media) == 11  # the flare has no frame
        assert "media/shot-arrival-door.png" in media
        assert bundle.read("media/shot-arrival-wide.png") == (mixed.parent / "renders/arrival/wide.png").read_bytes()
    extracted = tmp_path / "x"
    extracted.mkdir()
    timeline = otio.adapters.read_from_file(str(out), extract_to_directory=str(extracted))
    clips = list(timeline.find_clips())
    assert len(clips) == 12
    for clip in clips[:-1]:
        url = clip.media_reference.target_url
        assert not url.startswith("file:") and (extracted / url).is_file()


@pytest.mark.parametrize(
    "option, adapter, suffix", [("--fcp-xml", "fcp_xml", ".xml"), ("--fcpxml", "fcpx_xml", ".fcpxml")]
)
def test_final_cut_xml_through_the_otio_adapters(rendered, tmp_path, option, adapter, suffix):
    import opentimelineio as otio

    out = tmp_path / f"cut{suffix}"
    done = run_cli_in_process("export", rendered, option, out)
    if adapter not in otio.adapters.available_adapter_names():
        assert done.returncode == 2 and "pip install otio-" in done.stderr
        pytest.skip(
            f"OpenTimelineIO's {adapter} adapter is not installed (pip install otio-fcp-adapter otio-fcpx-xml-adapter)"
        )
    assert done.returncode == 0, done.stderr
    timeline = otio.adapters.read_from_file(str(out), adapter_name=adapter)
    clips = list(timeline.find_clips())
    assert [c.name for c in clips] == LIGHTHOUSE_SHOTS
    assert timeline.duration().to_seconds() == pytest.approx(31.0)
    text = out.read_text(encoding="utf-8")
    assert "renders/arrival/wide.png" in text and "notes: hold on the beam sweeping once before cutting" in text


# -- the contact sheet --------------------------------------------------------------------------------------------


def test_contact_sheet_png_grid_with_placeholders(mixed, tmp_path):
    from PIL import Image

    from shotflow.exports.contact import _Sheet

    out = tmp_path / "sheet.png"
    done = run_cli_in_process("contact-sheet", mixed, "-o", out, "--columns", "3", "--width", "300")
    assert done.returncode == 0, done.stderr
    seq = sequence(mixed)
    layout = _Sheet(seq, list(seq.panels.values()), columns=3, cell_width=300)
    with Image.open(out) as img:
        img = img.convert("RGB")
        assert img.width == layout.width and img.height > layout.row_h * 4  # 13 panels: 5 rows

        def cell(i):
            row, col = divmod(i, 3)
            x = layout.margin + col * (300 + layout.gap)
            y = layout.margin + layout.header_h + row * layout.row_h
            return img.crop((x + 4, y + 4, x + 296, y + layout.frame_h - 4))

        flare = cell(12)  # the last panel: never rendered, a light hatched placeholder
        colours = {c for _, c in flare.getcolors(1 << 16)}
        assert (248, 248, 246) in colours and (232, 232, 228) in colours
        wide = cell(1)  # arrival/wide: its frame, dark previs
        assert sum(wide.resize((1, 1)).getpixel((0, 0))) < 300
        assert (248, 248, 246) not in {c for _, c in wide.getcolors(1 << 16)}


def test_contact_sheet_pdf_is_paginated_and_other_formats_are_refused(rendered, tmp_path):
    out = tmp_path / "sheet.pdf"
    done = run_cli_in_process("contact-sheet", rendered, "-o", out, "--columns", "2", "--shots-only")
    assert done.returncode == 0, done.stderr
    data = out.read_bytes()
    assert data.startswith(b"%PDF")
    assert data.count(b"/Type /Page\n") + data.count(b"/Type /Page ") + data.count(b"/Type /Page>") >= 2
    bad = run_cli_in_process("contact-sheet", rendered, "-o", tmp_path / "sheet.tiff")
    assert bad.returncode == 2 and "use .png, .pdf or .jpg" in bad.stderr and "Traceback" not in bad.stderr


# -- the commands ----------------------------------------------------------------------------------------------------


def test_export_needs_a_format_and_bad_input_is_one_line_exit_2(rendered, tmp_path):
    done = run_cli_in_process("export", rendered)
    assert done.returncode == 2 and "at least one of --otio" in done.stderr
    done = run_cli_in_process("export", rendered, "--otio", tmp_path / "cut.edl")
    assert done.returncode == 2 and ".otio or .otioz" in done.stderr
    done = run_cli_subprocess("board", tmp_path / "missing.yaml")  # a real process: stderr as the user sees it
    assert done.returncode == 2 and done.stderr.startswith("error: ") and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    done = run_cli_in_process("animatic", rendered, "--size", "12")
    assert done.returncode == 2 and "WIDTHxHEIGHT" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_set_overrides_reach_the_exports(rendered, tmp_path):
    out = tmp_path / "shots.csv"
    done = run_cli_in_process("export", rendered, "--csv", out, "--set", "weather=a calm summer evening")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    states = {f"{r['scene']}/{r['shot']}": r["state"] for r in rows}
    assert states["arrival/wide"] == "stale" and states["rescue/trawler"] == "stale"  # they use vars.weather
    assert states["radio/station"] == "fresh"


def test_help_does_not_import_the_heavy_modules():
    code = (
        "import sys; from click.testing import CliRunner; from shotflow.cli import main; "
        "r = CliRunner().invoke(main, ['--help']); assert r.exit_code == 0, r.output; "
        "heavy = [m for m in ('PIL', 'opentimelineio', 'imageio_ffmpeg', 'networkx', 'jsonschema') "
        "if m in sys.modules]; print(heavy)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    for command in ("board", "contact-sheet", "animatic", "export"):
        assert command in run_cli_in_process("--help").stdout


def test_status_json_of_a_partial_render_is_read(tmp_path):
    """--only: the rest was never rendered, and shows so (not as an error)."""
    story = copy_example(tmp_path / "lh")
    api.render(story, RenderOptions(only=("arrival/wide",)), RecordingReporter())
    status = json.loads((story.parent / ".shotflow/storyboard.status.json").read_text())
    assert set(status) == {"arrival/wide"}
    seq = sequence(story)
    states = {p.id: p.state.value for p in seq.panels.values()}
    assert states.pop("arrival/wide") == "fresh"
    assert set(states.values()) == {"not rendered"}


def _board_states(html: str) -> dict[str, str]:
    import re

    return dict(re.findall(r'data-shot-id="([^"]+)"[^>]*data-state="([^"]+)"', html))


def _csv_states(path: Path) -> dict[str, str]:
    return {f"{r['scene']}/{r['shot']}": r["state"] for r in csv.DictReader(path.open(encoding="utf-8"))}


def test_a_prompt_edited_back_shows_the_locked_frame_as_stale_until_rendered(tmp_path):
    """Render, edit a prompt and render, edit it back: the plan finds the first request in the
    cache, but renders/ and the lock still hold the edited one's frame. Every export calls it
    stale (and says what changed) until a render puts the current frame back."""
    from shotflow.status import Status

    story = copy_example(tmp_path / "lighthouse")
    render(story)
    edit(story, "at dusk, ", "at dusk, heavy rain, ")
    render(story)
    edit(story, "at dusk, heavy rain, ", "at dusk, ")
    wide = sequence(story).panels["arrival/wide"]
    assert wide.state is Status.STALE and wide.message.startswith("prompt changed")
    assert "cached" in wide.message
    done = run_cli_in_process("board", story, "-o", tmp_path / "board.html")
    assert done.returncode == 0, done.stderr
    assert _board_states((tmp_path / "board.html").read_text(encoding="utf-8"))["arrival/wide"] == "stale"
    done = run_cli_in_process("export", story, "--csv", tmp_path / "a.csv")
    assert done.returncode == 0, done.stderr
    assert _csv_states(tmp_path / "a.csv")["arrival/wide"] == "stale"

    render(story)  # the cached frame comes back, at no cost
    assert all(p.state is Status.FRESH for p in sequence(story).panels.values())


def test_preview_frames_are_stale_for_runware_although_runware_ones_are_cached(tmp_path, monkeypatch):
    """preview, then runware, then preview: the lock pins preview frames. Compared with what
    the storyboard asks of Runware (whose frames are in the cache) they are stale, not fresh."""
    from shotflow.exports._frames import load_sequence
    from shotflow.status import Status
    from shotflow.testing import Emulator

    story = copy_example(tmp_path / "lighthouse")
    render(story)
    with Emulator(api_key="test-key", latency=0) as emu:
        monkeypatch.setenv("RUNWARE_API_URL", emu.url)
        monkeypatch.setenv("RUNWARE_API_KEY", "test-key")
        assert api.render(story, RenderOptions(backend="runware"), RecordingReporter()).ok
    render(story)
    seq = load_sequence(story, backend="runware")
    assert {p.state for p in seq.panels.values()} == {Status.STALE}
    assert all("backend changed" in (p.message or "") for p in seq.panels.values())
    done = run_cli_in_process("board", story, "--backend", "runware", "-o", tmp_path / "board.html")
    assert done.returncode == 0, done.stderr
    assert set(_board_states((tmp_path / "board.html").read_text(encoding="utf-8")).values()) == {"stale"}
    done = run_cli_in_process("export", story, "--backend", "runware", "--csv", tmp_path / "a.csv")
    assert done.returncode == 0, done.stderr
    assert set(_csv_states(tmp_path / "a.csv").values()) == {"stale"}
    assert all(p.state is Status.FRESH for p in sequence(story).panels.values())  # for preview they are fresh


def test_exports_say_which_backend_made_each_frame(tmp_path, monkeypatch):
    """After a render on Runware the board, contact sheet and shot list say runware (from the
    lock), and its frames are fresh without --backend; a frame made on preview says preview."""
    from shotflow.exports import board as boards
    from shotflow.exports.contact import caption
    from shotflow.exports.shotlist import rows
    from shotflow.status import Status
    from shotflow.testing import Emulator

    story = copy_example(tmp_path / "lighthouse")
    with Emulator(api_key="sk-test-exports") as emu:
        monkeypatch.setenv("RUNWARE_API_URL", emu.url)
        monkeypatch.setenv("RUNWARE_API_KEY", "sk-test-exports")
        reporter = RecordingReporter()
        summary = api.render(story, RenderOptions(backend="runware"), reporter)
    assert summary.ok and summary.cost == pytest.approx(1.08)
    seq = sequence(story)  # no --backend: the storyboard says preview, the lock says runware
    assert seq.frame_backends == {"runware": 12} and seq.made_on == "runware"
    assert all(p.state is Status.FRESH for p in seq.panels.values())
    html = boards.write_board(seq, tmp_path / "board.html").read_text()
    assert "frames cost <strong>$1.08</strong> (made on runware)" in html and "(preview)" not in html
    assert html.count("made on runware</span>") == 12 and "on Runware" not in html
    assert {r["backend"] for r in rows(seq)} == {"runware"}

    api.render(story, RenderOptions(backend="preview", only=("arrival/wide",)), RecordingReporter())
    seq = sequence(story)
    assert seq.made_on == "runware 11, preview 1"
    wide = seq.panels["arrival/wide"]
    assert wide.backend == "preview" and seq.panels["arrival/lamp"].backend == "runware"
    assert caption(wide, with_backend=True).startswith("[preview] extreme wide · low angle · 24mm")
    assert caption(seq.panels["arrival/lamp"]) == "insert · 85mm · static"
    assert {r["shot"]: r["backend"] for r in rows(seq)}["wide"] == "preview"
    boards.write_board(seq, tmp_path / "board.html")
    html = (tmp_path / "board.html").read_text()
    assert "(made on runware 11, preview 1)" in html and html.count("made on preview</span>") == 1
