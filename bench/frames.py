"""Preview backend: milliseconds per frame (and frames per second) at 720p and 1080p.

    python bench/frames.py [--quick] [--frames 40] [--format PNG]

``PreviewBackend().draw_all(Request(...))`` in process, one take per request, with a
generated shot's prompt (~450-650 characters after expansion) and a new seed and
prompt each frame, and a staging that goes round a previs project's mix: 0-3 cast
members, extreme wide to close-up, two-shots, over-the-shoulders, inserts, low and
high angles, a dutch angle, pushes, pans, cranes and handheld. Four cases per size:

    no refs        a shot without reference images
    3 refs, warm   three references whose thumbnails the backend already holds
                   (a later shot reusing a sheet or the previous shot: the usual case)
    3 refs, cold   three references never seen before: decoded and shrunk each frame (they
                   are preview PNGs, so the backend's own PNG reader, not Pillow's, decodes them)
    3 refs, 1 new  two warm references and the frame this backend drew just before, at
                   the same size (untimed): a render's usual shot, whose previous shot
                   is new each time

The references are frames the preview backend drew at 1K-16:9, as in a real run.
Wall clock is the median of perf_counter; the note gives the median CPU time
(process_time) too, which moves less on a busy machine. Target: ≤ 30 ms per 1080p frame.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Result, median, table  # noqa: E402
from generate import build  # noqa: E402

SIZES = {"720p": (1280, 720), "1080p": (1920, 1080)}
TARGET_MS = 30.0


def prompts(count: int) -> list[str]:
    board = build(max(50, count))
    return [shot.expanded for scene in board.scenes for shot in scene.shots][:count]


def stagings(count: int) -> list:
    """A previs project's mix of stagings (see the module docstring), one per frame."""
    from shotflow.model import Camera
    from shotflow.staging import Figure, Staging

    names = ["mara", "tom", "ines"]
    cameras = [
        ("extreme wide", "low angle", "24mm", "slow push in"),
        ("medium", "eye level", "35mm", "handheld"),
        ("close-up", None, "85mm", "slow push in"),
        ("over the shoulder", None, "35mm", None),
        ("medium two shot", "eye level", "50mm", "static"),
        ("wide", "high angle", "24mm", "crane up"),
        ("insert", None, "85mm", "static"),
        ("full", "dutch angle", "28mm", "pan right"),
        ("medium close-up", "low angle", "50mm", "tilt up"),
        ("wide", "bird's eye", "18mm", "pull out"),
    ]
    out = []
    for i in range(count):
        framing, angle, lens, move = cameras[i % len(cameras)]
        cast = names[: (i * 7) % 4]
        sides = {1: ["center"], 2: ["left", "right"], 3: ["left", "center", "right"]}.get(len(cast), [])
        figures = tuple(
            Figure(n, k, x, {"left": "right", "right": "left"}.get(x, "camera"))
            for k, (n, x) in enumerate(zip(cast, sides, strict=True))
        )
        out.append(
            Staging(
                "shot",
                cast=figures,
                location="harbor",
                tone=i % 8,
                camera=Camera(framing=framing, angle=angle, lens=lens, move=move),
            )
        )
    return out


def bench(quick: bool = False, frames: int | None = None, fmt: str = "PNG") -> list[Result]:
    from shotflow.backends import Reference, Request
    from shotflow.backends.preview import PreviewBackend

    frames = frames or (3 if quick else 40)
    texts = prompts(frames)
    staged = stagings(max(frames, 10))
    backend = PreviewBackend()

    def request(i: int, width: int, height: int, refs=()) -> Request:
        prompt = texts[i % len(texts)]
        return Request(
            key=hashlib.sha256(prompt.encode()).hexdigest(),
            node_id=f"bench/{i}",
            model="runway:4@1",
            prompt=prompt,
            width=width,
            height=height,
            output_format=fmt,
            references=tuple(refs),
            seed=1000 + i,
            staging=staged[i % len(staged)],
        )

    # upstream frames, as a real run hands them on (1K-16:9 PNGs drawn by this backend)
    upstream = [backend.draw_all(request(i, 1360, 768))[0].data for i in range(3)]
    digests = [hashlib.sha256(d).hexdigest() for d in upstream]
    tags = ["mara", "harbor", "sh012"]
    warm = [Reference(data=d, sha256=h, tag=t) for d, h, t in zip(upstream, digests, tags, strict=True)]

    results = []
    for label, (w, h) in SIZES.items():

        def just_drawn(i: int, w=w, h=h) -> list:
            # the previous shot: drawn by this backend at this size just now (untimed), then referenced
            data = backend.draw_all(request(i + 500, w, h, warm[:1]))[0].data
            return [*warm[:2], Reference(data=data, sha256=hashlib.sha256(data).hexdigest(), tag=tags[2])]

        cases = {
            "no refs": lambda i: (),
            "3 refs, warm": lambda i: warm,
            # new digests each frame: the thumbnail cache misses, the bytes are decoded again
            "3 refs, cold": lambda i, label=label: [
                Reference(data=r.data, sha256=f"{r.sha256}:{label}:{i}", tag=r.tag) for r in warm
            ],
            "3 refs, 1 new": just_drawn,
        }
        for case, refs_of in cases.items():
            backend.draw_all(request(0, w, h, refs_of(-1)))  # warm up fonts, the thumbnail cache
            times, cpu = [], []
            gc.collect()
            for i in range(frames):
                req = request(i, w, h, refs_of(i))
                start, start_cpu = time.perf_counter(), time.process_time()
                images = backend.draw_all(req)
                cpu.append((time.process_time() - start_cpu) * 1000)
                times.append((time.perf_counter() - start) * 1000)
                assert images and images[0].data
            value = median(times)
            judged = label == "1080p"
            results.append(
                Result(
                    bench="preview",
                    case=f"{label} {w}x{h} {fmt}, {case}",
                    value=value,
                    unit="ms",
                    runs=[],
                    target=f"≤ {TARGET_MS:g} ms" if judged else "",
                    ok=None if quick or not judged else value <= TARGET_MS,
                    command=f"python bench/frames.py --format {fmt}",
                    note=f"CPU {median(cpu):.1f} ms; {1000 / value:.1f} frames/s; "
                    f"p90 {sorted(times)[int(len(times) * 0.9)]:.1f} ms; "
                    f"{len(images[0].data) // 1024} KiB",
                )
            )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/frames.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--frames", type=int, default=None, help="frames per case (default 40)")
    parser.add_argument("--format", default="PNG", choices=["PNG", "JPG", "WEBP"])
    args = parser.parse_args(argv)
    print(table(bench(args.quick, args.frames, args.format)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
