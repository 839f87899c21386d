"""The render session: plan, then run, then record — wiring stages 5 to 8.

    load ► expand ► graph ► plan ──► resolve ──► node.NodeRunner ──► backend.generate ──► store
                                       │                                                   │
                         fresh nodes ◄─┘              renders/…  NAME.lock  .shotflow/  ◄──┘

``render()`` is what ``shotflow render`` calls. First ``noop.noop()`` asks the project's state
whether the last complete run saw exactly these inputs, outputs and options: then the run is
answered from its record without loading YAML, Jinja, jsonschema or networkx. Otherwise a
``Session`` checks the plan (``--locked``, ``--max-cost``), runs it through the scheduler
(``resolve``) and ``node.NodeRunner``, and records what it produced: the lock file (always),
the status file, the re-roll record, the manifest of a complete run. A plain render sends its
first shots before its graph is built (the head start); interrupted, it reports the rest skipped.
"""

from __future__ import annotations

import time
from pathlib import Path

from ._process import begin, planned
from .errors import LockedError
from .noop import noop
from .options import RenderOptions
from .report import Reporter, RunStart, Summary
from .state import ProjectState, Rerolls, check_write_folders
from .status import INTERRUPTED, Outcome, Status
from .trust import storyboard_file

# -- the full path ---------------------------------------------------------------------


def render(storyboard: Path | str, options: RenderOptions, reporter: Reporter) -> Summary:
    """Render a storyboard; returns the summary (failed nodes are values, not errors)."""
    storyboard = storyboard_file(storyboard)  # a link may not move the project elsewhere
    hit = noop(storyboard, options, reporter)
    if hit is not None:
        return hit
    from .expand import load_project
    from .store import open_store

    started = time.perf_counter()
    if options.backend:  # named on the command line: its setup starts now, beside the load
        from .backends import warm_up

        warm_up(options.backend)
    if options.own_process:
        begin()  # one malloc arena; no garbage collection until the plan is made (_process)
    project = load_project(storyboard, options.overrides, options.backend)
    backend_name = options.backend or project.backend
    # --locked uses exactly the lock's frames: every object it uses is hashed, not trusted by its stat
    store = open_store(project.root, options.cache_dir, durable=backend_name != "preview", verify=options.locked)
    # no graph yet: the session builds it, while its first shots go out when it may (its head start)
    return render_loaded(project, None, store, options, reporter, started=started)


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
    """Render a project already loaded, with its graph (None: built meanwhile) and store
    (``shotflow watch`` keeps them warm between rounds, and its lock file when nobody else wrote it: ``lock``).
    ``only`` is a set of node ids (``options.only``'s patterns are used when it is None)."""
    from .plan import select
    from .remote import open_team
    from .store import LockFile, ProjectLock

    started = time.perf_counter() if started is None else started
    check_write_folders(project)  # here, not in render(): `shotflow watch` renders through this too
    backend_name = options.backend or project.backend
    ids = list(project.nodes)
    forced = select(options.force, ids, "--force")
    if only is None and options.only:
        only = select(options.only, ids, "--only")
    team = open_team(options.remote, project, store, reporter.note)
    with ProjectLock(store.state_dir, options.wait):
        lock = lock if lock is not None else LockFile.read(project.lock_path)
        rerolls = ProjectState(project.path).rerolls(forced, backend_name)
        session = Session(project, graph, store, lock, options, backend_name, reporter, rerolls, only, team=team)
        return session.run(started)


class Session:
    """One render of one project: owns the plan, the backend and what gets recorded.

    The head start: a plain render (no --only, --force, --locked or --max-cost) on a backend
    that prepares its requests, handed no graph, plans the nodes that reference no other node
    first (their keys need nothing upstream) and sends those that render at once; once they hold
    their permits, networkx loads and builds the graph in a thread, the rest is planned, and the
    scheduler takes the nodes already sent over. What is sent is what the whole plan would have
    sent first: the storyboard was validated whole and has no cycle before anything leaves.
    """

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
        from .plan import Plan, approved_holds, plan_roots
        from .resolve import head_start
        from .store import ProjectCache

        self.project = project
        self.graph = graph
        self.store = store
        self.lock = lock
        self.options = options
        self.backend_name = backend_name
        self.reporter = reporter
        self.rerolls = rerolls
        self.only = only
        self.state = ProjectState(project.path)
        self.state.run_begins(project)  # an input edited while this run goes on counts for the next
        self.team = team  # the remote behind the local cache (shotflow.remote.TeamCache), or None
        self.cache = ProjectCache(store, lock, options.refresh_urls, team)
        self.hold = approved_holds(project, self.cache, options.include_approved, backend=backend_name)
        # a plain render (no --only, --force, --locked, --max-cost: those check the whole plan before
        # anything is spent) not handed its graph plans the nodes that reference nothing first
        plain = only is None and not rerolls.forced and not options.locked and options.max_cost is None
        self.roots = (
            plan_roots(project, self.cache, backend=backend_name, hold=self.hold) if plain and graph is None else {}
        )
        # the roots sent before the graph is built (the head start), and the permits they go under
        self.head, self.head_slots = head_start(self._head(), options.jobs)
        if self.head:
            self.plan = Plan(project, None, backend_name, self.roots, list(self.roots), [], 0.0, 0.0)
        else:
            self._plan_all(graph)
        self.full = only is None
        self.summary = Summary()
        self.outcomes: dict[str, Outcome] = {}
        self.nodes = NodeRunner(
            project, self.plan, store, lock, self.cache, options, backend_name, rerolls.forced, team
        )

    def _head(self) -> list[str]:
        head = [n for n, planned in self.roots.items() if planned.status is Status.RENDER]
        if not head:
            return []
        from . import graph as graphs
        from .backends import backend_class

        kind = backend_class(self.backend_name)
        if not kind.prepares:
            return []
        kind.warm_up()  # something will be sent: its one-time setup runs beside the rest of the start
        graphs.check_acyclic(self.project)  # without networkx: nothing is sent for a storyboard with a cycle
        return head

    def _plan_all(self, graph) -> None:
        from . import graph as graphs
        from .plan import make_plan

        self.graph = graph if graph is not None else graphs.build(self.project)
        self.plan = make_plan(
            self.project,
            self.graph,
            self.cache,
            backend=self.backend_name,
            force=self.rerolls.forced,
            only=self.only,
            hold=self.hold,
            known=self.roots,
        )

    # -- checks before anything is spent --------------------------------------------

    def check(self) -> None:
        from .plan import check_budget, check_locked

        if self.options.locked:
            check_locked(self.plan, self.lock, self.backend_name)
        if self.options.max_cost is not None:
            check_budget(self.plan, self.options.max_cost)

    # -- running ----------------------------------------------------------------------

    def run(self, started: float) -> Summary:
        if not self.head:
            self.check()
        to_render = sum(1 for n in self.plan.nodes.values() if n.status is Status.RENDER)
        if to_render:  # before the run starts: a missing API key is the only thing said
            self.nodes.create_backend().warm_up()
        if not self.head:
            self._announce()
        import asyncio

        if to_render:
            self.store.mark()
            if self.store.durable:
                self.store.reconcile()  # the journal never lies: entries already recorded are cleared
        try:
            if not self.head:
                self._planned()
                self.nodes.download_fresh(self.reporter.note)
            asyncio.run(self._run())
        except KeyboardInterrupt:  # every node has its event (the JSON contract), the unfinished ones skipped
            self.summary.interrupted = True
            for node in [n for n in self.plan.nodes if n not in self.outcomes]:
                self._done(Outcome(node, Status.SKIPPED, error=INTERRUPTED))
            raise
        finally:
            self.nodes.share_done(self.summary, self.reporter.note)
            self.summary.elapsed = time.perf_counter() - started
            self.summary.stopped = str(self.nodes.stopped) if self.nodes.stopped else None
            self._record()
            self.reporter.run_finished(self.summary)
        self._raise_after()
        return self.summary

    def _planned(self) -> None:
        if self.options.own_process:
            planned()

    def _announce(self) -> None:
        """The run's start, once the whole plan is known."""
        self.reporter.run_started(
            RunStart(
                total=len(self.plan.nodes),
                to_render=sum(1 for n in self.plan.nodes.values() if n.status is Status.RENDER),
                estimated_cost=self.plan.cost,
                backend=self.backend_name,
            )
        )
        from .plan import panels_replacing

        for text in (self.rerolls.note(), panels_replacing(self.plan, self.lock)):
            if text:
                self.reporter.note(text)

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
        import asyncio

        from . import graph as graphs
        from .resolve import Scheduler

        slots, adopted = None, {}
        try:
            if self.head and self.head_slots:  # send the roots, then plan the rest while they render
                slots = self.nodes.slots = self.head_slots
                adopted = {n: asyncio.ensure_future(self.nodes.render(n, {})) for n in self.head}
                # networkx's import (a thread) would take the GIL from their sending: it waits for their permits
                await slots.until_taken(min(len(self.head), self.options.jobs))
                self._plan_all(await asyncio.to_thread(graphs.build, self.project))
                self._planned()
                self.nodes.replan(self.plan)
                self._announce()
                self.nodes.download_fresh(self.reporter.note)
            weight = {n: (1.0 if self.plan.nodes[n].status is Status.RENDER else 0.0) for n in self.plan.order}
            # F8: a backend that prepares requests (references, journal…) readies `jobs` more shots beyond the permits
            scheduler = Scheduler(
                self.plan.order,
                {n: list(self.graph.predecessors(n)) for n in self.plan.order},
                self.nodes.render,
                jobs=max(1, self.options.jobs),
                cheap=self.nodes.fresh,
                priority=graphs.heights(self.graph.subgraph(self.plan.order), self.plan.order, weight),
                fail_fast=self.options.fail_fast,
                on_start=self.reporter.node_started,
                on_done=self._done,
                prepare_ahead=self.nodes.backend is not None and self.nodes.backend.prepares,
                slots=slots,
                adopted=adopted,
            )
            self.nodes.slots = scheduler.slots
            adopted = {}  # the scheduler's now: it cancels what runs when it is cancelled
            await scheduler.run()
        finally:
            for task in adopted.values():  # planning the rest failed: what was sent is asked about next run
                task.cancel()
            await asyncio.gather(*adopted.values(), return_exceptions=True)
            backend = self.nodes.backend
            if backend is not None:
                await backend.aclose()
                self.summary.notes.extend(backend.notes)

    def _done(self, outcome: Outcome) -> None:
        self.outcomes[outcome.id] = outcome
        self.summary.add(outcome)
        self.reporter.node_done(outcome)
        self.nodes.frames.done(outcome.id)  # its references are read: their frames have one user less
        record = self.nodes.results.get(outcome.id)
        if record is not None:  # its lock entry and manifest part now, in the shadow of the nodes still running
            self.lock.prepare(outcome.id, record, self.project.nodes[outcome.id].pick)
            if self.full:
                self.state.prepare(self.project, self.store, outcome, record)

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
