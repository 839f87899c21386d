"""A per-user cache of pure results keyed by content (like ``__pycache__``).

It holds compiled prompt templates, the fact that a file's exact bytes passed the schema
check, the shapes of Runware tasks that passed their model's schema and how long a model's
tasks took at an API host (when to ask about the next ones), so an unchanged
storyboard is not parsed by Jinja or checked by jsonschema again, and a render's first
requests leave without loading jsonschema. Everything in it is derived and safe to delete. It lives in
``$SHOTFLOW_USER_CACHE``, else ``$XDG_CACHE_HOME/shotflow``, else ``~/.cache/shotflow``;
``SHOTFLOW_USER_CACHE=off`` turns it off. A cache that cannot be written is skipped.

**Nothing in it is trusted unless this user wrote it.** A cache folder can be shared,
restored by CI from another machine, or written by another user; compiled templates are
code and a "passed" marker skips a check. So every entry is authenticated with a secret
key of this user, kept *outside* the cache folder (``$SHOTFLOW_USER_KEY``, else
``usercache.key`` in the platform's per-user state folder, mode 0600)::

    marker name  = HMAC(key, kind + key)       a marker nobody else can name
    blob         = HMAC(key, payload) + payload a tampered blob is ignored and rebuilt

A key file that another user owns or others may read is not used (the cache is then
off, with everything still correct, only slower).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
from functools import cache
from pathlib import Path

_MAC = 32  # bytes of HMAC-SHA256


@cache
def user_cache_dir() -> Path | None:
    env = os.environ.get("SHOTFLOW_USER_CACHE")
    if env is not None:
        root = None if env.lower() in ("", "0", "off", "no") else Path(env)
    else:
        base = os.environ.get("XDG_CACHE_HOME")
        root = (Path(base) if base else Path.home() / ".cache") / "shotflow"
    if root is None or _key() is None:
        return None
    return root


def key_path() -> Path:
    env = os.environ.get("SHOTFLOW_USER_KEY")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_state_dir("shotflow", appauthor=False)) / "usercache.key"


@cache
def _key() -> bytes | None:
    """This user's secret (made on first use); None when no safe key can be had."""
    path = key_path()
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return _new_key(path)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        mine = not hasattr(os, "getuid") or st.st_uid == os.getuid()
        if not mine or st.st_mode & 0o077 or not 0 < st.st_size <= 1024:
            return None  # someone else's, or readable by others: not a secret
        return f.read()


def _new_key(path: Path) -> bytes | None:
    secret = os.urandom(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it meanwhile
        _key.cache_clear()
        return _key()
    except OSError:
        return None
    with os.fdopen(fd, "wb") as f:
        f.write(secret)
    return secret


def _mac(data: bytes) -> bytes:
    return hmac.new(_key() or b"", data, hashlib.sha256).digest()


def seal(payload: bytes) -> bytes:
    """``payload`` with this user's MAC in front (see ``unseal``)."""
    return _mac(payload) + payload


def unseal(blob: bytes) -> bytes | None:
    """The payload of a sealed blob, or None when this user did not write it."""
    if _key() is None or len(blob) < _MAC:
        return None
    payload = blob[_MAC:]
    return payload if hmac.compare_digest(blob[:_MAC], _mac(payload)) else None


def marker(kind: str, key: str) -> Path | None:
    root = user_cache_dir()
    if root is None:
        return None
    name = hmac.new(_key() or b"", f"{kind}\0{key}".encode(), hashlib.sha256).hexdigest()
    return root / kind / name[:2] / name


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


def load(name: str, limit: int = 1 << 20) -> bytes | None:
    """The payload of the sealed file ``name`` of the cache; None when it is absent, larger than
    ``limit``, the cache is off, or this user did not write it."""
    root = user_cache_dir()
    if root is None:
        return None
    try:
        with open(root / name, "rb") as f:
            blob = f.read(limit + _MAC + 1)
    except OSError:
        return None
    return None if len(blob) > limit + _MAC else unseal(blob)


def store(name: str, payload: bytes) -> None:
    """Write ``payload`` sealed as the file ``name`` of the cache, whole or not at all (a cache
    that cannot be written is skipped)."""
    root = user_cache_dir()
    if root is None:
        return
    path = root / name
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        root.mkdir(parents=True, exist_ok=True)
        temp.write_bytes(seal(payload))
        os.replace(temp, path)
    except OSError:
        with contextlib.suppress(OSError):
            temp.unlink()
