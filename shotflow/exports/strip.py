"""``python -m shotflow.exports.strip STORYBOARD --strip PNG``: a strip of preview panels.

    python -m shotflow.exports.strip examples/lighthouse/storyboard.yaml --strip docs/previs.png \\
        --shots arrival/wide arrival/door radio/console radio/station radio/reaction rescue/signal

renders the storyboard into a temporary copy on the preview backend (as a user's
``shotflow render`` would, references and all), then lays the picked frames of the
given shots (default: every shot) side by side, ``--columns`` a row, ``--width`` pixels
each: about the size a board shows them at. The README's strip is made this way.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shotflow.exports.strip", description=__doc__.split("\n\n")[0])
    parser.add_argument("storyboard", type=Path)
    parser.add_argument("--strip", type=Path, required=True, metavar="PNG", help="where to write the strip")
    parser.add_argument("--shots", nargs="+", default=None, metavar="ID", help="shot ids, in this order (default: all)")
    parser.add_argument("--columns", type=int, default=3, help="panels a row (default 3)")
    parser.add_argument("--width", type=int, default=420, metavar="PX", help="width of a panel (default 420)")
    args = parser.parse_args(argv)

    from ..expand import load_project
    from ..model import frame_paths
    from ..render import RenderOptions
    from ..render import render as run
    from ..report import RecordingReporter
    from . import _draw

    with tempfile.TemporaryDirectory(prefix="shotflow-strip-") as tmp:
        copy = Path(tmp) / "project"
        shutil.copytree(
            args.storyboard.resolve().parent,
            copy,
            ignore=shutil.ignore_patterns(".shotflow", "renders", "*.lock", "*.html"),
        )
        story = copy / args.storyboard.name
        summary = run(story, RenderOptions(backend="preview"), RecordingReporter())
        if summary.failed:
            print(f"error: {summary.failed} shots failed to render", file=sys.stderr)
            return 1
        project = load_project(story)
        ids = args.shots or [n for n in project.nodes if "/" in n]
        unknown = [i for i in ids if i not in project.nodes]
        if unknown:
            print(f"error: no such shot: {', '.join(unknown)}", file=sys.stderr)
            return 2
        frames = []
        for node_id in ids:
            spec = project.nodes[node_id]
            path = frame_paths(project, spec)[spec.pick - 1]
            with _draw.Image.open(path) as img:
                frames.append((node_id, img.convert("RGB")))
        strip = _lay_out(frames, columns=max(1, min(args.columns, len(frames))), width=args.width)
        args.strip.parent.mkdir(parents=True, exist_ok=True)
        strip.save(args.strip, "PNG", optimize=True)
    print(f"wrote {args.strip}")
    return 0


def _lay_out(frames, *, columns: int, width: int):
    """Panels in rows, each with its shot id under it, on the board's dark background."""
    from . import _draw

    gap = max(8, width // 30)
    label = _draw.font(max(11, width // 28), bold=True)
    line = label.getbbox("Ag")[3] + gap // 2
    heights = [round(width * img.height / img.width) for _, img in frames]
    cell = max(heights) + line
    rows = -(-len(frames) // columns)
    strip = _draw.Image.new("RGB", (columns * width + (columns + 1) * gap, rows * (cell + gap) + gap), (18, 20, 24))
    draw = _draw.ImageDraw.Draw(strip)
    for i, (node_id, img) in enumerate(frames):
        row, col = divmod(i, columns)
        x, y = gap + col * (width + gap), gap + row * (cell + gap)
        strip.paste(_draw.fit(img, (width, heights[i])), (x, y))
        draw.text((x, y + heights[i] + gap // 3), node_id, font=label, fill=(235, 231, 224))
    return strip


if __name__ == "__main__":
    sys.exit(main())
