"""``shotflow export --otio / --fcp-xml / --fcpxml / --edl``: the cut as a timeline, for editors.

    Timeline "The Lighthouse Keeper"   global start 01:00:00:00   metadata["shotflow"]: storyboard, fps …
    └── Stack
        └── Track "Storyboard" (Video)
            ├── Clip "010_0010"  60 frames @ 24000/1001   ExternalReference(file:///…/renders/arrival/wide.png)
            │     metadata["shotflow"]: id, code, number, scene, shot, state, prompt, camera,
            │                           request_key, model, size, takes, pick, cost, backend, frame
            │     markers: "dialogue: …", "notes: …"
            ├── Clip "010_0020"  36 frames
            └── Clip "020_0010" …                 MissingReference when it has no frame yet

Shots in the cut only (sheets are not on screen, omitted shots are out), in story order,
with the same frame counts as the animatic: cumulative rounding at the exact rate
(``editorial.fps``, or ``--fps``: 23.976 is 24000/1001), so every clip starts and ends on
a frame and the total is exact. Clip names are the shot codes when the storyboard sets
``editorial.shot_code``, else the shot ids; the id is always in the clip's metadata (and
the picked frame's file name says it too), which is what ``shotflow conform`` reads back.
Media:

- ``.otio``: each clip's ``target_url`` is the absolute ``file://`` URL of its picked
  frame in renders/ (or of the cache object holding its bytes when renders/ lacks it);
- ``.otioz``: a zip (OTIO's own bundle format) with the frames copied in as
  ``media/shot-SCENE-SHOT.EXT`` and linked by those relative paths;
- ``--fcp-xml`` / ``--fcpxml``: OTIO's Final Cut Pro 7 XML (Premiere, Resolve, Avid) and
  Final Cut Pro X adapters, from the ``otio-fcp-adapter`` / ``otio-fcpx-xml-adapter``
  packages, with absolute file URLs as in ``.otio``;
- ``--edl``: CMX 3600 through OTIO's ``otio-cmx3600-adapter``, within the format's limits:
  an ``FCM:`` line (drop-frame at 29.97 and 59.94), reel names of at most 8 characters
  (the shot code, ``010_0010``), ASCII comment lines of at most 80 characters: the clip
  name, the frame's path relative to the storyboard, ``* SHOT: scene/shot``, and dialogue
  and notes as locators. Record timecode starts at ``editorial.start``.

Dialogue and notes become markers spanning their clip, named ``dialogue: TEXT`` and
``notes: TEXT`` (``comment`` holds the text alone, ``metadata["shotflow"]["kind"]`` the kind).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import unicodedata
from pathlib import Path
from typing import Any

from ..editorial import Editorial, fps_label, is_drop_frame
from ._frames import Panel, Sequence, anchors, frame_counts

ADAPTER_PACKAGES = {
    "fcp_xml": "otio-fcp-adapter",
    "fcpx_xml": "otio-fcpx-xml-adapter",
    "cmx_3600": "otio-cmx3600-adapter",
}
EDL_LINE = 80  # CMX 3600 lines, comments included
EDL_REEL = 8  # characters of a reel name


def _otio():
    from ..errors import ConfigError

    try:
        import opentimelineio
    except ImportError as exc:
        raise ConfigError(
            "OpenTimelineIO export needs the opentimelineio package", hint="pip install 'shotflow[otio]'"
        ) from exc
    return opentimelineio


def clip_name(panel: Panel, editorial: Editorial) -> str:
    """The shot code when the storyboard sets ``editorial.shot_code``, else the shot id."""
    return panel.code if editorial.shot_code and panel.code else panel.id


def build_timeline(seq: Sequence, *, editorial: Editorial | None = None, media: dict[str, str] | None = None):
    """The timeline of ``seq``; ``media`` maps node ids to target URLs (default: absolute file URLs)."""
    otio = _otio()
    ed = editorial or seq.editorial
    rate = float(ed.fps)
    shots = seq.shots
    counts = frame_counts([p.duration for p in shots], ed.fps)
    timeline = otio.schema.Timeline(name=seq.title)
    timeline.global_start_time = otio.opentime.RationalTime(ed.start, rate)
    timeline.metadata["shotflow"] = {
        "storyboard": str(seq.project.path),
        "lock": str(seq.project.lock_path),
        "fps": fps_label(ed.fps),
        "rate": f"{ed.fps.numerator}/{ed.fps.denominator}",
        "start": ed.start_timecode,
        "backend": seq.backend,
        "shots": len(shots),
        "frames": sum(counts),
        "seconds": float(sum(counts) / ed.fps),
    }
    track = otio.schema.Track(name="Storyboard", kind=otio.schema.TrackKind.Video)
    timeline.tracks.append(track)
    for panel, count in zip(shots, counts, strict=True):
        if count == 0:
            continue  # shorter than half a frame (as on the animatic)
        track.append(_clip(otio, panel, count, rate, clip_name(panel, ed), media))
    return timeline


def _clip(otio, panel: Panel, count: int, rate: float, name: str, media: dict[str, str] | None):
    rt = otio.opentime
    span = rt.TimeRange(rt.RationalTime(0, rate), rt.RationalTime(count, rate))
    spec = panel.spec
    picked = panel.picked
    info: dict[str, Any] = {
        "id": panel.id,
        "code": panel.code,
        "number": panel.number,
        "scene": spec.scene,
        "shot": spec.name,
        "state": panel.state.value,
        "message": panel.message,
        "prompt": spec.prompt,
        "camera": {k: v for k, v in spec.camera.as_dict().items() if v},
        "duration": spec.duration,
        "frames": count,
        "request_key": panel.key,
        "model": spec.model,
        "size": spec.size,
        "takes": spec.takes,
        "pick": panel.pick,
        "cost": panel.cost,
        "backend": panel.backend,
        "frame": str(picked.path) if picked else None,
        "action": spec.action,
        "dialogue": spec.dialogue,
        "notes": spec.notes,
    }
    info = {k: v for k, v in info.items() if v is not None}
    if picked is None:
        reference = otio.schema.MissingReference(
            name=panel.id, available_range=span, metadata={"shotflow": {"state": panel.state.value}}
        )
    else:
        url = (media or {}).get(panel.id) or picked.file.resolve().as_uri()
        reference = otio.schema.ExternalReference(target_url=url, available_range=span)
        reference.name = os.path.basename(picked.file) if picked.in_renders else f"{picked.sha256[:16]}.{picked.ext}"
    clip = otio.schema.Clip(name=name, media_reference=reference, source_range=span)
    clip.metadata["shotflow"] = info
    for kind, text, colour in (
        ("dialogue", spec.dialogue, otio.schema.MarkerColor.YELLOW),
        ("notes", spec.notes, otio.schema.MarkerColor.CYAN),
    ):
        if text:
            # the text is in the name too: the Final Cut XML adapters keep a marker's name, not its comment
            marker = otio.schema.Marker(
                name=f"{kind}: {text}",
                marked_range=span,
                color=colour,
                comment=text,
                metadata={"shotflow": {"kind": kind, "text": text}},
            )
            clip.markers.append(marker)
    return clip


def write_timeline(
    seq: Sequence, output: Path, *, editorial: Editorial | None = None, adapter: str | None = None
) -> str:
    """Write the timeline; ``adapter`` None picks by extension (.otio, .otioz). Returns a summary.

    ``editorial`` (default: the storyboard's) sets the rate, the start timecode and clip names.
    """
    from ..errors import ConfigError, UsageError

    otio = _otio()
    from .. import outputs

    ed = editorial or seq.editorial
    output = Path(output)
    suffix = output.suffix.lower() or (".otio" if adapter is None and outputs.is_stdout(output) else "")
    if adapter is None and suffix not in (".otio", ".otioz"):
        raise UsageError(f"--otio {output.name}: the extension must be .otio or .otioz")
    if adapter is not None and adapter not in otio.adapters.available_adapter_names():
        raise ConfigError(
            f"writing {output.name} needs OpenTimelineIO's {adapter} adapter, which is not installed",
            hint=f"pip install {ADAPTER_PACKAGES.get(adapter, adapter)}",
        )
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=outputs.temp_dir(output), prefix=".tmp-", suffix=suffix)
    os.close(fd)
    os.unlink(tmp)  # the otioz adapter refuses to overwrite: give it a fresh name
    try:
        if suffix == ".otioz" and adapter is None:
            timeline = _write_bundle(otio, seq, ed, tmp)
        elif adapter == "cmx_3600":
            timeline = build_timeline(seq, editorial=ed, media=_relative_media(seq))
            Path(tmp).write_text(edl_text(otio, timeline, seq, ed), encoding="ascii")
        else:
            timeline = build_timeline(seq, editorial=ed)
            otio.adapters.write_to_file(timeline, tmp, adapter_name=adapter or "otio_json")
        outputs.place(tmp, output)
    except otio.exceptions.OTIOError as exc:
        raise ConfigError(f"OpenTimelineIO could not write {output.name}: {exc}") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    clips = list(timeline.find_clips())
    missing = sum(1 for c in clips if isinstance(c.media_reference, otio.schema.MissingReference))
    frames = sum(c.source_range.duration.to_frames() for c in clips)
    seconds = float(frames / ed.fps)
    return (
        f"{len(clips)} clips, {frames} frames ({_seconds(seconds)} s) at {fps_label(ed.fps)} fps "
        f"from {ed.start_timecode}" + (f", {missing} without a frame" if missing else "")
    )


def _seconds(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".")


# -- CMX 3600 -----------------------------------------------------------------------------------------------------


def _relative_media(seq: Sequence) -> dict[str, str]:
    """Frames by their path relative to the storyboard: an EDL comment is a line of 80 characters."""
    media = {}
    for panel in seq.shots:
        picked = panel.picked
        if picked is not None:
            try:
                media[panel.id] = Path(os.path.relpath(picked.file, seq.project.root)).as_posix()
            except ValueError:  # another drive (Windows)
                media[panel.id] = os.path.basename(picked.file)
    return media


def edl_reel(code: str) -> str:
    """A reel name within CMX 3600's 8 characters: the shot code's letters, digits and '_'."""
    return (re.sub(r"[^A-Za-z0-9_]", "", code) or "AX")[:EDL_REEL]


def _ascii(text: str, limit: int) -> str:
    """One EDL comment: ASCII (accents dropped, not the letters), one line, at most ``limit``."""
    flat = unicodedata.normalize("NFKD", " ".join(str(text).split()))
    flat = flat.encode("ascii", "ignore").decode("ascii")
    return flat if len(flat) <= limit else flat[: limit - 3].rstrip() + "..."


def edl_text(otio, timeline, seq: Sequence, ed: Editorial) -> str:
    """The timeline as CMX 3600, through OTIO's adapter, held to the format's limits."""
    from ..errors import ConfigError

    if "cmx_3600" not in otio.adapters.available_adapter_names():
        raise ConfigError(
            "writing an EDL needs OpenTimelineIO's cmx_3600 adapter, which is not installed",
            hint="pip install otio-cmx3600-adapter (or 'shotflow[otio]')",
        )
    edl = timeline.deepcopy()
    edl.name = _ascii(timeline.name, EDL_LINE - len("TITLE: "))
    track = edl.tracks[0]
    loc = len("* LOC: 00:00:00:00 YELLOW  ")
    for clip in track.find_clips():
        info = clip.metadata["shotflow"]
        clip.name = _ascii(clip.name, EDL_LINE - len("* FROM CLIP NAME:  "))
        clip.metadata["cmx_3600"] = {
            "reel": edl_reel(info.get("code") or clip.name),
            "comments": [_ascii(f"SHOT: {info['id']}", EDL_LINE - 2)],
        }
        for marker in clip.markers:
            marker.name = _ascii(marker.name, EDL_LINE - loc)
    if ed.start:
        # the adapter counts record time from the track's first frame: a leading gap is no event,
        # and puts the first cut at the start timecode
        rt = otio.opentime
        track.insert(0, otio.schema.Gap(source_range=rt.TimeRange(duration=rt.RationalTime(ed.start, float(ed.fps)))))
    text = otio.adapters.write_to_string(
        edl, adapter_name="cmx_3600", rate=float(ed.fps), style="avid", reelname_len=EDL_REEL
    )
    fcm = "FCM: DROP FRAME" if is_drop_frame(ed.fps) else "FCM: NON-DROP FRAME"
    head, sep, rest = text.partition("\n\n")
    text = f"{head}\n{fcm}\n\n{rest}" if sep and head.startswith("TITLE:") else f"{fcm}\n\n{text}"
    return text.encode("ascii", "replace").decode("ascii")


def _write_bundle(otio, seq: Sequence, ed: Editorial, path: str):
    """An .otioz: OTIO's adapter zips the frames it finds through their file URLs and needs
    unique base names, so each frame is linked under its panel's unique anchor first."""
    from ..errors import ConfigError

    ids = anchors(seq.panels)
    with tempfile.TemporaryDirectory(prefix="shotflow-otioz-") as tmp:
        media = {}
        for panel in seq.shots:
            picked = panel.picked
            if picked is None:
                continue
            link = Path(tmp) / f"{ids[panel.id]}.{picked.ext}"
            try:
                link.symlink_to(picked.file.resolve())
            except OSError:  # no symlinks here (some Windows setups): copy instead
                shutil.copyfile(picked.file, link)
            media[panel.id] = link.as_uri()
        timeline = build_timeline(seq, editorial=ed, media=media)
        policy = otio.adapters.file_bundle_utils.MediaReferencePolicy.MissingIfNotFile
        try:
            otio.adapters.write_to_file(timeline, path, adapter_name="otioz", media_policy=policy)
        except otio.exceptions.OTIOError as exc:
            raise ConfigError(f"OpenTimelineIO could not bundle {Path(path).name}: {exc}") from exc
    return timeline
