"""The preview backend: an offline previs panel drawn from the request alone.

    request ─► staging (cast, blocking, location, camera notes) ─► _panel.draw_grey ─► palette PNG
                 │                                                     │
                 └─ _camera.read: notes to scale, layout, angle, move    ├─ _stage: set, figures, eyelines
                                                                        └─ thumbnails of the references

The same request gives the same bytes on every machine that has the same Pillow:
the font ships with shotflow and nothing depends on the clock, the locale or the
node's name (a renamed shot keeps its frame). Modules:

    _panel    the panel's layout: the frame's drawing, labels, camera move, caption band
    _stage    the set (horizon, ground, perspective) and the figures on it
    _camera   camera notes (free text) to what can be drawn, and what can't (a caption)
    _palette  the 256 levels a panel is drawn in and the colours they stand for
    _png      the palette PNG: written fast, read back without Pillow
    _text     the bundled font, kept glyph masks, text plates
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import threading

from ...errors import RequestRejected
from .._base import Backend, Generation, Image, Request, Services, Start
from ._lru import Lru as _Lru
from ._palette import TO_PAPER as _TO_PAPER
from ._panel import draw_grey as _draw_grey
from ._panel import ref_box as _ref_box  # noqa: F401  (the tests reach these through the package)
from ._png import encode as _encode
from ._png import luminance as _luminance
from ._png import read_own_png as _read_own_png
from ._text import MASKS as _MASKS  # noqa: F401
from ._text import prompt_layout as _prompt_layout  # noqa: F401

_DECODING = threading.Lock()  # decoding a foreign reference (up to 50 megapixels) is done one at a time


def _cores() -> int:
    """The CPUs this process may run on (its affinity where the system tells it, else all)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return max(1, len(affinity(0)) if affinity is not None else (os.cpu_count() or 1))


# Drawing a panel is CPU work: more frames drawn at once than there are cores buys no speed, and each
# holds its buffers (~4 MB at 1080p: the levels, their bytes, the PNG rows). Measured on 2 cores, a cold
# 1000-shot render at --jobs 4 (`bench/commands.py`'s storyboard): 5-6 MB less resident, as fast (two
# interleaved A/Bs: 6-12 % faster, then even); at 10 000 shots the peak 154 → 147-148 MB.
DRAWS_AT_ONCE = _cores()
_DRAWING = threading.BoundedSemaphore(DRAWS_AT_ONCE)

__all__ = ["PreviewBackend"]

_FORMATS = ("PNG", "JPG", "WEBP")


class PreviewBackend(Backend):
    name = "preview"
    deterministic = True  # the same request always gives the same bytes: --locked may redraw

    def __init__(self, services: Services | None = None):
        super().__init__(services)
        self._thumbs = _Lru(max_entries=256, max_bytes=4 << 20)  # thumbnails: ~78 KB each at 1080p
        self._drawn = _Lru(max_entries=16, max_bytes=6 << 20)  # the last PNGs drawn, as grey levels: 2 MB at 1080p

    async def generate(self, request: Request, start: Start | None = None) -> Generation:
        if start is not None:  # not asked for (it prepares nothing), but honoured when given
            await start()
        images = await asyncio.to_thread(self._draw_in_turn, request)
        return Generation(images=images, task_id=None, cost=0.0, backend=self.name)

    def _draw_in_turn(self, request: Request) -> tuple[Image, ...]:
        with _DRAWING:  # a core a frame, whatever --jobs (see DRAWS_AT_ONCE)
            return self.draw_all(request)

    def draw_all(self, request: Request) -> tuple[Image, ...]:
        if request.output_format not in _FORMATS:
            raise RequestRejected(f"output format {request.output_format} is not supported by the preview backend")
        result = []
        for take in range(request.takes):
            seed = (request.seed + take * 7919) & 0x7FFFFFFF
            grey, palette = _draw_grey(request, take, seed, self._thumbnail)
            data = _encode(grey, palette, request.output_format, request.output_quality)
            if request.output_format == "PNG":  # lossless: what decoding it gives is known without decoding it
                self._drawn.put(hashlib.sha256(data).hexdigest(), (grey, palette), grey.width * grey.height)
            result.append(Image(data=data, seed=seed, cost=0.0))
        return tuple(result)

    async def aclose(self) -> None:
        self._thumbs.clear()
        self._drawn.clear()

    def _thumbnail(self, data: bytes, digest: str, box: tuple[int, int]):
        """A decoded, resized reference image; a few are kept, as later shots reuse them.

        A reference is mostly a frame this backend drew a moment ago (the previous
        shot's picked take): its grey levels are still held in ``_drawn``, under the
        sha256 of the PNG. Mapped through the palette's luminance they are exactly what
        decoding that PNG and ``convert("L")`` give (the tests check it), without the
        4-5 ms of decoding a 1080p PNG. A panel drawn earlier (by another run) is read
        by ``_read_own_png``; anything else is decoded by Pillow.
        """
        from PIL import Image as PILImage

        cache_key = (digest, *box)
        thumb = self._thumbs.get(cache_key)
        if thumb is None:
            drawn = self._drawn.get(digest) or _read_own_png(data)
            if drawn is not None:
                grey, palette = drawn
                img = grey.point(_luminance(palette))
            else:
                with _DECODING, PILImage.open(io.BytesIO(data)) as img:  # one at a time: memory bounded whatever --jobs
                    img.draft("L", box)
                    img = img.convert("L")
            thumb = _shrink(img, box)
            self._thumbs.put(cache_key, thumb, thumb.width * thumb.height)
        return thumb


def _shrink(img, box: tuple[int, int]):
    """A decoded reference (mode L) as a thumbnail in the paper ramp (``img`` is shrunk in place)."""
    from PIL import Image as PILImage

    img.thumbnail(box, PILImage.Resampling.BILINEAR, reducing_gap=2.0)
    # grey levels into the paper ramp, so a photo keeps its tones
    return img.point(_TO_PAPER)
