"""Review decisions — picks, approvals, notes — written into the storyboard.

    live board   ── POST /api/review {"shot", "action": pick|approve|reject|note, ...} ──┐
    board.html   ── data-action="export-review" ─► review.json ─► shotflow review apply ─┴─► Decision
                                                                                              │
         storyboard.yaml / act2.yaml ◄── writeback.Editor (comments, order, format kept) ◄────┘

review.json, as the static board exports it (a director needs no install and no account)::

    {"storyboard": "storyboard.yaml",
     "shots": {"arrival/door": {"pick": 2, "review": {"status": "approved", "notes": ["..."]}}}}

Applying is all or nothing: every decision is checked against the storyboard first (the
shot exists, the take is one it has, notes fit) and nothing is written if one is wrong.
A note the shot already has is not added again, so applying the same file twice changes
nothing. review.json is data from someone else: its size and every value are bounded.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError, did_you_mean
from .trust import storyboard_file

__all__ = [
    "ACTIONS",
    "Decision",
    "ReviewFileError",
    "apply",
    "decision_from_action",
    "read_review_file",
    "resolve_storyboard",
]

MAX_FILE_BYTES = 8 * 1024 * 1024
MAX_NOTES = 200  # a shot's notes in all (the schema's bound)
MAX_NOTE_CHARS = 4000
STATUSES = ("approved", "changes")
#: what a board control asks for → the review status it writes (None: not a status)
ACTIONS = {"pick": None, "approve": "approved", "reject": "changes", "note": None}


class ReviewFileError(InputError):
    """A review.json (or a board's request) that cannot be applied as it is."""


@dataclass(frozen=True)
class Decision:
    """What a reviewer decided about one shot; None / () where they decided nothing."""

    shot: str  # scene/shot
    pick: int | None = None
    status: str | None = None  # approved | changes
    notes: tuple[str, ...] = ()

    def describe(self) -> list[str]:
        parts = []
        if self.pick is not None:
            parts.append(f"pick {self.pick}")
        if self.status is not None:
            parts.append("approved" if self.status == "approved" else "sent back")
        if self.notes:
            parts.append(f"{len(self.notes)} note{'s' if len(self.notes) > 1 else ''}")
        return parts


def decision_from_action(body: Any) -> Decision:
    """A board control's request (``{"shot", "action", "take" | "text"}``) as a Decision."""
    if not isinstance(body, Mapping):
        raise ReviewFileError('a review request is a JSON object {"shot", "action", ...}')
    shot, action = body.get("shot"), body.get("action")
    where = f"request for {shot!r}"
    if not isinstance(shot, str) or action not in ACTIONS:
        raise ReviewFileError(f"{where}: action {action!r} is not one of {', '.join(ACTIONS)}")
    if action == "pick":
        return Decision(shot, pick=_take(body.get("take"), where))
    if action == "note":
        return Decision(shot, notes=_notes([body.get("text")], where))
    return Decision(shot, status=ACTIONS[action])


def read_review_file(path: Path) -> tuple[str | None, list[Decision]]:
    """The storyboard name and the decisions of a review.json, checked for shape and bounds."""
    name = path.name
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ReviewFileError(
                f"{name} is {size // 1024} KiB; a review file is at most {MAX_FILE_BYTES // (1024 * 1024)} MiB",
                where=str(path),
            )
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise ReviewFileError(f"{path}: no such file") from None
    except (UnicodeDecodeError, ValueError) as exc:
        line = getattr(exc, "lineno", None)
        at = f"{name}:{line}:{getattr(exc, 'colno', 1)}" if line else name
        raise ReviewFileError(
            f"{at}: not valid JSON ({getattr(exc, 'msg', exc)})",
            hint="export it again from the board (the export-review button)",
        ) from None
    return parse_review(data, name)


def parse_review(data: Any, name: str = "review.json") -> tuple[str | None, list[Decision]]:
    if not isinstance(data, Mapping) or not isinstance(data.get("shots"), Mapping):
        raise ReviewFileError(
            f'{name}: expected {{"storyboard": ..., "shots": {{"scene/shot": {{...}}}}}}',
            hint="export it again from the board (the export-review button)",
        )
    unknown = set(data) - {"storyboard", "shots", "exported", "generator"}
    if unknown:
        raise ReviewFileError(f"{name}: unknown key {min(unknown)!r}", hint="a review file has storyboard and shots")
    storyboard = data.get("storyboard")
    if storyboard is not None and (not isinstance(storyboard, str) or not storyboard or len(storyboard) > 4096):
        raise ReviewFileError(f"{name}: storyboard is not a file name")
    decisions = []
    for shot, entry in data["shots"].items():
        where = f"{name}: shots.{shot}"
        if not isinstance(entry, Mapping):
            raise ReviewFileError(f'{where}: expected {{"pick": N, "review": {{"status", "notes"}}}}')
        extra = set(entry) - {"pick", "review"}
        if extra:
            raise ReviewFileError(
                f"{where}: unknown key {min(extra)!r}",
                hint=did_you_mean(min(extra), ["pick", "review"]) or "use pick and review",
            )
        pick = _take(entry["pick"], where + ".pick") if entry.get("pick") is not None else None
        review = entry.get("review") or {}
        if not isinstance(review, Mapping) or set(review) - {"status", "notes"}:
            raise ReviewFileError(f'{where}.review: expected {{"status": "approved"|"changes", "notes": [...]}}')
        status = review.get("status")
        if status is not None and status not in STATUSES:
            raise ReviewFileError(f"{where}.review.status: {status!r} is not approved or changes")
        notes = review.get("notes") or []
        if not isinstance(notes, list):
            raise ReviewFileError(f"{where}.review.notes: expected a list of texts")
        decisions.append(Decision(str(shot), pick=pick, status=status, notes=_notes(notes, where + ".review.notes")))
    return storyboard, decisions


def resolve_storyboard(review_file: Path, named: str | None, given: Path | None) -> Path:
    """The storyboard a review applies to: the one given, else the one the file names,
    looked for in the current folder, then beside the review file."""
    if given is not None:
        if not given.is_file():
            raise ReviewFileError(f"{given}: no such storyboard")
        return storyboard_file(given)
    if not named:
        raise ReviewFileError(
            f"{review_file.name} names no storyboard", hint=f"give it: shotflow review apply {review_file} STORYBOARD"
        )
    name = Path(named)
    if name.is_absolute() or ".." in name.parts:
        raise ReviewFileError(
            f"{review_file.name}: storyboard {named!r} must be a file name, not a path",
            hint=f"give it: shotflow review apply {review_file} STORYBOARD",
        )
    for folder in (Path.cwd(), review_file.resolve().parent):
        if (folder / name).is_file():
            return storyboard_file(folder / name)
    raise ReviewFileError(
        f"{review_file.name} is for {named}, which is neither here nor beside it",
        hint=f"give the storyboard: shotflow review apply {review_file} path/to/{name.name}",
    )


def apply(storyboard: Path, decisions: Iterable[Decision], project=None, *, write: bool = True) -> list[Path]:
    """Write ``decisions`` into the storyboard's files; returns the files written.

    ``project`` (the loaded storyboard, to check takes against) is loaded when not given.
    Nothing is written unless every decision fits; ``write=False`` only checks them (a dry run).
    """
    from .writeback import Editor

    decisions = list(decisions)
    if project is None:
        from .expand import load_project

        project = load_project(storyboard)
    editor = Editor(storyboard)
    shots = [n for n, spec in project.nodes.items() if spec.scene is not None]
    problems = []
    for d in decisions:
        spec = project.nodes.get(d.shot)
        if spec is None or spec.scene is None:
            problems.append(
                ReviewFileError(
                    f"no shot '{d.shot}' in {storyboard.name}",
                    hint=did_you_mean(d.shot, shots) or "shot ids look like scene/shot",
                )
            )
            continue
        if d.pick is not None and d.pick > spec.takes:
            problems.append(
                ReviewFileError(
                    f"{d.shot}: take {d.pick} was picked but the shot has "
                    f"{spec.takes} take{'s' if spec.takes > 1 else ''}",
                    hint="pick a take the shot has",
                )
            )
        held = len(set(spec.review.notes) | set(d.notes))
        if held > MAX_NOTES:
            problems.append(
                ReviewFileError(
                    f"{d.shot}: {held} review notes; a shot keeps at most {MAX_NOTES}",
                    hint="remove old notes from the storyboard first",
                )
            )
    if problems:
        from .errors import raise_all

        raise_all(problems)
    if not write:
        return []
    for d in decisions:
        if d.pick is not None:
            # pick: 1 is the default; a board pick of take 1 is still written (the decision is explicit)
            editor.set_shot(d.shot, "pick", d.pick)
        if d.status is not None or d.notes:
            editor.update_review(d.shot, status=d.status, notes=d.notes)
    return editor.save()


def _take(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 20:
        raise ReviewFileError(f"{where}: take {value!r} is not a take number (1-20)")
    return value


def _notes(values: list[Any], where: str) -> tuple[str, ...]:
    if len(values) > MAX_NOTES:
        raise ReviewFileError(f"{where}: {len(values)} notes; at most {MAX_NOTES}")
    notes = []
    for value in values:
        if not isinstance(value, str) or not value.strip():
            raise ReviewFileError(f"{where}: a note is a text that is not empty")
        text = value.strip()
        if len(text) > MAX_NOTE_CHARS:
            raise ReviewFileError(f"{where}: a note of {len(text)} characters; at most {MAX_NOTE_CHARS}")
        if any(ord(c) < 32 and c not in "\n\t" for c in text):
            raise ReviewFileError(f"{where}: a note holds a control character")
        notes.append(text)
    return tuple(notes)
