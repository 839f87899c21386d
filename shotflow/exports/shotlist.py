"""``shotflow export --csv``: the shot list, one row per shot in story order (UTF-8 CSV).

    number,code,scene,shot,duration,frames,tc_in,tc_out,framing,angle,lens,move,dialogue,action,notes,
        model,size,takes,pick,cost,backend,state,frame,review,review_notes
    1.1,010_0010,arrival,wide,4,96,01:00:00:00,01:00:04:00,extreme wide,low angle,24mm,slow push in,,,
        hold on the beam …,runway:4@1,1360x768,1,1,0,runware,fresh,renders/arrival/wide.png,approved,
        (one line in the file)

``code`` is the shot code (``editorial.shot_code``, else ``{scene_number:03d}_{shot_number:04d}``);
``frames``, ``tc_in`` and ``tc_out`` are where the shot sits in the exported cut, at the
storyboard's rate (``tc_out`` is the first frame after it, as in an EDL). ``cost`` is
what the frames pinned in the lock cost and ``backend`` what made them (both empty when
never rendered); ``frame`` is the picked frame's path relative to the storyboard (empty
when there is none); ``review`` is the shot's review status (approved, changes, or empty)
and ``review_notes`` its notes, one a line. Sheets are not shots, and omitted shots are
not in the cut: both are left out.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from ..editorial import Editorial, format_timecode
from ._frames import Panel, Sequence, frame_counts

COLUMNS = (
    "number",
    "code",
    "scene",
    "shot",
    "duration",
    "frames",
    "tc_in",
    "tc_out",
    "framing",
    "angle",
    "lens",
    "move",
    "dialogue",
    "action",
    "notes",
    "model",
    "size",
    "takes",
    "pick",
    "cost",
    "backend",
    "state",
    "frame",
    "review",
    "review_notes",
)


def rows(seq: Sequence, editorial: Editorial | None = None) -> list[dict[str, str]]:
    ed = editorial or seq.editorial
    shots = seq.shots
    counts = frame_counts([p.duration for p in shots], ed.fps)
    result, at = [], ed.start
    for panel, count in zip(shots, counts, strict=True):
        result.append(_row(seq, panel, count, format_timecode(at, ed.fps), format_timecode(at + count, ed.fps)))
        at += count
    return result


def _row(seq: Sequence, panel: Panel, frames: int, tc_in: str, tc_out: str) -> dict[str, str]:
    spec, cam = panel.spec, panel.spec.camera
    picked = panel.picked
    frame = os.path.relpath(picked.file, seq.project.root) if picked is not None else ""
    return {
        "number": panel.number,
        "code": panel.code or "",
        "scene": spec.scene or "",
        "shot": spec.name,
        "duration": f"{spec.duration:g}",
        "frames": str(frames),
        "tc_in": tc_in,
        "tc_out": tc_out,
        "framing": cam.framing or "",
        "angle": cam.angle or "",
        "lens": cam.lens or "",
        "move": cam.move or "",
        "dialogue": spec.dialogue or "",
        "action": spec.action or "",
        "notes": spec.notes or "",
        "model": spec.model,
        "size": spec.size,
        "takes": str(spec.takes),
        "pick": str(panel.pick),
        "cost": _money(panel.cost),
        "backend": (panel.backend or "") if panel.takes else "",
        "state": panel.state.value,
        "frame": Path(frame).as_posix() if frame else "",
        "review": spec.review.status.value if spec.review.status else "",
        "review_notes": "\n".join(spec.review.notes),
    }


def _money(cost: float | None) -> str:
    """USD as plain digits (0.08, 0.16, 0): a spreadsheet sums them; empty when unknown."""
    if cost is None:
        return ""
    return f"{cost:.4f}".rstrip("0").rstrip(".") or "0"


def to_csv(seq: Sequence, editorial: Editorial | None = None) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows(seq, editorial))
    return out.getvalue()


def write_csv(seq: Sequence, output: Path, *, editorial: Editorial | None = None) -> Path:
    from .. import outputs

    outputs.write(output, to_csv(seq, editorial).encode("utf-8"))
    return Path(output)
