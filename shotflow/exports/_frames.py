"""The reading layer every export shares: what a render left, per node, in story order.

    storyboard.yaml ─► Project ─► plan (fresh / render)  ┐
    NAME.lock ─────────► key, outputs, pick, cost        ├─► Sequence
    .shotflow/NAME.status.json ─► failed / skipped + message  │     ├── panels {id: Panel}   story order
    renders/… or .shotflow/objects/… ─► Take.path        ┘     └── scenes (SceneView: info, panels)

    Panel(spec, state, message, takes=(Take(1, path, sha256), …), pick, key, cost)

Exports never generate: a node with no frame is a Panel whose ``picked`` is None,
and each export draws a placeholder for it. No image is decoded here, but every frame
used is hashed against the lock (never trusted by its size and mtime: a flipped byte is
caught even when its mtime was restored), in renders/ first, else in the cache.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..model import EXTENSIONS, NodeKind, NodeSpec, Project, SceneInfo, frame_paths
from ..status import Status

MIME = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}


@dataclass(frozen=True)
class Take:
    """One generated image of a node, as the lock names it."""

    index: int  # 1-based
    sha256: str
    ext: str  # png | jpg | webp
    path: Path | None  # a readable file with these bytes: renders/… first, else the cache object
    in_renders: bool  # path is the human-named copy in renders/ (not the extension-less object)

    @property
    def mime(self) -> str:
        return MIME.get(self.ext, "application/octet-stream")

    @property
    def file(self) -> Path:
        """``path``, for a take known to be on disk (``Panel.picked`` is); FileNotFoundError if not."""
        if self.path is None:
            raise FileNotFoundError(f"take {self.index} ({self.sha256[:12]}) is neither in renders/ nor in the cache")
        return self.path

    def read_bytes(self) -> bytes:
        return self.file.read_bytes()


@dataclass(frozen=True)
class Panel:
    """One shot or sheet as an export shows it."""

    spec: NodeSpec
    state: Status
    message: str | None  # failed: the error; skipped: why; stale: what changed
    takes: tuple[Take, ...]  # from the lock entry; () when never rendered
    pick: int  # 1-based, the storyboard's pick clamped to the takes there are
    key: str | None  # the request key of the frames shown (the lock's)
    cost: float | None  # what those frames cost (the lock's)
    backend: str | None
    number: str  # "2.3": scene 2, shot 3 (its shot code when editorial.shot_code is set); "S1" for the first sheet
    code: str | None = None  # the shot's code (editorial.shot_code, else the default format); None for sheets
    held: str | None = None  # approved and kept although the storyboard changed: what changed

    @property
    def approved(self) -> bool:
        return self.spec.review.approved

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def is_shot(self) -> bool:
        return self.spec.kind is NodeKind.SHOT

    @property
    def picked(self) -> Take | None:
        """The take shown as the frame, when its bytes are on disk."""
        if not self.takes:
            return None
        take = self.takes[self.pick - 1]
        return take if take.path is not None else None

    @property
    def others(self) -> tuple[Take, ...]:
        return tuple(t for t in self.takes if t.index != self.pick)

    @property
    def duration(self) -> float:
        return self.spec.duration


@dataclass(frozen=True)
class SceneView:
    info: SceneInfo
    number: int  # 1-based
    panels: tuple[Panel, ...]

    @property
    def duration(self) -> float:
        return sum(p.duration for p in self.panels)


@dataclass(frozen=True)
class Sequence:
    """A whole storyboard as the exports read it."""

    project: Project
    panels: dict[str, Panel]  # story order: sheets, then each scene's shots
    scenes: tuple[SceneView, ...]
    backend: str
    runware_estimate: float  # what rendering every node once would cost on Runware

    @property
    def title(self) -> str:
        return self.project.title or self.project.path.stem

    @property
    def sheets(self) -> list[Panel]:
        return [p for p in self.panels.values() if not p.is_shot]

    @property
    def shots(self) -> list[Panel]:
        """The shots in the cut, in story order (an omitted shot that a shot references is
        in ``panels``, as a reference, but not here)."""
        return [p for p in self.panels.values() if p.is_shot and not p.spec.omit]

    def without_frames(self) -> str | None:
        """ "2 shots and 1 sheet without a frame" (None: every panel has one). Shots and sheets are
        counted apart: "12 without a frame" beside "11 shots" read as more missing than there are."""
        from .._text import counted

        shots = sum(1 for p in self.shots if p.picked is None)
        sheets = sum(1 for p in self.sheets if p.picked is None)
        parts = [counted(n, noun) for n, noun in ((shots, "shot"), (sheets, "sheet")) if n]
        return " and ".join(parts) + " without a frame" if parts else None

    @property
    def editorial(self):
        return self.project.editorial

    @property
    def duration(self) -> float:
        """Seconds on the animatic: the shots' durations added up."""
        return sum(p.duration for p in self.shots)

    @property
    def cost(self) -> float:
        """What the frames pinned in the lock cost."""
        return sum(p.cost or 0.0 for p in self.panels.values())

    @property
    def frame_backends(self) -> dict[str, int]:
        """How many of the lock's frames each backend made (``{"runware": 10, "preview": 2}``)."""
        counts: dict[str, int] = {}
        for panel in self.panels.values():
            if panel.takes and panel.backend:
                counts[panel.backend] = counts.get(panel.backend, 0) + 1
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))

    @property
    def made_on(self) -> str:
        """Which backend made the frames, as a label: "runware", "runware 10, preview 2"."""
        counts = self.frame_backends
        if not counts:
            return "no frames yet"
        if len(counts) == 1:
            return next(iter(counts))
        return ", ".join(f"{name} {n}" for name, n in counts.items())

    def count(self, state: Status) -> int:
        return sum(1 for p in self.panels.values() if p.state is state)


def _usual_backend(project: Project, lock) -> str | None:
    """The backend that made most of the lock's frames (the storyboard's own first on a tie)."""
    made: dict[str, int] = {}
    for node_id, entry in lock.entries.items():
        if node_id in project.nodes:
            made[entry.record.backend] = made.get(entry.record.backend, 0) + 1
    ranked = sorted(made.items(), key=lambda item: (-item[1], item[0] != project.backend))
    return ranked[0][0] if ranked else None


def _state(
    plan, planned, entry, takes: tuple[Take, ...], held: str | None, last: dict[str, Any], store
) -> tuple[Status, str | None]:
    """A panel's state and what to say of it: fresh, failed or skipped last time, stale, not rendered.

    Fresh is the frame of the request the storyboard makes now (the plan's key is the lock's).
    A plan may find a node fresh in the cache while the lock pins another frame (the
    storyboard went back to an earlier prompt, or the lock holds another backend's frames):
    what is shown then is stale, until a render puts the current frame back."""
    shown = entry is not None and planned is not None and planned.key == entry.record.key
    current = planned is not None and (
        (shown and (planned.status is Status.FRESH or all(t.path for t in takes)))
        or (held is not None and all(t.path for t in takes))
    )
    if current:
        return Status.FRESH, None
    error = last.get("error") if isinstance(last.get("error"), str) else None  # the status file is anyone's
    if Status.read(last.get("status")) is Status.FAILED:
        return Status.FAILED, error or "the last render of this shot failed"
    if Status.read(last.get("status")) is Status.SKIPPED:
        return Status.SKIPPED, (error or "an upstream shot failed").removeprefix("skipped: ")
    if entry is not None:
        if planned is not None and planned.status is Status.FRESH:
            from ..plan import changed_since

            previous = store.get_action(entry.record.key) or entry.record  # the lock's may not keep the request
            what = changed_since(plan, planned.id, previous)
            return Status.STALE, f"{what} (the current frame is cached: a render puts it back at no cost)"
        return Status.STALE, planned.reason if planned is not None else None
    return Status.NOT_RENDERED, None


def _download_from_remote(plan, team) -> None:
    """The frames of fresh nodes that only the team's remote holds, into the local cache
    (each verified; never into renders/): a fresh clone's board shows them, as render would."""
    wanted = [n.record for n in plan.nodes.values() if n.from_remote and n.record is not None]
    if wanted and team is not None:
        team.fetch_many(wanted)


def read_sequence(
    project: Project,
    *,
    cache_dir: Path | None = None,
    backend: str | None = None,
    plan=None,
    lock=None,
    store=None,
    remote: str | None = None,
) -> Sequence:
    """Read what the last renders left for ``project``. Never generates and never writes, but
    for what planning itself does (a cache object whose bytes no longer match its hash is
    dropped, as ``shotflow plan`` would, so that no export ever shows a corrupt frame) and
    for the frames of fresh nodes only the team's remote holds, downloaded into the cache.

    Frames are compared with what the storyboard asks of ``backend``; when none is given
    (no ``--backend``), of the backend that made most frames of the lock: the frames of a
    ``render --backend runware`` are fresh, not stale for another backend. ``plan``,
    ``lock`` and ``store`` are made here unless the caller holds them already (``shotflow
    watch`` keeps them between rounds)."""
    from .. import catalog
    from ..plan import prepare as make_plan
    from ..remote import open_team
    from ..state import ProjectState, check_renders_folders
    from ..store import LockFile, open_store

    check_renders_folders(project)  # frames are read there: not through a link out of the project
    # every frame an export uses is hashed, not trusted by its size and mtime (bit rot)
    store = store if store is not None else open_store(project.root, cache_dir, verify=True)
    lock = lock if lock is not None else LockFile.read(project.lock_path)
    # one team cache for the plan's lookups and the downloads (its warning said once)
    team = open_team(remote, project, store, lambda text: print(text, file=sys.stderr))
    if plan is None:
        if backend is None:
            backend = _usual_backend(project, lock)
        plan = make_plan(project, cache_dir=cache_dir, store=store, backend=backend, team=team)
    _download_from_remote(plan, team)
    status = ProjectState(project.path).read_status()
    numbers = _numbers(project)
    panels: dict[str, Panel] = {}
    for node_id, spec in project.nodes.items():
        planned = plan.nodes.get(node_id)
        entry = lock.entries.get(node_id)
        last: dict[str, Any] = status.get(node_id) or {}
        takes: tuple[Take, ...] = ()
        key = cost = backend = None
        if entry is not None:
            takes = _takes(project, spec, entry.record.outputs, entry.pick, store)
            key, cost, backend = entry.record.key, entry.record.cost, entry.record.backend
        pick = max(1, min(spec.pick, len(takes))) if takes else spec.pick
        held = planned.reason if planned is not None and planned.status is Status.HELD else None
        state, message = _state(plan, planned, entry, takes, held, last, store)
        panels[node_id] = Panel(
            spec=spec,
            state=state,
            message=message,
            takes=takes,
            pick=pick,
            key=key,
            cost=cost,
            backend=backend,
            number=numbers[node_id],
            code=project.codes.get(node_id),
            held=held,
        )
    scenes = tuple(
        SceneView(info, i, tuple(panels[s] for s in info.shots if s in panels))
        for i, info in enumerate(project.scenes, 1)
    )
    estimate = sum(catalog.get(spec.model).price_per_image * spec.takes for spec in project.nodes.values())
    return Sequence(project=project, panels=panels, scenes=scenes, backend=plan.backend, runware_estimate=estimate)


def load_sequence(
    path: Path | str,
    overrides: dict[str, Any] | None = None,
    backend: str | None = None,
    cache_dir: Path | None = None,
    remote: str | None = None,
) -> Sequence:
    """Load a storyboard and read its frames (what every export command starts with).
    ``remote``: the team cache to plan against (None: $SHOTFLOW_REMOTE, the user config, the
    storyboard's; "off": none)."""
    from ..expand import load_project

    return read_sequence(load_project(path, overrides, backend), cache_dir=cache_dir, backend=backend, remote=remote)


def _numbers(project: Project) -> dict[str, str]:
    """Board numbers: scene.shot ("2.3") for shots, or their shot codes ("020_0030") when the
    storyboard sets ``editorial.shot_code``; "S1", "S2"… for sheets."""
    numbers: dict[str, str] = {}
    coded = project.editorial.shot_code is not None
    for i, scene in enumerate(project.scenes, 1):
        for j, shot in enumerate(scene.shots, 1):
            numbers[shot] = project.codes[shot] if coded else f"{i}.{j}"
    for node_id in project.omitted:
        if node_id in project.nodes:
            numbers[node_id] = project.codes[node_id] if coded else "omitted"
    sheet = 0
    for node_id in project.nodes:
        if node_id not in numbers:
            sheet += 1
            numbers[node_id] = f"S{sheet}"
    return numbers


_FORMATS = {ext: fmt for fmt, ext in EXTENSIONS.items()}


def _takes(project: Project, spec: NodeSpec, outputs, pick: int, store) -> tuple[Take, ...]:
    """The lock's outputs, each with a file that holds its bytes (or None).

    File names follow the render that wrote them (its takes, pick and format), which may
    differ from the storyboard now; a file in renders/ is used only when its bytes are
    the lock's (through the stat index), else the cache object, else nothing.
    """
    if not outputs:
        return ()
    shape = replace(spec, takes=len(outputs), pick=pick, output_format=_FORMATS.get(outputs[0].ext, spec.output_format))
    names = frame_paths(project, shape)
    takes = []
    for i, (output, name) in enumerate(zip(outputs, names, strict=True), 1):
        path, in_renders = None, False
        if _holds(store, name, output.sha256):
            path, in_renders = name, True
        else:
            obj = store.object_path(output.sha256)
            if _holds(store, obj, output.sha256):
                path = obj
        takes.append(Take(index=i, sha256=output.sha256, ext=output.ext, path=path, in_renders=in_renders))
    return tuple(takes)


def _holds(store, path: Path, digest: str) -> bool:
    try:
        return path.is_file() and store.file_hash(path) == digest
    except OSError:
        return False


def format_duration(seconds: float) -> str:
    """``m:ss`` (``m:ss.s`` when there are tenths): 31 → "0:31", 75.5 → "1:15.5"."""
    tenths = round(seconds * 10)
    minutes, rest = divmod(tenths, 600)
    whole, tenth = divmod(rest, 10)
    return f"{minutes}:{whole:02d}" + (f".{tenth}" if tenth else "")


def frame_counts(durations: list[float], fps) -> list[int]:
    """Frames per shot so that the cut points, and so the total, are exact to the frame
    (cumulative times are rounded, with the rate as an exact rational: see editorial)."""
    from ..editorial import frame_counts as counts

    return counts(durations, fps)


def anchors(node_ids) -> dict[str, str]:
    """The HTML id of each node's panel: ``arrival/wide`` → ``shot-arrival-wide``,
    ``character:mara`` → ``sheet-character-mara``; unique (``-2`` where two would clash,
    as ``a-b/c`` and ``a/b-c`` do)."""
    result: dict[str, str] = {}
    taken: set[str] = set()
    for node_id in node_ids:
        prefix = "sheet" if ":" in node_id else "shot"
        base = name = f"{prefix}-{node_id.replace('/', '-').replace(':', '-')}"
        n = 1
        while name in taken:
            n += 1
            name = f"{base}-{n}"
        taken.add(name)
        result[node_id] = name
    return result
