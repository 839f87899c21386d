"""Reporters: the core emits events, reporters show them. The core never prints.

    run_started(RunStart) → node_started(id)* / node_done(Outcome)* → run_finished(Summary)

Implementations: ``JsonReporter`` (one JSON object per line, the contract of
``render --json``), ``PlainReporter`` (a line per finished node, for logs and pipes),
``RichReporter`` (a live progress display on a terminal) and ``RecordingReporter``
(keeps the events, for tests).
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TextIO

from ._text import counted
from .status import INTERRUPTED, Outcome, Status

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID


@dataclass(frozen=True)
class RunStart:
    total: int  # nodes in this run
    to_render: int  # nodes planned to render
    estimated_cost: float
    backend: str


@dataclass
class Summary:
    rendered: int = 0
    cached: int = 0
    failed: int = 0
    skipped: int = 0
    held: int = 0  # approved shots whose change was not rendered (render --include-approved)
    cost: float = 0.0
    elapsed: float = 0.0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (id, error)
    skips: list[tuple[str, str]] = field(default_factory=list)  # (id, why)
    holds: list[tuple[str, str]] = field(default_factory=list)  # (id, what changed)
    interrupted: bool = False
    noop: bool = False  # answered by the fast path
    stopped: str | None = None  # why the run stopped starting shots (a rejected key, no balance)
    notes: list[str] = field(default_factory=list)  # what the backend says once (e.g. tags refused)
    remote: str | None = None  # the team cache's URL, when one was used
    downloaded: int = 0  # nodes whose frames came from the remote
    uploaded: int = 0  # nodes whose frames went to the remote
    remote_failures: list[tuple[str, str]] = field(default_factory=list)  # (node id, why) not uploaded

    def add(self, outcome: Outcome) -> None:
        if outcome.status is Status.RENDERED:
            self.rendered += 1
        elif outcome.status is Status.CACHED:
            self.cached += 1
        elif outcome.status is Status.HELD:
            self.held += 1
            self.holds.append((outcome.id, outcome.note or "changed"))
        elif outcome.status is Status.FAILED:
            self.failed += 1
            self.failures.append((outcome.id, outcome.error or "failed"))
        else:
            self.skipped += 1
            self.skips.append((outcome.id, outcome.error or "skipped"))
        self.cost += outcome.cost

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped and not self.interrupted

    def to_json(self) -> dict:
        # "held" only when some were: a run without approved shots prints what it always did
        held = {"held": self.held} if self.held else {}
        data = {
            "event": "summary",
            "rendered": self.rendered,
            "cached": self.cached,
            "failed": self.failed,
            "skipped": self.skipped,
            **held,
            "cost": round(self.cost, 6),
        }
        if self.interrupted:  # Ctrl-C: what was not done is counted as skipped, and said why
            data["interrupted"] = True
        if self.notes:
            data["notes"] = list(self.notes)
        if self.remote is not None:
            data["remote"] = {
                "url": self.remote,
                "downloaded": self.downloaded,
                "uploaded": self.uploaded,
                "failed": [{"id": i, "error": e} for i, e in self.remote_failures],
            }
        return data


class Reporter(Protocol):
    def run_started(self, start: RunStart) -> None: ...

    def node_started(self, node_id: str) -> None: ...

    def node_done(self, outcome: Outcome) -> None: ...

    def note(self, text: str) -> None: ...

    def run_finished(self, summary: Summary) -> None: ...


class RecordingReporter:
    """Keeps every event (for tests)."""

    def __init__(self):
        self.events: list[tuple[str, object]] = []

    def run_started(self, start: RunStart) -> None:
        self.events.append(("start", start))

    def node_started(self, node_id: str) -> None:
        self.events.append(("node_started", node_id))

    def node_done(self, outcome: Outcome) -> None:
        self.events.append(("node_done", outcome))

    def note(self, text: str) -> None:
        self.events.append(("note", text))

    def run_finished(self, summary: Summary) -> None:
        self.events.append(("finish", summary))

    def outcomes(self) -> dict[str, Outcome]:
        return {o.id: o for kind, o in self.events if kind == "node_done" and isinstance(o, Outcome)}

    def by_status(self, status: Status) -> set[str]:
        return {i for i, o in self.outcomes().items() if o.status is status}


def write_line(stream: TextIO, text: str) -> None:
    """``text`` and a newline on ``stream``, flushed. A reader that went away (``shotflow render
    --json | head -1``) ends the output, not the run: from then on the stream writes to
    /dev/null, and the render finishes (what it pays for is kept) and exits as it would have."""
    try:
        stream.write(text + "\n")
        stream.flush()
    except BrokenPipeError:
        silence(stream)


def silence(stream: TextIO) -> None:
    """Point ``stream`` (standard output, whose reader is gone) at /dev/null: what is still
    buffered or written later goes nowhere, instead of failing again at every write and at exit."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError):  # not a file (a test's StringIO): nothing to point elsewhere
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


class JsonReporter:
    """One JSON object per line on stdout (DESIGN.md §6): node events, then a summary."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdout

    def _emit(self, obj: dict) -> None:
        write_line(self.stream, json.dumps(obj, ensure_ascii=False))

    def run_started(self, start: RunStart) -> None:
        pass

    def node_started(self, node_id: str) -> None:
        pass

    def node_done(self, outcome: Outcome) -> None:
        self._emit(
            {
                "event": "node",
                "id": outcome.id,
                "status": outcome.status.value,
                "outputs": list(outcome.outputs),
                "error": outcome.error,
            }
        )

    def note(self, text: str) -> None:
        sys.stderr.write(text + "\n")  # stdout is the JSON contract: notes and warnings go beside it

    def run_finished(self, summary: Summary) -> None:
        self._emit(summary.to_json())


_MARKS = {
    Status.RENDERED: "rendered",
    Status.CACHED: "cached",
    Status.FAILED: "FAILED",
    Status.SKIPPED: "skipped",
    Status.HELD: "held",
}


def summary_lines(summary: Summary) -> list[str]:
    if summary.stopped:
        # the reason is the run's error line: one clear line, not a failure per shot
        return [
            f"stopped: {summary.rendered} rendered, {summary.cached} cached, "
            f"{summary.failed + summary.skipped} not rendered; cost ${summary.cost:.2f}"
        ]
    parts = [f"{summary.rendered} rendered", f"{summary.cached} cached"]
    if summary.failed:
        parts.append(f"{summary.failed} failed")
    if summary.skipped:
        parts.append(f"{summary.skipped} skipped")
    if summary.held:
        parts.append(f"{summary.held} held (approved)")
    head = ("interrupted: " if summary.interrupted else "") + ", ".join(parts)
    head += f"; cost ${summary.cost:.2f}; {summary.elapsed:.2f} s"
    lines = [head]
    for node_id, error in summary.failures:
        lines.append(f"  failed  {node_id}: {error}")
    skips = [(n, why) for n, why in summary.skips if why != INTERRUPTED]  # Ctrl-C's: counted only
    for node_id, why in skips[:20]:
        lines.append(f"  skipped {node_id}: {why.removeprefix('skipped: ')}")
    if len(skips) > 20:
        lines.append(f"  … and {len(skips) - 20} more skipped")
    for node_id, why in summary.holds[:20]:
        lines.append(f"  held    {node_id}: {why}")
    if len(summary.holds) > 20:
        lines.append(f"  … and {len(summary.holds) - 20} more held")
    if summary.holds:
        lines.append(
            "held shots are approved: their frames are kept; render --include-approved "
            "(or send them back from the board) to render them"
        )
    lines.extend(remote_lines(summary))
    lines.extend(f"note: {note}" for note in summary.notes)
    return lines  # an interrupted run: the command line says how to continue, once


def remote_lines(summary: Summary) -> list[str]:
    """What the team cache gave and took; what could not be uploaded, and how to retry it."""
    if summary.remote is None:
        return []
    lines = []
    if summary.downloaded or summary.uploaded:
        lines.append(f"remote {summary.remote}: {summary.downloaded} from it, {summary.uploaded} uploaded to it")
    if summary.remote_failures:
        first = summary.remote_failures[0][1]
        lines.append(
            f"  {len(summary.remote_failures)} not uploaded to {summary.remote} ({first}); "
            f"`shotflow push STORYBOARD` uploads them"
        )
        for node_id, _ in summary.remote_failures[:10]:
            lines.append(f"    not uploaded {node_id}")
    return lines


class PlainReporter:
    """A line per finished node that did something; cached nodes are counted, not listed."""

    def __init__(self, stream: TextIO | None = None, verbose: bool = False):
        self.stream = stream or sys.stdout
        self.verbose = verbose
        self.done = 0
        self.total = 0

    def _line(self, text: str) -> None:
        write_line(self.stream, text)

    def run_started(self, start: RunStart) -> None:
        self.total = start.total
        if start.to_render:
            cost = f", estimated ${start.estimated_cost:.2f}" if start.estimated_cost else ""
            self._line(f"rendering {start.to_render} of {counted(start.total, 'node')} on {start.backend}{cost}")

    def node_started(self, node_id: str) -> None:
        pass

    def node_done(self, outcome: Outcome) -> None:
        self.done += 1
        if (
            (outcome.status is Status.CACHED and not self.verbose)
            or outcome.fatal
            or (outcome.error or "").endswith("(the run stopped)")
        ):
            return
        if outcome.status is Status.HELD:
            detail = f"approved, kept; {outcome.note or 'changed'}"
        else:
            detail = outcome.error or (outcome.outputs[0] if outcome.outputs else "")
            if not outcome.error and len(outcome.outputs) > 1:  # the first is the picked take
                others = len(outcome.outputs) - 1
                detail += f" (+{counted(others, 'other take')})"
        cost = f"  ${outcome.cost:.2f}" if outcome.cost else ""
        self._line(f"[{self.done}/{self.total}] {_MARKS[outcome.status]:<8} {outcome.id}  {detail}{cost}")

    def note(self, text: str) -> None:
        if text.startswith("warning:"):
            sys.stderr.write(text + "\n")  # a warning stays visible when stdout goes to a file
            sys.stderr.flush()
        else:
            self._line(text)

    def run_finished(self, summary: Summary) -> None:
        if summary.noop:
            held = f", {summary.held} held (approved)" if summary.held else ""
            self._line(f"nothing to do: {counted(summary.cached, 'node')} fresh{held} ({summary.elapsed:.2f} s)")
            return
        for line in summary_lines(summary):
            self._line(line)


class RichReporter(PlainReporter):
    """A live display on a terminal: done/total, shots in flight, cost so far."""

    def __init__(self, stream: TextIO | None = None, verbose: bool = False):
        super().__init__(stream, verbose)
        from rich.console import Console

        self.console = Console(file=self.stream, markup=False, highlight=False)
        self.running: dict[str, float] = {}
        self.cost = 0.0
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    def _line(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def run_started(self, start: RunStart) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        super().run_started(start)
        progress = self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=self.console,
            transient=True,
        )
        self.task = progress.add_task("render", total=start.total, status="")
        progress.start()

    def _refresh(self) -> None:
        if self.progress is None or self.task is None:
            return
        names = list(self.running)
        flying = ", ".join(names[:3]) + (f" +{len(names) - 3}" if len(names) > 3 else "")
        status = f"${self.cost:.2f}" + (f"  in flight: {flying}" if flying else "")
        self.progress.update(self.task, completed=self.done, status=status)

    def node_started(self, node_id: str) -> None:
        self.running[node_id] = time.monotonic()
        self._refresh()

    def node_done(self, outcome: Outcome) -> None:
        self.running.pop(outcome.id, None)
        self.cost += outcome.cost
        super().node_done(outcome)
        self._refresh()

    def run_finished(self, summary: Summary) -> None:
        if self.progress is not None:
            self.progress.stop()
        super().run_finished(summary)
