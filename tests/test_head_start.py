"""A plain render's head start: the nodes that reference nothing are sent while networkx loads
and builds the graph (``render.Session``), and nothing is sent for a storyboard that cannot
render, nor paid twice when planning the rest fails after they left."""

from __future__ import annotations

import json
import threading
import time

import pytest
from helpers import run_cli_in_process

from shotflow.testing import Emulator

KEY = "sk-test-0123456789abcdef"


def fast(story) -> None:
    story.write_text(story.read_text() + "\nrunware:\n  retry_base: 0.01\n  poll_initial: 0.05\n  poll_max: 0.2\n")


def events(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def sent(emu: Emulator) -> int:
    return emu.stats.tasks.get("imageInference", 0)


@pytest.fixture
def runware(monkeypatch):
    """An emulator whose tasks take 0.3 s, and the key and URL a render reads."""
    with Emulator(api_key=KEY, latency=0.3) as emu:
        monkeypatch.setenv("RUNWARE_API_KEY", KEY)
        monkeypatch.setenv("RUNWARE_API_URL", emu.url)
        yield emu


def graph_built_after(monkeypatch, emu: Emulator, then=None) -> list[int]:
    """Make the graph that a head start builds in a thread wait until a task reached the
    emulator (30 s at most); returns the tasks sent when it started (one entry a build)."""
    import shotflow.graph as graphs

    real, seen = graphs.build, []

    def build(project):
        if threading.current_thread() is not threading.main_thread():
            deadline = time.monotonic() + 30
            while sent(emu) == 0 and time.monotonic() < deadline:
                time.sleep(0.01)
            seen.append(sent(emu))
            if then is not None:
                then()
        return real(project)

    monkeypatch.setattr(graphs, "build", build)
    return seen


def test_a_plain_render_sends_the_nodes_that_reference_nothing_while_the_graph_is_built(example, runware, monkeypatch):
    from shotflow.render import RenderOptions, render
    from shotflow.report import RecordingReporter
    from shotflow.status import Status

    story = example("lighthouse")
    fast(story)
    seen = graph_built_after(monkeypatch, runware)
    reporter = RecordingReporter()
    summary = render(story, RenderOptions(backend="runware"), reporter)
    assert seen and seen[0] >= 1  # tasks had left before the graph was built
    # the events keep their order: the run's start, with the whole plan's figures, comes first;
    # the nodes sent early are reported started after it, each once
    kind, start = reporter.events[0]
    assert kind == "start" and start.total == 12 and start.to_render == 12
    started = [e[1] for e in reporter.events if e[0] == "node_started"]
    assert len(started) == len(set(started)) == 12
    done = [e[1] for e in reporter.events if e[0] == "node_done"]
    assert len(done) == 12 and all(o.status is Status.RENDERED for o in done)
    assert summary.rendered == 12 and runware.stats.billed == 12  # each node once


def test_the_graph_is_built_once_the_head_start_holds_its_send_permits(example, runware, monkeypatch):
    """networkx's import in a thread would take the GIL from the first requests' sending: the
    build starts only when every permit the head start can take is taken."""
    import shotflow.graph as graphs
    import shotflow.resolve as resolve
    from shotflow.render import RenderOptions, render
    from shotflow.report import RecordingReporter

    real_slots, made = resolve.Slots, []

    class Slots(real_slots):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    real_build, taken = graphs.build, []

    def build(project):
        if threading.current_thread() is not threading.main_thread():
            taken.append(made[0].taken)
        return real_build(project)

    monkeypatch.setattr(resolve, "Slots", Slots)
    monkeypatch.setattr(resolve, "HEAD_SEND_WAIT", 30.0)  # however slow the machine, the permits come first
    monkeypatch.setattr(graphs, "build", build)
    story = example("lighthouse")
    fast(story)
    summary = render(story, RenderOptions(backend="runware", jobs=2), RecordingReporter())
    assert taken and taken[0] >= 2  # both of --jobs 2's permits before the graph is built (it was 0)
    assert summary.rendered == 12 and runware.stats.billed == 12


@pytest.mark.parametrize("flag", [["--max-cost", "100"], ["--only", "arrival/*"], ["--locked"]])
def test_a_render_that_checks_its_whole_plan_first_has_no_head_start(example, runware, monkeypatch, flag):
    story = example("lighthouse")
    fast(story)
    seen = graph_built_after(monkeypatch, runware)
    run_cli_in_process("render", story, "--backend", "runware", "--json", *flag)
    assert seen == []  # the graph was built before anything was sent, on the main thread


def test_a_reference_cycle_stops_the_render_before_anything_is_sent(example, runware):
    story = example("lighthouse")
    text = story.read_text()
    fast(story)
    # the trawler references the signal, which references the trawler
    assert "refs: [arrival/wide]" in text
    story.write_text(story.read_text().replace("refs: [arrival/wide]", "refs: [signal, arrival/wide]", 1))
    result = run_cli_in_process("render", story, "--backend", "runware", "--json")
    assert result.code == 2 and "reference cycle" in result.err
    assert sent(runware) == 0 and runware.stats.billed == 0


def test_when_planning_the_rest_fails_after_the_head_start_the_next_run_pays_nothing_twice(
    example, runware, monkeypatch
):
    story = example("lighthouse")
    fast(story)

    def fail():
        raise RuntimeError("planning failed")

    graph_built_after(monkeypatch, runware, then=fail)
    first = run_cli_in_process("render", story, "--backend", "runware", "--json")
    assert first.code == 3 and "planning failed" in first.err
    head = sent(runware)
    assert head >= 1
    monkeypatch.undo()
    monkeypatch.setenv("RUNWARE_API_KEY", KEY)
    monkeypatch.setenv("RUNWARE_API_URL", runware.url)
    second = run_cli_in_process("render", story, "--backend", "runware", "--json")
    assert second.code == 0, second.err
    assert events(second.out)[-1]["rendered"] + events(second.out)[-1]["cached"] == 12
    assert runware.stats.billed == 12  # the tasks sent before the failure were asked about, not sent again


@pytest.mark.parametrize("flag", [[], ["--max-cost", "100"]])
def test_the_backend_warms_up_once_before_anything_is_sent(example, runware, monkeypatch, flag):
    from shotflow.backends.runware import RunwareBackend

    real, calls = RunwareBackend.warm_up.__func__, []

    def warm_up(cls):
        calls.append(sent(runware))
        real(cls)

    monkeypatch.setattr(RunwareBackend, "warm_up", classmethod(warm_up))
    story = example("lighthouse")
    fast(story)
    result = run_cli_in_process("render", story, "--backend", "runware", "--json", *flag)
    assert result.code == 0, result.err
    # before the first task left: as the run starts (the backend is named on the command line),
    # then where the run knows it will send (it is idempotent: the run asks again), with or without
    # a head start (a run handed its graph has no head start to ask first)
    assert calls == [0] * (2 if flag else 3)
    again = run_cli_in_process("render", story, "--backend", "runware", "--json")
    assert again.code == 0 and len(calls) == (2 if flag else 3)  # nothing to send (a no-op): no warm-up


def test_a_backend_named_on_the_command_line_warms_up_before_the_storyboard_is_read(example, runware, monkeypatch):
    # the TLS context is made on a second core while the storyboard loads, not after it
    import shotflow.expand
    from shotflow.backends import _runware_http
    from shotflow.backends import runware as runware_backend

    order: list[str] = []
    real_tls, real_load = runware_backend.prepare_tls, shotflow.expand.load_project
    monkeypatch.setattr(runware_backend, "prepare_tls", lambda: (order.append("tls"), real_tls())[1])
    monkeypatch.setattr(shotflow.expand, "load_project", lambda *a, **k: (order.append("load"), real_load(*a, **k))[1])
    story = example("lighthouse")
    fast(story)
    result = run_cli_in_process("render", story, "--backend", "runware", "--json")
    assert result.code == 0, result.err
    assert order[:2] == ["tls", "load"]
    assert _runware_http.tls_context() is not None  # made, and handed to the client


def test_the_preview_backend_is_not_imported_before_the_storyboard_is_read(monkeypatch):
    # its module is ~40 ms of imports with no setup to start: warming it up early would only cost
    import shotflow.backends as backends

    def imported(name):
        raise AssertionError(f"{name} imported by the warm-up")

    monkeypatch.setattr(backends, "backend_class", imported)
    backends.warm_up("preview")
    backends.warm_up("no-such-backend")  # left to the run, which says what is wrong
