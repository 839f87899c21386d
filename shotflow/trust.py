"""What a storyboard may touch: the trust model, in one place.

    a storyboard (and its includes, templates, reference files) ── data, never code
        reads   inside its project folder, or a folder the user allows
        writes  inside the project, its cache, and outputs named on the command line
        fetches public http(s) addresses (private ones only when the user allows them)

The **project folder** is the top of the git work tree that holds the storyboard, else
the storyboard's own folder (``boards/ep1.yaml`` may read ``refs/`` beside ``boards/``).
Only the user loosens this, never a storyboard: ``--allow-path DIR`` and
``--allow-private-urls`` on the command line, or the user's own config file
(``~/.config/shotflow/config.toml``, or the platform's equivalent; ``$SHOTFLOW_CONFIG``
names another one)::

    allow_paths = ["~/studio/library"]   # folders any storyboard may read
    allow_private_urls = false           # reference URLs on loopback / private networks
    max_file_mb = 16                     # largest YAML file or template read

The config is read only when a limit is reached (a file outside the project, a big
file, a private URL): the everyday paths never parse it.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import stat as stat_module
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from .errors import ConfigError

DEFAULT_MAX_FILE_BYTES = 16 * 1024 * 1024  # one YAML file or template
MAX_IMAGE_PIXELS = 50_000_000  # a reference image: 50 megapixels
MAX_PATH_CHARS = 4096
_SYSTEM_TREES = ("/proc", "/sys", "/dev")  # pseudo-files: never image or YAML data


@dataclass(frozen=True)
class Policy:
    """What the user allows beyond the defaults (command line plus user config)."""

    allow_paths: tuple[Path, ...] = ()
    allow_private_urls: bool = False
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    config: Path | None = None  # the user config it was read from, for messages


class Refused(Exception):
    """A path or address the trust model refuses; callers turn it into a located error."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message, self.hint = message, hint


# -- the policy in force ---------------------------------------------------------------

_cli: contextvars.ContextVar[Policy | None] = contextvars.ContextVar("shotflow_trust", default=None)


def user_config_path() -> Path:
    from .userconfig import config_path

    return config_path()


@lru_cache(maxsize=8)
def _read_config(path: Path) -> Policy:
    from . import userconfig

    data = userconfig.load_from(path)
    if not data:
        return Policy(config=path)
    paths = data.get("allow_paths", [])
    if not isinstance(paths, list) or not all(isinstance(p, str) and p for p in paths):
        raise ConfigError(f"{path}: allow_paths must be a list of folder paths")
    private = data.get("allow_private_urls", False)
    if not isinstance(private, bool):
        raise ConfigError(f"{path}: allow_private_urls must be true or false")
    mb = data.get("max_file_mb", DEFAULT_MAX_FILE_BYTES // (1024 * 1024))
    if isinstance(mb, bool) or not isinstance(mb, (int, float)) or mb <= 0:
        raise ConfigError(f"{path}: max_file_mb must be a positive number of megabytes")
    return Policy(
        allow_paths=tuple(_folder(p) for p in paths),
        allow_private_urls=private,
        max_file_bytes=int(mb * 1024 * 1024),
        config=path,
    )


def _folder(text: str) -> Path:
    return Path(os.path.realpath(os.path.expanduser(text)))


def policy() -> Policy:
    """The policy in force: the user config, loosened further by the command line's flags."""
    config = _read_config(user_config_path())
    given = _cli.get()
    if given is None:
        return config
    return replace(
        config,
        allow_paths=config.allow_paths + given.allow_paths,
        allow_private_urls=config.allow_private_urls or given.allow_private_urls,
    )


@contextlib.contextmanager
def use(allow_paths=(), allow_private_urls: bool = False) -> Iterator[None]:
    """Loosen the policy for what runs inside (what ``--allow-path`` and
    ``--allow-private-urls`` do for one command)."""
    token = _cli.set(
        Policy(allow_paths=tuple(_folder(str(p)) for p in allow_paths), allow_private_urls=allow_private_urls)
    )
    try:
        yield
    finally:
        _cli.reset(token)


def how_to_allow(what: str) -> str:
    return (
        f"allow {what} with --allow-path DIR, or allow_paths in {user_config_path()} "
        "(a storyboard cannot allow it itself)"
    )


# -- the project folder and reading ----------------------------------------------------------


@lru_cache(maxsize=64)
def project_folder(storyboard_dir: Path) -> Path:
    """The top of the git work tree holding ``storyboard_dir``, else that folder (real paths).
    A repository that holds the user's home folder (a dotfiles repository in ``~``) is no
    project: were it one, a storyboard anywhere in the home folder could read ``~/.aws/``,
    ``~/.ssh/`` and the rest into its prompts. The storyboard's own folder is the project then."""
    start = Path(os.path.realpath(storyboard_dir))
    for folder in (start, *start.parents):
        if os.path.lexists(folder / ".git"):
            return start if holds_home(folder) else folder
    return start


def _home() -> str | None:
    try:
        return os.path.realpath(Path.home())
    except (RuntimeError, KeyError, OSError):  # no home folder known: nothing to keep out
        return None


def holds_home(folder: Path | str) -> bool:
    """True when ``folder`` (a real path) is the user's home folder or a folder above it."""
    home = _home()
    return home is not None and inside(home, folder)


def storyboard_file(path: Path | str) -> Path:
    """The real path of the storyboard the user named ``path``, once it is sure that no
    symbolic link on the way moves the project out of the folder it is named in.

    The project folder (and with it renders/, .shotflow/, the lock, what ``clean`` deletes)
    follows the storyboard's *real* path. So a link committed to a repository,
    ``storyboard.yaml -> ../../elsewhere/board.yaml`` (or ``boards -> /elsewhere``), would
    make any command read and write in that other place. The rule:

        named inside a git work tree   its real path stays inside that work tree
        elsewhere                      its real path stays inside the project folder of
                                       the folder it is named in

    (A repository that holds the home folder counts as no work tree: ``project_folder``.)

    A link within the project is fine. The work tree is looked for along the path *as
    named* (``..`` is taken as the real folder it leads to): a link the user made on the
    way to the project (``~/work -> /mnt/work``) is their route, not the project's.
    Raises UsageError naming the link and the file to name instead."""
    from .errors import UsageError

    try:
        check_path_text(os.fspath(path))
    except Refused as exc:
        raise UsageError(f"storyboard path: {exc.message}") from None
    named = Path(os.getcwd(), path)  # absolute, links and '..' kept as typed
    up = max((i for i, part in enumerate(named.parts) if part == ".."), default=0)
    if up:
        named = Path(os.path.realpath(Path(*named.parts[: up + 1])), *named.parts[up + 1 :])
    real = Path(os.path.realpath(named))
    tops = (f for f in named.parents if os.path.lexists(f / ".git") and not os.path.islink(f))
    top = next(tops, None)  # a link to another repository is not a work tree of its own here
    if top is not None and holds_home(os.path.realpath(top)):
        top = None  # a dotfiles repository is no project (``project_folder``)
    root = Path(os.path.realpath(top)) if top is not None else project_folder(named.parent)
    if not inside(real, root):
        raise UsageError(
            f"{path} leads through a symbolic link to {real}, outside the project folder {root}; "
            "shotflow would make that other folder the project and write there",
            hint=f"if you mean that storyboard, name it: {real}",
        )
    return real


def inside(path: Path | str, folder: Path | str) -> bool:
    """True when real path ``path`` is ``folder`` or below it (both already real)."""
    path, folder = os.fspath(path), os.fspath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_path_text(text: str) -> None:
    """Refuse paths no file system would take (NUL) or that are absurdly long."""
    if "\0" in text:
        raise Refused("the path contains a NUL character")
    if len(text) > MAX_PATH_CHARS:
        raise Refused(f"the path is {len(text)} characters long (at most {MAX_PATH_CHARS})")


def readable_file(path: Path, root: Path, what: str = "file") -> Path:
    """The real path of ``path`` when a storyboard under project folder ``root`` may read it
    as a data file: inside the project or an allowed folder, a regular file, not a device,
    FIFO, folder or pseudo-file. Raises Refused (with how to allow it) otherwise."""
    check_path_text(str(path))
    try:
        real = Path(os.path.realpath(path))
        st = os.stat(real)
    except FileNotFoundError:
        raise Refused(f"{what} not found") from None
    except OSError as exc:
        raise Refused(f"cannot read the {what}: {exc.strerror or exc}") from None
    if any(inside(real, tree) for tree in _SYSTEM_TREES):
        raise Refused(f"{what} {real} is a system pseudo-file, not data")
    if stat_module.S_ISDIR(st.st_mode):
        raise Refused(f"{what} {real} is a folder, not a file")
    if not stat_module.S_ISREG(st.st_mode):
        raise Refused(f"{what} {real} is a device, FIFO or socket, not a regular file")
    allowed = any(inside(real, folder) for folder in policy().allow_paths)
    if not inside(real, root) and not allowed:
        raise Refused(f"{what} {real} is outside the project folder {root}", hint=how_to_allow("its folder"))
    if not allowed and _hidden_in_home(real, root):
        raise Refused(
            f"{what} {real} is in a hidden folder of your home folder, which a storyboard saved there "
            "does not read (~/.ssh, ~/.aws, ~/.config…)",
            hint=how_to_allow("its folder"),
        )
    return real


def _hidden_in_home(real: Path, root: Path) -> bool:
    """True when the project folder ``root`` holds the home folder (a storyboard saved in
    ``~``, or above it) and ``real`` sits in one of the home folder's hidden entries: they hold
    keys and tokens, not storyboard material."""
    home = _home()
    if home is None or not inside(home, root) or not inside(real, home) or os.fspath(real) == home:
        return False
    return os.path.relpath(real, home).split(os.sep, 1)[0].startswith(".")


def read_limited(path: Path, what: str = "file") -> bytes:
    """A regular file's bytes, refusing a file over the size limit before reading it."""
    limit = DEFAULT_MAX_FILE_BYTES
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat_module.S_ISREG(st.st_mode):
            raise Refused(f"{what} is a device, FIFO or socket, not a regular file")
        if st.st_size > limit:
            limit = policy().max_file_bytes
            if st.st_size > limit:
                raise Refused(
                    f"{what} is {st.st_size / 1048576:.1f} MB; shotflow reads at most {limit / 1048576:g} MB",
                    hint=f"raise max_file_mb in {user_config_path()}",
                )
        data = f.read(limit + 1)
    if len(data) > limit:  # it grew while being read
        raise Refused(f"{what} is larger than {limit / 1048576:g} MB")
    return data


# -- writing and deleting -------------------------------------------------------------------


def check_own_folders(project_dir: Path, folders) -> None:
    """Refuse to write through ``folders`` (renders/, its scene folders, .shotflow/) when
    an existing one is a link whose real path leaves the project folder: a link committed
    to a repository must not make a render write elsewhere. A folder allowed with --allow-path
    is not enough: it is allowed to be read (a shared library of references), and a link into
    it would let frames overwrite what is there."""
    root = project_folder(project_dir)
    for folder in folders:
        if not os.path.islink(folder):
            continue
        real = os.path.realpath(folder)
        if not inside(real, root):
            raise Refused(
                f"{folder} is a symbolic link to {real}, outside the project folder {root}; "
                "shotflow writes only inside the project",
                hint="remove the link (--cache DIR puts the cache elsewhere)",
            )


def removable_render(path: str, renders_dir: Path, index) -> bool:
    """True when ``path`` (named by a state file) may be deleted as a stale render: its
    real path is inside the real ``renders_dir``, it is a regular file (a symlink is
    not followed), and the stat index (``store.StatIndex``) says shotflow wrote exactly
    this file (the same ``statefile.signature``: size, mtime, ctime, inode)."""
    try:
        check_path_text(path)
        st = os.lstat(path)
        real = os.path.realpath(path)
        renders = os.path.realpath(renders_dir)
    except (Refused, OSError, ValueError):
        return False
    if not stat_module.S_ISREG(st.st_mode) or not inside(real, renders) or real == renders:
        return False
    return index.known(path, st) is not None


# -- images ----------------------------------------------------------------------------------


def image_header(data_or_path, what: str = "reference") -> tuple[str, int, int]:
    """(format, width, height) of an image from its header only; Refused when it is not a
    PNG, JPEG or WebP image, or has more than MAX_IMAGE_PIXELS pixels (no pixel is decoded)."""
    import io
    import warnings

    from PIL import Image, UnidentifiedImageError

    source = io.BytesIO(data_or_path) if isinstance(data_or_path, (bytes, bytearray, memoryview)) else data_or_path
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source, formats=("PNG", "JPEG", "WEBP")) as img:
                fmt, (w, h) = img.format, img.size
    except Image.DecompressionBombError as exc:
        raise Refused(
            f"the {what} is a larger image than Pillow opens ({exc}); at most "
            f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels are accepted",
            hint="scale it down",
        ) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        raise Refused(f"the {what} is not a PNG, JPEG or WebP image") from None
    if w <= 0 or h <= 0 or w * h > MAX_IMAGE_PIXELS:
        raise Refused(
            f"the {what} is {w}x{h} pixels ({w * h / 1e6:.0f} megapixels); at most "
            f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels are accepted",
            hint="scale it down",
        )
    return str(fmt), w, h  # one of the formats asked for: Pillow opened it
