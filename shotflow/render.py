"""The render session: plan, then run, then record — wiring stages 5 to 8.

    load ► expand ► graph ► plan ──► resolve ──► backend.generate ──► store
                                       │                                 │
                         fresh nodes ◄─┘      renders/…  NAME.lock  ◄────┘

``render()`` is what ``shotflow render`` calls. Before any of that, ``noop()`` checks
the record of the last complete run (``.shotflow/last-run.json``): when no input,
output or option changed since, the run is answered from it without loading YAML,
Jinja, jsonschema or networkx.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ._text import counted
from .errors import BudgetError, LockedError, ShotflowError
from .report import Reporter, RunStart, Summary
from .status import Outcome, Status

MANIFEST_VERSION = 1


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

        env = os.environ.get("SHOTFLOW_CACHE")
        return json.dumps([__version__, DRAWING_VERSION, self.backend, self.overrides or {},
                           str(self.cache_dir or env or ""), self.locked, self.refresh_urls, self.include_approved],
                          sort_keys=True, default=str)


def seed_for(key: str, roll: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{key}:{roll}".encode()).digest()[:4], "big") & 0x7FFFFFFF


# -- the fast path -------------------------------------------------------------------


def _stat(path: str) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def state_file(storyboard: Path, name: str) -> Path:
    """A run-state file of one storyboard: ``<project>/.shotflow/<stem>.<name>``. Two storyboards
    in one folder keep separate state (their lock files are ``<stem>.lock`` already)."""
    return storyboard.parent / ".shotflow" / f"{storyboard.stem}.{name}"


def manifest_path(storyboard: Path) -> Path:
    return state_file(storyboard, "last-run.json")


def noop(storyboard: Path, options: RenderOptions, reporter: Reporter) -> Summary | None:
    """Answer a render from the last complete run when nothing changed; else None.

    Nothing changed means: same options, and every input file (storyboard, includes,
    templates, reference files, lock, the project's templates/ folder) and every output
    (frames in renders/, objects in the cache) has the size, mtime and inode it had.
    """
    if options.force or options.only:
        return None
    started = time.perf_counter()
    try:
        manifest = json.loads(manifest_path(storyboard).read_bytes())
    except (OSError, ValueError):
        return None
    if (manifest.get("version") != MANIFEST_VERSION or manifest.get("signature") != options.signature()
            or manifest.get("storyboard") != str(storyboard)):
        return None  # another shotflow, other options, or a copied project
    for table in ("inputs", "outputs"):
        for path, stat in manifest[table].items():
            if _stat(path) != stat:
                return None
    nodes = manifest["nodes"]
    reporter.run_started(RunStart(total=len(nodes), to_render=0, estimated_cost=0.0, backend=manifest["backend"]))
    summary = Summary(noop=True)
    for node_id, outputs, *held in nodes:  # [id, paths] or [id, paths, what changed] when held
        outcome = (Outcome(node_id, Status.HELD, outputs=tuple(outputs), note=held[0]) if held
                   else Outcome(node_id, Status.CACHED, outputs=tuple(outputs)))
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
        _one_malloc_arena()
    project = load_project(storyboard, options.overrides, options.backend)
    graph = graphs.build(project)
    backend_name = options.backend or project.backend
    _check_write_folders(project, options)
    # --locked uses exactly the lock's frames: every object it uses is hashed, not trusted by its stat
    store = open_store(project.root, options.cache_dir, durable=backend_name != "preview", verify=options.locked)
    return render_loaded(project, graph, store, options, reporter, started=started)


def render_loaded(project, graph, store, options: RenderOptions, reporter: Reporter, *, lock=None,
                  only: set[str] | None = None, started: float | None = None) -> Summary:
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
    team = open_team(options.remote, project, store, reporter.note, options.jobs)
    with ProjectLock(store.state_dir, options.wait):
        lock = lock if lock is not None else LockFile.read(project.lock_path)
        rerolls = Rerolls.read(project.path, forced)
        session = Session(project, graph, store, lock, options, backend_name, reporter, rerolls, only, team=team)
        return session.run(started)


def _check_write_folders(project, options: RenderOptions) -> None:
    """renders/ (and each of its folders) and the default .shotflow/ must not lead out of the project."""
    from .errors import UsageError
    from .trust import Refused, check_own_folders

    renders = project.renders_dir
    folders = [renders, renders / "characters", renders / "locations", *(renders / s.id for s in project.scenes)]
    if options.cache_dir is None and not os.environ.get("SHOTFLOW_CACHE"):
        folders.append(project.root / ".shotflow")
    try:
        check_own_folders(project.root, folders)
    except Refused as exc:
        raise UsageError(exc.message, hint=exc.hint) from None


def _give_back_freed_memory() -> None:
    """Return the heap the frames freed to the system before the lock and manifest are
    written (glibc keeps it otherwise, and the writing would add to it): at 10 000 shots
    the difference between staying under 150 MB and not."""
    _glibc("malloc_trim", 0)


def _one_malloc_arena() -> None:
    """Let the threads that draw and store frames allocate from the main heap (glibc only).

    glibc gives each thread that allocates its own heap ("arena"), and each keeps the
    buffers of the largest frame it handled: 30-40 MB of resident memory for the preview
    backend's few worker threads, on top of a heap the load left half empty. Their
    allocations are a few large buffers a frame, so sharing one arena costs no time.
    """
    _glibc("mallopt", -8, 1)  # M_ARENA_MAX: takes effect for threads not started yet


def _glibc(function: str, *args: int) -> None:
    """Call a C library function on Linux (glibc); elsewhere, or when it is missing, nothing."""
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        getattr(ctypes.CDLL(None), function)(*args)
    except (OSError, AttributeError):
        pass


class Rerolls:
    """The nodes ``--force`` asked to render again, and those an earlier, unfinished run of
    the same ``--force`` already rendered again (``.shotflow/forced.json``).

    "Run the same command again" must not pay twice for a re-roll: when a run with
    ``--force`` is interrupted (or some of its forced nodes fail), the forced nodes it did
    render are recorded; the next run with the same forced set renders only the others
    (the recorded ones are fresh: the lock names their new takes). Any other run forgets
    the record, and so does the run that finishes every forced node::

        {"storyboard": "/…/storyboard.yaml", "forced": ["roof/a", "roof/b", …], "done": ["roof/a"]}
    """

    def __init__(self, storyboard: Path, asked: set[str], done: set[str], recorded: bool):
        self.storyboard = storyboard
        self.asked = asked  # what --force selected
        self.done = done  # of those, what a run of this same --force rendered again already
        self.recorded = recorded  # a record file exists (to remove or to rewrite)

    @property
    def forced(self) -> set[str]:
        """What this run forces."""
        return self.asked - self.done

    @staticmethod
    def path(storyboard: Path) -> Path:
        return storyboard.parent / ".shotflow" / "forced.json"

    @classmethod
    def read(cls, storyboard: Path, asked: set[str]) -> Rerolls:
        try:
            data = json.loads(cls.path(storyboard).read_bytes())
        except FileNotFoundError:
            return cls(storyboard, asked, set(), False)
        except (OSError, ValueError):
            return cls(storyboard, asked, set(), True)
        same = (isinstance(data, dict) and data.get("storyboard") == str(storyboard)
                and set(data.get("forced") or ()) == asked)
        return cls(storyboard, asked, set(data.get("done") or ()) & asked if same else set(), True)

    def finish(self, rendered: set[str], finished: bool) -> None:
        """Record what a run left to re-roll; forget the record once nothing is left."""
        from .store import atomic_write

        done = self.done | (self.asked & rendered)
        path = self.path(self.storyboard)
        if self.asked and not (finished and done >= self.asked):
            atomic_write(path, json.dumps({"storyboard": str(self.storyboard), "forced": sorted(self.asked),
                                           "done": sorted(done)}, indent=1).encode())
        elif self.recorded:
            try:
                path.unlink()
            except FileNotFoundError:
                pass


class Session:
    """One render of one project: owns the plan, the backend and what gets recorded."""

    def __init__(self, project, graph, store, lock, options: RenderOptions, backend_name: str,
                 reporter: Reporter, rerolls: Rerolls, only: set[str] | None, team=None):
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
        forced = self.forced = rerolls.forced
        self.team = team  # the remote behind the local cache (shotflow.remote.TeamCache), or None
        self.cache = ProjectCache(store, lock, options.refresh_urls, team)
        self.plan = make_plan(project, graph, self.cache, backend=backend_name, force=forced, only=only,
                              hold=approved_holds(project, lock, store, options.include_approved))
        self.full = only is None
        self.results: dict[str, Any] = {}  # node id -> Record of every node that ended well
        self.summary = Summary()
        self.outcomes: dict[str, Outcome] = {}
        self.backend = None
        self.stopped: ShotflowError | None = None  # an AccountError that stopped the run
        # node id → how many planned nodes that reference its frame have not finished: its
        # picked frame's bytes stay in memory (Store.hold) only while this is above 0
        self._users: dict[str, int] = {}
        for node_id in self.plan.order:
            for target in self._upstream_frames(node_id):
                self._users[target] = self._users.get(target, 0) + 1
        self._held: dict[str, str] = {}  # node id → digest of its frame held for its users
        self._slots: _Slots | None = None  # what may send at once, when the backend prepares

    # -- checks before anything is spent --------------------------------------------

    def check(self) -> None:
        if self.options.locked:
            problems = []
            for node in self.plan.nodes.values():
                entry = self.lock.entries.get(node.id)
                if entry is None:
                    problems.append(f"{node.id}: not in {self.lock.path.name}")
                elif node.key is not None and node.key != entry.record.key:
                    problems.append(f"{node.id}: changed since the lock ({node.reason})")
                elif node.status is Status.RENDER and node.key is not None and self.backend_name != "preview":
                    # only the preview backend can redraw a frame to the byte: a paid one is lost
                    problems.append(f"{node.id}: its frame is missing or corrupt in the cache "
                                    f"(`shotflow verify` says which objects)")
            if problems:
                shown = "\n  ".join(problems[:15]) + (f"\n  … and {len(problems) - 15} more" if len(problems) > 15 else "")
                raise LockedError(f"--locked: the storyboard does not match {self.lock.path.name}:\n  {shown}",
                                  hint="run without --locked to render and update the lock")
        to_render = [n for n in self.plan.nodes.values() if n.status is Status.RENDER]
        if self.options.max_cost is not None and self.plan.cost > self.options.max_cost + 1e-9:
            raise BudgetError(f"this render would cost about ${self.plan.cost:.2f} ({counted(len(to_render), 'node')}) "
                              f"and --max-cost is ${self.options.max_cost:.2f}; nothing was spent",
                              hint="raise --max-cost, render fewer shots with --only, or use fewer takes")

    # -- running ----------------------------------------------------------------------

    def run(self, started: float) -> Summary:
        self.check()

        to_render = sum(1 for n in self.plan.nodes.values() if n.status is Status.RENDER)
        if to_render:  # before the run starts: a missing API key is the only thing said
            self._backend()
        self.reporter.run_started(RunStart(total=len(self.plan.nodes), to_render=to_render,
                                           estimated_cost=self.plan.cost, backend=self.backend_name))
        if self.rerolls.done:
            done = sorted(self.rerolls.done)
            shown = ", ".join(done[:5]) + (f" and {len(done) - 5} more" if len(done) > 5 else "")
            self.reporter.note(f"not forced again: {shown} (re-rendered by the unfinished run of this same "
                               "--force; their new takes are kept)")
        import asyncio

        if to_render:
            self.store.mark()
            if self.store.durable:
                self.store.reconcile()  # the journal never lies: entries already recorded are cleared
        try:
            self._download_fresh()
            asyncio.run(self._run())
        except KeyboardInterrupt:
            self.summary.interrupted = True
            raise
        finally:
            self._share_done()
            self.summary.elapsed = time.perf_counter() - started
            self.summary.stopped = str(self.stopped) if self.stopped else None
            self._record()
            self.reporter.run_finished(self.summary)
        if self.stopped is not None:
            kept = self.summary.rendered
            raise type(self.stopped)(self.stopped.message + (f"; the {kept} shot(s) rendered before it are kept"
                                                             if kept else "; nothing was generated"))
        if self.options.locked and (self.summary.failed or self.summary.skipped):
            failed = [f"{node}: {why}" for node, why in self.summary.failures + self.summary.skips]
            shown = "\n  ".join(failed[:15]) + (f"\n  … and {len(failed) - 15} more" if len(failed) > 15 else "")
            raise LockedError(f"--locked: {len(failed)} node(s) could not use the lock's frames:\n  {shown}",
                              hint="run without --locked to render them again")
        return self.summary

    def _download_fresh(self) -> None:
        """Fresh nodes the remote has: their frames, downloaded at once (in parallel) and kept."""

        if self.team is None:
            return
        wanted = [n.record for n in self.plan.nodes.values() if n.status is Status.FRESH and n.from_remote]
        if wanted:
            self.reporter.note(f"downloading {len(wanted)} nodes' frames from {self.team.url}")
            self.team.fetch_many(wanted)

    def _share_done(self) -> None:
        """Wait for the background uploads; what they moved and what failed goes in the summary."""
        if self.team is None:
            return
        left = self.team.uploading()
        if left:
            self.reporter.note(f"waiting for {left} uploads to {self.team.url}")
        report = self.team.drain()
        self.summary.remote = self.team.url
        self.summary.downloaded = self.team.fetched_nodes
        self.summary.uploaded = report.records
        self.summary.remote_failures = list(report.failures)

    async def _run(self) -> None:
        from . import graph as graphs

        weight = {n: (1.0 if self.plan.nodes[n].status is Status.RENDER else 0.0) for n in self.plan.order}
        priority = graphs.heights(self.graph.subgraph(self.plan.order), self.plan.order, weight)
        deps = {n: list(self.graph.predecessors(n)) for n in self.plan.order}
        jobs = max(1, self.options.jobs)
        if getattr(self.backend, "prepares", False):
            # F8: up to `jobs` more shots prepare their request (references, key, lookup, schema
            # check, durable journal entry) while every slot is busy; only `jobs` send at once
            self._slots = _Slots(jobs, {n: (-priority[n], i) for i, n in enumerate(self.plan.order)})
            jobs *= 2
        try:
            await _resolve(self.plan.order, deps, self._render, jobs=jobs,
                           cheap=self._fresh, priority=priority, fail_fast=self.options.fail_fast,
                           on_start=self.reporter.node_started, on_done=self._done)
        finally:
            if self.backend is not None:
                await self.backend.aclose()
                self.summary.notes.extend(getattr(self.backend, "notes", ()))

    def _backend(self):
        """The backend, created on first need (a frame the remote was to give may need it after all)."""
        if self.backend is None:
            from . import backends

            self.backend = backends.create(self.backend_name, backends.Services(
                project_dir=self.project.root, journal=self.store.journal, memo=self.store.memo,
                settings=self.project.settings, jobs=max(1, self.options.jobs)))
        return self.backend

    async def _lookup(self, node_id: str, key: str):
        """The record of ``key``: the local cache, else the team's remote (downloaded off the loop)."""
        record = self.cache.local_lookup(node_id, key)
        if record is None and self.team is not None:
            import asyncio

            record = await asyncio.to_thread(self.cache.lookup, node_id, key)
            if record is not None and not await asyncio.to_thread(self.team.fetch, record):
                record = None
        return record

    async def _claim_team(self, node_id: str, key: str):
        """Before paying for ``key``: the team's lease on it (another machine generating it is
        waited for, and its record returned instead). None when no lease is needed."""
        if self.team is None or self.options.locked or node_id in self.forced \
                or getattr(self.backend, "deterministic", False):
            return None  # nothing to pay for, or a re-roll the user asked for
        return await self.team.claim(key, resuming=self.store.journal.pending(key) is not None)

    def _done(self, outcome: Outcome) -> None:
        self.outcomes[outcome.id] = outcome
        self.summary.add(outcome)
        self.reporter.node_done(outcome)
        # this node has read its references (or never will): its upstream frames have one user less
        for target in self._upstream_frames(outcome.id):
            left = self._users.get(target, 0) - 1
            if left > 0:
                self._users[target] = left
                continue
            self._users.pop(target, None)
            digest = self._held.pop(target, None)
            if digest is not None:
                self.store.release(digest)

    def _upstream_frames(self, node_id: str):
        """The nodes whose frames ``node_id`` references (one per reference)."""
        from .model import RefKind

        return [ref.target for ref in self.plan.nodes[node_id].spec.refs if ref.kind is RefKind.NODE]

    def _hold(self, node_id: str, digest: str, data: bytes) -> None:
        """Keep a node's picked frame in memory while nodes that reference it are still to come."""
        if node_id not in self._held and self._users.get(node_id, 0) > 0:
            self.store.hold(digest, data)
            self._held[node_id] = digest

    def _fresh(self, node_id: str) -> Outcome | None:
        """A fresh (or held) node finishes at once: its frames are copied out if needed."""
        from .store import CorruptObject

        node = self.plan.nodes[node_id]
        if node.status is Status.RENDER:
            return None
        try:
            paths = self._export(node.spec, node.record)
        except CorruptObject:
            if node.status is Status.HELD:
                return Outcome(node_id, Status.FAILED, error="approved frame damaged in the cache since "
                               "planning; render --include-approved to render it again")
            return None  # damaged since planning: render it
        self.results[node_id] = node.record
        if node.status is Status.HELD:
            return Outcome(node_id, Status.HELD, value=node.record, outputs=paths, note=node.reason)
        return Outcome(node_id, Status.CACHED, value=node.record, outputs=paths)

    async def _render(self, node_id: str, upstream: dict[str, Outcome], release=lambda: None) -> Outcome:
        from .plan import key_payload, request_key
        from .store import CorruptObject

        spec = self.plan.nodes[node_id].spec
        t0 = time.perf_counter()
        try:
            refs = await self._references(spec)
        except (CorruptObject, OSError, ShotflowError) as exc:
            return Outcome(node_id, Status.FAILED, error=f"reference: {exc}")
        payload = key_payload(spec, self.backend_name, [r.sha256 for r in refs])
        key = request_key(payload)
        forced = node_id in self.forced
        entry = self.lock.entries.get(node_id)
        if self.options.locked and (entry is None or entry.record.key != key):
            return Outcome(node_id, Status.FAILED,
                           error=f"--locked: the request changed since {self.lock.path.name} (an upstream frame differs)")
        if not forced:
            record = await self._lookup(node_id, key)
            if record is not None:  # early cutoff: upstream re-rendered to the same bytes
                self.results[node_id] = record
                return Outcome(node_id, Status.CACHED, value=record, outputs=self._export(spec, record))
        if self.options.locked and not getattr(self.backend, "deterministic", self.backend_name == "preview"):
            return Outcome(node_id, Status.FAILED,
                           error="--locked: this frame is not in the cache and --locked never generates; "
                                 "pull it from the team's remote (shotflow pull, --remote URL), copy the "
                                 "project's .shotflow/ cache, or run without --locked")
        try:
            self._backend()
        except ShotflowError as exc:
            return Outcome(node_id, Status.FAILED, error=str(exc))
        if forced:
            self.store.journal.drop_unknown(key)  # --force sends anew a task whose outcome is unknown
        made = await self._claim(key, forced)
        try:
            if made is not None:  # another process generated this very request meanwhile
                self.results[node_id] = made
                return Outcome(node_id, Status.CACHED, value=made, outputs=self._export(spec, made))
            return await self._generate(node_id, spec, key, payload, refs, forced, entry, release, t0)
        finally:
            if self.store.durable:
                self.store.leases.release(key)  # after recording: a waiting process finds the record

    async def _claim(self, key: str, forced: bool):
        """Take the key's lease (a paid backend: one process generates a key at a time). While
        another live process holds it, wait; then its record, if it made one, is ours too."""
        if not self.store.durable:
            return None
        import asyncio

        # file work in a thread: a shared (network) folder can take milliseconds per file
        while await asyncio.to_thread(self.store.leases.take, key) is not None:
            await asyncio.sleep(0.2)
        if forced:
            return None
        record = await asyncio.to_thread(self.store.get_action, key)
        return record if record is not None and self.store.complete(record) else None

    async def _generate(self, node_id: str, spec, key: str, payload: dict, refs, forced: bool, entry, release,
                        t0: float) -> Outcome:
        from .errors import AccountError, BackendError

        previous = [r for r in (self.store.get_action(key), entry.record if entry else None) if r and r.key == key]
        roll = max((r.roll for r in previous), default=-1) + 1 if forced else 0
        if self.options.locked:
            roll = entry.record.roll  # redraw exactly the take the lock names
        from .backends import Request
        from .store import Record

        claimed = await self._claim_team(node_id, key)
        if isinstance(claimed, Record):  # another machine of the team generated it meanwhile
            self.results[node_id] = claimed
            return Outcome(node_id, Status.CACHED, value=claimed, outputs=self._export(spec, claimed))
        request = Request(
            key=key, node_id=node_id, model=spec.model, prompt=spec.prompt, width=spec.width, height=spec.height,
            output_format=spec.output_format, output_quality=spec.output_quality, takes=spec.takes,
            references=tuple(refs), tagged=spec.tagged, seed=seed_for(key, roll), safety=spec.safety,
            provider_settings=spec.provider_settings, options=dict(spec.options), staging=spec.staging,
        )
        try:
            if self._slots is None:
                generation = await self.backend.generate(request)
            else:
                generation = await self._slots.generate(self.backend, request, node_id, self._still_going)
            release()  # the backend is done with it: the next shot may start while this one is stored
        except AccountError as exc:
            self._abandon(claimed, key)
            self.stopped = self.stopped or exc
            return Outcome(node_id, Status.FAILED, error=str(exc), fatal=True)
        except BackendError as exc:
            self._abandon(claimed, key)
            return Outcome(node_id, Status.FAILED, error=str(exc), elapsed=time.perf_counter() - t0)
        if len(generation.images) != spec.takes:
            self._abandon(claimed, key)
            return Outcome(node_id, Status.FAILED,
                           error=f"{self.backend_name} returned {len(generation.images)} images for {spec.takes} takes")
        import asyncio

        # file work off the event loop: other shots keep flowing meanwhile
        record, paths = await asyncio.to_thread(self._keep, spec, key, roll, payload, generation)
        picked = min(spec.pick, len(generation.images)) - 1
        self._hold(node_id, record.outputs[picked].sha256, generation.images[picked].data)
        if self.options.locked:
            if [o.sha256 for o in record.outputs] != [o.sha256 for o in entry.record.outputs]:
                return Outcome(node_id, Status.FAILED, error="--locked: the redrawn frame differs from the lock")
            record = entry.record
            self.store.put_action(record)
        self.results[node_id] = record
        return Outcome(node_id, Status.RENDERED, value=record, outputs=paths,
                       cost=generation.cost or 0.0, elapsed=time.perf_counter() - t0)

    def _abandon(self, claimed, key: str) -> None:
        if claimed is not None:
            self.team.abandon(key)

    def _still_going(self) -> None:
        """Raised in a prepared shot about to send when the run stopped meanwhile."""
        if self.stopped is not None:
            from .errors import BackendError

            raise BackendError(f"not sent: the run stopped ({self.stopped.message})")

    def _keep(self, spec, key: str, roll: int, payload: dict, generation):
        """Store the images, record the action, copy the frames out: the paid work is safe."""
        from .model import EXTENSIONS
        from .store import Output, Record

        ext = EXTENSIONS[spec.output_format]
        outputs = tuple(
            Output(sha256=self.store.put(image.data), ext=ext, seed=image.seed, remote_id=image.remote_id,
                   url=image.url, cost=image.cost)
            for image in generation.images
        )
        data = {output.sha256: image.data for output, image in zip(outputs, generation.images)}
        record = Record(key=key, backend=self.backend_name, model=spec.model, outputs=outputs,
                        task_id=generation.task_id, cost=generation.cost, roll=roll,
                        created=datetime.now(timezone.utc).isoformat(timespec="seconds"), request=payload)
        if generation.sent:
            record = self._keep_as_sent(spec, record, generation.sent)
        if not self.options.locked:
            self.store.put_action(record)
        self.store.journal.finish(key)  # recorded: nothing is pending for this key any more
        if self.team is not None:
            self.team.share(spec.id, record)  # uploaded in the background; its lease released after
        # what the key was made of is in the action record now; the lock does not need it
        # (1-2 KB a node, held to the end of the run otherwise)
        return replace(record, request={}), self._export(spec, record, data)

    def _keep_as_sent(self, spec, record, sent: dict):
        """The backend sent another request than the node's (a model refused tagged
        references): its images are recorded under the key of what was sent, and the node's
        key names that key (so the next run finds them, and nothing is paid twice)."""
        from .plan import key_payload, request_key

        hashes = [ref["sha256"] for ref in record.request["refs"]]
        sent_spec = replace(spec, prompt=sent.get("prompt", spec.prompt), tagged=sent.get("tagged", spec.tagged))
        payload = key_payload(sent_spec, self.backend_name, hashes)
        sent_key = request_key(payload)
        self.store.put_action(replace(record, key=sent_key, request=payload))
        return replace(record, request={**record.request, "sent_as": sent_key})

    async def _references(self, spec):
        import asyncio

        from .backends import Reference
        from .model import RefKind

        refs = []
        for ref in spec.refs:
            if ref.kind is RefKind.NODE:
                record = self.results[ref.target]
                picked = record.picked(self.project.nodes[ref.target].pick)
                data = self.store.read(picked.sha256)  # held in memory, else read and verified
                if self._users.get(ref.target, 0) > 1:  # others will read it too: keep it meanwhile
                    self._hold(ref.target, picked.sha256, data)
                remote = {record.backend: picked.remote_id} if picked.remote_id else {}
                refs.append(Reference(data=data, sha256=picked.sha256, tag=ref.tag, source=ref.label, remote_ids=remote))
            elif ref.kind is RefKind.FILE:
                data = await asyncio.to_thread(Path(ref.target).read_bytes)
                refs.append(Reference(data=data, sha256=hashlib.sha256(data).hexdigest(), tag=ref.tag, source=ref.label))
            else:
                data, digest = await self._url(ref.target)
                refs.append(Reference(data=data, sha256=digest, tag=ref.tag, source=ref.label))
        return refs

    async def _url(self, url: str) -> tuple[bytes, str]:
        """A reference URL's bytes: from the store when pinned, else fetched once and pinned."""
        from .store import CorruptObject

        pinned = None if self.options.refresh_urls else self.lock.urls.get(url)
        if pinned:
            try:
                return self.store.read(pinned), pinned
            except CorruptObject:
                pass
        data = await fetch_url(url)
        digest = self.store.put(data)
        self.lock.urls[url] = digest
        return data, digest

    def _export(self, spec, record, data: dict[str, bytes] | None = None) -> tuple[str, ...]:
        """Copy a node's takes to renders/; returns their paths, the picked take's first."""
        from .load import display_path
        from .model import frame_paths, picked_first

        paths = frame_paths(self.project, spec)
        for path, output in zip(paths, record.outputs):
            self.store.export(output.sha256, path, data.get(output.sha256) if data else None)
        ordered = picked_first(paths, spec.pick)
        if len(paths) > 1:
            # after a change of pick, the take now picked may still sit under its other name:
            # that copy goes (only when it is that take's bytes, as this project wrote them)
            take = paths.index(ordered[0])
            stale = ordered[0].with_name(f"{spec.name}-take{take + 1}{ordered[0].suffix}")
            try:
                st = os.stat(stale)
            except FileNotFoundError:
                st = None
            if st is not None and self.store.index.known(stale, st) == record.outputs[take].sha256:
                os.unlink(stale)
                self.store.index.forget(stale)
        return tuple(display_path(p) for p in ordered)

    # -- recording ------------------------------------------------------------------------

    def _record(self) -> None:
        """Write the lock (always: finished work is never lost), the index, the manifest."""
        if self.options.own_process:
            _give_back_freed_memory()
        for node_id, record in self.results.items():
            self.lock.set(node_id, record, self.project.nodes[node_id].pick)
        if self.full:
            self.lock.prune(self.project.nodes)
            used = {url for spec in self.project.nodes.values() for url in
                    (r.target for r in spec.refs if r.kind.value == "url")}
            self.lock.urls = {u: h for u, h in self.lock.urls.items() if u in used}
        self.lock.write()
        self.rerolls.finish({n for n, o in self.outcomes.items() if o.status is Status.RENDERED},
                            finished=not self.summary.interrupted and self.stopped is None)
        self._write_status()
        if self.full and self.summary.ok and len(self.results) == len(self.project.nodes):
            self._write_manifest()
        self.store.save()

    def _write_status(self) -> None:
        """``.shotflow/status.json``: how each node's last run ended (exports show failures)."""
        from .store import atomic_write

        path = status_path(self.project.path)
        status = read_status(self.project.path)
        for node_id, outcome in self.outcomes.items():
            status[node_id] = {"status": outcome.status.value, "error": outcome.error}
        if self.full:
            status = {n: v for n, v in status.items() if n in self.project.nodes}
        data = json.dumps(status, indent=1, sort_keys=True).encode()
        try:
            if path.read_bytes() == data:
                return
        except OSError:
            pass
        atomic_write(path, data)

    def _write_manifest(self) -> None:
        from .model import frame_paths, picked_first
        from .store import atomic_write

        inputs = {str(p): _stat(str(p)) for p in (*self.project.inputs, self.lock.path)}
        templates = self.project.root / "templates"
        inputs[str(templates)] = _stat(str(templates))
        outputs: dict[str, Any] = {}
        nodes = []
        previous = _previous_outputs(self.project.path)
        for node_id, spec in self.project.nodes.items():
            record = self.results[node_id]
            paths = frame_paths(self.project, spec)
            for path, output in zip(paths, record.outputs):
                outputs[str(path)] = _stat(str(path))
                obj = str(self.store.object_path(output.sha256))
                outputs[obj] = _stat(obj)
            from .load import display_path

            outcome = self.outcomes.get(node_id)
            held = [outcome.note or "changed"] if outcome is not None and outcome.status is Status.HELD else []
            nodes.append([node_id, [display_path(p) for p in picked_first(paths, spec.pick)], *held])
        from .trust import removable_render

        for stale in previous - set(outputs):
            # the previous manifest is a file in .shotflow/ anyone could have written: only a
            # regular file whose real path is inside renders/ and that shotflow itself wrote
            # there (the stat index knows its size, mtime and inode) is deleted
            if removable_render(stale, self.project.renders_dir, self.store.index):
                try:
                    os.unlink(stale)
                except OSError:
                    pass
        head = {"version": MANIFEST_VERSION, "storyboard": str(self.project.path),
                "signature": self.options.signature(), "backend": self.backend_name, "inputs": inputs}
        atomic_write(manifest_path(self.project.path), _manifest_chunks(head, outputs, nodes))


class _Slots:
    """``jobs`` permits to send, handed to the waiting shot with the longest chain ahead first
    (then story order), not first come first served: a shot prepared early does not hold back
    a critical one that became ready after it."""

    def __init__(self, jobs: int, rank: dict[str, tuple[float, int]]):
        self.free = jobs
        self.rank = rank
        self.waiting: list[tuple[tuple[float, int], Any]] = []  # heap of (rank, future)

    async def generate(self, backend, request, node_id: str, check) -> Any:
        """``backend.generate(request)`` holding a permit from its first send to its return."""
        held = False

        async def start() -> None:
            nonlocal held
            await self._acquire(self.rank[node_id])
            held = True
            check()

        try:
            return await backend.generate(request, start=start)
        finally:
            if held:
                self._release()

    async def _acquire(self, rank: tuple[float, int]) -> None:
        import asyncio
        import heapq

        if self.free > 0 and not self.waiting:
            self.free -= 1
            return
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self.waiting, (rank, future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release()  # handed over just as it was cancelled: pass it on
            raise

    def _release(self) -> None:
        import heapq

        while self.waiting:
            _, future = heapq.heappop(self.waiting)
            if not future.done():
                future.set_result(None)
                return
        self.free += 1


def status_path(storyboard: Path) -> Path:
    return state_file(storyboard, "status.json")


def read_status(storyboard: Path) -> dict[str, dict[str, Any]]:
    """node id → {"status": rendered|cached|failed|skipped, "error": message or None} of the last run."""
    try:
        return json.loads(status_path(storyboard).read_bytes())
    except (OSError, ValueError):
        return {}


def _manifest_chunks(head: dict, outputs: dict, nodes: list) -> Iterator[bytes]:
    """The manifest's compact JSON in pieces: at 10 000 shots it is megabytes, never one string."""
    dumps = json.JSONEncoder(separators=(",", ":")).encode
    yield dumps(head)[:-1].encode()  # all but its closing brace
    yield b',"outputs":{'
    yield from _joined(f"{dumps(path)}:{dumps(stat)}" for path, stat in outputs.items())
    yield b'},"nodes":['
    yield from _joined(map(dumps, nodes))
    yield b"]}"


def _joined(pieces: Iterable[str], size: int = 1000) -> Iterator[bytes]:
    """Comma-separated pieces, encoded a batch at a time."""
    batch: list[str] = []
    separator = ""
    for piece in pieces:
        batch.append(piece)
        if len(batch) == size:
            yield (separator + ",".join(batch)).encode()
            batch.clear()
            separator = ","
    if batch:
        yield (separator + ",".join(batch)).encode()


def _previous_outputs(storyboard: Path) -> set[str]:
    try:
        return set(json.loads(manifest_path(storyboard).read_bytes())["outputs"])
    except (OSError, ValueError, KeyError):
        return set()


async def _resolve(*args, **kwargs):
    from .resolve import resolve

    return await resolve(*args, **kwargs)


async def fetch_url(url: str) -> bytes:
    """Download a reference image under the fetching policy (see ``shotflow.fetch``)."""
    from .fetch import fetch

    return await fetch(url)
