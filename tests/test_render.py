"""The semantics of render: what renders, what is cached, what is kept.

Every test works on a copy of an example project on the offline preview backend.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
from helpers import RefusingBackend

from shotflow import api
from shotflow.backends import Backend
from shotflow.render import RenderOptions
from shotflow.report import RecordingReporter
from shotflow.status import Status

RENDERED, CACHED, FAILED, SKIPPED = Status.RENDERED, Status.CACHED, Status.FAILED, Status.SKIPPED


def render(story: Path, **options) -> RecordingReporter:
    reporter = RecordingReporter()
    api.render(story, RenderOptions(**options), reporter)
    return reporter


def full_path(story: Path) -> None:
    """Make the next render take the full path (plan everything) instead of the no-op shortcut."""
    manifest = story.parent / ".shotflow" / "storyboard.last-run.json"
    if manifest.exists():
        manifest.unlink()


def edit(story: Path, old: str, new: str) -> None:
    text = story.read_text()
    assert old in text, old
    story.write_text(text.replace(old, new, 1))


def downstream(story: Path, node: str) -> set[str]:
    from shotflow import graph

    project = api.load_project(story)
    return graph.downstream(graph.build(project), [node])


def test_first_render_renders_everything_and_second_nothing(example):
    story = example("lighthouse")
    first = render(story)
    ids = set(api.load_project(story).nodes)
    assert first.by_status(RENDERED) == ids
    assert (story.parent / "renders/arrival/door.png").is_file()
    assert (story.parent / "renders/arrival/door-take3.png").is_file()
    # the no-op fast path
    second = render(story)
    assert second.by_status(CACHED) == ids and not second.by_status(RENDERED)
    assert second.events[-1][1].noop
    # the full path agrees
    full_path(story)
    third = render(story)
    assert third.by_status(CACHED) == ids and not third.by_status(RENDERED)
    assert not third.events[-1][1].noop


def test_an_upstream_frame_is_kept_in_memory_only_while_its_users_are_to_come(example, monkeypatch):
    from shotflow.store import Store

    story = example("lighthouse")
    disk_reads, held_at_end = [], []
    read, save = Store.read, Store.save

    def counting_read(self, digest):
        if digest not in self._held:
            disk_reads.append(digest)
        return read(self, digest)

    def checking_save(self):
        held_at_end.append(self.held_bytes())
        save(self)

    monkeypatch.setattr(Store, "read", counting_read)
    monkeypatch.setattr(Store, "save", checking_save)
    first = render(story)
    assert first.by_status(RENDERED) == set(api.load_project(story).nodes)
    assert disk_reads == []  # every reference came from memory: nothing stored was read back
    assert held_at_end == [0]  # and every frame left memory after its last user


def test_noop_render_leaves_the_lock_byte_identical(example):
    story = example("lighthouse")
    render(story)
    lock = story.with_suffix(".lock")
    before, mtime = lock.read_bytes(), lock.stat().st_mtime_ns
    full_path(story)
    render(story)
    assert lock.read_bytes() == before
    assert lock.stat().st_mtime_ns == mtime  # not even rewritten
    data = json.loads(before)
    assert list(data["nodes"]) == sorted(data["nodes"])


def test_an_edit_that_puts_the_old_mtime_back_is_seen(example):
    story = example("lighthouse")
    render(story)
    text, st = story.read_text(), story.stat()
    # one word for another as long (the same size), the mtime put back as `cp -p` or a sync tool would
    edited = text.replace("starts to turn", "begins a turn", 1).replace("glass prisms", "glass prisms ", 1)
    assert len(edited.encode()) == len(text.encode()) and edited != text
    story.write_text(edited)
    os.utime(story, ns=(st.st_atime_ns, st.st_mtime_ns))
    now = story.stat()
    assert (now.st_size, now.st_mtime_ns, now.st_ino) == (st.st_size, st.st_mtime_ns, st.st_ino)
    again = render(story)
    assert again.by_status(RENDERED) == {"arrival/lamp"}  # not answered by the no-op from the last run's record


def test_a_frame_whose_metadata_alone_changed_is_not_rewritten(example):
    story = example("lighthouse")
    render(story)
    frame = story.parent / "renders" / "arrival" / "wide.png"
    before = frame.stat()
    frame.chmod(0o600)  # its ctime moves (as a sync tool's tag would move it); its bytes do not
    again = render(story)
    assert again.by_status(RENDERED) == set()
    after = frame.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_mode & 0o777) == (before.st_ino, before.st_mtime_ns, 0o600)
    full_path(story)
    render(story)
    assert frame.stat().st_ino == before.st_ino  # the stat index knows it again: not even hashed twice


def test_two_storyboards_whose_ids_coincide_are_told_they_write_over_each_others_frames(example, cli):
    from shotflow.errors import ShotflowWarning

    story = example("lighthouse")
    other = story.with_name("noir.yaml")
    other.write_text(story.read_text().replace("at dusk", "at night"))  # the same scene and shot ids
    render(story)
    with pytest.warns(ShotflowWarning) as caught:
        render(other)
    said = [str(w.message) for w in caught]
    assert len(said) == 1, said
    assert re.match(r"renders/\S+\.png and \d+ more of its frames: ", said[0]), said[0]
    assert "storyboard.yaml's last render wrote there too, and noir.yaml wrote over it" in said[0]
    assert "a folder of its own" in said[0]
    result = cli("render", story)  # and back: one warning line, naming the other storyboard
    assert result.code == 0, result.text
    told = [line for line in result.err.splitlines() if line.startswith("warning:")]
    assert len(told) == 1 and "noir.yaml's last render wrote there too" in told[0], result.err
    other.unlink()  # a storyboard removed: its last run's record claims nothing any more
    frames = json.loads((story.parent / ".shotflow" / "noir.last-run.json").read_text())["outputs"]
    crafted = {"version": 1, "storyboard": str(story.parent.parent / "elsewhere.yaml"), "outputs": frames}
    (story.parent.parent / "elsewhere.yaml").write_text("shotflow: 1\n")
    (story.parent / ".shotflow" / "elsewhere.last-run.json").write_text(json.dumps(crafted))  # not a sibling's
    story.with_name("decoy.yaml").write_text("shotflow: 1\n")  # a sibling whose record names another file
    (story.parent / ".shotflow" / "decoy.last-run.json").write_text(json.dumps(crafted))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ShotflowWarning)
        render(story, force=("arrival/wide",))


def test_a_storyboard_edited_while_it_renders_is_read_again_by_the_next_render(example, monkeypatch):
    """The no-op record keeps the inputs as the run began: an edit made while it ran is not taken
    for what it rendered (every later render said "nothing to do" over the old frame)."""
    from shotflow.backends.preview import PreviewBackend

    story = example("lighthouse")
    edited = []

    class Editing(PreviewBackend):
        async def generate(self, request, start=None):
            if not edited:  # the user saves a change while the run goes on
                edit(story, "dawn after the storm", "DAWN after the storm")
                edited.append(True)
            return await super().generate(request, start)

    monkeypatch.setattr("shotflow.backends.create", lambda name, services: Editing())
    assert render(story).by_status(Status.RENDERED)
    monkeypatch.undo()
    again = render(story)
    assert again.by_status(Status.RENDERED) == {"rescue/dawn"}


def test_the_manifest_worked_out_while_nodes_finish_is_the_one_worked_out_at_the_end(example, monkeypatch):
    import shotflow.state as state
    from shotflow.state import ProjectState

    story = example("lighthouse")
    manifest = story.parent / ".shotflow" / "storyboard.last-run.json"
    calls: list[bool] = []  # one a node's part worked out: True while the run goes on, False at its end
    real = state._manifest_part
    recording = ProjectState.record_complete_run

    def part(*args):
        calls.append(not ending)
        return real(*args)

    def record(self, *args):
        nonlocal ending
        ending = True
        return recording(self, *args)

    monkeypatch.setattr(state, "_manifest_part", part)
    monkeypatch.setattr(ProjectState, "record_complete_run", record)
    manifests = []
    for cap in (ProjectState.PREPARED_CHARS, 0, 500):
        ending, calls[:] = False, []
        monkeypatch.setattr(ProjectState, "PREPARED_CHARS", cap)
        full_path(story)
        render(story)
        manifests.append(manifest.read_bytes())
        if cap == 0:
            assert calls == [False] * 12  # all of it after the last node
        elif cap == 500:
            assert 0 < calls.count(True) < 12 and len(calls) == 12  # the first ones ahead, the rest after
        else:
            assert calls == [True] * 12  # all of it while the nodes finished
    assert manifests[0] == manifests[1] == manifests[2]
    assert render(story).events[-1][1].noop  # and the no-op fast path trusts it


def test_editing_one_prompt_renders_exactly_its_downstream_closure(example):
    story = example("lighthouse")
    render(story)
    edit(story, "establishing shot of", "wide establishing shot of")
    expected = downstream(story, "arrival/wide")
    assert {"arrival/wide", "arrival/lamp", "rescue/dawn"} <= expected and "radio/station" not in expected
    again = render(story)
    assert again.by_status(RENDERED) == expected
    assert again.by_status(CACHED) == set(api.load_project(story).nodes) - expected


def test_plan_says_why_each_node_renders(example):
    story = example("lighthouse")
    render(story)
    edit(story, "establishing shot of", "wide establishing shot of")
    plan = api.plan(api.load_project(story))
    assert plan.nodes["arrival/wide"].reason == "prompt changed"
    assert plan.nodes["arrival/lamp"].reason == "upstream arrival/wide renders"
    assert plan.nodes["radio/station"].status.value == "fresh"


def test_renaming_a_shot_renders_nothing(example):
    story = example("lighthouse")
    render(story)
    edit(story, "- id: wide", "- id: establishing")
    text = story.read_text().replace("refs: [wide]", "refs: [establishing]")
    text = text.replace("arrival/wide", "arrival/establishing")
    story.write_text(text)
    again = render(story)
    assert not again.by_status(RENDERED)
    assert "arrival/establishing" in again.by_status(CACHED)
    assert (story.parent / "renders/arrival/establishing.png").is_file()
    assert not (story.parent / "renders/arrival/wide.png").exists()  # the stale file is gone
    assert "arrival/wide" not in json.loads(story.with_suffix(".lock").read_text())["nodes"]


def test_a_new_pick_renders_downstream_but_not_the_shot(example):
    story = example("lighthouse")
    render(story)
    edit(story, "pick: 2", "pick: 3")
    again = render(story)
    assert again.by_status(RENDERED) == downstream(story, "arrival/door") - {"arrival/door"}
    assert "arrival/door" in again.by_status(CACHED)
    entry = json.loads(story.with_suffix(".lock").read_text())["nodes"]["arrival/door"]
    assert entry["pick"] == 3 and entry["picked"] == entry["outputs"][2]["sha256"]


def test_a_changed_reference_file_renders_its_users(example):
    story = example("lighthouse")
    render(story)
    from PIL import Image

    Image.new("RGB", (64, 64), (10, 200, 10)).save(story.parent / "refs/tom.jpg")
    again = render(story)
    assert again.by_status(RENDERED) == {"radio/station"}
    plan = api.plan(api.load_project(story))
    assert all(n.status.value == "fresh" for n in plan.nodes.values())


def test_a_corrupt_object_is_caught_and_rendered_again(example):
    story = example("lighthouse")
    render(story)
    lock = json.loads(story.with_suffix(".lock").read_text())
    digest = lock["nodes"]["arrival/wide"]["picked"]
    obj = story.parent / ".shotflow/objects" / digest[:2] / digest[2:]
    obj.chmod(0o644)
    obj.write_bytes(b"not an image at all")
    again = render(story)
    assert "arrival/wide" in again.by_status(RENDERED)
    # the preview backend is deterministic: the same bytes come back, so nothing downstream changes
    assert again.by_status(RENDERED) == {"arrival/wide"}
    import hashlib

    assert hashlib.sha256(obj.read_bytes()).hexdigest() == digest


def test_a_damaged_render_file_is_replaced_from_the_cache(example):
    story = example("lighthouse")
    render(story)
    frame = story.parent / "renders/arrival/wide.png"
    good = frame.read_bytes()
    frame.write_bytes(b"scribbled over")
    again = render(story)
    assert not again.by_status(RENDERED)
    assert frame.read_bytes() == good


def test_force_makes_a_new_take_and_its_dependents_follow(example):
    story = example("lighthouse")
    render(story)
    before = json.loads(story.with_suffix(".lock").read_text())["nodes"]["arrival/wide"]
    forced = render(story, force=("arrival/wide",))
    assert forced.by_status(RENDERED) == downstream(story, "arrival/wide")
    after = json.loads(story.with_suffix(".lock").read_text())["nodes"]["arrival/wide"]
    assert after["key"] == before["key"] and after["picked"] != before["picked"] and after["roll"] == 1
    # the new take sticks: a plain render keeps it
    full_path(story)
    assert not render(story).by_status(RENDERED)
    assert json.loads(story.with_suffix(".lock").read_text())["nodes"]["arrival/wide"]["picked"] == after["picked"]


def test_only_renders_the_shot_and_its_upstream(example):
    story = example("lighthouse")
    run = render(story, only=("radio/console",))
    assert run.by_status(RENDERED) == {
        "character:mara",
        "arrival/wide",
        "arrival/door",
        "arrival/stairs",
        "radio/console",
    }
    lock = json.loads(story.with_suffix(".lock").read_text())
    assert set(lock["nodes"]) == run.by_status(RENDERED)
    rest = render(story)
    assert rest.by_status(CACHED) == run.by_status(RENDERED)
    assert len(rest.by_status(RENDERED)) == len(api.load_project(story).nodes) - 5


def test_only_accepts_globs_and_rejects_unknown_ids(example, cli):
    story = example("lighthouse")
    run = render(story, only=("rescue/*",))
    assert {"rescue/gallery", "rescue/trawler", "rescue/signal", "rescue/dawn"} <= run.by_status(RENDERED)
    result = cli("render", story, "--only", "radio/consol")
    assert result.code == 2 and "did you mean 'radio/console'" in result.err


def test_locked_uses_the_lock_and_refuses_changes(example, cli):
    story = example("lighthouse")
    assert cli("render", story).code == 0
    lock = story.with_suffix(".lock").read_bytes()
    ok = cli("render", story, "--locked", "--json")
    assert ok.code == 0
    edit(story, "a young coast-guard", "an old coast-guard")
    refused = cli("render", story, "--locked")
    assert refused.code == 2
    assert "radio/station: changed since the lock" in refused.err and "Traceback" not in refused.err
    assert story.with_suffix(".lock").read_bytes() == lock


def test_locked_on_another_backend_than_the_locks_says_which_to_pass(example, monkeypatch):
    from shotflow.errors import LockedError
    from shotflow.testing import Emulator

    story = example("lighthouse")  # its storyboard says backend: preview
    with Emulator(api_key="test-key", latency=0) as emu:
        monkeypatch.setenv("RUNWARE_API_URL", emu.url)
        monkeypatch.setenv("RUNWARE_API_KEY", "test-key")
        api.render(story, RenderOptions(backend="runware"), RecordingReporter())
        with pytest.raises(LockedError) as refused:
            api.render(story, RenderOptions(locked=True), RecordingReporter())
        assert "arrival/wide: its locked frame was made on runware, not preview" in refused.value.message
        assert "(None)" not in refused.value.message
        assert refused.value.hint == "the lock's frames were made on runware: pass --backend runware"
        assert api.render(story, RenderOptions(locked=True, backend="runware"), RecordingReporter()).ok


def test_a_preview_run_says_when_its_panels_replace_frames_made_on_runware(example, monkeypatch):
    from shotflow.testing import Emulator

    story = example("lighthouse")

    def notes(**options) -> list[str]:
        reporter = RecordingReporter()
        api.render(story, RenderOptions(**options), reporter)
        return [text for kind, text in reporter.events if kind == "note"]

    assert not [n for n in notes() if "replace" in n]
    with Emulator(api_key="test-key", latency=0) as emu:
        monkeypatch.setenv("RUNWARE_API_URL", emu.url)
        monkeypatch.setenv("RUNWARE_API_KEY", "test-key")
        assert not [n for n in notes(backend="runware") if "replace" in n]  # panels replaced by frames: no note
        billed = emu.stats.images
        (said,) = [n for n in notes() if "replace" in n]
        assert said.startswith("preview panels replace 12 frames made on runware (character:mara, ")
        assert "storyboard.lock; they stay in the cache: render --backend runware puts them back" in said
        notes(backend="runware")
        assert emu.stats.images == billed  # as it says: back at no cost


def test_locked_on_a_fresh_machine_restores_identical_frames(example, cli):
    """No cache, only the storyboard and its lock: the preview backend redraws and must match."""
    story = example("lighthouse")
    assert cli("render", story).code == 0
    lock = story.with_suffix(".lock").read_bytes()
    import shutil

    shutil.rmtree(story.parent / ".shotflow")
    shutil.rmtree(story.parent / "renders")
    result = cli("render", story, "--locked")
    assert result.code == 0, result.text
    assert story.with_suffix(".lock").read_bytes() == lock
    assert (story.parent / "renders/rescue/dawn.png").is_file()
    # what the redrawn frames' keys were made of is kept: plan names what changed after an edit
    story.write_text(story.read_text().replace("the great lamp", "the huge lamp"))
    assert "arrival/lamp" in (planned := cli("plan", story).out) and "prompt changed" in planned


def test_locked_without_a_lock_fails_clearly(example, cli):
    story = example("lighthouse")
    result = cli("render", story, "--locked")
    assert result.code == 2
    assert "not in storyboard.lock" in result.err
    assert not (story.parent / "renders").exists()


def test_max_cost_refuses_before_spending_anything(example, cli):
    story = example("lighthouse")
    result = cli("render", story, "--backend", "runware", "--max-cost", "0.50")
    assert result.code == 2
    assert "would cost about $1.08" in result.err and "nothing was spent" in result.err
    assert not (story.parent / "renders").exists()


def test_clean_renders_then_render_restores_from_the_cache(example, cli):
    story = example("lighthouse")
    assert cli("render", story).code == 0
    dry = cli("clean", story, "--dry-run")
    assert dry.code == 0 and "would remove renders/" in dry.out.replace(str(story.parent) + "/", "")
    assert (story.parent / "renders").exists()
    assert cli("clean", story).code == 0
    assert not (story.parent / "renders").exists()
    again = render(story)
    assert not again.by_status(RENDERED)
    assert (story.parent / "renders/arrival/wide.png").is_file()
    assert cli("clean", story, "--all").code == 0
    assert not (story.parent / ".shotflow/objects").exists()
    assert story.with_suffix(".lock").exists()


def test_a_failed_shot_skips_its_downstream_and_independent_branches_finish(example, monkeypatch):
    story = example("lighthouse")
    monkeypatch.setattr("shotflow.backends.create", lambda name, services: RefusingBackend("trawler pitching"))
    run = render(story)
    assert run.by_status(FAILED) == {"rescue/trawler"}
    assert run.by_status(SKIPPED) == downstream(story, "rescue/trawler") - {"rescue/trawler"}
    outcomes = run.outcomes()
    assert outcomes["rescue/signal"].error == "skipped: upstream rescue/trawler failed"
    assert "the model refused" in outcomes["rescue/trawler"].error
    assert "radio/reaction" in run.by_status(RENDERED)  # an independent branch
    summary = run.events[-1][1]
    assert not summary.ok and summary.failed == 1 and summary.skipped == 2
    status = json.loads((story.parent / ".shotflow/storyboard.status.json").read_text())
    assert status["rescue/trawler"]["status"] == "failed"
    # finished work is recorded: the next run renders only the failed shot and what it blocked
    monkeypatch.undo()
    rest = render(story)
    assert rest.by_status(RENDERED) == downstream(story, "rescue/trawler")


def test_fail_fast_stops_starting_new_shots(example, monkeypatch):
    story = example("lighthouse")
    monkeypatch.setattr("shotflow.backends.create", lambda name, services: RefusingBackend("turnaround"))
    run = render(story, fail_fast=True, jobs=1)
    assert run.by_status(FAILED) == {"character:mara"}
    assert len(run.by_status(SKIPPED)) >= 7
    assert any("(--fail-fast)" in (o.error or "") for o in run.outcomes().values())


def test_render_exit_codes_and_json_events(example, cli):
    story = example("heist")
    result = cli("render", story, "--json")
    assert result.code == 0, result.err
    events = [json.loads(line) for line in result.out.splitlines()]
    nodes = [e for e in events if e["event"] == "node"]
    assert {e["id"] for e in nodes} == set(api.load_project(story).nodes)
    for e in nodes:
        assert set(e) == {"event", "id", "status", "outputs", "error"}
        assert e["status"] == "rendered" and e["error"] is None
        assert all((story.parent.parent / p).is_file() or Path(p).is_file() for p in e["outputs"])
    assert events[-1] == {
        "event": "summary",
        "rendered": len(nodes),
        "cached": 0,
        "failed": 0,
        "skipped": 0,
        "cost": 0.0,
    }


def test_two_concurrent_renders_do_not_corrupt_anything(example):
    story = example("lighthouse")
    env = {k: v for k, v in os.environ.items() if k != "SHOTFLOW_CACHE"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "shotflow", "render", str(story), "--json", "--wait", "60"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    summaries = [json.loads(out.splitlines()[-1]) for out, _ in outs]
    total = len(api.load_project(story).nodes)
    assert sorted(s["rendered"] for s in summaries) == [0, total]  # one rendered, the other found it all
    import hashlib

    for obj in (story.parent / ".shotflow/objects").rglob("*"):
        if obj.is_file():
            assert hashlib.sha256(obj.read_bytes()).hexdigest() == obj.parent.name + obj.name
    json.loads(story.with_suffix(".lock").read_text())


def test_a_second_render_waits_for_the_project_lock_and_says_so(example, cli):
    story = example("lighthouse")
    from shotflow.store import ProjectLock

    with ProjectLock(story.parent / ".shotflow", timeout=1):
        result = cli("render", story, "--wait", "0.2")
    assert result.code == 2
    assert "another shotflow render of this project is running" in result.err
    import socket

    assert f"(process {os.getpid()} on {socket.gethostname()!r}, since " in result.err  # who holds it
    assert not (story.parent / ".shotflow" / "run.holder.json").exists()  # gone with the lock


@pytest.mark.parametrize(
    "holder",
    [
        '{"pid": 2147483000, "host": "HOST", "since": 1.0}',
        '{"pid": "x"}',
        "[1]",
        '{"pid": PID, "host": "HOST", "since": 1e300}',
    ],
)
def test_who_holds_the_project_lock_is_read_as_data_from_anyone(example, holder):
    """A holder that died, or a crafted run.holder.json: the message names the lock file instead."""
    import socket

    from shotflow.store import ProjectLock

    story = example("lighthouse")
    state = story.parent / ".shotflow"
    with ProjectLock(state, timeout=1):
        (state / "run.holder.json").write_text(
            holder.replace("HOST", socket.gethostname()).replace("PID", str(os.getpid()))
        )
        waiting = ProjectLock(state, timeout=0.1)
        assert "run.lock" in waiting.holder() and "process" not in waiting.holder()


SLOW = """
shotflow: 1
defaults: {size: 1080p-16:9, takes: 20}
scenes:
  - id: s
    shots:
{shots}
"""


def test_an_interrupted_render_keeps_its_work_and_resumes(tmp_path):
    """A real Ctrl-C (SIGINT) in the middle of a render, then the same command again."""
    shots = "\n".join(f"      - {{id: shot{i:02d}, prompt: frame number {i} of a slow sequence}}" for i in range(30))
    story = tmp_path / "storyboard.yaml"
    story.write_text(SLOW.replace("{shots}", shots))
    env = {k: v for k, v in os.environ.items() if k != "SHOTFLOW_CACHE"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "shotflow", "render", str(story), "--json", "--jobs", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    done_before = []
    deadline = time.monotonic() + 60
    while len(done_before) < 3 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith('{"event": "node"'):
            done_before.append(json.loads(line)["id"])
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "finished work is kept" in err
    events = [json.loads(line) for line in out.splitlines()]
    read_early = len(done_before)  # node events read before the signal
    for event in events:
        if event["event"] == "node" and event["status"] == "rendered":
            done_before.append(event["id"])
    assert 3 <= len(done_before) < 30
    # the JSON contract holds: an event for every node (what was not done: skipped, interrupted), a summary
    summary, nodes = events[-1], [e for e in events if e["event"] == "node"]
    assert summary["event"] == "summary" and summary["interrupted"] is True
    assert read_early + len(nodes) == 30 and summary["rendered"] + summary["skipped"] == 30
    assert all(e["status"] == "skipped" and "interrupted" in e["error"] for e in nodes if e["status"] != "rendered")
    lock = json.loads(story.with_suffix(".lock").read_text())
    assert set(done_before) <= set(lock["nodes"])
    again = render(story)
    assert again.by_status(CACHED) == set(done_before)
    assert again.by_status(RENDERED) == {f"s/shot{i:02d}" for i in range(30)} - set(done_before)


def test_a_copied_project_does_not_trust_the_originals_last_run(example, tmp_path):
    import shutil

    story = example("lighthouse")
    render(story)
    copy = tmp_path / "copy"
    shutil.copytree(story.parent, copy)
    copied = copy / "storyboard.yaml"
    edit(copied, "the great lamp", "the huge lamp")
    again = render(copied)
    assert "arrival/lamp" in again.by_status(RENDERED)
    assert (copy / "renders/arrival/lamp.png").is_file()


class PreparingBackend(Backend):
    """The preview backend behind a ``start`` hook, like Runware's: counts what waits and what sends."""

    name = "preview"
    prepares = True

    def __init__(self):
        from shotflow.backends.preview import PreviewBackend

        super().__init__()
        self.inner = PreviewBackend()
        self.preparing = self.sending = self.most_sending = self.most_started = 0

    async def generate(self, request, start=None):
        import asyncio

        self.preparing += 1
        self.most_started = max(self.most_started, self.preparing + self.sending)
        await asyncio.sleep(0.01)  # the schema check, the journal entry
        await start()
        self.preparing -= 1
        self.sending += 1
        self.most_sending = max(self.most_sending, self.sending)
        try:
            await asyncio.sleep(0.02)
            return await self.inner.generate(request)
        finally:
            self.sending -= 1


def test_shots_prepare_ahead_while_at_most_jobs_send(example, monkeypatch):
    story = example("lighthouse")
    fake = PreparingBackend()
    monkeypatch.setattr("shotflow.backends.create", lambda name, services: fake)
    run = render(story, jobs=2)
    assert run.by_status(RENDERED) == set(api.load_project(story).nodes)
    assert fake.most_sending == 2  # --jobs holds for what is sent
    assert fake.most_started > 2  # and more were being prepared meanwhile
    assert fake.preparing == fake.sending == 0


def test_send_permits_go_to_the_waiting_shot_with_the_longest_chain_first():
    import asyncio

    from shotflow.resolve import Slots

    async def main():
        slots = Slots(1, {"first": (-1, 0), "late": (-1, 1), "critical": (-5, 2), "early": (-1, 3)})
        order = []

        async def one(node):
            await slots._acquire(slots.rank[node])
            order.append(node)
            await asyncio.sleep(0)
            slots._release()

        await asyncio.gather(*(one(n) for n in ("first", "early", "late", "critical")))
        return order

    assert asyncio.run(main()) == ["first", "critical", "late", "early"]


def test_the_picked_take_is_always_shot_png(example, cli):
    """renders/SCENE/SHOT.png is the picked take, whatever the pick; the others sit beside it."""
    import hashlib

    from shotflow.exports._frames import load_sequence
    from shotflow.store import LockFile

    story = example("lighthouse")  # arrival/door: takes 3, pick 2
    result = cli("render", story, "--json")
    door = next(e for e in map(json.loads, result.out.splitlines()) if e.get("id") == "arrival/door")
    assert door["outputs"][0].endswith("renders/arrival/door.png")  # the log names the picked file first
    assert sorted(Path(p).name for p in door["outputs"]) == ["door-take1.png", "door-take3.png", "door.png"]
    folder = story.parent / "renders/arrival"

    def digest(name: str) -> str:
        return hashlib.sha256((folder / name).read_bytes()).hexdigest()

    lock = LockFile.read(story.with_suffix(".lock")).entries["arrival/door"]
    takes = [o.sha256 for o in lock.record.outputs]
    assert digest("door.png") == takes[1] == lock.picked.sha256
    assert (digest("door-take1.png"), digest("door-take3.png")) == (takes[0], takes[2])
    assert not (folder / "door-take2.png").exists()
    plain = cli("render", story, "--force", "arrival/door")
    assert "rendered arrival/door" in plain.out and "renders/arrival/door.png (+2 other takes)" in plain.out

    edit(story, "pick: 2 ", "pick: 3 ")
    render(story)
    lock = LockFile.read(story.with_suffix(".lock")).entries["arrival/door"]
    takes = [o.sha256 for o in lock.record.outputs]
    assert digest("door.png") == takes[2]
    assert (digest("door-take1.png"), digest("door-take2.png")) == (takes[0], takes[1])
    assert not (folder / "door-take3.png").exists()
    seq = load_sequence(story)  # the exports find every take where it is
    panel = seq.panels["arrival/door"]
    assert panel.picked.in_renders and panel.picked.path == folder / "door.png"
    assert {t.index: t.path.name for t in panel.others} == {1: "door-take1.png", 2: "door-take2.png"}


def test_an_interrupted_force_resumes_without_forcing_again_what_it_rendered(tmp_path):
    """Ctrl-C during `render --force 's/*'`, then the same command: the re-rolls it finished are
    kept (on Runware each would be paid for again), the others are rendered; the hint comes once."""
    shots = "\n".join(f"      - {{id: shot{i:02d}, prompt: frame number {i} of a slow sequence}}" for i in range(10))
    story = tmp_path / "storyboard.yaml"
    story.write_text(SLOW.replace("{shots}", shots))
    env = {k: v for k, v in os.environ.items() if k != "SHOTFLOW_CACHE"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "shotflow", "render", str(story), "--force", "s/*", "--jobs", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines = []
    deadline = time.monotonic() + 60
    while sum(" rendered " in line for line in lines) < 3 and time.monotonic() < deadline:
        lines.append(proc.stdout.readline())
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    out = "".join(lines) + out
    assert "Traceback" not in err
    assert (out + err).count("run the same command again") == 1, out + err
    done = {line.split()[2] for line in out.splitlines() if line.startswith("[") and " rendered " in line}
    assert 3 <= len(done) < 10
    record = json.loads((tmp_path / ".shotflow/forced.json").read_text())["backends"]["preview"]
    assert set(record["done"]) == done and len(record["forced"]) == 10
    lock = json.loads(story.with_suffix(".lock").read_text())["nodes"]
    takes = {n: lock[n]["picked"] for n in done}

    again = render(story, force=("s/*",))  # the same command
    assert again.by_status(CACHED) == done
    assert again.by_status(RENDERED) == {f"s/shot{i:02d}" for i in range(10)} - done
    notes = [text for kind, text in again.events if kind == "note"]
    assert notes and notes[0].startswith("not forced again:")
    lock = json.loads(story.with_suffix(".lock").read_text())["nodes"]
    assert {n: lock[n]["picked"] for n in done} == takes  # the takes paid for in the first run
    assert not (tmp_path / ".shotflow/forced.json").exists()  # finished: the next --force re-rolls anew
    third = render(story, force=("s/shot00",))
    assert third.by_status(RENDERED) == {"s/shot00"}


FORCE_BOTH = ("rescue/trawler", "rescue/dawn")


def test_an_unfinished_force_on_runware_is_neither_used_nor_forgotten_by_a_preview_run(example, monkeypatch):
    """`render --backend runware --force trawler --force dawn` re-rolls trawler, dawn fails: the
    record says trawler is done, on Runware. The same --force on preview re-rolls both there
    (free) and leaves the record alone; the same Runware command then does not pay for
    trawler's re-roll again (its Runware take of the first run comes back from the cache)."""
    from shotflow.store import LockFile
    from shotflow.testing import Emulator, Fault

    story = example("lighthouse")
    record = story.parent / ".shotflow/forced.json"
    with Emulator(api_key="test-key", latency=0) as emu:
        monkeypatch.setenv("RUNWARE_API_URL", emu.url)
        monkeypatch.setenv("RUNWARE_API_KEY", "test-key")
        assert not render(story, backend="runware").by_status(FAILED)
        emu.inject(Fault.task_error("dawn after the storm"), times=None)
        first = render(story, backend="runware", force=FORCE_BOTH)
        assert first.by_status(RENDERED) >= {"rescue/trawler"} and first.by_status(FAILED) == {"rescue/dawn"}
        paid = LockFile.read(story.with_suffix(".lock")).entries["rescue/trawler"].picked.sha256
        emu.clear_faults()

        preview = render(story, backend="preview", force=FORCE_BOTH)
        assert preview.by_status(RENDERED) >= set(FORCE_BOTH)  # the Runware record is not this run's
        assert record.exists()

        billed = emu.stats.images
        again = render(story, backend="runware", force=FORCE_BOTH)
        assert again.by_status(CACHED) >= {"rescue/trawler"} and again.by_status(RENDERED) == {"rescue/dawn"}
        assert emu.stats.images - billed == 1  # dawn's one take, not trawler's again
    assert LockFile.read(story.with_suffix(".lock")).entries["rescue/trawler"].picked.sha256 == paid
    assert not record.exists()  # finished


def test_a_force_record_without_a_backend_is_used_by_the_same_force_on_any_backend(example):
    """A forced.json an older shotflow wrote does not say which backend its re-rolls were paid
    on: it counts as the record of every backend (see Rerolls), so the same --force skips them."""
    story = example("lighthouse")
    render(story)
    record = story.parent / ".shotflow/forced.json"
    legacy = {"storyboard": str(story.resolve()), "forced": sorted(FORCE_BOTH), "done": ["rescue/trawler"]}
    record.write_text(json.dumps(legacy))
    again = render(story, force=FORCE_BOTH)
    assert "rescue/trawler" not in again.by_status(RENDERED) and "rescue/dawn" in again.by_status(RENDERED)
    assert not record.exists()


def test_force_and_locked_together_are_refused_before_anything_runs(example, cli):
    story = example("lighthouse")
    assert cli("render", story).code == 0
    lock = story.with_suffix(".lock").read_bytes()
    done = cli("render", story, "--locked", "--force", "arrival/wide")
    assert done.code == 2 and "--force and --locked contradict each other" in done.err, done.text
    assert story.with_suffix(".lock").read_bytes() == lock


def test_file_system_errors_are_named_with_their_fix_not_reported_as_bugs():
    import errno

    from shotflow.errors import file_system_error

    full = file_system_error(OSError(errno.ENOSPC, "No space left on device", "/p/renders/a/.tmp-x1"))
    assert full.message == "cannot use /p/renders/a: no space left on the disk" and "free some space" in full.hint
    denied = file_system_error(PermissionError(errno.EACCES, "Permission denied", "/p/.shotflow/run.lock"))
    assert "permission denied" in denied.message and "/p/.shotflow" in denied.hint
    assert file_system_error(ConnectionResetError(errno.ECONNRESET, "reset")) is None
    assert file_system_error(ValueError("x")) is None and file_system_error(None) is None


def test_a_full_disk_stops_the_render_with_a_clear_message_and_loses_nothing(example, monkeypatch):
    """An object the cache cannot write fails its node with the condition and the fix, and stops
    the run (every other node would fail the same way); the lock that cannot be written ends the
    command with exit 2 and one line, never 'internal error'."""
    import errno

    from helpers import run_cli_in_process

    from shotflow.store import Store

    story = example("lighthouse")
    put = Store.put
    writes = []

    def full(self, data):
        if len(writes) >= 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.cache_dir / "objects" / ".tmp-1"))
        writes.append(1)
        return put(self, data)

    monkeypatch.setattr(Store, "put", full)
    done = run_cli_in_process("render", story, "--json", "-j", "1")
    assert done.code == 1 and "internal error" not in done.out + done.err
    events = [json.loads(line) for line in done.out.splitlines()]
    failed = [e for e in events if e.get("status") == "failed"]
    assert failed and "no space left on the disk" in failed[0]["error"] and "free some space" in failed[0]["error"]
    assert any(e.get("status") == "skipped" for e in events)  # the run stopped: nothing more was tried
    monkeypatch.setattr(Store, "put", put)
    again = run_cli_in_process("render", story, "--json")
    assert again.code == 0 and json.loads(again.out.splitlines()[-1])["failed"] == 0

    def no_lock(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(story.parent / ".tmp-lock"))

    story.write_text(story.read_text().replace("dawn after the storm", "dawn after the gale"))
    monkeypatch.setattr("shotflow.store.atomic_write", no_lock)
    stopped = run_cli_in_process("render", story)
    assert stopped.code == 2 and "internal error" not in stopped.err
    assert f"cannot use {story.parent}: no space left on the disk" in stopped.err
