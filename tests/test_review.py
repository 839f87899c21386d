"""Review decisions: review.json applied into the YAML, approved shots held by render, and the
marks on the board, the contact sheet and the CSV (the browser side is tests/test_live.py)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from test_writeback import changed_lines

from shotflow import api
from shotflow.errors import InputError
from shotflow.render import RenderOptions
from shotflow.report import RecordingReporter
from shotflow.review import Decision, ReviewFileError, apply, decision_from_action, parse_review
from shotflow.status import Status

#: the lines a pick of door's take 3, an approval of dawn and a note on it change in the lighthouse
DECIDED = [
    "-        pick: 2                               # … the second one feeds later shots",
    "+        pick: 3                               # … the second one feeds later shots",
    "+        review:",
    "+          status: approved",
    "+          notes:",
    "+            - 'hold the last frame: end card'",  # quoted: YAML would read ": " as a mapping
]
DECISIONS = {
    "storyboard": "storyboard.yaml",
    "shots": {
        "arrival/door": {"pick": 3},
        "rescue/dawn": {"review": {"status": "approved", "notes": ["hold the last frame: end card"]}},
    },
}


def write_review(folder: Path, data) -> Path:
    path = folder / "review.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_review_apply_writes_picks_approvals_and_notes_keeping_every_other_byte(example, cli):
    story = example("lighthouse")
    before = story.read_text(encoding="utf-8")
    review = write_review(story.parent, DECISIONS)
    done = cli("review", "apply", review, cwd=story.parent)  # the storyboard it names, found beside it
    assert done.code == 0, done.err
    assert "arrival/door: pick 3" in done.out and "rescue/dawn: approved, 1 note" in done.out
    assert "wrote storyboard.yaml" in done.out
    after = story.read_text(encoding="utf-8")
    assert changed_lines(before, after) == DECIDED
    loaded = api.load_project(story)
    assert loaded.nodes["arrival/door"].pick == 3
    assert loaded.nodes["rescue/dawn"].review.approved
    assert loaded.nodes["rescue/dawn"].review.notes == ("hold the last frame: end card",)
    # the same file again: nothing to change, nothing written
    again = cli("review", "apply", review, story)
    assert again.code == 0 and "nothing to change" in again.out
    assert story.read_text(encoding="utf-8") == after


def test_decisions_one_at_a_time_give_the_same_yaml_as_one_file(example):
    """The live board sends one decision per click; review apply sends the file's at once."""
    one = example("lighthouse")
    for decision in (
        Decision("arrival/door", pick=3),
        Decision("rescue/dawn", status="approved"),
        Decision("rescue/dawn", notes=("hold the last frame: end card",)),
    ):
        apply(one, [decision])
    import shutil

    two = one.parent.parent / "copy" / "storyboard.yaml"
    shutil.copytree(
        Path(__file__).resolve().parent.parent / "examples" / "lighthouse",
        two.parent,
        ignore=shutil.ignore_patterns("renders", ".shotflow", "*.lock"),
    )
    _, decisions = parse_review(DECISIONS)
    apply(two, decisions)
    assert two.read_text(encoding="utf-8") == one.read_text(encoding="utf-8")


def test_a_shot_defined_in_an_include_is_written_there(example, cli):
    story = example("heist")
    act2 = story.parent / "act2.yaml"
    main_before, act2_before = story.read_text(), act2.read_text()
    shot_in_act2 = next(
        n for n, spec in api.load_project(story).nodes.items() if spec.scene and spec.where.file.endswith("act2.yaml")
    )
    review = write_review(
        story.parent,
        {
            "storyboard": "storyboard.yaml",
            "shots": {shot_in_act2: {"review": {"status": "changes", "notes": ["wider"]}}},
        },
    )
    done = cli("review", "apply", review, story)
    assert done.code == 0, done.err
    assert "wrote " in done.out and done.out.strip().endswith("act2.yaml")
    assert story.read_text() == main_before
    assert changed_lines(act2_before, act2.read_text())[:2] == ["+        review:", "+          status: changes"]


@pytest.mark.parametrize(
    "data, message",
    [
        (
            {"storyboard": "storyboard.yaml", "shots": {"arrival/dor": {"pick": 1}}},
            "no shot 'arrival/dor' in storyboard.yaml (did you mean 'arrival/door'?)",
        ),
        (
            {"storyboard": "storyboard.yaml", "shots": {"arrival/wide": {"pick": 2}}},
            "arrival/wide: take 2 was picked but the shot has 1 take",
        ),
        (
            {"storyboard": "storyboard.yaml", "shots": {"arrival/wide": {"review": {"status": "great"}}}},
            "'great' is not approved or changes",
        ),
        ({"storyboard": "storyboard.yaml", "shots": {"arrival/wide": {"pik": 1}}}, "unknown key 'pik'"),
        (
            {"storyboard": "storyboard.yaml", "shots": {"arrival/wide": {"review": {"notes": [""]}}}},
            "a note is a text that is not empty",
        ),
        ({"shots": []}, 'expected {"storyboard"'),
    ],
)
def test_bad_review_files_are_refused_whole_with_one_clear_line(example, cli, data, message):
    story = example("lighthouse")
    before = story.read_bytes()
    data = (
        {**data, "shots": {**data["shots"], "arrival/door": {"pick": 3}}} if isinstance(data["shots"], dict) else data
    )
    done = cli("review", "apply", write_review(story.parent, data), story)
    assert done.code == 2, done.out
    assert message in done.err and "Traceback" not in done.err
    assert story.read_bytes() == before  # all or nothing: door's valid pick was not written either


def test_review_files_that_are_not_json_or_name_nothing_findable(example, cli, tmp_path):
    story = example("lighthouse")
    broken = tmp_path / "broken.json"
    broken.write_text('{"storyboard": "storyboard.yaml",\n "shots": {,}}')
    done = cli("review", "apply", broken, story)
    assert done.code == 2 and "broken.json:2:" in done.err and "not valid JSON" in done.err
    elsewhere = tmp_path / "downloads"
    elsewhere.mkdir()
    lost = write_review(elsewhere, DECISIONS)
    done = cli("review", "apply", lost, cwd=tmp_path)
    assert done.code == 2 and "is for storyboard.yaml, which is neither here nor beside it" in done.err
    escaping = write_review(elsewhere, {**DECISIONS, "storyboard": "../lighthouse/storyboard.yaml"})
    done = cli("review", "apply", escaping, cwd=tmp_path)
    assert done.code == 2 and "must be a file name, not a path" in done.err
    huge = elsewhere / "huge.json"
    huge.write_bytes(b" " * (9 * 1024 * 1024))
    done = cli("review", "apply", huge, story)
    assert done.code == 2 and "a review file is at most 8 MiB" in done.err


def test_board_requests_are_checked_like_files():
    assert decision_from_action({"shot": "a/b", "action": "pick", "take": 2}) == Decision("a/b", pick=2)
    assert decision_from_action({"shot": "a/b", "action": "reject"}) == Decision("a/b", status="changes")
    assert decision_from_action({"shot": "a/b", "action": "note", "text": " wider "}).notes == ("wider",)
    for bad in (
        {"shot": "a/b", "action": "delete"},
        {"shot": "a/b", "action": "pick", "take": "2"},
        {"shot": "a/b", "action": "pick", "take": True},
        {"shot": "a/b", "action": "note", "text": "x" * 5000},
        {"shot": "a/b", "action": "note", "text": "bell\x07"},
        ["a/b"],
    ):
        with pytest.raises(ReviewFileError):
            decision_from_action(bad)
    assert issubclass(ReviewFileError, InputError)


# -- render holds approved shots --------------------------------------------------------------------------


def render(story: Path, **options) -> RecordingReporter:
    reporter = RecordingReporter()
    api.render(story, RenderOptions(**options), reporter)
    return reporter


def test_render_holds_an_approved_shot_whose_key_changed(example, cli):
    story = example("lighthouse")
    render(story)
    apply(story, [Decision("rescue/trawler", status="approved")])
    lock_before = json.loads(story.with_suffix(".lock").read_text())["nodes"]
    frame = story.parent / "renders" / "rescue" / "trawler.png"
    frame_bytes = frame.read_bytes()
    story.write_text(story.read_text().replace("a small trawler pitching", "a small blue trawler pitching"))

    plan = json.loads(cli("plan", story, "--json").out)
    status = {n["id"]: n["status"] for n in plan["nodes"]}
    assert status["rescue/trawler"] == "held"
    assert status["rescue/signal"] == "fresh" and status["rescue/dawn"] == "fresh"  # keyed on the kept frame
    assert "approved, kept: prompt changed" in cli("plan", story).out

    done = cli("render", story, "--json")
    assert done.code == 0, done.err
    events = [json.loads(line) for line in done.out.splitlines()]
    nodes = {e["id"]: e for e in events if e["event"] == "node"}
    assert nodes["rescue/trawler"]["status"] == "held" and nodes["rescue/trawler"]["error"] is None
    assert set(nodes["rescue/trawler"]) == {"event", "id", "status", "outputs", "error"}  # the contract's fields
    assert events[-1] == {
        "event": "summary",
        "rendered": 0,
        "cached": 11,
        "failed": 0,
        "skipped": 0,
        "held": 1,
        "cost": 0.0,
    }
    assert frame.read_bytes() == frame_bytes
    assert json.loads(story.with_suffix(".lock").read_text())["nodes"] == lock_before
    plain = cli("render", story)  # nothing changed since: the fast path says held again
    assert plain.code == 0 and "held" in plain.out

    forced = render(story, force=("rescue/trawler",))
    assert forced.by_status(Status.RENDERED) >= {"rescue/trawler", "rescue/signal", "rescue/dawn"}
    render(story)  # the re-roll is pinned now; approval holds it again from here
    story.write_text(story.read_text().replace("a small blue trawler", "a small green trawler"))
    assert render(story).by_status(Status.HELD) == {"rescue/trawler"}
    included = render(story, include_approved=True)
    assert "rescue/trawler" in included.by_status(Status.RENDERED)
    assert frame.read_bytes() != frame_bytes


def test_a_panel_approved_on_preview_renders_on_runware_and_an_approved_runware_frame_is_kept_on_preview(
    example, monkeypatch
):
    """A preview panel is a sketch: approving it does not make a Runware render keep it (the paid
    shots downstream would take the sketch as their reference). An approved Runware frame is kept
    by a preview render, and by the next Runware render, whatever changed."""
    from shotflow.testing import Emulator

    story = example("lighthouse")
    render(story)
    apply(story, [Decision("rescue/trawler", status="approved")])
    lock = story.with_suffix(".lock")
    with Emulator(api_key="test-key", latency=0) as emu:
        monkeypatch.setenv("RUNWARE_API_URL", emu.url)
        monkeypatch.setenv("RUNWARE_API_KEY", "test-key")
        first = render(story, backend="runware")
        assert "rescue/trawler" in first.by_status(Status.RENDERED) and not first.by_status(Status.HELD)
        entry = json.loads(lock.read_text())["nodes"]["rescue/trawler"]
        assert entry["backend"] == "runware"
        billed = emu.stats.images

        story.write_text(story.read_text().replace("a small trawler pitching", "a small blue trawler pitching"))
        assert render(story, backend="preview").by_status(Status.HELD) == {"rescue/trawler"}
        assert json.loads(lock.read_text())["nodes"]["rescue/trawler"] == entry
        assert render(story, backend="runware").by_status(Status.HELD) == {"rescue/trawler"}
        assert emu.stats.images == billed  # nothing downstream changed: nothing paid again
    assert json.loads(lock.read_text())["nodes"]["rescue/trawler"] == entry


def test_an_approved_frame_is_kept_even_when_the_cache_holds_a_frame_for_the_new_request(example, monkeypatch):
    """The hold comes before the cache: an earlier version of the prompt rendered before, or a
    preview panel of the request, must not replace the approved frame either."""
    story = example("lighthouse")
    frame = story.parent / "renders" / "rescue" / "trawler.png"
    before, after = "a small trawler pitching", "a small blue trawler pitching"
    render(story)
    first = frame.read_bytes()
    story.write_text(story.read_text().replace(before, after))
    render(story)
    approved = frame.read_bytes()
    assert approved != first
    apply(story, [Decision("rescue/trawler", status="approved")])
    story.write_text(story.read_text().replace(after, before))  # back to a request the cache holds
    assert render(story).by_status(Status.HELD) == {"rescue/trawler"}
    assert frame.read_bytes() == approved

    from shotflow.testing import Emulator

    with Emulator(api_key="test-key", latency=0) as emu:
        monkeypatch.setenv("RUNWARE_API_URL", emu.url)
        monkeypatch.setenv("RUNWARE_API_KEY", "test-key")
        apply(story, [Decision("rescue/trawler", status="changes")])
        render(story, backend="runware")
        paid = frame.read_bytes()
        apply(story, [Decision("rescue/trawler", status="approved")])
        # the panel of this very request is in the cache: it does not replace the approved Runware frame
        assert render(story).by_status(Status.HELD) == {"rescue/trawler"}
        assert frame.read_bytes() == paid
        story.write_text(story.read_text().replace(before, after))
        billed = emu.stats.images
        assert render(story, backend="runware").by_status(Status.HELD) == {"rescue/trawler"}
        assert emu.stats.images == billed and frame.read_bytes() == paid


def test_a_clone_that_has_not_pulled_keeps_an_approved_frame_from_the_team_remote(example, monkeypatch, tmp_path):
    import shutil

    from shotflow.testing import Emulator

    team = tmp_path / "team-cache"
    team.mkdir()
    story = example("lighthouse")
    apply(story, [Decision("rescue/trawler", status="approved")])
    with Emulator(api_key="test-key", latency=0) as emu:
        monkeypatch.setenv("RUNWARE_API_URL", emu.url)
        monkeypatch.setenv("RUNWARE_API_KEY", "test-key")
        render(story, backend="runware", remote=team.as_uri())
        approved = (story.parent / "renders" / "rescue" / "trawler.png").read_bytes()
        story.write_text(story.read_text().replace("a small trawler pitching", "a small blue trawler pitching"))
        other = tmp_path / "clone"  # what git gives a colleague: no cache, no renders
        shutil.copytree(story.parent, other, ignore=shutil.ignore_patterns(".shotflow", "renders"))
        billed = emu.stats.images
        done = render(other / story.name, backend="runware", remote=team.as_uri())
        assert done.by_status(Status.HELD) == {"rescue/trawler"} and not done.by_status(Status.RENDERED)
        assert emu.stats.images == billed
    assert (other / "renders" / "rescue" / "trawler.png").read_bytes() == approved


def test_sending_a_shot_back_renders_it_again(example):
    story = example("lighthouse")
    render(story)
    apply(story, [Decision("arrival/lamp", status="approved")])
    story.write_text(story.read_text().replace("the great lamp", "the huge lamp"))
    assert render(story).by_status(Status.HELD) == {"arrival/lamp"}
    apply(story, [Decision("arrival/lamp", status="changes", notes=("brighter",))])
    assert render(story).by_status(Status.RENDERED) == {"arrival/lamp"}


def test_an_approved_shot_never_rendered_renders(example):
    story = example("lighthouse")
    apply(story, [Decision("arrival/wide", status="approved")])
    assert "arrival/wide" in render(story).by_status(Status.RENDERED)


# -- marks on the exports -------------------------------------------------------------------------------


def test_approved_shots_are_marked_on_the_board_contact_sheet_and_csv(example, cli, tmp_path):
    story = example("lighthouse")
    render(story)
    apply(
        story,
        [
            Decision("arrival/wide", status="approved", notes=("keep <this> one",)),
            Decision("arrival/lamp", status="changes"),
        ],
    )
    board = tmp_path / "board.html"
    assert cli("board", story, "-o", board).code == 0
    html = board.read_text(encoding="utf-8")
    assert 'class="panel is-fresh is-shot is-approved" id="shot-arrival-wide"' in html
    assert 'data-review="changes"' in html and "✓ approved" in html
    assert "<li>keep &lt;this&gt; one</li>" in html
    assert 'data-action="pick" data-shot-id="arrival/door" data-take="3" aria-pressed="false"' in html
    assert 'data-action="pick" data-shot-id="arrival/door" data-take="2" aria-pressed="true"' in html
    assert html.count('<button type="button" data-action="approve"') == 11 and 'data-action="export-review"' in html
    assert html.count("<script>") == 1 and "shotflow review apply" in html

    out = tmp_path / "shots.csv"
    assert cli("export", story, "--csv", out).code == 0
    rows = {r["shot"]: r for r in csv.DictReader(io.StringIO(out.read_text(encoding="utf-8")))}
    assert (rows["wide"]["review"], rows["wide"]["review_notes"]) == ("approved", "keep <this> one")
    assert rows["lamp"]["review"] == "changes" and rows["door"]["review"] == ""

    from PIL import Image

    sheet = tmp_path / "sheet.png"
    assert cli("contact-sheet", story, "-o", sheet, "--shots-only", "--columns", "2", "--width", "400").code == 0
    with Image.open(sheet) as img:
        rgb = img.convert("RGB")
        green = (63, 178, 127)
        # the first cell (arrival/wide, approved) has the green tag; the second (arrival/lamp) has none
        # (cells at x = 50 and 475, y = 145 with this header and width: the tag sits in their corner)
        left = sum(1 for x in range(50, 150) for y in range(145, 175) if rgb.getpixel((x, y)) == green)
        right = sum(1 for x in range(475, 575) for y in range(145, 175) if rgb.getpixel((x, y)) == green)
    assert left > 500 and right == 0


def test_a_refused_review_prints_its_one_error_and_a_dry_run_checks_as_the_real_one(example, cli):
    story = example("lighthouse")
    before = story.read_text(encoding="utf-8")
    bad = write_review(story.parent, {"storyboard": "storyboard.yaml", "shots": {"arrival/dor": {"pick": 1}}})
    for extra in ([], ["--dry-run"]):
        done = cli("review", "apply", bad, story, *extra)
        assert done.code == 2, (extra, done.out)
        assert done.out == "" and "no shot 'arrival/dor'" in done.err and "did you mean 'arrival/door'" in done.err
    assert story.read_text(encoding="utf-8") == before
    good = write_review(story.parent, DECISIONS)
    dry = cli("review", "apply", good, story, "--dry-run")
    assert dry.code == 0 and "arrival/door: pick 3" in dry.out and "dry run: nothing written" in dry.out
    assert story.read_text(encoding="utf-8") == before
