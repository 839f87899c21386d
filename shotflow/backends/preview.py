"""The preview backend: an offline previs panel drawn from the request alone.

    ┌──────────────────────────────────────────────────────────┐
    │ PREVIEW  runway:4@1  1360×768  take 2/3         seed 1234 │
    │  ┊            ┊            ┊                              │
    │      ●             ●                 (blocking figures,   │
    │     ▐█▌           ▐█▌                 placed by the seed) │
    │ ─────────────────────────────── horizon                  │
    │  the prompt, wrapped, large …                             │
    │ [@mara thumb] [@lighthouse thumb] ──► references          │
    └──────────────────────────────────────────────────────────┘

The same request gives the same bytes on every machine that has the same Pillow:
the font ships with shotflow and nothing depends on the clock, the locale or the
node's name (a renamed shot keeps its frame).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import math
import random
import textwrap
import threading
from collections import OrderedDict
from functools import lru_cache

from .._resources import font_path
from ..errors import RequestRejected
from ._base import Generation, Image, Request, Services

_FORMATS = ("PNG", "JPG", "WEBP")


class PreviewBackend:
    name = "preview"
    deterministic = True  # the same request always gives the same bytes: --locked may redraw

    def __init__(self, services: Services | None = None):
        self.services = services
        self._thumbs = _Lru(max_entries=256, max_bytes=4 << 20)  # thumbnails: ~78 KB each at 1080p
        self._drawn = _Lru(max_entries=16, max_bytes=6 << 20)  # the last PNGs drawn, as grey levels: 2 MB at 1080p

    async def generate(self, request: Request) -> Generation:
        images = await asyncio.to_thread(self.draw_all, request)
        return Generation(images=images, task_id=None, cost=0.0, backend=self.name)

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


_DECODING = threading.Lock()  # decoding a foreign reference (up to 50 megapixels) is done one at a time


class _Lru:
    """A thread-safe LRU bounded in entries and in bytes (a render draws frames in several threads)."""

    def __init__(self, max_entries: int, max_bytes: int):
        import threading

        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._lock = threading.Lock()
        self._items: OrderedDict[object, tuple[object, int]] = OrderedDict()
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key):
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key, value, nbytes: int) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.nbytes -= old[1]
            self._items[key] = (value, nbytes)
            self.nbytes += nbytes
            while self._items and (len(self._items) > self.max_entries or self.nbytes > self.max_bytes):
                _, (_, dropped) = self._items.popitem(last=False)
                self.nbytes -= dropped

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.nbytes = 0


@lru_cache(maxsize=32)
def _font(size: int, bold: bool = False):
    from PIL import ImageFont

    return ImageFont.truetype(str(font_path(bold)), size)


# The panel is drawn in 8-bit grey levels and stored as a palette image: levels
# 0..FG map to a ramp from the prompt's tint to paper white, ACCENT_LO..255 to a
# ramp towards its accent colour. One byte a pixel, anti-aliased text, and a PNG
# written without Pillow's per-row filter search: a 1080p frame in a few ms.
FG = 215
ACCENT_LO = 224
_TO_PAPER = [v * FG // 255 for v in range(256)]


@lru_cache(maxsize=64)
def _palette(seed_text: str) -> bytes:
    import colorsys

    h = hashlib.sha256(seed_text.encode()).digest()
    hue = h[0] / 255.0
    bg = [c * 255 for c in colorsys.hsv_to_rgb(hue, 0.35, 0.18)]
    accent = [c * 255 for c in colorsys.hsv_to_rgb(hue, 0.55, 0.90)]
    out = bytearray(768)
    for channel, (b, paper, acc) in enumerate(zip(bg, (238, 234, 226), accent)):
        ramp = [round(b + (paper - b) * i / FG) for i in range(FG + 1)]
        ramp += [paper] * (ACCENT_LO - FG - 1)
        ramp += [round(b + (acc - b) * (i + 1) / (256 - ACCENT_LO)) for i in range(256 - ACCENT_LO)]
        out[channel::3] = bytes(ramp)
    return bytes(out)


def _ref_box(w: int, h: int) -> tuple[int, int]:
    """The box a w×h frame fits each reference thumbnail into."""
    strip_h = int(h * 0.22)
    label_h = max(9, min(w, h) // 48) + 6  # the label font's size + 6
    return max(8, int(strip_h * 16 / 9)), max(8, strip_h - label_h)


def _shrink(img, box: tuple[int, int]):
    """A decoded reference (mode L) as a thumbnail in the paper ramp (``img`` is shrunk in place)."""
    from PIL import Image as PILImage

    img.thumbnail(box, PILImage.Resampling.BILINEAR, reducing_gap=2.0)
    # grey levels into the paper ramp (0..FG), so a photo keeps its tones
    return img.point(_TO_PAPER)


@lru_cache(maxsize=64)
def _luminance(palette: bytes) -> list[int]:
    """For each grey level of a panel, the L value of its palette entry as Pillow converts P to L."""
    from PIL import Image as PILImage

    ramp = PILImage.frombytes("P", (256, 1), bytes(range(256)))
    ramp.putpalette(palette)
    return list(ramp.convert("L").tobytes())


def _draw_grey(request: Request, take: int, seed: int, thumbnail):
    """One panel in grey levels (mode L) and the palette its levels map to."""
    from PIL import Image as PILImage
    from PIL import ImageDraw

    w, h = request.width, request.height
    unit = min(w, h)
    img = PILImage.new("L", (w, h), 0)
    draw = ImageDraw.Draw(img)
    rng = random.Random(seed)
    dim = FG // 2
    margin = max(8, unit // 30)

    # thirds and the horizon: the staging of the frame
    for i in (1, 2):
        x, y = w * i // 3, h * i // 3
        draw.line([(x, 0), (x, h)], fill=14, width=1)
        draw.line([(0, y), (w, y)], fill=14, width=1)
    horizon = int(h * (0.38 + 0.24 * rng.random()))
    draw.rectangle([0, horizon, w, h], fill=7)
    draw.line([(0, horizon), (w, horizon)], fill=dim, width=max(1, unit // 400))

    # blocking figures placed by the seed: takes differ visibly
    for _ in range(1 + rng.randrange(3)):
        fx = int(w * (0.15 + 0.7 * rng.random()))
        scale = unit * (0.10 + 0.12 * rng.random())
        base = horizon + int(scale * (0.2 + 0.8 * rng.random()))
        head = scale * 0.18
        draw.ellipse([fx - head, base - scale * 1.05 - head, fx + head, base - scale * 1.05 + head], fill=255)
        draw.rounded_rectangle([fx - scale * 0.22, base - scale * 0.85, fx + scale * 0.22, base],
                               radius=int(scale * 0.12), fill=255)

    # header: what this frame is
    small = _font(max(10, unit // 38))
    header = f"PREVIEW  {request.model}  {w}×{h}  take {take + 1}/{request.takes}"
    draw.rectangle([0, 0, w, margin * 2 + small.size], fill=3)
    _text(draw, (margin, margin), header, small, FG)
    seed_text = f"seed {seed}"
    _text(draw, (w - margin - small.getlength(seed_text), margin), seed_text, small, dim)

    # references: thumbnails in request order, each with its tag or position
    strip_h = 0
    if request.references:
        strip_h = int(h * 0.22)
        top = h - margin - strip_h
        x = margin
        label_font = _font(max(9, unit // 48), bold=True)
        box = _ref_box(w, h)
        for i, ref in enumerate(request.references):
            thumb = thumbnail(ref.data, ref.sha256, box)
            draw.rectangle([x - 2, top - 2, x + thumb.width + 1, top + thumb.height + 1], outline=255, width=2)
            img.paste(thumb, (x, top))
            label = f"@{ref.tag}" if request.tagged and ref.tag else f"ref {i + 1}" + (f" · {ref.tag}" if ref.tag else "")
            _text(draw, (x, top + thumb.height + 4), label, label_font, FG)
            x += thumb.width + margin
        arrow_y = top + box[1] // 2
        if x + margin * 3 < w:
            draw.line([(x, arrow_y), (x + margin * 2, arrow_y)], fill=255, width=max(2, unit // 200))
            draw.polygon([(x + margin * 2, arrow_y - margin // 2), (x + margin * 3, arrow_y),
                          (x + margin * 2, arrow_y + margin // 2)], fill=255)

    # the prompt, wrapped to the space left
    area_top = margin * 3 + small.size
    area_bottom = h - margin - strip_h - (margin if strip_h else 0)
    _draw_prompt(draw, request.prompt, margin, area_top, w - 2 * margin, area_bottom - area_top, unit, FG)

    return img, _palette(request.prompt)


def _encode(img, palette: bytes, output_format: str, quality: int) -> bytes:
    """A grey-level panel through its palette, in the requested format."""
    from PIL import Image as PILImage

    if output_format == "PNG":
        return _png_palette(img, palette)
    rgb = PILImage.frombytes("P", img.size, img.tobytes())
    rgb.putpalette(palette)
    rgb = rgb.convert("RGB")
    buf = io.BytesIO()
    if output_format == "JPG":
        rgb.save(buf, "JPEG", quality=quality)
    else:
        rgb.save(buf, "WEBP", quality=quality, method=0)
    return buf.getvalue()


def _png_palette(img, palette: bytes) -> bytes:
    """An 8-bit palette PNG of a grey-level image: no row filters, fast deflate."""
    import struct
    import zlib

    w, h = img.size
    raw = img.tobytes()
    rows = b"".join(b"\x00" + raw[y * w:(y + 1) * w] for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"PLTE", bytes(palette))
            + chunk(b"IDAT", zlib.compress(rows, 1)) + chunk(b"IEND", b""))


def _read_own_png(data: bytes):
    """The grey levels and palette of a PNG written by ``_png_palette``, or None for any other file.

    Only the exact layout ``_png_palette`` writes is accepted (8-bit palette, 256
    entries, no interlace, one IDAT, every row filter "none", CRCs right): the levels
    are then the raw rows, and mapped through ``_luminance`` they are what Pillow's
    decoder and ``convert("L")`` give, a millisecond sooner at 1080p (no unfiltering,
    no palette unpacking). Any other layout, even a valid PNG, returns None (Pillow decodes it).
    """
    import struct
    import zlib

    from PIL import Image as PILImage

    if len(data) < 8 + 25 + 780 + 12 + 12 or not data.startswith(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"):
        return None
    chunks = []
    pos = 8
    while pos + 12 <= len(data) and len(chunks) < 4:
        (size,) = struct.unpack_from(">I", data, pos)
        end = pos + 12 + size
        if end > len(data):
            return None
        kind, body = data[pos + 4:pos + 8], data[pos + 8:end - 4]
        if struct.unpack_from(">I", data, end - 4)[0] != zlib.crc32(kind + body) & 0xFFFFFFFF:
            return None
        chunks.append((kind, body))
        pos = end
    if pos != len(data) or [k for k, _ in chunks] != [b"IHDR", b"PLTE", b"IDAT", b"IEND"]:
        return None
    w, h, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    palette = chunks[1][1]
    if (depth, colour, compression, filtering, interlace) != (8, 3, 0, 0, 0) or len(palette) != 768:
        return None
    if not 0 < w * h <= min(PILImage.MAX_IMAGE_PIXELS or 1 << 26, 1 << 26):  # Pillow's bomb checks are Pillow's
        return None
    inflate = zlib.decompressobj()
    try:
        rows = inflate.decompress(chunks[2][1], h * (w + 1) + 1)
    except zlib.error:
        return None
    if not inflate.eof or inflate.unused_data or len(rows) != h * (w + 1) or rows[::w + 1].count(0) != h:
        return None
    grey = PILImage.frombuffer("L", (w + 1, h), rows, "raw", "L", 0, 1).crop((1, 0, w + 1, h))
    return grey, palette


def _draw_prompt(draw, prompt: str, x: int, y: int, width: int, height: int, unit: int, fill) -> None:
    """The largest font size (down to a floor) at which the prompt fits the area."""
    font, lines, line_h = _prompt_layout(prompt, width, height, unit)
    for i, line in enumerate(lines):
        _text(draw, (x, y + i * line_h), line, font, fill)


@lru_cache(maxsize=16)  # the takes of a shot share it
def _prompt_layout(prompt: str, width: int, height: int, unit: int):
    size = max(12, unit // 18)
    floor = max(9, unit // 60)
    while True:
        font = _font(size)
        avg = font.getlength("abcdefghijklmnopqrstuvwxyz ") / 27
        chars = max(8, int(width / max(avg, 1)))
        lines = textwrap.wrap(prompt, width=chars) or [""]
        line_h = int(size * 1.3)
        if len(lines) * line_h <= height or size <= floor:
            break
        size = max(floor, int(size * 0.85))
    max_lines = max(1, height // line_h)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][: max(0, len(lines[-1]) - 1)] + "…"
    return font, tuple(lines), line_h


# Rendered text (FreeType) is most of a panel's drawing: the header and the labels
# recur frame after frame, and the takes of a shot draw the same prompt lines.
_MASKS = _Lru(max_entries=512, max_bytes=2 << 20)


def _text(draw, xy: tuple[float, float], text: str, font, fill: int) -> None:
    """``draw.text(xy, text, font=font, fill=fill)`` on an L image, with the rendered mask kept.

    The same steps as ``ImageDraw.text`` for one line with the default anchor: the
    glyphs are rendered at the fractional part of ``xy`` and the mask is blended at
    its integer part plus the mask's offset. Same pixels, whether or not it was kept.
    """
    if "\n" in text or draw.fontmode != "L":
        draw.text(xy, text, font=font, fill=fill)
        return
    start = (math.modf(xy[0])[0], math.modf(xy[1])[0])
    key = (font, text, start, fill)
    found = _MASKS.get(key)
    if found is None:
        found = font.getmask2(text, "L", None, None, None, 0, "la", fill, start, stroke_filled=True)
        _MASKS.put(key, found, found[0].size[0] * found[0].size[1])
    mask, offset = found
    draw.draw.draw_bitmap((int(xy[0]) + offset[0], int(xy[1]) + offset[1]), mask, fill)
