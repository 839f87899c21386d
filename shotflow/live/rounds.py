"""The watched project, warm between rounds: load, plan, render what changed, redraw.

    Workspace(storyboard, options)
    ├── round(render=True) -> Update      one pass; never raises for bad input
    │     load_project ──✗──► Update(errors=[...]): the last good board stays
    │     graph, plan (warm store + lock) ─► nothing to render? no session at all
    │     render.render_loaded(only=what renders) ─► the same cache, keys and rules as `render`
    │     plan again ─► read_sequence ─► panels whose content changed ─► their HTML
    ├── page()                            the whole board for a browser that connects
    ├── frames {sha256: path}             what the page may load (and nothing else)
    └── inputs / folders                  what the watcher watches

Kept between rounds: the imported modules, the store (its stat index and verified objects),
the lock file (read again only when something else wrote it), and the last board's panels
and their HTML, so a round redraws only what changed. The first round renders in full
(renders/ copies, lock pruning, the no-op record); later ones only what changed.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ShotflowError
from ..statefile import signature
from ..status import Status

if TYPE_CHECKING:
    from ..exports._frames import Sequence
    from ..exports.board import _View
    from ..model import Project

_SPEC_FIELDS: tuple[str, ...] = ()  # NodeSpec fields a panel shows (all but where it was read from)


@dataclass
class Update:
    """What one round changed, as the boards need it (JSON-ready)."""

    version: int
    errors: list[str] = field(default_factory=list)  # as the CLI prints them; [] clears the board's
    panels: dict[str, str] = field(default_factory=dict)  # panel id -> its new <article>
    sections: str | None = None  # every <section>, when shots were added, removed or moved
    header: str | None = None  # the page's header, when it changed
    summary: str = ""  # one line: what the round did
    elapsed: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "errors": self.errors,
            "panels": self.panels,
            "sections": self.sections,
            "header": self.header,
            "summary": self.summary,
            "elapsed": round(self.elapsed, 4),
        }


class LiveImages:
    """Image sources of the live board: ``frames/SHA.EXT``, served from ``Workspace.frames``."""

    def src(self, take, edge: int) -> str:
        return f"frames/{take.sha256}.{take.ext}"

    def file_src(self, path: Path, edge: int, *, link: bool = True) -> str:
        """A character's or a location's given image (the lineup): embedded, shrunk, as the
        static board does; the server never serves a file that is no frame."""
        from ..exports.board import _Images

        return _Images(path.parent, relative=False, full_res=False).file_src(path, edge, link=False)


class Workspace:
    """One storyboard watched: its last good state and the board drawn from it."""

    def __init__(
        self,
        storyboard: Path,
        options,
        *,
        progress: Callable[[str], None] | None = None,
        early: Callable[[dict[str, str]], None] | None = None,
    ):
        from ..trust import storyboard_file

        self.storyboard = storyboard_file(storyboard)
        self.options = options  # render.RenderOptions: backend, jobs, max cost, --set, cache
        self.progress = progress or (lambda text: None)
        # a panel whose frame was just rendered, before the round ends ({id: html}): the edited
        # shot shows while its downstream still renders
        self.early = early or (lambda panels: None)
        self.project: Project | None = None  # the last project that loaded
        self.version = 0
        self.board_version = 0  # the round that last redrew the board
        self.errors: list[str] = []
        self.frames: dict[str, Path] = {}
        self._store = None
        self._store_backend: str | None = None
        self._lock = None
        self._lock_stat: tuple | None = None
        self._seq: Sequence | None = None
        self._view: _View | None = None
        self._panels: dict[str, tuple[tuple, str]] = {}  # id -> (what it shows, its HTML)
        self._structure: tuple | None = None
        self._header: str | None = None
        self._page: tuple[int, str] | None = None  # (board version, the page drawn for it)
        self._board: tuple[Any, int] = (None, 0)  # (the Sequence on the board, its version)
        self._page_lock = threading.Lock()
        self._stamps: dict[Path, tuple | None] = {}
        self._rendered_once = False
        self._mutex = threading.Lock()  # one round at a time

    # -- what the watcher watches -----------------------------------------------------------

    @property
    def inputs(self) -> set[Path]:
        """Files whose change starts a round: the storyboard, its includes, templates, reference files."""
        files = {self.storyboard}
        if self.project is not None:
            files.update(Path(p).resolve() for p in self.project.inputs)
        return files

    @property
    def folders(self) -> set[Path]:
        """Folders to watch (not recursively): those of the inputs, and the project's templates/
        (shotflow's own built-in templates do not change while it runs)."""
        from .._resources import data_dir

        builtin = data_dir("templates").resolve()
        folders = {p.parent for p in self.inputs if p.parent != builtin}
        templates = self.storyboard.parent / "templates"
        if templates.is_dir():
            folders.add(templates)
        return {f for f in folders if f.is_dir()}

    def concerns(self, path: Path) -> bool:
        """Whether a changed file is one a round reads (a new template counts; renders/ never does)."""
        path = Path(path)
        if path in self.inputs:
            return True
        if path.parent == self.storyboard.parent / "templates":
            return True
        # while the storyboard does not load, its includes are unknown: any YAML beside it counts
        return self.project is None and path.suffix in (".yaml", ".yml")

    def changed_since_last_round(self) -> bool:
        """Whether any input differs (size, mtime, ctime, inode) from when the last round read it."""
        return any(_stat(p) != stamp for p, stamp in self._stamps.items()) or not self._stamps

    # -- a round --------------------------------------------------------------------------------

    def round(self, *, render: bool = True) -> Update:
        """Load, render what changed (unless ``render`` is False), and say what the boards must change."""
        with self._mutex:
            started = time.perf_counter()
            self.version += 1
            update = Update(self.version)
            try:
                self._round(render, update)
            except ShotflowError as exc:
                update.errors = [f"error: {line}" for line in exc.lines()]
                update.summary = "the storyboard has errors: the board keeps the last good frames"
            except Exception as exc:  # noqa: BLE001 - the server survives a bug; the board says it
                if os.environ.get("SHOTFLOW_DEBUG"):
                    raise
                update.errors = [
                    f"internal error: {type(exc).__name__}: {exc}",
                    (
                        "this is a bug in shotflow; run the same command with SHOTFLOW_DEBUG=1 "
                        "to see the traceback, and please report it"
                    ),
                ]
                update.summary = "shotflow broke during this round: the board keeps the last good frames"
            self.errors = update.errors
            update.elapsed = time.perf_counter() - started
            return update

    def _round(self, render: bool, update: Update) -> None:
        from .. import graph as graphs
        from ..expand import load_project
        from ..render import render_loaded

        # stamped before reading: a change made while the round reads shows in the next one
        self._stamps = {p: _stat(p) for p in self.inputs}
        project = load_project(self.storyboard, self.options.overrides, self.options.backend)
        for path in project.inputs:
            self._stamps.setdefault(Path(path).resolve(), _stat(Path(path)))
        graph = graphs.build(project)
        self.project = project
        store, lock = self._warm(project)
        summary_text = "board read"
        plan = self._plan(project, graph, store, lock)
        if render:
            todo = {n.id for n in plan.to_render()}
            if todo or not self._rendered_once:
                reporter = _Progress(self.progress, len(todo), lambda outcome: self._early(outcome, project, store))
                only = None if not self._rendered_once else todo
                try:
                    summary = render_loaded(project, graph, store, self.options, reporter, lock=lock, only=only)
                    self._rendered_once = True
                    summary_text = _describe(summary)
                except ShotflowError as exc:  # refused or stopped (--max-cost, a key, the balance)
                    update.errors = [f"error: {line}" for line in exc.lines()]
                    summary_text = "the render was refused or stopped: the board shows the frames there are"
                self._lock_stat = _stat(project.lock_path)
                plan = None  # frames changed: plan again for the board
            else:
                summary_text = "nothing to render"
        self._redraw(project, graph, store, lock, update, plan)
        update.summary = summary_text

    def _early(self, outcome, project, store) -> None:
        """A frame rendered during the round: its panel goes out at once (the round's end redraws it)."""
        from ..exports._frames import Take

        old = self._seq.panels.get(outcome.id) if self._seq is not None else None
        spec = project.nodes.get(outcome.id)
        record = outcome.value
        if old is None or spec is None or self._view is None or record is None or not record.outputs:
            return  # a new shot: it comes with the round's redraw
        takes = tuple(
            Take(index=i, sha256=o.sha256, ext=o.ext, path=store.object_path(o.sha256), in_renders=False)
            for i, o in enumerate(record.outputs, 1)
        )
        panel = replace(
            old,
            spec=spec,
            state=Status.FRESH,
            message=None,
            takes=takes,
            pick=max(1, min(spec.pick, len(takes))),
            key=record.key,
            cost=record.cost,
            backend=record.backend,
            held=None,
        )
        for take in takes:
            self.frames[take.sha256] = take.file
        self.early({outcome.id: self._view.panel(panel)})

    def _warm(self, project):
        """The store and the lock file, kept between rounds (the lock re-read when another wrote it)."""
        from ..store import LockFile, open_store

        backend = self.options.backend or project.backend
        if self._store is None or self._store_backend != backend:
            self._store = open_store(project.root, self.options.cache_dir, durable=backend != "preview")
            self._store_backend = backend
        stat = _stat(project.lock_path)
        if self._lock is None or stat != self._lock_stat:
            self._lock = LockFile.read(project.lock_path)
            self._lock_stat = stat
        return self._store, self._lock

    def _plan(self, project, graph, store, lock):
        from ..plan import approved_holds, make_plan
        from ..store import ProjectCache

        cache = ProjectCache(store, lock, self.options.refresh_urls)
        backend = self.options.backend or project.backend
        hold = approved_holds(project, cache, self.options.include_approved, backend=backend)
        return make_plan(project, graph, cache, backend=backend, hold=hold)

    # -- the board ------------------------------------------------------------------------------

    def _redraw(self, project, graph, store, lock, update: Update, plan=None) -> None:
        """Read the frames as every export does, and keep the HTML of the panels that changed."""
        from ..exports._frames import read_sequence
        from ..exports.board import view_of

        plan = plan if plan is not None else self._plan(project, graph, store, lock)
        seq = read_sequence(project, plan=plan, lock=lock, store=store, remote=self.options.remote)
        images = LiveImages()
        view = view_of(seq, images)
        structure = (
            tuple(p.id for p in seq.sheets),
            tuple((s.info, tuple(p.id for p in s.panels)) for s in seq.scenes),
        )
        panels: dict[str, tuple[tuple, str]] = {}
        for panel in seq.panels.values():
            shown = _shown(panel, view)
            previous = self._panels.get(panel.id)
            if previous is not None and previous[0] == shown:
                html = previous[1]
            else:
                html = view.panel(panel)
                update.panels[panel.id] = html
            panels[panel.id] = (shown, html)
        header = view.header()
        if structure != self._structure:
            update.sections = "\n".join(
                ([view.sheets()] if seq.sheets else []) + [view.scene(scene) for scene in seq.scenes]
            )
            update.panels = {}
        if header != self._header:
            update.header = header
        self._seq, self._view, self._panels, self._structure, self._header = seq, view, panels, structure, header
        self.board_version = update.version
        self._board = (seq, update.version)  # what page() draws: replaced in one step
        self.frames = {t.sha256: t.path for p in seq.panels.values() for t in p.takes if t.path is not None}

    def page(self, *, head: str, script: str) -> str:
        """The whole board as it stands (drawn again only after a round changed it); ``head``
        gets a ``<meta name="shotflow-version">`` of the round that drew it."""
        from ..exports.board import render_html

        # not the round's lock: a browser that connects during a long render gets the last board
        with self._page_lock:
            seq, version = self._board
            head += f'<meta name="shotflow-version" content="{version}">\n'
            if seq is None:
                return _empty_page(self.storyboard, head, script)
            if self._page is None or self._page[0] != version:
                self._page = (version, render_html(seq, LiveImages(), head=head, script=script))
            return self._page[1]


class _Progress:
    """A reporter that tells the boards how far a round's render is (the core never prints)."""

    def __init__(self, say: Callable[[str], None], todo: int, rendered: Callable[[Any], None]):
        self.say = say
        self.todo = todo
        self.rendered = rendered
        self.done = 0

    def run_started(self, start) -> None:
        if start.to_render:
            self.say(f"rendering {start.to_render} of {start.total} on {start.backend}…")

    def node_started(self, node_id: str) -> None:
        pass

    def node_done(self, outcome) -> None:
        if outcome.status is Status.RENDERED or outcome.status is Status.FAILED:
            self.done += 1
            self.say(f"{outcome.status.value} {outcome.id} ({self.done} of {self.todo})")
        if outcome.status is Status.RENDERED:
            self.rendered(outcome)

    def note(self, text: str) -> None:
        self.say(text)

    def run_finished(self, summary) -> None:
        pass


def _describe(summary) -> str:
    from ..report import summary_lines

    return summary_lines(summary)[0]


def _shown(panel, view) -> tuple:
    """Everything a panel's HTML is drawn from, comparable between rounds."""
    global _SPEC_FIELDS
    if not _SPEC_FIELDS:
        _SPEC_FIELDS = tuple(f.name for f in fields(panel.spec) if f.name != "where")
    spec = panel.spec
    return (
        tuple(getattr(spec, name) for name in _SPEC_FIELDS),
        replace(panel, spec=None),
        view.ids[panel.id],
        tuple(view.users.get(panel.id, ())),
        tuple(view.ids.get(r.target, "") for r in spec.refs),
    )


def _stat(path: Path) -> tuple | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return signature(st)


def _empty_page(storyboard: Path, head: str, script: str) -> str:
    """The page while the storyboard has never loaded: its errors arrive as events."""
    from html import escape

    from ..exports.board import CSS, REVIEW_CSS

    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(storyboard.name)} — storyboard</title>\n<style>{CSS}{REVIEW_CSS}</style>\n{head}</head>\n"
        f'<body data-shots="0" data-sheets="0" data-storyboard="{escape(storyboard.name)}">\n'
        f'<header class="top"><p class="kicker">Storyboard</p><h1>{escape(storyboard.name)}</h1>'
        '<p class="facts">the storyboard has not loaded yet</p></header>\n'
        f"<script>{script}</script>\n</body>\n</html>\n"
    )
