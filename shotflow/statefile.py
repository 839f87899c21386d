"""The files shotflow keeps, read as data from anyone.

A project may come with its ``.shotflow/`` (committed, copied, unpacked), and a cache may be
shared, so every state file shotflow reads back — the stat index, the last run's manifest and
status, journal entries, leases, action records, the memo, the cache's marker — is read
through here: a regular file only (a link at its end is not followed, a FIFO not waited
on), at most so many bytes, JSON whose depth and top-level shape are checked. A damaged one
is treated as missing and named once in a ``DamagedState`` warning (the CLI prints it as one
``warning:`` line; the core never prints). ``check_own_file`` stops a command whose own file
is a folder, a link or a device where a file must be. Written by hand: no library reads a
file "regular, bounded, not through a link" in one call.
"""

from __future__ import annotations

import errno
import io
import json
import os
import stat as stat_module
import warnings
from pathlib import Path
from typing import Any

from .errors import ShotflowWarning

STATE_FILE_BYTES = 16 * 1024 * 1024  # a journal entry, a lease, an action record, a status or re-roll record
INDEX_FILE_BYTES = 256 * 1024 * 1024  # the stat index and the manifest: ~150 bytes a file, they grow with the project
# JSON values in a state file over STATE_FILE_BYTES, at most. Tiny values ("[],[],…") take ~25 times
# their bytes in memory (16 MB of them: 400 MB), so a crafted 256 MB index would take ~6 GB; a real
# one has a value per 25-40 bytes (~15 a node in the manifest, 2 a file in the stat index), so
# this allows ~250 000 nodes and bounds any file to ~300 MB of memory
INDEX_FILE_VALUES = 4_000_000


def signature(st: os.stat_result) -> tuple[int, int, int, int]:
    """What says a file is unchanged without reading it: size, mtime, ctime and inode (as
    git's index). The ctime is there because no user call can set it: a write that puts the
    old mtime back (``touch -r``, ``cp -p`` over the file, an editor or a sync tool keeping
    times) still moves it. A ``chmod`` moves it too, which costs one hash, never a render.
    The mtime stays: where ctime is the creation time (FAT, Windows) it alone would miss edits.
    The ctime is kept as its distance from the mtime, 0 for nine files in ten (written, then
    left alone): the stat index and the manifest hold tens of thousands of these, and a 0
    costs a JSON character and no memory where a second nanosecond clock costs ~44 bytes."""
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns - st.st_mtime_ns, st.st_ino)


class DamagedState(ShotflowWarning):
    """A state file shotflow keeps (in .shotflow/ or the cache) that cannot be used as it is:
    it is treated as missing (a cache miss, worked out again) and the user is told once."""


class NotRegular(OSError):
    """A path that is not a regular file: a folder, a symbolic link, a FIFO, a device or a socket."""


def read_regular(path: Path | str, limit: int, *, follow: bool = False) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, read without following a link
    at its end (unless ``follow``) and without waiting on a FIFO. FileNotFoundError when there
    is none; NotRegular (an OSError) for a folder, link, FIFO, device or socket, or a file over ``limit``."""
    with open_regular(path, limit, follow=follow) as f:
        data = f.read(limit + 1)
    if len(data) > limit:  # it grew while being read
        raise NotRegular(errno.EFBIG, f"over the {limit / 1048576:g} MB read", str(path))
    return data


def open_regular(path: Path | str, limit: int, *, follow: bool = False) -> io.BufferedReader:
    """``path`` open for reading when it is a regular file of at most ``limit`` bytes (see ``read_regular``)."""
    try:
        fd = os.open(path, os.O_RDONLY | (0 if follow else os.O_NOFOLLOW) | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW
            raise NotRegular(exc.errno, "a symbolic link, not a regular file", str(path)) from None
        if exc.errno == errno.ENXIO:
            raise NotRegular(exc.errno, "a socket, not a regular file", str(path)) from None
        raise
    st = os.fstat(fd)
    if not stat_module.S_ISREG(st.st_mode) or st.st_size > limit:
        os.close(fd)
        if stat_module.S_ISREG(st.st_mode):
            raise NotRegular(errno.EFBIG, f"{st.st_size} bytes, over the {limit / 1048576:g} MB read", str(path))
        kind = "a folder" if stat_module.S_ISDIR(st.st_mode) else "a FIFO or a device"
        raise NotRegular(errno.EINVAL, f"{kind}, not a regular file", str(path))
    return os.fdopen(fd, "rb")


def too_many_values(data: bytes) -> bool:
    """True when JSON ``data`` over STATE_FILE_BYTES may hold more than INDEX_FILE_VALUES values
    (see there), counted without parsing: each value but the first of a container follows a
    comma. Files up to STATE_FILE_BYTES are not counted (a no-op render reads its index and
    manifest: ~2 GB/s of counting would cost it milliseconds), their memory bounded by their size."""
    return len(data) > STATE_FILE_BYTES and data.count(b",") + data.count(b"[") + data.count(b"{") > INDEX_FILE_VALUES


def read_state(path: Path | str, *, limit: int = STATE_FILE_BYTES, warn: bool = True) -> dict[str, Any] | None:
    """The JSON object of a state file of shotflow's own, or None when it is missing or damaged.

    Such a file may come with the project (a committed or copied ``.shotflow/``), so it is
    read as data from anyone: a regular file only (a folder, a link, a FIFO or a device is
    never followed nor waited on), at most ``limit`` bytes, JSON nested as deep as the
    parser goes, and an object at its top (every state file is one). A damaged one is a cache: it is
    treated as missing and a ``DamagedState`` warning names it (``warn=False``: the caller
    reports it). What is inside is the caller's to check where each value is used."""
    try:
        data = read_regular(path, limit)
        if too_many_values(data):
            raise NotRegular(errno.EFBIG, f"over {INDEX_FILE_VALUES:,} JSON values", str(path))
        value = json.loads(data)
    except FileNotFoundError:
        return None
    except OSError as exc:
        reason = exc.strerror or str(exc)
    except RecursionError:
        reason = "nested too deep"
    except MemoryError:
        reason = "too big to read"
    except ValueError:  # not JSON, not UTF-8, or a number too long
        reason = "not JSON"
    else:
        if isinstance(value, dict):
            return value
        reason = f"a JSON {type(value).__name__}, not an object"
    if warn:
        warnings.warn(f"{shown(path)} is damaged ({reason}); shotflow ignores it", DamagedState, stacklevel=2)
    return None


def shown(path: Path | str) -> str:
    """A path as the user would type it (``load.display_path``, which this floor cannot import)."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


def check_own_file(path: Path, what: str, *, regular: bool = False) -> None:
    """Refuse to go on when ``path``, a file shotflow writes, is a folder (which no rename
    replaces) or, with ``regular`` (a file used in place: the run lock, the cache's marker),
    anything but a regular file: a link, a FIFO, a device. Raises UsageError with the fix."""
    from .errors import UsageError

    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return
    mode = st.st_mode
    if stat_module.S_ISREG(mode) or not (regular or stat_module.S_ISDIR(mode)):
        return
    kind = (
        "a folder"
        if stat_module.S_ISDIR(mode)
        else "a symbolic link"
        if stat_module.S_ISLNK(mode)
        else "a FIFO, a device or a socket"
    )
    raise UsageError(
        f"{shown(path)} is {kind} where shotflow keeps {what}",
        hint=f"remove it: {'rm -r' if stat_module.S_ISDIR(mode) else 'rm'} {shown(path)}",
    )
