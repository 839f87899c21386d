"""The no-op fast path of ``render``: a render answered from the last complete run's record.

When the project's state (``state.ProjectState``) says that the last complete run saw exactly
these inputs, outputs and options, the run's events and summary are replayed from its
manifest without loading YAML, Jinja, jsonschema or networkx (DESIGN.md §5).
"""

from __future__ import annotations

import time
from pathlib import Path

from .options import RenderOptions
from .report import Reporter, RunStart, Summary
from .state import ProjectState
from .status import Outcome, Status


def noop(storyboard: Path, options: RenderOptions, reporter: Reporter) -> Summary | None:
    """Answer a render from the last complete run when nothing changed; else None.

    Nothing changed means: same options, and every input file (storyboard, includes,
    templates, reference files, lock, the project's templates/ folder) and every output
    (frames in renders/, objects in the cache) has the size, mtime, ctime and inode it had.
    """
    if options.force or options.only:
        return None
    started = time.perf_counter()
    manifest = ProjectState(storyboard).unchanged(options.signature())
    if manifest is None:
        return None
    nodes = manifest["nodes"]
    reporter.run_started(RunStart(total=len(nodes), to_render=0, estimated_cost=0.0, backend=manifest["backend"]))
    summary = Summary(noop=True)
    for node_id, outputs, *held in nodes:  # [id, paths] or [id, paths, what changed] when held
        status, note = (Status.HELD, held[0]) if held else (Status.CACHED, None)
        outcome = Outcome(node_id, status, outputs=tuple(outputs), note=note)
        summary.add(outcome)
        reporter.node_done(outcome)
    summary.elapsed = time.perf_counter() - started
    reporter.run_finished(summary)
    return summary
