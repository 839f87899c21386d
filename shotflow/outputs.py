"""Where an export or a graph is written (``-o``, ``--csv``, ``--otio``, ...).

    -                        standard output
    a missing or regular file  written beside itself, then renamed into place (atomic)
    a symlink, device, FIFO    written through (opened and truncated), never replaced by a rename
    refused                    a folder; the storyboard, an include, a template, the lock file
                               or a reference image (by real path); a folder that does not
                               exist; a default path (renders/…, import's SCRIPT.yaml) that
                               is a link or a special file, or that a link leads out of the
                               project

``check`` runs before anything is drawn (a refused path costs nothing); ``write`` and
``place`` do the writing.
"""

from __future__ import annotations

import os
import shutil
import stat as stat_module
import sys
from collections.abc import Iterable
from pathlib import Path

from .errors import UsageError
from .load import display_path

STDOUT = "-"


def is_stdout(path: Path | str) -> bool:
    return str(path) == STDOUT


def check(path: Path | str, project=None, *, given: bool = True, what: str = "output") -> None:
    """Refuse an output path before any work (see the module docstring). ``given``: the
    user named it on the command line (else it is a default inside the project, or, with no
    ``project``, inside the project folder of the folder it is in)."""
    from .trust import Refused, check_path_text, inside, project_folder

    if is_stdout(path):
        return
    text = os.fspath(path)
    try:
        check_path_text(text)
    except Refused as exc:
        raise UsageError(f"{what} path: {exc.message}") from None
    path = Path(text)
    parent = path.parent if str(path.parent) else Path(".")
    if given and not parent.is_dir():
        raise UsageError(
            f"cannot write {display_path(path)}: the folder {display_path(parent)} does not exist",
            hint="create it first, or write somewhere else",
        )
    try:
        st = os.stat(path) if os.path.lexists(path) else None
    except FileNotFoundError:
        st = None  # a dangling link: written through (given), or checked below (a default)
    except OSError as exc:
        raise UsageError(f"cannot write {display_path(path)}: {exc.strerror or exc}") from None
    if st is not None and stat_module.S_ISDIR(st.st_mode):
        raise UsageError(f"cannot write {display_path(path)}: it is a folder", hint="name a file")
    real = os.path.realpath(path)
    if project is not None:
        protected = {os.path.realpath(p): p for p in (*project.inputs, project.lock_path)}
        hit = protected.get(real)
        if hit is not None:
            raise UsageError(
                f"refusing to write {display_path(path)}: it is {_role(project, Path(hit))}", hint="name another file"
            )
    if not given:  # a default path: inside the project (without one, the folder it is in)
        root = project_folder(project.root if project is not None else parent)
        folder = os.path.realpath(parent) if parent.exists() else None
        if (folder is not None and not inside(folder, root)) or not inside(real, root):
            raise UsageError(
                f"refusing to write {display_path(path)}: it leads to {real}, outside the "
                f"project folder {root} (a symbolic link?)",
                hint="pass -o PATH to choose",
            )
        if _through(path):  # a link or special file: a committed link could lead to .git/config, a hook…
            raise UsageError(
                f"refusing to write through {display_path(path)}: it is a symbolic link or a special "
                "file, and a default path is only ever written as a file of shotflow's own",
                hint="remove it, or pass -o PATH to write through it",
            )


def _role(project, path: Path) -> str:
    if path == project.path:
        return "the storyboard itself"
    if path == project.lock_path:
        return "the storyboard's lock file"
    if path.suffix.lower() in (".yaml", ".yml"):
        return "a file the storyboard includes"
    if path.suffix.lower() in (".j2", ".jinja", ".jinja2", ".txt"):
        return "a template the storyboard uses"
    return "a file the storyboard reads (a reference image?)"


def _through(path: Path) -> bool:
    """An existing path that is written through, not replaced: a link, a device, a FIFO."""
    try:
        if os.path.islink(path):
            return True
        return not stat_module.S_ISREG(os.stat(path).st_mode)
    except FileNotFoundError:
        return False


def write(path: Path | str, data: bytes | Iterable[bytes]) -> None:
    """Write ``data`` to the output ``path`` (checked before)."""
    chunks: Iterable[bytes] = [bytes(data)] if isinstance(data, (bytes, bytearray, memoryview)) else data
    if is_stdout(path):
        out = sys.stdout.buffer
        for chunk in chunks:
            out.write(chunk)
        out.flush()
        return
    path = Path(path)
    if _through(path):
        with open(path, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
        return
    from .store import atomic_write

    atomic_write(path, chunks, mode=0o644)


def temp_dir(path: Path | str) -> str | None:
    """Where to make a temporary file that ``place`` will move to ``path``: beside it when
    it is renamed into place, else the system's temporary folder."""
    if is_stdout(path) or _through(Path(path)):
        return None
    return str(Path(path).parent)


def place(made: Path | str, path: Path | str) -> None:
    """Put a finished temporary file ``made`` at the output ``path`` (renamed into place,
    or copied through to standard output, a link, a device or a FIFO)."""
    if not is_stdout(path) and not _through(Path(path)):
        os.chmod(made, 0o644)
        os.replace(made, path)
        return
    with open(made, "rb") as src:
        if is_stdout(path):
            shutil.copyfileobj(src, sys.stdout.buffer)
            sys.stdout.buffer.flush()
        else:
            with open(path, "wb") as dst:
                shutil.copyfileobj(src, dst)
