"""The few functions a Python user calls; the CLI calls the same ones."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # validate needs none of these: importing them costs a no-op render's time
    from .model import Project
    from .plan import Plan
    from .render import RenderOptions
    from .report import Reporter, Summary


def load_project(path: Path | str, overrides: dict[str, Any] | None = None, backend: str | None = None) -> Project:
    """Load, check and expand a storyboard (raises InputError with every problem found)."""
    import gc

    from .expand import expand
    from .load import load
    from .model import check_frame_names

    # Loading builds a few hundred thousand small objects and frees none: the cyclic
    # collector would walk them again and again for nothing (a fifth of the time).
    enabled = gc.isenabled()
    gc.disable()
    try:
        loaded = load(path, overrides)
        project = expand(loaded, backend=backend)
        loaded.release()
        check_frame_names(project.nodes)  # two nodes must never write one file in renders/
        return project
    finally:
        if enabled:
            gc.enable()


def plan(project: Project, *, backend: str | None = None, force=(), only=(), cache_dir: Path | None = None,
         store=None, include_approved: bool = False, remote: str | None = None, warn=None) -> Plan:
    """What a render would do: each node's key, status and reason, the order and the cost.

    ``store``: the cache to look in (default: the project's, or ``cache_dir``). ``remote`` is
    a team cache URL ("off": none; None: $SHOTFLOW_REMOTE, the user config, the storyboard's):
    a node it holds is fresh "from the remote". ``warn`` gets its one warning."""
    from . import graph as graphs
    from .plan import make_plan
    from .render import ProjectCache, RenderOptions, approved_holds, open_team, select
    from .store import LockFile, open_store

    g = graphs.build(project)
    ids = list(project.nodes)
    store = store or open_store(project.root, cache_dir)
    lock = LockFile.read(project.lock_path)
    team = open_team(remote, project, store, warn or (lambda text: None))
    cache = ProjectCache(store, lock, team=team)
    hold = approved_holds(project, lock, store, RenderOptions(include_approved=include_approved))
    return make_plan(project, g, cache, backend=backend, force=select(tuple(force), ids, "--force"),
                     only=select(tuple(only), ids, "--only") if only else None, hold=hold)


def render(path: Path | str, options: RenderOptions | None = None, reporter: Reporter | None = None) -> Summary:
    """Render a storyboard (see RenderOptions); failed shots are in the summary, not raised."""
    from .render import RenderOptions
    from .render import render as _render
    from .report import RecordingReporter

    return _render(path, options or RenderOptions(), reporter or RecordingReporter())
