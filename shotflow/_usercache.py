"""A per-user cache of pure results keyed by content (like ``__pycache__``).

It holds compiled prompt templates and the fact that a file's exact bytes passed the
schema check, so an unchanged storyboard is not parsed by Jinja or checked by
jsonschema again. Everything in it is derived and safe to delete. It lives in
``$SHOTFLOW_USER_CACHE``, else ``$XDG_CACHE_HOME/shotflow``, else ``~/.cache/shotflow``;
``SHOTFLOW_USER_CACHE=off`` turns it off. A cache that cannot be written is skipped.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path


@cache
def user_cache_dir() -> Path | None:
    env = os.environ.get("SHOTFLOW_USER_CACHE")
    if env is not None:
        return None if env.lower() in ("", "0", "off", "no") else Path(env)
    base = os.environ.get("XDG_CACHE_HOME")
    return (Path(base) if base else Path.home() / ".cache") / "shotflow"


def marker(kind: str, key: str) -> Path | None:
    root = user_cache_dir()
    return None if root is None else root / kind / key[:2] / key


def has(kind: str, key: str) -> bool:
    path = marker(kind, key)
    return path is not None and path.exists()


def remember(kind: str, key: str) -> None:
    path = marker(kind, key)
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    except OSError:
        pass
