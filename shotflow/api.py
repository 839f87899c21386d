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
    """Load, check and expand a storyboard: raises InputError with every problem found, and
    UsageError (ConfigError) for ``overrides`` that do not fit it (a var it does not define)."""
    from .expand import load_project as load

    return load(path, overrides, backend)


def plan(
    project: Project,
    *,
    backend: str | None = None,
    force=(),
    only=(),
    cache_dir: Path | None = None,
    store=None,
    include_approved: bool = False,
    remote: str | None = None,
    warn=None,
) -> Plan:
    """What a render would do: each node's key, status and reason, the order and the cost.

    ``store``: the cache to look in (default: the project's, or ``cache_dir``). ``remote`` is
    a team cache URL ("off": none; None: $SHOTFLOW_REMOTE, the user config, the storyboard's):
    a node it holds is fresh "from the remote". ``warn`` gets its one warning."""
    from .plan import prepare

    return prepare(
        project,
        backend=backend,
        force=force,
        only=only,
        cache_dir=cache_dir,
        store=store,
        include_approved=include_approved,
        remote=remote,
        warn=warn,
    )


def render(path: Path | str, options: RenderOptions | None = None, reporter: Reporter | None = None) -> Summary:
    """Render a storyboard (see RenderOptions); failed shots are in the summary, not raised.
    A storyboard that does not load raises as ``load_project`` does; a run refused before it
    starts (``locked``, ``max_cost``, a missing key, another render holding the project) raises
    UsageError, and one that Runware stopped (a bad key, no balance) raises after it."""
    from .render import RenderOptions
    from .render import render as _render
    from .report import RecordingReporter

    return _render(path, options or RenderOptions(), reporter or RecordingReporter())
