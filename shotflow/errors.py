"""Every error shotflow reports, as one tree.

    ShotflowError                 anything shotflow reports to a user
    ├── InputError                bad input: exit code 2, never a traceback
    │   ├── LoadError             YAML syntax, unsafe tags, includes, duplicate names
    │   ├── SchemaError           a value the file format does not allow
    │   ├── TemplateError         Jinja: undefined name, syntax, sandbox violation
    │   ├── RefError       unknown reference, missing file, bad @tag, too many refs
    │   ├── GraphError            a cycle between shots
    │   ├── WriteBackError        a decision that cannot be written into the YAML (writeback.py)
    │   ├── ReviewFileError       a review.json or board request that cannot be applied (review.py)
    │   └── ErrorList             several independent InputErrors of one run
    ├── UsageError                the command cannot proceed as asked (exit 2):
    │   ├── ConfigError           missing API key, bad --set, no ffmpeg …
    │   ├── BudgetError           --max-cost would be exceeded
    │   ├── LockedError           --locked and the lock does not cover the storyboard
    │   ├── BusyError             another render holds the project lock
    │   └── FileSystemError       a file shotflow must write cannot be: permissions, a full disk …
    └── BackendError              a generation failed (a value of the failed node, exit 1)
        ├── RequestRejected       the backend refused the request (4xx): never retried
        │   └── AccountError      bad key, no balance, not permitted: the whole run stops (exit 2)
        └── TransientError        timeouts, 429, 5xx: retried by the backend

    ShotflowWarning (a UserWarning)   something the user should know; the run goes on. The
                                      core warns (``warnings.warn``), the CLI prints one
                                      ``warning:`` line (statefile.DamagedState is one)

Messages are sentences a user can act on. A ``where`` (``file:line:column``, or a
shot id) is printed in front of the message; a ``hint`` ("did you mean …?") after it.
Third-party exceptions are translated at the edge with ``raise … from exc``; only the
CLI maps these kinds to exit codes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol


class ShotflowWarning(UserWarning):
    """Something the user should know while the command goes on (the CLI prints one line)."""


@dataclass(frozen=True, slots=True)
class Mark:
    """A place in a source file: 1-based line and column."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class Located(Protocol):
    """Where something is in a source file, printed as ``file:line:column``: a Mark, or
    anything that resolves to one when it is printed (load's lazy ``Place``)."""

    @property
    def file(self) -> str: ...

    @property
    def line(self) -> int: ...

    @property
    def column(self) -> int: ...


class ShotflowError(Exception):
    """Base of every error shotflow reports."""

    exit_code = 2

    def __init__(self, message: str, *, where: Located | str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f" ({self.hint})"
        return text

    def lines(self) -> list[str]:
        return [str(self)]


class InputError(ShotflowError):
    """The storyboard (or something it names) is wrong."""


class LoadError(InputError):
    pass


class SchemaError(InputError):
    pass


class TemplateError(InputError):
    pass


class RefError(InputError):
    pass


class GraphError(InputError):
    pass


class ErrorList(InputError):
    """Several independent input errors, reported together."""

    def __init__(self, errors: Iterable[ShotflowError]):
        flat: list[ShotflowError] = []
        for error in errors:
            flat.extend(error.errors if isinstance(error, ErrorList) else [error])
        self.errors: list[ShotflowError] = flat
        super().__init__(f"{len(flat)} errors")

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)

    def lines(self) -> list[str]:
        return [str(e) for e in self.errors]


def raise_all(errors: Sequence[ShotflowError]) -> None:
    """Raise nothing, the one error, or all of them together."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ErrorList(errors)


class UsageError(ShotflowError):
    pass


class ConfigError(UsageError):
    pass


class BudgetError(UsageError):
    pass


class LockedError(UsageError):
    pass


class BusyError(UsageError):
    pass


class FileSystemError(UsageError):
    """The file system refused a write or a read shotflow needs (``file_system_error`` makes one)."""


# errno → (what it means, what to do); the conditions of the machine, not shotflow's bugs
_FILE_SYSTEM = {
    "EACCES": ("permission denied", "give yourself write access to {folder} (chmod u+w), then run the same command"),
    "EPERM": ("operation not permitted", "check the permissions of {folder}, then run the same command"),
    "EROFS": ("the file system is read-only", "render on a writable disk"),
    "ENOSPC": ("no space left on the disk", "free some space, then run the same command: nothing paid is lost"),
    "EDQUOT": ("disk quota exceeded", "free some space, then run the same command: nothing paid is lost"),
    "ENOTDIR": ("a file stands where a folder must be", "remove or rename that file"),
    "EISDIR": ("a folder stands where a file must be", "remove or rename that folder"),
    "ENAMETOOLONG": ("the path is too long for the file system", "use a shorter folder or shot id"),
}


def file_system_error(exc: BaseException) -> FileSystemError | None:
    """``exc`` as a FileSystemError naming the path, when it is one of the conditions above
    (a temporary file shotflow writes beside its target is named by its folder); else None."""
    import errno
    import os

    if not isinstance(exc, OSError) or exc.errno is None:
        return None
    known = _FILE_SYSTEM.get(errno.errorcode.get(exc.errno, ""))
    if known is None:
        return None
    path = os.fsdecode(exc.filename) if exc.filename is not None else None
    if path is not None and os.path.basename(path).startswith(".tmp-"):
        path = os.path.dirname(path) or "."
    folder = path if path is None or os.path.isdir(path) else (os.path.dirname(path) or ".")
    what, fix = known
    return FileSystemError(
        f"cannot use {path}: {what}" if path else what, hint=fix.format(folder=folder or "the project folder")
    )


class BackendError(ShotflowError):
    """A generation failed; the node fails, its dependents are skipped."""

    exit_code = 1


class RequestRejected(BackendError):
    """The backend refused the request; retrying would not help."""


class AccountError(RequestRejected):
    """The account cannot go on (401, 402, 403): no other shot would fare better, so the
    run stops starting shots, keeps what finished, and says so in one line (exit 2)."""

    exit_code = 2


class TransientError(BackendError):
    """A failure that may pass: the backend retries it."""


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """'did you mean X?' for the closest choice, or None when nothing is close."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None
