"""The project's run state: the files a render keeps beside a storyboard, in ``<project>/.shotflow/``.

    <project>/.shotflow/
    ├── NAME.last-run.json   what NAME.yaml's last complete render saw: every input and output
    │                        with its size, mtime, ctime and inode (the no-op fast path), each node's frames
    ├── NAME.status.json     how each node of NAME.yaml's last run ended (the exports show failures)
    ├── forced.json          what an unfinished ``--force`` run rendered again already (``Rerolls``)
    └── run.lock, stat.json, journal/, leases/, objects…   the store's (``store.Store``, ``ProjectLock``)

``ProjectState`` names every one of these paths and reads and writes the first three; a
render records through it, ``clean`` removes through it, the exports read the status
through it. Two storyboards in one folder keep separate state (their lock files are
``NAME.lock`` already). This module imports nothing heavy: the no-op fast path reads the
manifest through it before YAML, Jinja or networkx are loaded.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .errors import ShotflowWarning
from .statefile import INDEX_FILE_BYTES, check_own_file, read_regular, read_state, signature
from .status import Outcome, Status
from .store import STATE_DIR, Ahead

MANIFEST_VERSION = 1


def stat(path: str) -> list[int] | None:
    """A file's ``statefile.signature`` as the manifest records it (None: not there)."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):  # ValueError: a NUL in a path a damaged manifest names
        return None
    return list(signature(st))


def input_stats(project) -> dict[str, list[int] | None]:
    """The stat of every file the project was read from (and of its templates/ folder), as the
    manifest records them. A render takes them before it plans: a file edited while it runs then
    differs from the record, and the next render reads it again (taken at the end, the record
    matched the edited file, and every later render said "nothing to do" over the old frames)."""
    inputs = {str(p): stat(str(p)) for p in project.inputs}
    templates = project.root / "templates"
    inputs[str(templates)] = stat(str(templates))
    return inputs


class ProjectState:
    """The run-state files of one storyboard (see the module docstring)."""

    PREPARED_CHARS = 512_000  # manifest text worked out ahead at most (~900 nodes), as the lock's

    def __init__(self, storyboard: Path):
        self.storyboard = storyboard
        self.folder = storyboard.parent / STATE_DIR
        self._parts = Ahead(self.PREPARED_CHARS)  # node → its manifest part, worked out as it finished (``prepare``)
        self._seen: dict[str, list[int] | None] | None = None  # the inputs' stats as a run began

    def run_begins(self, project) -> None:
        """Take the inputs' stats now, before planning, for the manifest (see ``input_stats``)."""
        self._seen = input_stats(project)

    def file(self, name: str) -> Path:
        """A run-state file of this storyboard: ``<project>/.shotflow/<stem>.<name>``."""
        return self.folder / f"{self.storyboard.stem}.{name}"

    @property
    def manifest_path(self) -> Path:
        return self.file("last-run.json")

    @property
    def status_path(self) -> Path:
        return self.file("status.json")

    @property
    def forced_path(self) -> Path:
        """The re-roll record (one a project: ``--force`` names nodes of one storyboard)."""
        return self.folder / "forced.json"

    def own_files(self) -> list[Path]:
        """This storyboard's files that ``clean --purge-cache`` removes with the project's cache."""
        return [self.manifest_path, self.status_path]

    # -- the last complete run: the no-op fast path --------------------------------------

    def unchanged(self, signature: str) -> dict[str, Any] | None:
        """The last complete run's manifest when nothing changed since, else None.

        Nothing changed means: the same options (``signature``), and every input file and
        every output has the size, mtime, ctime and inode it had. A manifest of another shape is
        not used (``_replayable``: the no-op replays its nodes as they are)."""
        manifest = read_state(self.manifest_path, limit=INDEX_FILE_BYTES)
        if (
            manifest is None
            or manifest.get("version") != MANIFEST_VERSION
            or manifest.get("signature") != signature
            or manifest.get("storyboard") != str(self.storyboard)
            or not _replayable(manifest)
        ):
            return None  # none, another shotflow, other options, or a copied project
        for table in ("inputs", "outputs"):
            for path, was in manifest[table].items():
                if stat(path) != was:
                    return None
        return manifest

    def others_frames(self, paths: Iterable[str]) -> dict[str, str]:
        """Of ``paths`` (frames this storyboard writes in renders/), those that another storyboard
        of the project recorded as its own in its last complete run: path → that storyboard's
        name. ``renders/SCENE/SHOT.png`` is one file for two storyboards whose ids coincide."""
        shared: dict[str, str] = {}
        others = sorted(p for p in self.folder.glob("*.last-run.json") if p != self.manifest_path)
        wanted = set(paths) if others else set()  # one storyboard in the folder (the rule): nothing to read
        for manifest_path in others:
            if not wanted:
                break
            stem = manifest_path.name.removesuffix(".last-run.json")
            siblings = [p for p in (self.storyboard.with_name(stem + ext) for ext in (".yaml", ".yml")) if p.is_file()]
            if not siblings:
                continue  # a storyboard since removed (or never there): its record is not even read
            manifest = read_state(manifest_path, limit=INDEX_FILE_BYTES, warn=False) or {}
            other, outputs = manifest.get("storyboard"), manifest.get("outputs")
            if not isinstance(other, str) or Path(other) not in siblings or not isinstance(outputs, dict):
                continue  # damaged, or crafted to name another file: it claims nothing
            for path in wanted.intersection(outputs):
                shared.setdefault(path, Path(other).name)
        return shared

    def _warn_shared(self, project, outputs: Iterable[str]) -> None:
        """Say so when this run wrote over frames another storyboard of the folder recorded."""
        renders = os.path.join(project.renders_dir, "")
        shared = self.others_frames(path for path in outputs if path.startswith(renders))
        if shared:
            first = min(shared)
            more = f" and {len(shared) - 1} more of its frames" if len(shared) > 1 else ""
            warnings.warn(
                f"{os.path.relpath(first, project.root)}{more}: {shared[first]}'s last render wrote "
                f"there too, and {self.storyboard.name} wrote over it (the two share scene and shot "
                "ids); give each storyboard a folder of its own",
                ShotflowWarning,
                stacklevel=2,
            )

    def previous_outputs(self) -> set[str]:
        """The outputs the last complete run recorded (its frames and objects)."""
        manifest = read_state(self.manifest_path, limit=INDEX_FILE_BYTES) or {}
        outputs = manifest.get("outputs")
        return set(outputs) if isinstance(outputs, dict) else set()

    def check_writable(self) -> None:
        """Refuse to render when a file of this run state is a folder (a copied ``.shotflow/``
        may hold one): a rename cannot replace it, and the run would fail at its end."""
        check_own_file(self.manifest_path, "the last run's manifest")
        check_own_file(self.status_path, "the status of the last run")
        check_own_file(self.forced_path, "the record of an unfinished --force")

    def write_manifest(self, head: dict[str, Any], outputs: Iterable[str], nodes: Iterable[str]) -> None:
        """Record a complete run: ``head`` (version, storyboard, signature, backend, inputs), each
        output's ``"path":stat`` and each node's ``[id, paths]`` (``[id, paths, what changed]`` when
        held), as JSON text."""
        from .store import atomic_write

        atomic_write(self.manifest_path, manifest_chunks({"version": MANIFEST_VERSION, **head}, outputs, nodes))

    def prepare(self, project, store, outcome: Outcome, record) -> None:
        """Work out a finished node's part of the manifest now, while other nodes still render:
        a complete run then joins it (two stats and the paths a node: ~40 ms for 400 nodes,
        otherwise spent after the last task). Its files are final once the node is done; a part
        whose record or outcome changed after is worked out again. Bounded like the lock's."""
        if self._parts.room():
            part = _manifest_part(project, store, outcome.id, record, outcome)
            self._parts.keep(outcome.id, (record, outcome), part, len(part[1]) + sum(len(t) for _, t in part[0]))

    def record_complete_run(
        self,
        project,
        store,
        lock,
        results: Mapping[str, Any],
        outcomes: Mapping[str, Outcome],
        signature: str,
        backend: str,
    ) -> None:
        """Write the manifest of a complete run (every node has ``results``); frames the last one
        recorded that this one does not are removed (only those shotflow itself wrote in renders/).
        The inputs as ``run_begins`` saw them (else as they are now)."""
        from .trust import removable_render

        inputs = dict(self._seen) if self._seen is not None else input_stats(project)
        inputs[str(lock.path)] = stat(str(lock.path))  # written by this run: as it is now
        outputs: dict[str, str] = {}  # path → its "path":stat text, once (shots may share an object)
        nodes = []
        previous = self.previous_outputs()
        for node_id in project.nodes:
            record, outcome = results[node_id], outcomes.get(node_id)
            part = self._parts.get(node_id, (record, outcome))
            if part is None:
                part = _manifest_part(project, store, node_id, record, outcome)
            for path, text in part[0]:
                outputs.setdefault(path, text)
            nodes.append(part[1])
        self._warn_shared(project, outputs)
        for stale in previous - outputs.keys():
            # the previous manifest is a file in .shotflow/ anyone could have written: only a
            # regular file whose real path is inside renders/ and that shotflow itself wrote
            # there (the stat index knows its size, mtime, ctime and inode) is deleted
            if removable_render(stale, project.renders_dir, store.index):
                with contextlib.suppress(OSError):
                    os.unlink(stale)
        self.write_manifest(
            {"storyboard": str(project.path), "signature": signature, "backend": backend, "inputs": inputs},
            outputs.values(),
            nodes,
        )

    # -- how each node's last run ended ----------------------------------------------------

    def read_status(self) -> dict[str, dict[str, Any]]:
        """node id → {"status": rendered|cached|failed|skipped|held, "error": message or None}.
        Entries that are not objects are dropped; their values are checked where they are read."""
        status = read_state(self.status_path) or {}
        return {node_id: entry for node_id, entry in status.items() if isinstance(entry, dict)}

    def write_status(self, outcomes: Mapping[str, Outcome], keep: Iterable[str] | None = None) -> None:
        """Merge a run's outcomes into the status file; ``keep`` (a full run's nodes): drop the others."""
        from .store import atomic_write

        status = self.read_status()
        for node_id, outcome in outcomes.items():
            status[node_id] = {"status": outcome.status.value, "error": outcome.error}
        if keep is not None:
            kept = set(keep)
            status = {n: v for n, v in status.items() if n in kept}
        data = json.dumps(status, indent=1, sort_keys=True).encode()
        with contextlib.suppress(OSError):
            if read_regular(self.status_path, len(data)) == data:
                return
        atomic_write(self.status_path, data)

    # -- re-rolls ---------------------------------------------------------------------------

    def rerolls(self, asked: set[str], backend: str) -> Rerolls:
        """What ``--force`` (``asked``) renders this run on ``backend``, after what an unfinished
        run of it on the same backend did."""
        path = self.forced_path
        data = read_state(path)
        if data is None or data.get("storyboard") != str(self.storyboard):  # none, damaged, or another's
            return Rerolls(self.storyboard, path, asked, backend, {}, set(), os.path.lexists(path))
        runs = _runs(data)
        before = {name: run for name, run in runs.items() if name is not None} if None not in runs else None
        # A record an older shotflow wrote has no backend: it counts as every backend's. Taken as
        # no backend's, the same --force on Runware would pay again for the re-rolls it names; taken
        # as any, the worst is a preview run that keeps a (free) frame it was asked to draw again.
        mine = runs.pop(backend, None) or runs.pop(None, None)
        done = _names(mine.get("done")) & asked if mine and _names(mine.get("forced")) == asked else set()
        others = {name: run for name, run in runs.items() if name is not None}
        return Rerolls(self.storyboard, path, asked, backend, others, done, True, before)


def _runs(data: dict[str, Any]) -> dict[str | None, dict[str, Any]]:
    """forced.json's record of each backend (None: one an older shotflow wrote, without one)."""
    found = {None: data} if "forced" in data else {}
    backends = data.get("backends")
    if isinstance(backends, dict):
        found.update((name, run) for name, run in backends.items() if isinstance(run, dict))
    return {
        name: {"forced": sorted(_names(run.get("forced"))), "done": sorted(_names(run.get("done")))}
        for name, run in found.items()
    }


def _names(value: Any) -> set[str]:
    """The node ids of a list in forced.json (nothing from a value of another shape)."""
    return {name for name in value if isinstance(name, str)} if isinstance(value, list) else set()


def _replayable(manifest: dict[str, Any]) -> bool:
    """True when a manifest has the shape ``noop`` replays: input and output tables, a backend,
    and nodes as ``[id, [paths]]`` or ``[id, [paths], what changed]``, all of them strings.
    One plain loop: it runs on every no-op render (2 ms for 10 000 nodes; 8 ms as ``all()`` of generators)."""
    nodes = manifest.get("nodes")
    if not (
        isinstance(manifest.get("inputs"), dict)
        and isinstance(manifest.get("outputs"), dict)
        and isinstance(manifest.get("backend"), str)
        and isinstance(nodes, list)
    ):
        return False
    try:
        for node_id, paths, *held in nodes:  # a node of another shape fails to unpack, or below
            if (
                type(node_id) is not str
                or type(paths) is not list
                or (held and (len(held) > 1 or type(held[0]) is not str))
            ):
                return False
            for path in paths:
                if type(path) is not str:
                    return False
    except (TypeError, ValueError):
        return False
    return True


def check_write_folders(project) -> None:
    """Before a render writes: the run state's files must not be folders
    (``ProjectState.check_writable``), and renders/ must pass ``check_renders_folders``;
    .shotflow/ is checked as the store opens. Raises UsageError."""
    ProjectState(project.path).check_writable()
    check_renders_folders(project)


def check_renders_folders(project) -> None:
    """renders/ and each of its folders must not lead out of the project (a cloned repository
    may hold them as links), nor, through a link, to a folder holding a file the storyboard
    reads (``renders/characters -> ../refs``: frames would replace the reference images).
    Checked before a render writes there and before the exports and ``verify`` read frames
    there. Raises UsageError."""
    from .errors import UsageError
    from .trust import Refused, check_own_folders, inside

    renders = project.renders_dir
    folders = [renders, renders / "characters", renders / "locations", *(renders / s.id for s in project.scenes)]
    try:
        check_own_folders(project.root, folders)
    except Refused as exc:
        raise UsageError(exc.message, hint=exc.hint) from None
    linked = [f for f in folders if os.path.islink(f)]  # rare: the inputs' real paths only then
    if linked:
        read = [os.path.realpath(p) for p in project.inputs]
        for folder in linked:
            real = os.path.realpath(folder)
            hit = next((r for r in read if inside(r, real)), None)
            if hit is not None:
                raise UsageError(
                    f"{folder} is a symbolic link to {real}, which holds {hit}, a file the storyboard "
                    "reads: frames written there could replace it",
                    hint="remove the link",
                )


class Rerolls:
    """The nodes ``--force`` asked to render again, and those an earlier, unfinished run of
    the same ``--force`` on the same backend already rendered again (``.shotflow/forced.json``).

    "Run the same command again" must not pay twice for a re-roll: when a run with
    ``--force`` is interrupted (or some of its forced nodes fail), the forced nodes it did
    render are recorded under its backend; the next run with the same forced set on that
    backend renders only the others (the recorded ones are fresh: the cache holds their new
    takes). Any other run on that backend forgets its record, and so does the run that
    finishes every forced node; a run on another backend leaves it alone (a preview run must
    not use up the record of re-rolls paid for on Runware)::

        {"storyboard": "/…/storyboard.yaml",
         "backends": {"runware": {"forced": ["roof/a", "roof/b", …], "done": ["roof/a"]}}}
    """

    def __init__(
        self,
        storyboard: Path,
        path: Path,
        asked: set[str],
        backend: str,
        others: dict[str, dict[str, Any]],
        done: set[str],
        recorded: bool,
        before: dict[str, dict[str, Any]] | None = None,
    ):
        self.storyboard = storyboard
        self.path = path
        self.asked = asked  # what --force selected
        self.backend = backend  # what this run renders on
        self.others = others  # the records of other backends' runs, kept as they are
        self.done = done  # of those, what a run of this same --force rendered again already
        self.recorded = recorded  # a record file exists (to remove or to rewrite)
        self.before = before  # the records it held, when they need no rewriting as they are

    @property
    def forced(self) -> set[str]:
        """What this run forces."""
        return self.asked - self.done

    def note(self) -> str | None:
        """What a run says of the re-rolls it does not pay for again (None: there are none)."""
        if not self.done:
            return None
        from ._text import shortlist

        return (
            f"not forced again: {shortlist(sorted(self.done))} (re-rendered by the unfinished run of this "
            "same --force; their new takes are kept)"
        )

    def finish(self, rendered: set[str], finished: bool) -> None:
        """Record what a run left to re-roll; forget the record once nothing is left."""
        from .store import atomic_write

        done = self.done | (self.asked & rendered)
        runs = dict(self.others)
        if self.asked and not (finished and done >= self.asked):
            runs[self.backend] = {"forced": sorted(self.asked), "done": sorted(done)}
        if runs and runs == self.before:
            return  # a run on another backend, say: nothing of the record changes
        if runs:
            data = {"storyboard": str(self.storyboard), "backends": dict(sorted(runs.items()))}
            atomic_write(self.path, json.dumps(data, indent=1).encode())
        elif self.recorded:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


_dumps = json.JSONEncoder(separators=(",", ":")).encode

# a node's part of the manifest: its outputs as (path, '"path":stat'), and its entry, as JSON text
_Part = tuple[list[tuple[str, str]], str]


def _manifest_part(project, store, node_id: str, record, outcome: Outcome | None) -> _Part:
    from .load import display_path
    from .model import frame_paths, picked_first

    spec = project.nodes[node_id]
    paths = frame_paths(project, spec)
    pairs = []
    for path, output in zip(paths, record.outputs, strict=False):
        for name in (str(path), str(store.object_path(output.sha256))):
            pairs.append((name, f"{_dumps(name)}:{_dumps(stat(name))}"))
    held = [outcome.note or "changed"] if outcome is not None and outcome.status is Status.HELD else []
    return pairs, _dumps([node_id, [display_path(p) for p in picked_first(paths, spec.pick)], *held])


def manifest_chunks(head: dict, outputs: Iterable[str], nodes: Iterable[str]) -> Iterator[bytes]:
    """The manifest's compact JSON in pieces (at 10 000 shots it is megabytes, never one string):
    ``outputs`` are ``"path":stat`` members and ``nodes`` the node entries, as JSON text."""
    yield _dumps(head)[:-1].encode()  # all but its closing brace
    yield b',"outputs":{'
    yield from _joined(outputs)
    yield b'},"nodes":['
    yield from _joined(nodes)
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
