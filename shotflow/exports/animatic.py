"""``shotflow animatic``: the shots in story order, each held for its duration, as MP4 or GIF.

    shot       wide    lamp   door    …          durations 4, 1.5, 2.5 s at 24 fps
    cut at     0       96     132     192        round(cumulative seconds × fps)
    frames     96      36     60      …          so the total is exact to the frame

The rate is the storyboard's ``editorial.fps`` (or ``--fps``), an exact rational: at 23.976
the video runs at 24000/1001 and its cuts fall on the frames the timelines name.

MP4 (also .mov / .m4v): H.264, yuv420p, even dimensions, constant frame rate,
through ffmpeg (the one ``imageio-ffmpeg`` ships — ``pip install 'shotflow[video]'``
— or an ``ffmpeg`` on the PATH). Each distinct frame is drawn once with Pillow
(letterboxed to one size, captions burned in with the shipped DejaVu font) and
written once; ffmpeg's concat demuxer holds it for its frame count, so ffmpeg decodes
and converts each still once and only the H.264 encoder sees every frame.

GIF: Pillow alone, one GIF frame per shot with its duration (GIF counts in
hundredths of a second, so there the cuts are exact to 10 ms).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from ..editorial import round_half_up
from ..status import Status
from ._frames import Panel, Sequence, frame_counts

VIDEO = {".mp4", ".mov", ".m4v"}
GIF_DEFAULT_MAX_WIDTH = 960


@dataclass(frozen=True)
class Animatic:
    path: Path
    width: int
    height: int
    fps: Fraction
    frames: int  # video frames (MP4), or 0 for a GIF
    seconds: float
    shots: int
    elapsed: float


def default_output(seq: Sequence) -> Path:
    return seq.project.renders_dir / "animatic.mp4"


def find_ffmpeg() -> str:
    """imageio-ffmpeg's binary (it honours IMAGEIO_FFMPEG_EXE), else ``ffmpeg`` on the PATH."""
    from ..errors import ConfigError

    try:
        import imageio_ffmpeg
    except ImportError:
        pass
    else:
        try:
            return imageio_ffmpeg.get_ffmpeg_exe()
        except RuntimeError:
            pass
    found = shutil.which("ffmpeg")
    if found:
        return found
    raise ConfigError(
        "the MP4 animatic needs ffmpeg, and none was found",
        hint="pip install 'shotflow[video]' (imageio-ffmpeg ships one), install ffmpeg, or write a .gif instead",
    )


def parse_size(text: str) -> tuple[int, int]:
    from ..errors import UsageError

    w, sep, h = text.lower().partition("x")
    if not (sep and w.isdigit() and h.isdigit() and 16 <= int(w) <= 8192 and 16 <= int(h) <= 8192):
        raise UsageError(f"--size {text}: expected WIDTHxHEIGHT, e.g. 1280x720 (16 to 8192 pixels each)")
    return int(w), int(h)


def write_animatic(
    seq: Sequence,
    output: Path,
    *,
    fps: Fraction | int | None = None,
    size: tuple[int, int] | None = None,
    captions: bool = False,
) -> Animatic:
    """Write the animatic of ``seq`` to ``output`` (.mp4/.mov/.m4v or .gif).

    ``fps`` (default: the storyboard's ``editorial.fps``) is exact: 23.976 is 24000/1001,
    and the video's frame rate is that rational, so its frames fall where a timeline's do.
    """
    from ..errors import UsageError

    started = time.perf_counter()
    fps = Fraction(fps) if fps is not None else seq.editorial.fps
    output = Path(output)
    suffix = output.suffix.lower()
    if str(output) == "-":
        raise UsageError("the animatic is not written to standard output: name a file (.mp4, .mov, .m4v or .gif)")
    if suffix not in VIDEO and suffix != ".gif":
        raise UsageError(
            f"animatic: cannot write {suffix or 'a file without extension'} ({output.name}); "
            "use .mp4 (H.264), .mov, .m4v or .gif"
        )
    shots = seq.shots
    if not shots:
        raise UsageError(f"{seq.project.path.name} has no shots: there is nothing to put on an animatic")
    width, height = size or _default_size(shots[0], gif=suffix == ".gif")
    width, height = max(2, width - width % 2), max(2, height - height % 2)  # yuv420p needs even sides
    counts = frame_counts([p.duration for p in shots], fps)
    total = sum(counts)
    output.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".gif":
        _write_gif(shots, counts, fps, (width, height), captions, output)
        frames = 0
    else:
        _write_video(shots, counts, fps, (width, height), captions, output)
        frames = total
    return Animatic(
        path=output,
        width=width,
        height=height,
        fps=fps,
        frames=frames,
        seconds=float(total / fps),
        shots=sum(1 for c in counts if c),
        elapsed=time.perf_counter() - started,
    )


def _default_size(first: Panel, *, gif: bool) -> tuple[int, int]:
    w, h = first.spec.width, first.spec.height
    if gif and w > GIF_DEFAULT_MAX_WIDTH:
        w, h = GIF_DEFAULT_MAX_WIDTH, round(h * GIF_DEFAULT_MAX_WIDTH / w)
    return w, h


def _stills(shots: list[Panel], counts: list[int], size: tuple[int, int], captions: bool):
    """(image, frame count) per shot that lasts at least one frame, each drawn once."""
    from . import _draw

    for panel, count in zip(shots, counts, strict=True):
        if count == 0:
            continue  # shorter than half a frame: the cut points around it stay exact
        frame = _draw.open_picked(panel, size)
        if frame is None:
            label, detail = _draw.state_label(panel)
            title = f"{panel.number}  {panel.id}"  # without captions, the card still says which shot it stands for
            image = _draw.placeholder(
                size, label, f"{title} — {detail}" if detail else title, accent=_draw.STATE_COLOURS[panel.state]
            )
        else:
            image = _draw.fit(frame, size)
        if captions:
            _caption(image, panel)
        yield image, count


def _caption(image, panel: Panel) -> None:
    """Burn in the shot's number and id (top left), its state when the frame is an old one
    (top right: STALE, FAILED, SKIPPED) and its dialogue (bottom, centred)."""
    from PIL import Image, ImageDraw

    from . import _draw

    w, h = image.size
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    tag_f = _draw.font(max(12, h // 30), bold=True)
    pad = max(6, h // 90)
    tag = f"{panel.number}  {panel.id}  ·  {panel.duration:g} s"
    tw = tag_f.getlength(tag)
    th = tag_f.getbbox("Ag")[3]
    draw.rectangle([pad, pad, pad * 3 + tw, pad * 3 + th], fill=(0, 0, 0, 225))
    draw.text((pad * 2, pad * 2), tag, font=tag_f, fill=(255, 255, 255, 255))
    if panel.state is not Status.FRESH and panel.picked is not None:  # an old frame: say so
        state = panel.state.value.upper()
        sw = tag_f.getlength(state)
        draw.rectangle([w - pad * 3 - sw, pad, w - pad, pad * 3 + th], fill=(*_draw.STATE_COLOURS[panel.state], 235))
        draw.text((w - pad * 2 - sw, pad * 2), state, font=tag_f, fill=(0, 0, 0, 255))
    if panel.spec.dialogue:
        line_f = _draw.font(max(14, h // 24))
        lines = _draw.wrap(panel.spec.dialogue, line_f, w * 0.84, max_lines=2)
        lh = round(line_f.getbbox("Ag")[3] * 1.3)
        top = h - pad * 4 - lh * len(lines)
        draw.rectangle([0, top - pad, w, h], fill=(0, 0, 0, 150))
        for i, line in enumerate(lines):
            lw = line_f.getlength(line)
            draw.text(((w - lw) / 2, top + i * lh), line, font=line_f, fill=(255, 255, 255, 255))
    image.paste(Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB"))


def _write_video(shots, counts, fps, size, captions, output: Path) -> None:
    """Each distinct frame drawn once to a still; ffmpeg's concat demuxer holds each for its
    frame count, converts it to yuv420p once, and the fps filter repeats it at ``fps``."""
    from ..errors import ConfigError

    ffmpeg = find_ffmpeg()
    total = sum(counts)
    # beside the output, so the finished video is renamed into place (atomic, same file system)
    from .. import outputs

    with tempfile.TemporaryDirectory(dir=outputs.temp_dir(output), prefix=".tmp-animatic-") as tmp:
        lines = ["ffconcat version 1.0"]
        name = ""
        for i, (image, count) in enumerate(_stills(shots, counts, size, captions)):
            name = f"{i:04d}.png"
            image.save(Path(tmp) / name, "PNG", compress_level=1)
            # count / fps to the nanosecond: the demuxer keeps microseconds, far inside half a frame
            lines += [f"file {name}", f"duration {float(count / fps):.9f}"]
        lines.append(f"file {name}")  # the demuxer drops the last duration unless the file is listed again
        (Path(tmp) / "list.ffconcat").write_text("\n".join(lines) + "\n", encoding="ascii")
        video = Path(tmp) / f"animatic{output.suffix}"
        cmd = [
            ffmpeg,
            "-hide_banner",
            "-loglevel",
            "error",
            "-nostdin",
            "-y",
            "-f",
            "concat",
            "-safe",
            "0",
            "-i",
            str(Path(tmp) / "list.ffconcat"),
            "-vf",
            f"format=yuv420p,fps={fps.numerator}/{fps.denominator}",
            "-frames:v",
            str(total),
            "-an",
            # ultrafast: each repeat costs the least, and at crf 20 a still keeps ~55 dB PSNR
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-crf",
            "20",
            "-pix_fmt",
            "yuv420p",
            "-movflags",
            "+faststart",
            str(video),
        ]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        except OSError as exc:
            raise ConfigError(f"cannot run ffmpeg ({ffmpeg}): {exc}") from exc
        if done.returncode != 0 or not video.is_file():
            tail = " ".join(done.stderr.strip().splitlines()[-3:])
            raise ConfigError(f"ffmpeg could not encode {output.name} (exit {done.returncode}): {tail or 'no message'}")
        outputs.place(video, output)


def _write_gif(shots, counts, fps, size, captions, output: Path) -> None:
    import io

    from PIL import Image

    from .. import outputs

    images, durations = [], []
    elapsed_frames, done_cs = 0, 0
    for image, count in _stills(shots, counts, size, captions):
        elapsed_frames += count
        end_cs = round_half_up(elapsed_frames * 100 / fps)
        images.append(image.quantize(colors=255, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE))
        durations.append((end_cs - done_cs) * 10)
        done_cs = end_cs
    buffer = io.BytesIO()
    images[0].save(
        buffer, "GIF", save_all=True, append_images=images[1:], duration=durations, loop=0, optimize=False, disposal=1
    )
    outputs.write(output, buffer.getvalue())
