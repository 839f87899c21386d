"""``shotflow export --otio``: the cut as an OpenTimelineIO timeline, for editors.

    Timeline "The Lighthouse Keeper"            metadata["shotflow"]: storyboard, lock, fps
    └── Stack
        └── Track "Storyboard" (Video)
            ├── Clip "arrival/wide"  96 frames @ 24    ExternalReference(file:///…/renders/arrival/wide.png)
            │     metadata["shotflow"]: id, number, scene, shot, state, prompt, camera,
            │                           request_key, model, size, takes, pick, cost, backend, frame
            │     markers: "notes" (comment = the notes)
            ├── Clip "arrival/lamp"  36 frames
            └── Clip "radio/console" …                 MissingReference when it has no frame yet

Shots only (sheets are not on screen), in story order, with the same frame counts as
the animatic (cumulative rounding: the total is exact to the frame). Media:

- ``.otio``: each clip's ``target_url`` is the absolute ``file://`` URL of its picked
  frame in renders/ (or of the cache object holding its bytes when renders/ lacks it);
- ``.otioz``: a zip (OTIO's own bundle format) with the frames copied in as
  ``media/shot-SCENE-SHOT.EXT`` and linked by those relative paths;
- ``--fcp-xml`` / ``--fcpxml``: OTIO's Final Cut Pro 7 XML (Premiere, Resolve, Avid) and
  Final Cut Pro X adapters, from the ``otio-fcp-adapter`` / ``otio-fcpx-xml-adapter``
  packages, with absolute file URLs as in ``.otio``.

Dialogue and notes become markers spanning their clip, named ``dialogue: TEXT`` and
``notes: TEXT`` (``comment`` holds the text alone, ``metadata["shotflow"]["kind"]`` the kind).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ._frames import Panel, Sequence, anchors, frame_counts

ADAPTER_PACKAGES = {"fcp_xml": "otio-fcp-adapter", "fcpx_xml": "otio-fcpx-xml-adapter"}


def _otio():
    from ..errors import ConfigError

    try:
        import opentimelineio
    except ImportError as exc:
        raise ConfigError("OpenTimelineIO export needs the opentimelineio package",
                          hint="pip install 'shotflow[otio]'") from exc
    return opentimelineio


def build_timeline(seq: Sequence, *, fps: int = 24, media: dict[str, str] | None = None):
    """The timeline of ``seq``; ``media`` maps node ids to target URLs (default: absolute file URLs)."""
    otio = _otio()
    shots = seq.shots
    counts = frame_counts([p.duration for p in shots], fps)
    timeline = otio.schema.Timeline(name=seq.title)
    timeline.metadata["shotflow"] = {
        "storyboard": str(seq.project.path), "lock": str(seq.project.lock_path), "fps": fps,
        "backend": seq.backend, "shots": len(shots), "seconds": sum(counts) / fps,
    }
    track = otio.schema.Track(name="Storyboard", kind=otio.schema.TrackKind.Video)
    timeline.tracks.append(track)
    for panel, count in zip(shots, counts):
        if count == 0:
            continue  # shorter than half a frame (as on the animatic)
        track.append(_clip(otio, panel, count, fps, media))
    return timeline


def _clip(otio, panel: Panel, count: int, fps: int, media: dict[str, str] | None):
    rt = otio.opentime
    span = rt.TimeRange(rt.RationalTime(0, fps), rt.RationalTime(count, fps))
    spec = panel.spec
    picked = panel.picked
    info: dict[str, Any] = {
        "id": panel.id, "number": panel.number, "scene": spec.scene, "shot": spec.name,
        "state": panel.state.value, "message": panel.message, "prompt": spec.prompt,
        "camera": {k: v for k, v in spec.camera.as_dict().items() if v}, "duration": spec.duration,
        "request_key": panel.key, "model": spec.model, "size": spec.size, "takes": spec.takes, "pick": panel.pick,
        "cost": panel.cost, "backend": panel.backend, "frame": str(picked.path) if picked else None,
        "action": spec.action, "dialogue": spec.dialogue, "notes": spec.notes,
    }
    info = {k: v for k, v in info.items() if v is not None}
    if picked is None:
        reference = otio.schema.MissingReference(name=panel.id, available_range=span,
                                                 metadata={"shotflow": {"state": panel.state.value}})
    else:
        url = (media or {}).get(panel.id) or picked.path.resolve().as_uri()
        reference = otio.schema.ExternalReference(target_url=url, available_range=span)
        reference.name = os.path.basename(picked.path) if picked.in_renders else f"{picked.sha256[:16]}.{picked.ext}"
    clip = otio.schema.Clip(name=panel.id, media_reference=reference, source_range=span)
    clip.metadata["shotflow"] = info
    for name, text, colour in (("dialogue", spec.dialogue, otio.schema.MarkerColor.YELLOW),
                               ("notes", spec.notes, otio.schema.MarkerColor.CYAN)):
        if text:
            # the text is in the name too: the Final Cut XML adapters keep a marker's name, not its comment
            marker = otio.schema.Marker(name=f"{name}: {text}", marked_range=span, color=colour, comment=text,
                                        metadata={"shotflow": {"kind": name, "text": text}})
            clip.markers.append(marker)
    return clip


def write_timeline(seq: Sequence, output: Path, *, fps: int = 24, adapter: str | None = None) -> str:
    """Write the timeline; ``adapter`` None picks by extension (.otio, .otioz). Returns a summary."""
    from ..errors import ConfigError, UsageError

    otio = _otio()
    from .. import outputs

    output = Path(output)
    suffix = output.suffix.lower() or (".otio" if adapter is None and outputs.is_stdout(output) else "")
    if adapter is None and suffix not in (".otio", ".otioz"):
        raise UsageError(f"--otio {output.name}: the extension must be .otio or .otioz")
    if adapter is not None and adapter not in otio.adapters.available_adapter_names():
        raise ConfigError(f"writing {output.name} needs OpenTimelineIO's {adapter} adapter, which is not installed",
                          hint=f"pip install {ADAPTER_PACKAGES.get(adapter, adapter)}")
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=outputs.temp_dir(output), prefix=".tmp-", suffix=suffix)
    os.close(fd)
    os.unlink(tmp)  # the otioz adapter refuses to overwrite: give it a fresh name
    try:
        if suffix == ".otioz" and adapter is None:
            timeline = _write_bundle(otio, seq, fps, tmp)
        else:
            timeline = build_timeline(seq, fps=fps)
            otio.adapters.write_to_file(timeline, tmp, adapter_name=adapter or "otio_json")
        outputs.place(tmp, output)
    except otio.exceptions.OTIOError as exc:
        raise ConfigError(f"OpenTimelineIO could not write {output.name}: {exc}") from exc
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    clips = list(timeline.find_clips())
    missing = sum(1 for c in clips if isinstance(c.media_reference, otio.schema.MissingReference))
    seconds = timeline.duration().to_seconds()
    return f"{len(clips)} clips, {seconds:g} s at {fps} fps" + (f", {missing} without a frame" if missing else "")


def _write_bundle(otio, seq: Sequence, fps: int, path: str):
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
                link.symlink_to(picked.path.resolve())
            except OSError:  # no symlinks here (some Windows setups): copy instead
                shutil.copyfile(picked.path, link)
            media[panel.id] = link.as_uri()
        timeline = build_timeline(seq, fps=fps, media=media)
        policy = otio.adapters.file_bundle_utils.MediaReferencePolicy.MissingIfNotFile
        try:
            otio.adapters.write_to_file(timeline, path, adapter_name="otioz", media_policy=policy)
        except otio.exceptions.OTIOError as exc:
            raise ConfigError(f"OpenTimelineIO could not bundle {Path(path).name}: {exc}") from exc
    return timeline
