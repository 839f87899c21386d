"""One node's road through a render: from its plan to a frame recorded and copied out.

    fresh (or held) ─► its frames copied to renders/ at once, no slot       ``NodeRunner.fresh``
    render ─► references ─► key ─► lookup (local, then the team's remote)  ``NodeRunner.render``
             ─► the local lease (one process pays for a key)               ``claim``
             ─► the team's lease (one machine pays for a key)              ``claim_team``
             ─► backend.generate (a send permit when the backend prepares) ``generate``
             ─► objects, action record, journal cleared, shared            ``keep``
             ─► renders/SCENE/SHOT.png and its takes                       ``export``

Every failure is an ``Outcome`` value (FAILED), never an exception, except a bug. Paid work is
safe before anything else happens to it: the images are stored and the action recorded (and
the journal entry cleared) before the node's outcome is returned; a lease is released only
after that, so a process waiting on it finds the record.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .errors import ShotflowError
from .status import Outcome, Status

if TYPE_CHECKING:
    from .backends import Backend
    from .resolve import Slots


def seed_for(key: str, roll: int) -> int:
    """The seed of a request: its key and its roll (0, or how often ``--force`` re-rolled it)."""
    return int.from_bytes(hashlib.sha256(f"{key}:{roll}".encode()).digest()[:4], "big") & 0x7FFFFFFF


class NodeRunner:
    """Renders the nodes of one plan, one call a node (the scheduler calls ``fresh`` and ``render``)."""

    def __init__(self, project, plan, store, lock, cache, options, backend_name: str, forced: set[str], team=None):
        from .references import Frames, References

        self.project = project
        self.plan = plan
        self.store = store
        self.lock = lock
        self.cache = cache
        self.options = options
        self.backend_name = backend_name
        self.forced = forced
        self.team = team  # the remote behind the local cache (shotflow.remote.TeamCache), or None
        self.results: dict[str, Any] = {}  # node id -> Record of every node that ended well
        self.frames = Frames(store, plan.nodes, plan.order)
        self.references = References(project, store, lock, self.results, self.frames, refresh_urls=options.refresh_urls)
        self.backend: Backend | None = None  # created on first need
        self.slots: Slots | None = None  # what may send at once, when the backend prepares ahead
        self.stopped: ShotflowError | None = None  # an AccountError that stopped the run

    def create_backend(self) -> Backend:
        """The backend, created on first need (a frame the remote was to give may need it after all)."""
        if self.backend is None:
            from . import backends

            self.backend = backends.create(
                self.backend_name,
                backends.Services(
                    project_dir=self.project.root,
                    journal=self.store.journal,
                    memo=self.store.memo,
                    settings=self.project.settings,
                ),
            )
        return self.backend

    def deterministic(self) -> bool:
        """Whether the backend makes the same bytes from the same request (and charges nothing)."""
        if self.backend is not None:
            return self.backend.deterministic
        from .backends import backend_class

        return backend_class(self.backend_name).deterministic

    # -- the team's remote around the run ------------------------------------------------

    def replan(self, plan) -> None:
        """The whole plan, once it is known (a render's head start ran on its roots' plan)."""
        self.plan = plan
        self.frames.replan(plan.nodes, plan.order)

    def download_fresh(self, note) -> None:
        """Fresh (or held) nodes the remote has: their frames, downloaded at once (in parallel) and kept."""
        if self.team is None:
            return
        wanted = [
            n.record for n in self.plan.nodes.values() if n.status in (Status.FRESH, Status.HELD) and n.from_remote
        ]
        if wanted:
            note(f"downloading {len(wanted)} nodes' frames from {self.team.url}")
            self.team.fetch_many(wanted)

    def share_done(self, summary, note) -> None:
        """Wait for the background uploads; what they moved and what failed goes in the summary."""
        if self.team is None:
            return
        left = self.team.uploading()
        if left:
            note(f"waiting for {left} uploads to {self.team.url}")
        report = self.team.drain()
        summary.remote = self.team.url
        summary.downloaded = self.team.fetched_nodes
        summary.uploaded = report.records
        summary.remote_failures = list(report.failures)

    # -- one node ---------------------------------------------------------------------------

    def fresh(self, node_id: str) -> Outcome | None:
        """A fresh (or held) node finishes at once: its frames are copied out if needed."""
        from .store import CorruptObject

        node = self.plan.nodes[node_id]
        if node.status is Status.RENDER:
            return None
        try:
            paths = self.export(node.spec, node.record)
        except CorruptObject:
            if node.status is Status.HELD:
                return Outcome(
                    node_id,
                    Status.FAILED,
                    error="approved frame damaged in the cache since "
                    "planning; render --include-approved to render it again",
                )
            return None  # damaged since planning: render it
        self.results[node_id] = node.record
        if node.status is Status.HELD:
            return Outcome(node_id, Status.HELD, value=node.record, outputs=paths, note=node.reason)
        return Outcome(node_id, Status.CACHED, value=node.record, outputs=paths)

    async def render(self, node_id: str, upstream: dict[str, Outcome], release=lambda: None) -> Outcome:
        """Render one node whose upstream all succeeded (``release``: its scheduling slot is free)."""
        from .plan import key_payload, request_key
        from .store import CorruptObject

        spec = self.plan.nodes[node_id].spec
        t0 = time.perf_counter()
        try:
            refs = await self.references.of(spec)
        except (CorruptObject, OSError, ShotflowError) as exc:
            return Outcome(node_id, Status.FAILED, error=f"reference: {exc}")
        payload = key_payload(spec, self.backend_name, [r.sha256 for r in refs])
        key = request_key(payload)
        forced = node_id in self.forced
        entry = self.lock.entries.get(node_id)
        if self.options.locked and (entry is None or entry.record.key != key):
            return Outcome(
                node_id,
                Status.FAILED,
                error=f"--locked: the request changed since {self.lock.path.name} (an upstream frame differs)",
            )
        if not forced:
            record = await self.lookup(node_id, key)
            if record is not None:  # early cutoff: upstream re-rendered to the same bytes
                self.results[node_id] = record
                return Outcome(node_id, Status.CACHED, value=record, outputs=self.export(spec, record))
        if self.options.locked and not self.deterministic():
            return Outcome(
                node_id,
                Status.FAILED,
                error="--locked: this frame is not in the cache and --locked never generates; "
                "pull it from the team's remote (shotflow pull, --remote URL), copy the "
                "project's .shotflow/ cache, or run without --locked",
            )
        try:
            self.create_backend()
        except ShotflowError as exc:
            return Outcome(node_id, Status.FAILED, error=str(exc))
        if forced:
            self.store.journal.drop_unknown(key)  # --force sends anew a task whose outcome is unknown
        made = await self.claim(key, forced)
        try:
            if made is not None:  # another process generated this very request meanwhile
                self.results[node_id] = made
                return Outcome(node_id, Status.CACHED, value=made, outputs=self.export(spec, made))
            return await self.generate(node_id, spec, key, payload, refs, forced, entry, release, t0)
        finally:
            if self.store.durable:
                self.store.leases.release(key)  # after recording: a waiting process finds the record

    async def lookup(self, node_id: str, key: str):
        """The record of ``key``: the local cache, else the team's remote (downloaded off the loop)."""
        record = self.cache.local_lookup(node_id, key)
        if record is None and self.team is not None:
            import asyncio

            record = await asyncio.to_thread(self.cache.lookup, node_id, key)
            if record is not None and not await asyncio.to_thread(self.team.fetch, record):
                record = None
        return record

    async def claim(self, key: str, forced: bool):
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

    async def claim_team(self, node_id: str, key: str):
        """Before paying for ``key``: the team's lease on it (another machine generating it is
        waited for, and its record returned instead). None when no lease is needed."""
        if self.team is None or self.options.locked or node_id in self.forced or self.deterministic():
            return None  # nothing to pay for, or a re-roll the user asked for
        return await self.team.claim(key, resuming=self.store.journal.pending(key) is not None)

    async def generate(
        self, node_id: str, spec, key: str, payload: dict, refs, forced: bool, entry, release, t0: float
    ) -> Outcome:
        """Pay for the request (after the team's lease), then keep what came back."""
        from .errors import AccountError, BackendError
        from .statefile import check_own_file

        try:  # before anything is paid: a folder where the record goes would fail the shot after it
            check_own_file(self.store.action_path(key), "this shot's action record")
        except ShotflowError as exc:
            return Outcome(node_id, Status.FAILED, error=str(exc))
        previous = [r for r in (self.store.get_action(key), entry.record if entry else None) if r and r.key == key]
        roll = max((r.roll for r in previous), default=-1) + 1 if forced else 0
        if self.options.locked:
            roll = entry.record.roll  # redraw exactly the take the lock names
        from .backends import Request
        from .store import Record

        claimed = await self.claim_team(node_id, key)
        if isinstance(claimed, Record):  # another machine of the team generated it meanwhile
            self.results[node_id] = claimed
            return Outcome(node_id, Status.CACHED, value=claimed, outputs=self.export(spec, claimed))
        request = Request(
            key=key,
            node_id=node_id,
            model=spec.model,
            prompt=spec.prompt,
            width=spec.width,
            height=spec.height,
            output_format=spec.output_format,
            output_quality=spec.output_quality,
            takes=spec.takes,
            references=tuple(refs),
            tagged=spec.tagged,
            seed=seed_for(key, roll),
            safety=spec.safety,
            provider_settings=spec.provider_settings,
            options=dict(spec.options),
            staging=spec.staging,
        )
        try:
            backend = self.create_backend()
            if self.slots is None:
                generation = await backend.generate(request)
            else:
                generation = await self.slots.generate(backend, request, node_id, self.still_going)
            release()  # the backend is done with it: the next shot may start while this one is stored
        except AccountError as exc:
            self.abandon(claimed, key)
            self.stopped = self.stopped or exc
            return Outcome(node_id, Status.FAILED, error=str(exc), fatal=True)
        except BackendError as exc:
            self.abandon(claimed, key)
            return Outcome(node_id, Status.FAILED, error=str(exc), elapsed=time.perf_counter() - t0)
        if len(generation.images) != spec.takes:
            self.abandon(claimed, key)
            return Outcome(
                node_id,
                Status.FAILED,
                error=f"{self.backend_name} returned {len(generation.images)} images for {spec.takes} takes",
            )
        return await self.kept(node_id, spec, key, roll, payload, generation, entry, t0)

    async def kept(
        self, node_id: str, spec, key: str, roll: int, payload: dict, generation, entry, t0: float
    ) -> Outcome:
        """The outcome of a paid generation, once its images are stored and recorded."""
        import asyncio

        # file work off the event loop: other shots keep flowing meanwhile
        record, paths = await asyncio.to_thread(self.keep, spec, key, roll, payload, generation)
        picked = min(spec.pick, len(generation.images)) - 1
        self.frames.hold(node_id, record.outputs[picked].sha256, generation.images[picked].data)
        if self.options.locked:
            if [o.sha256 for o in record.outputs] != [o.sha256 for o in entry.record.outputs]:
                return Outcome(node_id, Status.FAILED, error="--locked: the redrawn frame differs from the lock")
            # the lock's record as it is, and what its key was made of (the same: the keys matched),
            # so that `plan` can later say what changed ("prompt changed"), not just "request changed"
            record = replace(entry.record, request=payload)
            self.store.put_action(record)
        self.results[node_id] = record
        return Outcome(
            node_id,
            Status.RENDERED,
            value=record,
            outputs=paths,
            cost=generation.cost or 0.0,
            elapsed=time.perf_counter() - t0,
        )

    def abandon(self, claimed, key: str) -> None:
        """Give the team's lease back: nothing was paid for under it."""
        if claimed is not None:
            self.team.abandon(key)

    def still_going(self) -> None:
        """Raised in a prepared shot about to send when the run stopped meanwhile."""
        if self.stopped is not None:
            from .errors import BackendError

            raise BackendError(f"not sent: the run stopped ({self.stopped.message})")

    def keep(self, spec, key: str, roll: int, payload: dict, generation):
        """Store the images, record the action, copy the frames out: the paid work is safe."""
        from .model import EXTENSIONS
        from .store import Output, Record

        ext = EXTENSIONS[spec.output_format]
        outputs = tuple(
            Output(
                sha256=self.store.put(image.data),
                ext=ext,
                seed=image.seed,
                remote_id=image.remote_id,
                url=image.url,
                cost=image.cost,
            )
            for image in generation.images
        )
        data = {output.sha256: image.data for output, image in zip(outputs, generation.images, strict=True)}
        record = Record(
            key=key,
            backend=self.backend_name,
            model=spec.model,
            outputs=outputs,
            task_id=generation.task_id,
            cost=generation.cost,
            roll=roll,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            request=payload,
        )
        if generation.sent:
            record = self.keep_as_sent(spec, record, generation.sent)
        if not self.options.locked:
            self.store.put_action(record)
        self.store.journal.finish(key)  # recorded: nothing is pending for this key any more
        if self.team is not None:
            self.team.share(spec.id, record)  # uploaded in the background; its lease released after
        # what the key was made of is in the action record now; the lock does not need it
        # (1-2 KB a node, held to the end of the run otherwise)
        return replace(record, request={}), self.export(spec, record, data)

    def keep_as_sent(self, spec, record, sent: dict):
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

    def export(self, spec, record, data: dict[str, bytes] | None = None) -> tuple[str, ...]:
        """Copy a node's takes to renders/; returns their paths, the picked take's first."""
        from .load import display_path
        from .model import frame_paths, picked_first

        paths = frame_paths(self.project, spec)
        for path, output in zip(paths, record.outputs, strict=False):  # a record may hold fewer takes
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
