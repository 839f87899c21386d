"""The export commands: argument parsing only; each calls its module.

    shotflow board FILE          -> board.write_board
    shotflow contact-sheet FILE  -> contact.write_contact_sheet
    shotflow animatic FILE       -> animatic.write_animatic
    shotflow export FILE         -> timeline.write_timeline (--otio, --fcp-xml, --fcpxml), shotlist.write_csv (--csv)

The CLI imports this module for ``shotflow --help``, so it imports click and nothing
else at the top: the export modules (and Pillow, OpenTimelineIO, ffmpeg) load only when
their command runs. The common options are ``shotflow._cliopts``'s, as for every command.
"""

from __future__ import annotations

from pathlib import Path

import click

from .._cliopts import ShotflowCommand, backend_opt, cache_opt, output_opt, overrides, set_opt, storyboard_arg
from .._text import counted

FPS_NAMES = ("23.976", "24", "25", "29.97", "30", "50", "59.94", "60")
fps_opt = click.option(
    "--fps",
    default=None,
    metavar="RATE",
    help="Frame rate: " + ", ".join(FPS_NAMES) + " (23.976 is 24000/1001; "
    "default: the storyboard's editorial.fps, else 24).",
)


def _fps(value: str | None):
    """``--fps`` as an exact rate (None: the storyboard's). Parsed here so a bad rate is one line."""
    if value is None:
        return None
    from ..editorial import parse_fps

    return parse_fps(value, option="--fps")


def common(fn):
    """FILE plus --set, --backend and --cache, as every export command takes them."""
    return storyboard_arg(set_opt(backend_opt(cache_opt(fn))))


def sequence(storyboard: Path, sets, backend, cache_dir):
    """Load the storyboard and read what its renders left (see _frames)."""
    from .._cliopts import remote_of
    from ._frames import load_sequence

    # the remote given before the command (shotflow --remote URL board …), else the usual ones
    return load_sequence(storyboard, overrides(sets), backend, cache_dir, remote=remote_of(None))


def _duration(seconds: float) -> str:
    from ._frames import format_duration

    return format_duration(seconds)


def say(text: str, target=None) -> None:
    """A line for the user: on standard error when the export itself goes to standard output."""
    click.echo(text, err=target is not None and str(target) == "-")


def checked(path: Path | None, seq, default=None) -> Path:
    """The output path (``path`` the user gave, else ``default(seq)``), refused before any
    work when it is unsafe (see shotflow.outputs)."""
    from ..outputs import check

    target = path if path is not None else default(seq)
    check(target, seq.project, given=path is not None)
    return target


def shown(path: Path) -> str:
    from ..load import display_path

    return "standard output" if str(path) == "-" else display_path(path)


@click.command(cls=ShotflowCommand, name="export")
@common
@output_opt(
    "--otio",
    "otio_path",
    help="An OpenTimelineIO timeline: .otio (frames linked by absolute file URL) or .otioz (a zip with the frames).",
)
@output_opt(
    "--fcp-xml",
    "fcp_path",
    help="Final Cut Pro 7 XML (.xml) for Premiere Pro, Resolve and Avid (needs otio-fcp-adapter).",
)
@output_opt("--fcpxml", "fcpx_path", help="Final Cut Pro X XML (.fcpxml) (needs otio-fcpx-xml-adapter).")
@output_opt("--edl", "edl_path", help="A CMX 3600 EDL (.edl) for any editor (needs otio-cmx3600-adapter).")
@output_opt("--csv", "csv_path", help="A shot list: one row per shot, in story order (UTF-8 CSV).")
@fps_opt
def export(storyboard: Path, sets, backend, cache_dir, otio_path, fcp_path, fcpx_path, edl_path, csv_path, fps) -> None:
    """Export the cut for editors: --otio / --fcp-xml / --fcpxml / --edl timelines, --csv shot list.

    \b
    shotflow export storyboard.yaml --otio cut.otio
    shotflow export storyboard.yaml --otio cut.otioz --csv shots.csv
    shotflow export storyboard.yaml --edl cut.edl --fps 23.976
    Shots in the cut in story order, each for its duration, cut on exact frames at the
    storyboard's editorial.fps (or --fps); a shot not rendered yet is a clip with a
    missing reference (a gap in the picture), never an error.
    """

    from ..errors import UsageError

    if not any((otio_path, fcp_path, fcpx_path, edl_path, csv_path)):
        raise UsageError(
            "export needs at least one of --otio PATH, --fcp-xml PATH, --fcpxml PATH, --edl PATH, --csv PATH",
            hint="e.g. shotflow export storyboard.yaml --otio cut.otio --csv shots.csv",
        )
    rate = _fps(fps)
    seq = sequence(storyboard, sets, backend, cache_dir)
    for path in (csv_path, otio_path, fcp_path, fcpx_path, edl_path):
        if path:
            checked(path, seq)
    editorial = seq.editorial.with_fps(rate)
    if csv_path:
        from .shotlist import write_csv

        write_csv(seq, csv_path, editorial=editorial)
        say(f"wrote {shown(csv_path)} ({counted(len(seq.shots), 'shot')})", csv_path)
    if otio_path or fcp_path or fcpx_path or edl_path:
        from .timeline import write_timeline

        for path, adapter in (
            (otio_path, None),
            (fcp_path, "fcp_xml"),
            (fcpx_path, "fcpx_xml"),
            (edl_path, "cmx_3600"),
        ):
            if path:
                summary = write_timeline(seq, path, editorial=editorial, adapter=adapter)
                say(f"wrote {shown(path)} ({summary})", path)


@click.command(cls=ShotflowCommand, name="board")
@common
@output_opt("-o", "--output", help="Where to write the page (default: renders/board.html beside the storyboard).")
@click.option(
    "--relative",
    is_flag=True,
    help="Link the frames in renders/ by relative path instead of embedding them (a smaller page "
    "that must stay beside renders/).",
)
@click.option(
    "--full-res",
    is_flag=True,
    help="Embed every frame byte for byte (default: frames over 400 KiB are scaled to 1600 px JPEG).",
)
@click.option(
    "--hide-prompts",
    is_flag=True,
    help="Write the page with prompts hidden (a director reads pictures); its switch shows them again.",
)
def board(storyboard: Path, sets, backend, cache_dir, output, relative, full_res, hide_prompts) -> None:
    """Write a self-contained HTML storyboard of the frames (opens from disk, prints as sheets).

    \b
    shotflow board storyboard.yaml                  -> renders/board.html
    shotflow board storyboard.yaml -o board.html --relative
    Shots not rendered yet appear as marked placeholders; nothing is generated.
    """

    from .board import default_output, write_board

    seq = sequence(storyboard, sets, backend, cache_dir)
    path = write_board(
        seq, checked(output, seq, default_output), relative=relative, full_res=full_res, hide_prompts=hide_prompts
    )
    missing = seq.without_frames()
    note = f"; {missing}" if missing else ""
    say(f"wrote {shown(path)} ({counted(len(seq.shots), 'shot')}, {_duration(seq.duration)}{note})", path)


@click.command(cls=ShotflowCommand, name="contact-sheet")
@common
@output_opt(
    "-o", "--output", help="Where to write it: .png, .pdf (paginated) or .jpg (default: renders/contact-sheet.png)."
)
@click.option("--columns", type=click.IntRange(1, 12), default=4, show_default=True, help="Frames per row.")
@click.option(
    "--width",
    "cell_width",
    type=click.IntRange(120, 2000),
    default=480,
    show_default=True,
    metavar="PX",
    help="Width of each frame.",
)
@click.option("--shots-only", is_flag=True, help="Leave the reference sheets out.")
@click.option(
    "--page", type=click.Choice(["a4", "letter"]), default=None, help="PDF paper (default a4); 1 to 4 columns a page."
)
@click.option(
    "--orientation",
    type=click.Choice(["landscape", "portrait"]),
    default=None,
    help="PDF page orientation (default landscape).",
)
@click.option(
    "--fields",
    default=None,
    metavar="LIST",
    help="What to print under each frame, comma-separated, in order: code, duration, camera, dialogue, "
    "action, notes (default: code,duration,camera,dialogue).",
)
def contact_sheet(
    storyboard: Path, sets, backend, cache_dir, output, columns, cell_width, shots_only, page, orientation, fields
) -> None:
    """Write a contact sheet: the picked frames in story order, with captions (PNG or PDF).

    \b
    shotflow contact-sheet storyboard.yaml -o sheet.pdf --columns 3
    shotflow contact-sheet storyboard.yaml -o sheet.pdf --page letter --orientation portrait \\
        --columns 2 --fields code,duration,dialogue,notes
    Shots not rendered yet appear as marked placeholders; nothing is generated.
    """

    from .contact import Page, default_output, parse_fields, write_contact_sheet

    chosen = parse_fields(fields)
    paper = Page(page or "a4", orientation or "landscape") if (page or orientation) else None
    seq = sequence(storyboard, sets, backend, cache_dir)
    path = write_contact_sheet(
        seq,
        checked(output, seq, default_output),
        columns=columns,
        width=cell_width,
        shots_only=shots_only,
        fields=chosen,
        page=paper,
    )
    count = len(seq.shots) if shots_only else len([p for p in seq.panels.values() if not p.spec.omit])
    say(f"wrote {shown(path)} ({count} frames, {columns} a row)", path)


@click.command(cls=ShotflowCommand, name="animatic")
@common
@output_opt(
    "-o", "--output", help="Where to write it: .mp4 (H.264), .mov, .m4v or .gif (default: renders/animatic.mp4)."
)
@click.option(
    "--fps",
    default=None,
    metavar="RATE",
    help="Frame rate: " + ", ".join(FPS_NAMES) + " or a whole number up to 120 "
    "(default: the storyboard's editorial.fps, else 24).",
)
@click.option(
    "--size",
    default=None,
    metavar="WxH",
    help="Frame size, e.g. 1280x720; other aspects are letterboxed (default: the first shot's size, "
    "at most 960 wide for a GIF).",
)
@click.option("--captions", is_flag=True, help="Burn in each shot's number, id and duration, and its dialogue.")
def animatic(storyboard: Path, sets, backend, cache_dir, output, fps, size, captions) -> None:
    """Write an animatic: each shot held for its duration, in story order (MP4 or GIF).

    \b
    shotflow animatic storyboard.yaml -o cut.mp4 --captions
    shotflow animatic storyboard.yaml -o cut.gif --size 640x360
    MP4 needs ffmpeg: pip install 'shotflow[video]' or an ffmpeg on the PATH.
    Shots not rendered yet appear as marked placeholder cards; nothing is generated.
    """

    from ..editorial import fps_label, parse_fps
    from .animatic import default_output, parse_size, write_animatic

    wanted = parse_size(size) if size else None
    rate = parse_fps(fps, option="--fps", whole=range(1, 121)) if fps is not None else None
    seq = sequence(storyboard, sets, backend, cache_dir)
    rate = rate or seq.editorial.fps
    result = write_animatic(seq, checked(output, seq, default_output), fps=rate, size=wanted, captions=captions)
    say(
        f"wrote {shown(result.path)} ({counted(result.shots, 'shot')}, {_duration(result.seconds)}, "
        f"{result.width}x{result.height}"
        + (f", {result.frames} frames at {fps_label(rate)} fps" if result.frames else "")
        + f"; {result.elapsed:.1f} s)"
    )
