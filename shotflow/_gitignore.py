"""Would git ignore this file? Advice for a warning, from the ignore files alone.

A Runware key may sit in ``.env`` beside the storyboard (README); committed, it is everyone's
who has the repository. ``ignored(path)`` reads what git reads — the user's global excludes
file, the repository's ``info/exclude``, the ``.gitignore`` of each folder from the work
tree's top down to the file's, later lines overriding earlier ones — and answers True, False,
or None outside a git work tree. Git itself is never run: a repository from someone else may
configure commands (hooks, ``core.fsmonitor``) that git would run.

Written by hand, and only as advice: the patterns people write (a name, ``/name``,
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


def ignored(path: Path) -> bool | None:
    """Whether git would ignore the file ``path`` (None: it is in no git work tree). ``path``
    itself is what git would see: a link at its end is not followed (git commits the link)."""
    real = Path(os.path.realpath(path.parent)) / path.name
    top = next((folder for folder in real.parents if os.path.lexists(folder / ".git")), None)
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
