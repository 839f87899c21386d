"""``shotflow init``: a new project's first files.

DIR/storyboard.yaml   a small commented storyboard that validates and renders as it is
                      (two characters, a location, four shots, a Turbo shot), its first
                      line pointing editors at the schema of this shotflow
DIR/.gitignore        the cache, the rendered copies and .env stay out of git (the lock goes in)

Neither is written through a symbolic link (``init_project``): DIR may be a clone of
someone else's repository, whose links could lead anywhere.
"""

from __future__ import annotations

import os
import stat as stat_module
from collections.abc import Callable
from pathlib import Path

from .errors import UsageError
from .load import display_path

STARTER = Path(__file__).resolve().parent / "_starter" / "storyboard.yaml"
IGNORED = (".shotflow/", "renders/", ".env")  # .env: where README says a Runware key may go
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def starter_text() -> str:
    """The starter storyboard, its first line naming the schema that this install ships."""
    from ._resources import schema_path

    return f"# yaml-language-server: $schema={schema_path()}\n" + STARTER.read_text(encoding="utf-8")


def init_project(folder: Path, *, force: bool = False, note: Callable[[str], None] = lambda text: None) -> list[Path]:
    """Write the starter files into ``folder`` (made if missing); returns what was written.

    An existing storyboard.yaml is kept unless ``force``; an existing .gitignore gets the
    missing lines appended. ``init`` may run in a folder someone else filled (a cloned
    repository), so it never writes through a symbolic link: a storyboard.yaml that is
    one counts as existing, and ``force`` replaces the link itself (its target is left
    alone); a .gitignore that is a link (or no regular file) is left as it is, with a
    ``note`` saying what to add by hand."""
    folder = Path(folder)
    story = folder / "storyboard.yaml"
    if os.path.lexists(story) and not force:
        what = f" (a symbolic link to {os.readlink(story)})" if os.path.islink(story) else ""
        raise UsageError(
            f"{display_path(story)} already exists{what}; nothing was written",
            hint="edit it, pass --force to replace it, or init another folder",
        )
    if os.path.lexists(folder) and not folder.is_dir():
        raise UsageError(f"{display_path(folder)} is not a folder")
    if story.is_dir() and not story.is_symlink():
        raise UsageError(f"{display_path(story)} is a folder; nothing was written", hint="init another folder")
    folder.mkdir(parents=True, exist_ok=True)
    from .store import atomic_write

    atomic_write(story, starter_text().encode("utf-8"), mode=0o644)  # replaces a link, never writes through
    written = [story]
    if _add_ignored(folder / ".gitignore", note):
        written.append(folder / ".gitignore")
    return written


def _add_ignored(ignore: Path, note: Callable[[str], None]) -> bool:
    """Append the lines of IGNORED that ``ignore`` lacks (made when missing); True when written."""
    try:
        st = os.lstat(ignore)
    except FileNotFoundError:
        st = None
    if st is not None and not stat_module.S_ISREG(st.st_mode):
        kind = f"a symbolic link to {os.readlink(ignore)}" if stat_module.S_ISLNK(st.st_mode) else "not a regular file"
        note(
            f"note: {display_path(ignore)} is {kind}; shotflow left it as it is "
            f"(add {' and '.join(IGNORED)} to it yourself)"
        )
        return False
    # any bytes (a .gitignore in Latin-1): only whole lines are compared; a huge one is read in part
    present = None if st is None else _head(ignore).decode("utf-8", errors="replace")
    lines = set((present or "").splitlines())
    missing = [entry for entry in IGNORED if entry not in lines and entry.rstrip("/") not in lines]
    if not missing:
        return False
    head = "" if present is None else ("" if present.endswith("\n") or not present else "\n")
    comment = "# shotflow: the cache, the rendered copies and .env's key (commit storyboard.lock: it pins the frames)\n"
    fd = os.open(ignore, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW, 0o644)
    with os.fdopen(fd, "a", encoding="utf-8") as f:  # O_NOFOLLOW: a link made meanwhile is not followed either
        f.write(head + comment + "".join(f"{entry}\n" for entry in missing))
    return True


def _head(path: Path, limit: int = 1 << 20) -> bytes:
    """The first ``limit`` bytes of a regular file (a .gitignore is a few lines; one larger is
    someone else's problem: at worst the lines shotflow adds are there twice)."""
    with open(path, "rb") as f:
        return f.read(limit)
