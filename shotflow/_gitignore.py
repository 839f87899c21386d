"""Would git ignore this file, and does git track it? Read from git's own files alone.

A Runware key may sit in ``.env`` beside the storyboard (README); committed, it is everyone's
who has the repository. ``ignored(path)`` reads what git reads — the user's global excludes
file, the repository's ``info/exclude``, the ``.gitignore`` of each folder from the work
tree's top down to the file's, later lines overriding earlier ones — and answers True, False,
or None outside a git work tree. Git itself is never run: a repository from someone else may
configure commands (hooks, ``core.fsmonitor``) that git would run.

``tracked(path)`` reads git's index (``.git/index``, versions 2-4, and a split index's shared
index) for the same reason: a ``.env`` git tracks came with the repository, so the key in it is
whoever committed it's, and a render refuses to use it (``backends.runware.api_key``).

Written by hand, the ignore rules only as advice: the patterns people write (a name, ``/name``,
``**/name``, globs, ``!`` to re-include, a trailing ``/`` for folders), not every corner of
gitignore(5) (``*`` here also crosses ``/``; escapes are not undone). pathspec would be a
dependency for one warning.
"""

from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path

from .statefile import read_regular

IGNORE_FILE_BYTES = 1024 * 1024  # a .gitignore is a few lines; a larger one is not read (no rules from it)
# each rule is a regular expression compiled once: crafted ignore files of a megabyte of distinct
# rules (one in each folder on the way) would cost seconds each, so the first RULES of them all
# count, each of at most a path's length
RULES = 10_000
RULE_CHARS = 4096


INDEX_BYTES = 64 * 1024 * 1024  # git's index of a very large repository; a larger one is not read (no answer)


def _work_tree(path: Path) -> tuple[Path, Path | None]:
    """(``path`` as git sees it: its folder's real path and its own name, the top of the git work
    tree holding it or None)."""
    real = Path(os.path.realpath(path.parent)) / path.name
    return real, next((folder for folder in real.parents if os.path.lexists(folder / ".git")), None)


def came_with_repository(path: Path) -> bool:
    """Whether the file ``path`` came with (or is on its way into) the git repository holding it:
    git tracks it. A link is committed, not what it leads to: a link counts when its target is
    tracked too and came with a repository (the link is tracked, or its work tree holds the target)."""
    if not path.is_symlink():
        return tracked(path) is True
    target = Path(os.path.realpath(path))
    if tracked(target) is not True:
        return False
    top = _work_tree(path)[1]
    return tracked(path) is True or (top is not None and target.is_relative_to(top))


def tracked(path: Path) -> bool | None:
    """Whether git's index lists the file ``path`` (committed, or added to be), as git would see
    it (a link at its end is not followed); None when it is in no work tree, or when the index
    cannot be read: missing folders, over INDEX_BYTES, a version or shape this reader does not know."""
    real, top = _work_tree(path)
    if top is None:
        return None
    git = top / ".git"
    try:
        if not git.is_dir():  # a worktree's or a submodule's .git file: "gitdir: <folder>"
            text = read_regular(git, 4096).decode("utf-8", "replace")
            git = top / text.removeprefix("gitdir:").strip()
        data = read_regular(git / "index", INDEX_BYTES)
    except FileNotFoundError:
        return False if git.is_dir() else None  # a repository with nothing added yet
    except (OSError, ValueError):  # unreadable, or a .git file naming no path (a NUL in it)
        return None
    name = real.relative_to(top).as_posix().encode()
    for object_name in (20, 32):  # SHA-1, then SHA-256 repositories: the wrong size never parses
        found = _entries(data, name, object_name)
        if found is None:
            continue
        position, link = found
        if position >= 0:
            return True
        # a split index (core.splitIndex, update-index --split-index) lists only what changed since
        # its shared index, "sharedindex.<object name>" beside it: the rest of the entries are there
        return False if link is None else _shared_lists(git, link, name, object_name)
    return None


def _entries(data: bytes, name: bytes, object_name: int) -> tuple[int, bytes | None] | None:
    """(the position among the entries of the index ``data`` of the one for the path ``name``, -1
    when there is none; the split index's "link" extension, if any), or None: not an index of this
    shape, or ``name`` is in a sparse folder. Each entry: 40 bytes of stat fields, the object
    name, 16 bits of flags (and 16 more in version 3 and later when the flags say so), then the
    path: NUL-ended and padded to 8 bytes in versions 2 and 3, in version 4 the previous path less
    a varint's count of bytes, plus a NUL-ended suffix (git's Documentation/gitformat-index.txt).
    A sparse index (sparse-checkout's --sparse-index) holds a folder out of the cone as one entry,
    its path ending in "/": whether a file in it is tracked is in git's objects, not read here."""
    if len(data) < 12 or data[:4] != b"DIRC":
        return None
    version, count = int.from_bytes(data[4:8], "big"), int.from_bytes(data[8:12], "big")
    if version not in (2, 3, 4):
        return None
    # each entry takes at least 8 bytes, so ``count`` steps are bounded by the data; the previous
    # path is cut and extended in place: a crafted v4 index of paths each a byte longer than the
    # last would otherwise be copied whole at every entry (quadratic: seconds for megabytes)
    pos, previous, fixed = 12, bytearray(), 40 + object_name
    for position in range(count):
        if pos + fixed + 2 > len(data):
            return None
        flags = int.from_bytes(data[pos + fixed : pos + fixed + 2], "big")
        head = fixed + 2 + (2 if version >= 3 and flags & 0x4000 else 0)
        start = pos + head
        if version == 4:
            strip, start = _varint(data, start)
            end = data.find(b"\0", start)
            if end < 0 or not 0 <= strip <= len(previous):
                return None
            del previous[len(previous) - strip :]
            previous += data[start:end]
            pos, entry = end + 1, previous
        else:  # the whole path: compared where it is, never copied unless it may be a sparse folder
            end = data.find(b"\0", start)
            if end < 0 or (flags & 0xFFF) not in (end - start, 0xFFF):
                return None
            pos += (head + end - start + 8) // 8 * 8
            if end - start == len(name) and data.startswith(name, start):
                return position, None
            if end == start or data[end - 1] != 0x2F:  # not a folder: not the path
                continue
            entry = bytearray(data[start:end])
        if entry == name:
            return position, None
        if entry.endswith(b"/") and name.startswith(entry):  # a sparse folder holding the path
            return None  # only its tree object knows whether git tracks the file
    return _extensions(data, pos, object_name)


def _extensions(data: bytes, pos: int, object_name: int) -> tuple[int, bytes | None] | None:
    """(-1, the "link" extension's content or None) when what follows the entries at ``pos`` is
    what an index ends with: extensions (a 4-byte name, a 4-byte size, that many bytes), then the
    checksum, one object name long; None otherwise, so that entries read with the wrong object
    name size are never taken for an answer."""
    link = None
    while len(data) - pos > object_name:
        size = int.from_bytes(data[pos + 4 : pos + 8], "big")
        if data[pos : pos + 4] == b"link":
            link = data[pos + 8 : pos + 8 + size]
        pos += 8 + size
    return (-1, link) if len(data) - pos == object_name else None


def _shared_lists(git: Path, link: bytes, name: bytes, object_name: int) -> bool | None:
    """Whether the shared index a split index links to lists ``name``, less the entries the
    link's first bitmap deletes (git's split-index format); None when it cannot be read."""
    if len(link) < object_name:
        return None
    if not any(link[:object_name]):
        return False  # no shared index
    try:
        shared = read_regular(git / f"sharedindex.{link[:object_name].hex()}", INDEX_BYTES)
    except (OSError, ValueError):
        return None
    found = _entries(shared, name, object_name)
    if found is None:
        return None
    if found[0] < 0:
        return False
    if len(link) == object_name:
        return True  # no bitmaps: nothing deleted
    deleted = _ewah_bit(link, object_name, found[0])
    return None if deleted is None else not deleted


def _ewah_bit(data: bytes, pos: int, bit: int) -> bool | None:
    """Bit ``bit`` of the EWAH bitmap at ``pos`` (git's ewah/ewah_io.c: a 32-bit size in bits, a
    32-bit count of 64-bit words, the words, the last marker's place; each marker word says how
    many words of one bit, its lowest, and then how many literal words follow); None when cut
    short. The words are walked once: a crafted bitmap costs its size."""
    if len(data) < pos + 8:
        return None
    words = int.from_bytes(data[pos + 4 : pos + 8], "big")
    if len(data) < pos + 8 + 8 * words + 4:
        return None

    def word(index: int) -> int:
        return int.from_bytes(data[pos + 8 + 8 * index : pos + 16 + 8 * index], "big")

    target, at, index = bit // 64, 0, 0  # the word holding the bit, the words so far, the next stored word
    while index < words:
        marker = word(index)
        index += 1
        run, literals = (marker >> 1) & 0xFFFFFFFF, marker >> 33
        if target < at + run:
            return bool(marker & 1)
        at += run
        if target < at + literals:
            stored = index + target - at
            return bool(word(stored) >> (bit % 64) & 1) if stored < words else None
        at, index = at + literals, index + literals
    return False


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """Git's offset varint at ``pos``: (its value, the position after it)."""
    value = 0
    for index in range(pos, min(pos + 10, len(data))):
        byte = data[index]
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return value, index + 1
        value += 1
    return -1, len(data)  # too long or cut short: no count git would write


def ignored(path: Path) -> bool | None:
    """Whether git would ignore the file ``path`` (None: it is in no git work tree). ``path``
    itself is what git would see: a link at its end is not followed (git commits the link)."""
    real, top = _work_tree(path)
    if top is None:
        return None
    chain = [real.parent]  # the folders from the file's up to the top, then turned around
    while chain[-1] != top:
        chain.append(chain[-1].parent)
    # (ignore file, the folder its patterns are relative to, whether a link is followed), lowest precedence first
    sources = [(excludes, top, True) for excludes in _global_excludes()]
    sources.append((top / ".git" / "info" / "exclude", top, False))
    sources += [(folder / ".gitignore", folder, False) for folder in reversed(chain)]
    verdict, budget = False, RULES
    for ignore_file, base, follow in sources:
        rules = _patterns(ignore_file, follow)[:budget]
        budget -= len(rules)
        for negated, pattern in rules:
            if _matches(pattern, real.relative_to(base).as_posix()):
                verdict = not negated
    return verdict


def _global_excludes() -> list[Path]:
    """The user's global excludes file: ``core.excludesFile`` in ~/.gitconfig, else git's default."""
    home = Path(os.path.expanduser("~"))
    try:
        config = read_regular(home / ".gitconfig", IGNORE_FILE_BYTES, follow=True).decode("utf-8", "replace")
    except OSError:
        config = ""
    named = re.search(r"(?im)^\s*excludesfile\s*=\s*(.+?)\s*$", config)
    if named:
        return [Path(os.path.expanduser(named.group(1).strip('"')))]
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(home / ".config")
    return [Path(xdg) / "git" / "ignore"]


def _patterns(ignore_file: Path, follow: bool) -> list[tuple[bool, str]]:
    """(negated, pattern) of each rule line; none when the file is missing or unreadable (a
    project's own ignore file is read only as a regular file, never through a link)."""
    try:
        text = read_regular(ignore_file, IGNORE_FILE_BYTES, follow=follow).decode("utf-8", "replace")
    except OSError:
        return []
    rules: list[tuple[bool, str]] = []
    for line in text.splitlines():
        line = line.rstrip()
        if not line or line.startswith("#") or len(line) > RULE_CHARS:
            continue
        negated = line.startswith("!")
        rules.append((negated, line[1:] if negated else line))
        if len(rules) == RULES:
            break
    return rules


def _matches(pattern: str, relative: str) -> bool:
    """Whether ``pattern`` (from an ignore file in a folder) ignores the file at ``relative``
    (a path below that folder): the file itself, or a folder on its way."""
    folder_only = pattern.endswith("/")
    pattern = pattern.rstrip("/")
    if pattern.startswith("**/"):
        pattern, anchored = pattern[3:], False
    else:
        anchored = "/" in pattern
        pattern = pattern.lstrip("/")
    parts = relative.split("/")
    # the candidates: every folder on the way, and the file itself unless the pattern names folders only
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts) - (1 if folder_only else 0))]
    for candidate in candidates:
        name = candidate if anchored else candidate.rsplit("/", 1)[-1]
        if fnmatch.fnmatchcase(name, pattern):
            return True
    return False
