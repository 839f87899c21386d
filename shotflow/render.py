"""The render session: plan, then run, then record — wiring stages 5 to 8.

    load ► expand ► graph ► plan ──► resolve ──► node.NodeRunner ──► backend.generate ──► store
                                       │                                                   │
                         fresh nodes ◄─┘              renders/…  NAME.lock  .shotflow/  ◄──┘

``render()`` is what ``shotflow render`` calls. Before any of that, ``noop()`` asks the
project's state (``state.ProjectState``) whether the last complete run saw exactly these
inputs, outputs and options: then the run is answered from its record without loading
YAML, Jinja, jsonschema or networkx. Otherwise a ``Session`` checks the plan (``--locked``,
``--max-cost``), runs it through the scheduler (``resolve``), one node at a time through
``node.NodeRunner``, and records what it produced: the lock file (always: finished work is
never lost), the status file, the re-roll record, the manifest of a complete run.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._text import counted
from .errors import BudgetError, LockedError
from .report import Reporter, RunStart, Summary
from .state import ProjectState, Rerolls, check_write_folders
from .status import Outcome, Status


@dataclass(frozen=True)
class RenderOptions:
    """Everything the CLI can ask of a render (a frozen value, not **kwargs)."""

    backend: str | None = None  # None: the storyboard's backend: key
    jobs: int = 4
    force: tuple[str, ...] = ()  # node ids or glob patterns
    only: tuple[str, ...] = ()  # node ids or glob patterns; their upstream comes along
    locked: bool = False
    max_cost: float | None = None
    overrides: dict[str, Any] | None = None  # --set
    cache_dir: Path | None = None
    wait: float = 10.0  # seconds to wait for another render's project lock
    refresh_urls: bool = False
    fail_fast: bool = False  # after a failure, start nothing new
    include_approved: bool = False  # render approved shots whose key changed (default: hold them)
    # the process is the render's own (the CLI): glibc may be told to share one heap among
    # the worker threads and to give freed memory back before the lock is written. A
    # program that embeds shotflow keeps its own malloc settings.
    own_process: bool = False
    # the team cache: a URL, "off", or None for $SHOTFLOW_REMOTE / the user config / the
    # storyboard's remote:. Not in the signature: a no-op render never needs the remote
    remote: str | None = None

    def signature(self) -> str:
        """What must equal the last run's for the no-op fast path to apply."""
        from ._version import __version__
        from .staging import DRAWING_VERSION  # a newer preview drawing: plan again (its keys changed)

        cache = str(self.cache_dir or os.environ.get("SHOTFLOW_CACHE") or "")
        made_by = [__version__, DRAWING_VERSION, self.backend, self.overrides or {}, cache]
        asked = [self.locked, self.refresh_urls, self.include_approved]
        return json.dumps(made_by + asked, sort_keys=True, default=str)


# -- the fast path -------------------------------------------------------------------


def noop(storyboard: Path, options: RenderOptions, reporter: Reporter) -> Summary | None:
    """Answer a render from the last complete run when nothing changed; else None.

    Nothing changed means: same options, and every input file (storyboard, includes,
    templates, reference files, lock, the project's templates/ folder) and every output
    (frames in renders/, objects in the cache) has the size, mtime and inode it had.
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


# -- the full path ---------------------------------------------------------------------


def render(storyboard: Path | str, options: RenderOptions, reporter: Reporter) -> Summary:
    """Render a storyboard; returns the summary (failed nodes are values, not errors)."""
    storyboard = Path(storyboard).resolve()
    hit = noop(storyboard, options, reporter)
    if hit is not None:
        return hit
    from . import graph as graphs
    from .expand import load_project
    from .store import open_store

    started = time.perf_counter()
    if options.own_process:
        from ._glibc import one_malloc_arena

        one_malloc_arena()
    project = load_project(storyboard, options.overrides, options.backend)
    graph = graphs.build(project)
    backend_name = options.backend or project.backend
    moved = options.cache_dir is not None or bool(os.environ.get("SHOTFLOW_CACHE"))
    check_write_folders(project, cache_moved=moved)
    # --locked uses exactly the lock's frames: every object it uses is hashed, not trusted by its stat
    store = open_store(project.root, options.cache_dir, durable=backend_name != "preview", verify=options.locked)
    return render_loaded(project, graph, store, options, reporter, started=started)


def render_loaded(
    project,
    graph,
    store,
    options: RenderOptions,
    reporter: Reporter,
    *,
    lock=None,
    only: set[str] | None = None,
    started: float | None = None,
) -> Summary:
    """Render a project already loaded, with its graph and store (``shotflow watch`` keeps
    them warm between rounds, and its lock file when nobody else wrote it: ``lock``).
    ``only`` is a set of node ids (``options.only``'s patterns are used when it is None)."""
    from .plan import select
    from .remote import open_team
    from .store import LockFile, ProjectLock

    started = time.perf_counter() if started is None else started
    backend_name = options.backend or project.backend
    ids = list(project.nodes)
    forced = select(options.force, ids, "--force")
    if only is None and options.only:
        only = select(options.only, ids, "--only")
    team = open_team(options.remote, project, store, reporter.note)
    with ProjectLock(store.state_dir, options.wait):
        lock = lock if lock is not None else LockFile.read(project.lock_path)
        rerolls = ProjectState(project.path).rerolls(forced)
        session = Session(project, graph, store, lock, options, backend_name, reporter, rerolls, only, team=team)
        return session.run(started)


class Session:
    """One render of one project: owns the plan, the backend and what gets recorded."""

    def __init__(
        self,
        project,
        graph,
        store,
        lock,
        options: RenderOptions,
        backend_name: str,
        reporter: Reporter,
        rerolls: Rerolls,
        only: set[str] | None,
        team=None,
    ):
        from .node import NodeRunner
        from .plan import approved_holds, make_plan
        from .store import ProjectCache

        self.project = project
        self.graph = graph
        self.store = store
        self.lock = lock
        self.options = options
        self.backend_name = backend_name
        self.reporter = reporter
        self.rerolls = rerolls
        self.state = ProjectState(project.path)
        self.team = team  # the remote behind the local cache (shotflow.remote.TeamCache), or None
        cache = ProjectCache(store, lock, options.refresh_urls, team)
        self.plan = make_plan(
            project,
            graph,
            cache,
            backend=backend_name,
            force=rerolls.forced,
            only=only,
            hold=approved_holds(project, lock, store, options.include_approved),
        )
        self.full = only is None
        self.summary = Summary()
        self.outcomes: dict[str, Outcome] = {}
        self.nodes = NodeRunner(project, self.plan, store, lock, cache, options, backend_name, rerolls.forced, team)

    # -- checks before anything is spent --------------------------------------------

    def check(self) -> None:
        if self.options.locked:
            from .plan import check_locked

            check_locked(self.plan, self.lock, self.backend_name)
        to_render = [n for n in self.plan.nodes.values() if n.status is Status.RENDER]
        if self.options.max_cost is not None and self.plan.cost > self.options.max_cost + 1e-9:
            raise BudgetError(
                f"this render would cost about ${self.plan.cost:.2f} ({counted(len(to_render), 'node')}) "
                f"and --max-cost is ${self.options.max_cost:.2f}; nothing was spent",
                hint="raise --max-cost, render fewer shots with --only, or use fewer takes",
            )

    # -- running ----------------------------------------------------------------------

    def run(self, started: float) -> Summary:
        self.check()
        to_render = sum(1 for n in self.plan.nodes.values() if n.status is Status.RENDER)
        if to_render:  # before the run starts: a missing API key is the only thing said
            self.nodes.create_backend()
        self.reporter.run_started(
            RunStart(
                total=len(self.plan.nodes),
                to_render=to_render,
                estimated_cost=self.plan.cost,
                backend=self.backend_name,
            )
        )
        if self.rerolls.done:
            done = sorted(self.rerolls.done)
            shown = ", ".join(done[:5]) + (f" and {len(done) - 5} more" if len(done) > 5 else "")
            self.reporter.note(
                f"not forced again: {shown} (re-rendered by the unfinished run of this same "
                "--force; their new takes are kept)"
            )
        import asyncio

        if to_render:
            self.store.mark()
            if self.store.durable:
                self.store.reconcile()  # the journal never lies: entries already recorded are cleared
        try:
            self.nodes.download_fresh(self.reporter.note)
            asyncio.run(self._run())
        except KeyboardInterrupt:
            self.summary.interrupted = True
            raise
        finally:
            self.nodes.share_done(self.summary, self.reporter.note)
            self.summary.elapsed = time.perf_counter() - started
            stopped = self.nodes.stopped
            self.summary.stopped = str(stopped) if stopped else None
            self._record()
            self.reporter.run_finished(self.summary)
        self._raise_after()
        return self.summary

    def _raise_after(self) -> None:
        """A run an account error stopped, or a --locked run that could not use the lock, fails."""
        stopped = self.nodes.stopped
        if stopped is not None:
            kept = self.summary.rendered
            raise type(stopped)(
                stopped.message
                + (f"; the {kept} shot(s) rendered before it are kept" if kept else "; nothing was generated")
            )
        if self.options.locked and (self.summary.failed or self.summary.skipped):
            failed = [f"{node}: {why}" for node, why in self.summary.failures + self.summary.skips]
            shown = "\n  ".join(failed[:15]) + (f"\n  … and {len(failed) - 15} more" if len(failed) > 15 else "")
            raise LockedError(
                f"--locked: {len(failed)} node(s) could not use the lock's frames:\n  {shown}",
                hint="run without --locked to render them again",
            )

    async def _run(self) -> None:
        from . import graph as graphs
        from .resolve import Scheduler

        weight = {n: (1.0 if self.plan.nodes[n].status is Status.RENDER else 0.0) for n in self.plan.order}
        priority = graphs.heights(self.graph.subgraph(self.plan.order), self.plan.order, weight)
        deps = {n: list(self.graph.predecessors(n)) for n in self.plan.order}
        # F8: a backend that prepares its requests (references, key, lookup, schema check, durable
        # journal entry) has `jobs` more shots prepare while every send permit is taken
        scheduler = Scheduler(
            self.plan.order,
            deps,
            self.nodes.render,
            jobs=max(1, self.options.jobs),
            cheap=self.nodes.fresh,
            priority=priority,
            fail_fast=self.options.fail_fast,
            on_start=self.reporter.node_started,
            on_done=self._done,
            prepare_ahead=self.nodes.backend is not None and self.nodes.backend.prepares,
        )
        self.nodes.slots = scheduler.slots
        try:
            await scheduler.run()
        finally:
            backend = self.nodes.backend
            if backend is not None:
                await backend.aclose()
                self.summary.notes.extend(backend.notes)

    def _done(self, outcome: Outcome) -> None:
        self.outcomes[outcome.id] = outcome
        self.summary.add(outcome)
        self.reporter.node_done(outcome)
        self.nodes.frames.done(outcome.id)  # its references are read: their frames have one user less

    # -- recording ------------------------------------------------------------------------

    def _record(self) -> None:
        """Write the lock (always: finished work is never lost), the index, the manifest."""
        from .references import used_urls

        if self.options.own_process:
            from ._glibc import give_back_freed_memory

            give_back_freed_memory()
        results = self.nodes.results
        for node_id, record in results.items():
            self.lock.set(node_id, record, self.project.nodes[node_id].pick)
        if self.full:
            self.lock.prune(self.project.nodes)
            self.lock.prune_urls(used_urls(self.project))
        self.lock.write()
        self.rerolls.finish(
            {n for n, o in self.outcomes.items() if o.status is Status.RENDERED},
            finished=not self.summary.interrupted and self.nodes.stopped is None,
        )
        self.state.write_status(self.outcomes, keep=self.project.nodes if self.full else None)
        if self.full and self.summary.ok and len(results) == len(self.project.nodes):
            self.state.record_complete_run(
                self.project, self.store, self.lock, results, self.outcomes, self.options.signature(), self.backend_name
            )
        self.store.save()
