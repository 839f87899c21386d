"""``shotflow clean``: remove renders/, the cache, or both; the lock file stays.

A cache may be shared (``--cache DIR``, ``SHOTFLOW_CACHE``: several projects, a network
folder), and may have been pointed at a folder that holds other things. So ``--cache``
removes only what shotflow keeps there (``store.CACHE_ENTRIES`` and the marker), and only in
a folder marked as a shotflow cache (``CACHEDIR.TAG``, written by every render); it refuses
any other folder. The project's own ``.shotflow/`` is shotflow's by name, marked or not.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from ._text import counted
from .errors import UsageError
from .load import display_path
from .state import ProjectState
from .store import CACHE_ENTRIES, CACHE_MARKER, Record, Store, open_store
from .trust import storyboard_file


def _size(path: Path) -> tuple[int, int]:
    if path.is_file() or path.is_symlink():
        return 1, path.lstat().st_size
    files = total = 0
    for folder, _, names in os.walk(path):  # links are counted, never followed
        for name in names:
            files += 1
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return files, total


def _refuse_link(target: Path) -> None:
    """A folder shotflow removes must be a real folder: through a link (committed to a
    repository, say) ``clean`` would empty whatever it points to."""
    if target.is_symlink():
        raise UsageError(
            f"{display_path(target)} is a symbolic link (to {os.readlink(target)}); "
            "shotflow removes only a real folder of its own",
            hint="remove the link yourself if that is what you want",
        )


def _cost(record: Record | None) -> float:
    """What an action record says its frames cost (0 for none, or for what is not a price: the
    records are files anyone could have written)."""
    cost = record.cost if record is not None else None
    return float(cost) if isinstance(cost, (int, float)) and 0 <= cost < 1e9 else 0.0


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def cache_entries(store: Store, storyboard: Path) -> list[Path]:
    """What ``clean --purge-cache`` may remove: shotflow's own entries of the cache folder (and, when
    the cache is the project's ``.shotflow/``, this storyboard's run state); never anything else.

    Raises UsageError for a folder that is not marked as a shotflow cache."""
    _refuse_link(store.state_dir)  # checked first: a link's target is what the cache folder resolves to
    folder = store.cache_dir
    own = folder == store.state_dir  # the project's .shotflow/: shotflow's by its name
    if not folder.exists():
        return []
    if not own and not store.is_marked():
        raise UsageError(
            f"{display_path(folder)} is not a shotflow cache (it has no {CACHE_MARKER} written by "
            "shotflow); nothing was removed",
            hint="check --cache and SHOTFLOW_CACHE; a render marks the cache folder it uses",
        )
    names = [*CACHE_ENTRIES, CACHE_MARKER]
    entries = [folder / name for name in names]
    if own:
        entries += [folder / "stat.json", *ProjectState(storyboard).own_files()]
    entries += sorted(folder.glob(".tmp-*"))  # left by a write that was killed
    return [path for path in entries if path.exists()]


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def clean(
    storyboard: Path, what: str, *, cache_dir: Path | None = None, dry_run: bool = False, force: bool = False
) -> list[str]:
    """Remove what was asked; returns the lines to show. ``what``: renders, cache or all."""
    storyboard = storyboard_file(storyboard)  # a link may not move the project (and what is removed)
    if not storyboard.is_file():
        raise UsageError(f"file not found: {display_path(storyboard)}")
    store = open_store(storyboard.parent, cache_dir)
    if dry_run or not store.state_dir.exists():  # no render ever ran here: none can be running
        return _clean(storyboard, store, what, dry_run, force)
    from .errors import BusyError
    from .store import ProjectLock

    lock = ProjectLock(store.state_dir, 0)
    try:  # a render that is running reads and writes what this removes: its lock first
        with lock:
            return _clean(storyboard, store, what, dry_run, force)
    except BusyError:
        raise BusyError(
            f"a shotflow render of this project is running ({lock.holder()}); nothing was removed",
            hint="clean once it has finished",
        ) from None


def _clean(storyboard: Path, store: Store, what: str, dry_run: bool, force: bool) -> list[str]:
    root = storyboard.parent
    lines: list[str] = []
    verb = "would remove" if dry_run else "removed"
    paid = 0.0
    entries: list[Path] = []
    if what in ("cache", "all"):
        entries = cache_entries(store, storyboard)  # refuses before anything is removed
        pending = store.journal.entries()
        if pending and not force:
            raise UsageError(
                f"the cache holds {len(pending)} task(s) sent to Runware whose results were not "
                "collected yet; render again to collect them first",
                hint="or pass --force to throw them away",
            )
        paid = sum(_cost(record) for _, record in store.actions())
    if what in ("renders", "all"):
        target = root / "renders"
        if not target.exists():
            lines.append(f"nothing to remove: {display_path(target)}")
        else:
            _refuse_link(target)
            files, total = _size(target)
            lines.append(f"{verb} {display_path(target)}/ ({counted(files, 'file')}, {_human(total)})")
            if not dry_run:
                shutil.rmtree(target)
    if what in ("cache", "all"):
        folder = store.cache_dir
        if not entries:
            lines.append(f"nothing to remove: {display_path(folder)}")
        else:
            files = total = 0
            for entry in entries:
                f, t = _size(entry)
                files, total = files + f, total + t
            lines.append(
                f"{verb} shotflow's cache in {display_path(folder)}/ ({counted(files, 'file')}, {_human(total)})"
            )
            if not dry_run:
                for entry in entries:
                    _remove(entry)
                with contextlib.suppress(OSError):
                    folder.rmdir()  # only when nothing else is left in it
    if paid:
        again = (
            "; the lock file still names them, re-rendering pays again "
            "(those in renders/ too, unless a team remote holds them)"
        )
        lines.append(f"the cache held frames that cost ${paid:.2f} to generate" + ("" if dry_run else again))
    if not dry_run:
        ProjectState(storyboard).manifest_path.unlink(missing_ok=True)
    return lines
