"""``shotflow export --csv``: the shot list, one row per shot in story order (UTF-8 CSV).

    number,scene,shot,duration,framing,angle,lens,move,dialogue,action,notes,model,size,takes,pick,
        cost,state,frame,review,review_notes
    1.1,arrival,wide,4,extreme wide,low angle,24mm,slow push in,,,hold on the beam …,runway:4@1,
        1360x768,1,1,0,fresh,renders/arrival/wide.png,approved,      (one line each in the file)

``cost`` is what the frames pinned in the lock cost (empty when never rendered);
``frame`` is the picked frame's path relative to the storyboard (empty when there is
none); ``review`` is the shot's review status (approved, changes, or empty) and
``review_notes`` its notes, one a line. Sheets are not shots and are left out.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from ._frames import Panel, Sequence

COLUMNS = ("number", "scene", "shot", "duration", "framing", "angle", "lens", "move", "dialogue", "action", "notes",
           "model", "size", "takes", "pick", "cost", "state", "frame", "review", "review_notes")


def rows(seq: Sequence) -> list[dict[str, str]]:
    return [_row(seq, panel) for panel in seq.shots]


def _row(seq: Sequence, panel: Panel) -> dict[str, str]:
    spec, cam = panel.spec, panel.spec.camera
    picked = panel.picked
    frame = os.path.relpath(picked.path, seq.project.root) if picked is not None else ""
    return {
        "number": panel.number, "scene": spec.scene or "", "shot": spec.name, "duration": f"{spec.duration:g}",
        "framing": cam.framing or "", "angle": cam.angle or "", "lens": cam.lens or "", "move": cam.move or "",
        "dialogue": spec.dialogue or "", "action": spec.action or "", "notes": spec.notes or "",
        "model": spec.model, "size": spec.size, "takes": str(spec.takes), "pick": str(panel.pick),
        "cost": _money(panel.cost),
        "state": panel.state.value, "frame": Path(frame).as_posix() if frame else "",
        "review": spec.review.status.value if spec.review.status else "", "review_notes": "\n".join(spec.review.notes),
    }


def _money(cost: float | None) -> str:
    """USD as plain digits (0.08, 0.16, 0): a spreadsheet sums them; empty when unknown."""
    if cost is None:
        return ""
    return f"{cost:.4f}".rstrip("0").rstrip(".") or "0"


def to_csv(seq: Sequence) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows(seq))
    return out.getvalue()


def write_csv(seq: Sequence, output: Path) -> Path:
    from ..store import atomic_write

    atomic_write(Path(output), to_csv(seq).encode("utf-8"), mode=0o644)
    return Path(output)
