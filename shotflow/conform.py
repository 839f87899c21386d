"""``shotflow conform CUT``: the editor's cut of an exported timeline, back into the storyboard.

    cut.otio / cut.xml / cut.edl ──OTIO──► clips in cut order (name, frames, metadata, media)
          │ match each clip to a shot:
          │   1. metadata["shotflow"]["id"] (.otio), or the EDL comment "* SHOT: scene/shot"
          │   2. its frame's file: renders/SCENE/SHOT(-takeN).ext (.xml keeps it, .edl too)
          │   3. its name: a shot id, else a shot code
          ▼
    Conform: durations (frames -> seconds), the order of shots within each scene,
             shots not in the cut (omit: true), omitted shots back in it, clips that are no shot
          │ --write
          ▼
    writeback.Editor: each change in the file that defines the shot, comments and formatting kept

Durations are written so that the storyboard exports back to the same cut, frame for frame:
the frame counting of the exports (editorial.frame_counts) is replayed over the new story
order, and a shot's duration is changed only where its cut would not land on the editor's
frame; the new value is the shortest decimal that does (``2.544`` for 61 frames at 23.976).
A clip moved into another scene, or scenes put in another order, cannot be written back
(a shot belongs to its scene): it is reported, and the round trip is then not exact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from .editorial import exact, format_timecode, fps_label, round_half_up, seconds_for
from .errors import ConfigError, InputError
from .model import Project

READERS = {".otio": "otio_json", ".otioz": "otioz", ".xml": "fcp_xml", ".fcpxml": "fcpx_xml", ".edl": "cmx_3600"}
_FRAME_FILE = re.compile(r"(?:^|/)renders/([a-z0-9][a-z0-9_-]*)/([a-z0-9][a-z0-9_-]*?)(?:-take\d+)?\.(?:png|jpg|webp)$")
_EDL_SHOT = re.compile(r"^SHOT:\s*(\S+)\s*$")


@dataclass(frozen=True)
class CutClip:
    """One clip of the editor's cut."""

    position: int  # 1-based, in cut order
    name: str
    frames: int
    record_in: int  # frames from the cut's first frame
    shot: str | None = None  # the storyboard shot it is, when matched
    how: str | None = None  # metadata | media | name | code


@dataclass
class Conform:
    """What the cut says, against the storyboard."""

    cut: Path
    storyboard: Path
    fps: Fraction
    start: int
    clips: list[CutClip]
    durations: list[tuple[str, float | None, int, float]] = field(default_factory=list)  # shot, was, frames, now
    orders: dict[str, tuple[list[str], list[str]]] = field(default_factory=dict)  # scene: (was, now), shot names
    omit: list[str] = field(default_factory=list)
    restore: list[str] = field(default_factory=list)
    extra: list[CutClip] = field(default_factory=list)
    repeated: list[CutClip] = field(default_factory=list)
    moved: list[tuple[str, str]] = field(default_factory=list)  # (shot, the scene whose shots it is cut among)

    @property
    def changes(self) -> int:
        return len(self.durations) + len(self.orders) + len(self.omit) + len(self.restore)

    @property
    def exact(self) -> bool:
        """Whether the storyboard, once written, exports back to this very cut."""
        return not (self.extra or self.repeated or self.moved)

    def lines(self) -> list[str]:
        matched = [c for c in self.clips if c.shot]
        ways: dict[str, int] = {}
        for c in matched:
            ways[c.how or "?"] = ways.get(c.how or "?", 0) + 1
        total = sum(c.frames for c in self.clips)
        out = [
            f"{self.cut.name}: {len(self.clips)} clips, {total} frames at {fps_label(self.fps)} fps; "
            f"{len(matched)} matched to shots (" + ", ".join(f"{n} by {w}" for w, n in ways.items()) + ")"
        ]
        for shot, was, frames, now in self.durations:
            was_text = f"{was:g} s" if was is not None else "as written"
            out.append(f"duration {shot}: {was_text} -> {now:g} s ({frames} frames)")
        for scene, (before, after) in self.orders.items():
            out.append(f"order of scene {scene}: {', '.join(after)} (was {', '.join(before)})")
        out += [f"omit {shot}: not in the cut (kept in the file with omit: true)" for shot in self.omit]
        out += [f"restore {shot}: back in the cut (omit removed)" for shot in self.restore]
        for clip in self.extra:
            out.append(
                f"not a shot: clip {clip.position} '{clip.name}' ({clip.frames} frames at "
                f"{format_timecode(self.start + clip.record_in, self.fps)}): left out; add a shot for it "
                "if it belongs in the storyboard"
            )
        for clip in self.repeated:
            out.append(
                f"repeated: clip {clip.position} '{clip.name}' is {clip.shot} again; only its first use is conformed"
            )
        for shot, among in self.moved:
            out.append(
                f"moved: {shot} is cut among the shots of scene {among}; a shot stays in its scene, so "
                "move it in the storyboard by hand"
            )
        if not self.changes:
            out.append("the storyboard already matches the cut" if self.exact else "nothing to write back")
        return out


def default_reader(path: Path) -> str:
    adapter = READERS.get(path.suffix.lower())
    if adapter is None:
        raise InputError(
            f"cannot read {path.name} as a cut",
            where=str(path),
            hint="give an OpenTimelineIO .otio/.otioz, a Final Cut Pro .xml/.fcpxml or a CMX 3600 .edl",
        )
    return adapter


def _unreadable_hint(adapter: str, fps: Fraction) -> str:
    if adapter == "cmx_3600":  # its timecodes read at another rate than they were written at do not add up
        return (
            f"an EDL does not say its frame rate, and this one does not read at {fps_label(fps)} fps: give "
            "--fps the rate it was exported at, which is export's --fps or else the storyboard's editorial.fps"
        )
    return "is it a timeline shotflow exported (or one an editor saved from it)?"


def read_cut(path: Path, fps: Fraction) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The first video track's clips, in order: name, frames at ``fps``, record in, metadata, media URL."""
    from .exports.timeline import _otio

    otio = _otio()
    adapter = default_reader(path)
    if adapter not in otio.adapters.available_adapter_names():
        from .exports.timeline import ADAPTER_PACKAGES

        raise ConfigError(
            f"reading {path.name} needs OpenTimelineIO's {adapter} adapter, which is not installed",
            hint=f"pip install {ADAPTER_PACKAGES.get(adapter, adapter)}",
        )
    options: dict[str, Any] = {"rate": float(fps)} if adapter == "cmx_3600" else {}
    try:
        result = otio.adapters.read_from_file(str(path), adapter_name=adapter, **options)
    except FileNotFoundError:
        raise InputError(f"no such cut: {path}", where=str(path)) from None
    except Exception as exc:  # noqa: BLE001 - adapters raise anything on a malformed file: one line, the reason
        raise InputError(
            f"cannot read {path.name}: {type(exc).__name__}: {exc}",
            where=str(path),
            hint=_unreadable_hint(adapter, fps),
        ) from None
    timeline = result
    if isinstance(result, otio.schema.SerializableCollection):
        timeline = (
            next((t for t in result.find_children(descended_from_type=otio.schema.Timeline)), None)
            if hasattr(result, "find_children")
            else next(iter(result), None)
        )
    if not isinstance(timeline, otio.schema.Timeline):
        raise InputError(f"{path.name} holds no timeline", where=str(path))
    tracks = [t for t in timeline.tracks if t.kind == otio.schema.TrackKind.Video]
    if not tracks:
        raise InputError(f"{path.name} has no video track", where=str(path))
    rate = float(fps)
    clips, at = [], 0
    for item in tracks[0]:
        if isinstance(item, otio.schema.Transition):
            continue
        duration = item.duration()
        frames = round_half_up(
            Fraction(duration.value)
            * Fraction(rate).limit_denominator(1001)
            / Fraction(duration.rate).limit_denominator(1001)
        )
        if isinstance(item, otio.schema.Clip):
            ref = item.media_reference
            clips.append(
                {
                    "name": item.name or "",
                    "frames": frames,
                    "record_in": at,
                    "metadata": _plain(item.metadata),
                    "url": getattr(ref, "target_url", None),
                }
            )
        at += frames
    info = _plain(timeline.metadata.get("shotflow") or {})
    return clips, info


def _plain(value: Any) -> Any:
    """OTIO's AnyDictionary / AnyVector as Python's own (they die with their timeline)."""
    if hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
        return value
    return [_plain(v) for v in value]


def compare(project: Project, cut: Path, *, fps: Fraction | None = None) -> Conform:
    """Match the cut's clips to the storyboard's shots and work out what would change."""
    ed = project.editorial.with_fps(fps)
    raw, _ = read_cut(cut, ed.fps)
    shots = list(project.codes)  # every shot, omitted ones too, in story order
    by_code = {code: shot for shot, code in project.codes.items()}
    known = set(shots)
    result = Conform(cut=cut, storyboard=project.path, fps=ed.fps, start=ed.start, clips=[])
    seen: set[str] = set()
    for i, item in enumerate(raw, 1):
        shot, how = _match(item, known, by_code)
        clip = CutClip(i, item["name"], item["frames"], item["record_in"], shot, how)
        result.clips.append(clip)
        if shot is None:
            result.extra.append(clip)
        elif shot in seen:
            result.repeated.append(clip)
        seen.add(shot) if shot else None
    in_cut = [c for c in result.clips if c.shot and c not in result.repeated]
    cut_order = [c.shot for c in in_cut if c.shot]
    frames = {c.shot: c.frames for c in in_cut if c.shot}
    omitted = set(project.omitted)
    result.omit = [s for s in shots if s not in frames and s not in omitted]
    result.restore = [s for s in cut_order if s in omitted]
    scenes: dict[str, list[str]] = {}
    for s in shots:
        scenes.setdefault(s.split("/", 1)[0], []).append(s)
    # a shot cut into another scene's run cannot be written back: the fewest such shots are the
    # ones off the longest run of the cut that keeps the storyboard's scene order
    rank = {scene: i for i, scene in enumerate(scenes)}
    keep = _longest_run([rank[s.split("/", 1)[0]] for s in cut_order])
    moved = set()
    for i, s in enumerate(cut_order):
        if i not in keep:
            near = next((cut_order[j] for j in range(i - 1, -1, -1) if j in keep), None) or next(
                (cut_order[j] for j in range(i + 1, len(cut_order)) if j in keep), s
            )
            result.moved.append((s, near.split("/", 1)[0]))
            moved.add(s)
    # the order within each scene: the slots of the shots in the cut take them in cut order
    story: list[str] = []
    for scene, members in scenes.items():
        queue = iter([s for s in cut_order if s.split("/", 1)[0] == scene and s not in moved])
        now = [next(queue) if s in frames and s not in moved else s for s in members]
        if now != members:
            result.orders[scene] = ([s.split("/", 1)[1] for s in members], [s.split("/", 1)[1] for s in now])
        story += [s for s in now if s in frames]
    result.durations = _durations(project, story, frames, ed.fps)
    return result


def _longest_run(ranks: list[int]) -> set[int]:
    """Indexes of a longest non-decreasing subsequence of ``ranks`` (patience sorting, n log n)."""
    import bisect

    tails: list[int] = []  # the smallest tail rank of a run of each length
    tail_at: list[int] = []  # its index
    back = [-1] * len(ranks)
    for i, r in enumerate(ranks):
        k = bisect.bisect_right(tails, r)
        back[i] = tail_at[k - 1] if k else -1
        if k == len(tails):
            tails.append(r)
            tail_at.append(i)
        else:
            tails[k], tail_at[k] = r, i
    keep, i = set(), tail_at[-1] if tail_at else -1
    while i >= 0:
        keep.add(i)
        i = back[i]
    return keep


def _match(item: dict[str, Any], known: set[str], by_code: dict[str, str]) -> tuple[str | None, str | None]:
    meta = item["metadata"]
    ours = meta.get("shotflow")
    sid = ours.get("id") if hasattr(ours, "get") else None  # OTIO's AnyDictionary is no dict
    if isinstance(sid, str) and sid in known:
        return sid, "metadata"
    edl = meta.get("cmx_3600")
    for comment in (edl.get("comments") if hasattr(edl, "get") else None) or []:
        found = _EDL_SHOT.match(str(comment))
        if found and found.group(1) in known:
            return found.group(1), "metadata"
    url = item.get("url")
    if url:
        path = unquote(urlparse(url).path) if "://" in url else url
        found = _FRAME_FILE.search(path.replace("\\", "/"))
        if found and f"{found.group(1)}/{found.group(2)}" in known:
            return f"{found.group(1)}/{found.group(2)}", "media"
    name = item["name"].strip()
    if name in known:
        return name, "name"
    if name in by_code:
        return by_code[name], "code"
    return None, None


def _durations(project: Project, story: list[str], frames: dict[str, int], fps: Fraction):
    """Replay the exports' frame counting over the new story order; change only what must."""
    changes = []
    before, done = Fraction(0), 0
    for shot in story:
        spec = project.nodes.get(shot)
        current = spec.duration if spec is not None else None  # None: an omitted shot not in the graph
        target = done + frames[shot]
        if current is not None and round_half_up((before + exact(current)) * fps) == target:
            now = current
        else:
            now = seconds_for(frames[shot], fps, before=before, done=done)
            changes.append((shot, current, frames[shot], now))
        before += exact(now)
        done = target
    return changes


def apply(result: Conform) -> list[Path]:
    """Write the changes into the storyboard's files (comments and formatting kept)."""
    from .writeback import Editor

    editor = Editor(result.storyboard)
    for shot, _, _, now in result.durations:
        editor.set_shot(shot, "duration", int(now) if float(now).is_integer() else now)
    for scene, (_, order) in result.orders.items():
        editor.reorder_shots(scene, order)
    for shot in result.omit:
        editor.set_shot(shot, "omit", True)
    for shot in result.restore:
        editor.set_shot(shot, "omit", None)
    return editor.save()
