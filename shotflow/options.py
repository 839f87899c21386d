"""``RenderOptions``: everything a render can be asked (the CLI's flags, the API's arguments),
as one frozen value; its ``signature`` is what the no-op fast path compares with the last run's."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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

    def __post_init__(self) -> None:
        if self.locked and self.force:
            from .errors import UsageError

            raise UsageError(
                "--force and --locked contradict each other: a new take changes the lock, and --locked "
                "renders exactly what the lock pins",
                hint="drop --locked to re-roll, or --force to check the lock",
            )

    def signature(self) -> str:
        """What must equal the last run's for the no-op fast path to apply."""
        from ._version import __version__
        from .staging import DRAWING_VERSION  # a newer preview drawing: plan again (its keys changed)

        cache = str(self.cache_dir or os.environ.get("SHOTFLOW_CACHE") or "")
        made_by = [__version__, DRAWING_VERSION, self.backend, self.overrides or {}, cache]
        asked = [self.locked, self.refresh_urls, self.include_approved]
        return json.dumps(made_by + asked, sort_keys=True, default=str)
