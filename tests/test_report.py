"""Reporters: the console ones render without errors; the JSON one keeps the contract."""

from __future__ import annotations

import io
import json

from shotflow import api
from shotflow.render import RenderOptions
from shotflow.report import JsonReporter, PlainReporter, RichReporter, Summary, summary_lines
from shotflow.status import Outcome, Status


def test_rich_reporter_draws_progress_and_a_summary(example):
    story = example("lighthouse")
    stream = io.StringIO()
    reporter = RichReporter(stream=stream)
    summary = api.render(story, RenderOptions(), reporter)
    text = stream.getvalue()
    assert summary.rendered == 12
    assert "rendered arrival/wide" in text and "12 rendered, 0 cached" in text


def test_plain_reporter_lists_work_and_counts_cached(example):
    story = example("lighthouse")
    api.render(story, RenderOptions(only=("arrival/wide",)))
    stream = io.StringIO()
    api.render(story, RenderOptions(), PlainReporter(stream=stream))
    lines = stream.getvalue().splitlines()
    assert lines[0] == "rendering 11 of 12 nodes on preview"
    assert not any("cached  arrival/wide" in line for line in lines)
    assert lines[-1].startswith("11 rendered, 1 cached; cost $0.00;")


def test_json_reporter_lines():
    stream = io.StringIO()
    reporter = JsonReporter(stream)
    reporter.node_done(Outcome("a/b", Status.FAILED, error="boom"))
    summary = Summary()
    summary.add(Outcome("a/b", Status.FAILED, error="boom"))
    reporter.run_finished(summary)
    first, last = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert first == {"event": "node", "id": "a/b", "status": "failed", "outputs": [], "error": "boom"}
    assert last == {"event": "summary", "rendered": 0, "cached": 0, "failed": 1, "skipped": 0, "cost": 0.0}


def test_summary_names_failures_and_what_they_skipped():
    summary = Summary()
    summary.add(Outcome("a/one", Status.FAILED, error="the model refused the prompt"))
    summary.add(Outcome("a/two", Status.SKIPPED, error="skipped: upstream a/one failed"))
    summary.add(Outcome("a/three", Status.RENDERED, cost=0.08))
    lines = summary_lines(summary)
    assert lines[0].startswith("1 rendered, 0 cached, 1 failed, 1 skipped; cost $0.08")
    assert "  failed  a/one: the model refused the prompt" in lines
    assert "  skipped a/two: upstream a/one failed" in lines
