"""The preview backend: exact size and format, deterministic, references drawn."""

from __future__ import annotations

import asyncio
import hashlib
import io

import pytest
from PIL import Image

from shotflow.backends import Reference, Request
from shotflow.backends.preview import PreviewBackend


def request(**kw) -> Request:
    base = dict(
        key="k" * 64,
        node_id="a/b",
        model="runway:4@1",
        prompt="a lighthouse keeper climbs the stairs",
        width=1360,
        height=768,
        seed=1234,
    )
    base.update(kw)
    return Request(**base)


def generate(req: Request):
    return asyncio.run(PreviewBackend().generate(req))


@pytest.mark.parametrize("fmt,pil", [("PNG", "PNG"), ("JPG", "JPEG"), ("WEBP", "WEBP")])
@pytest.mark.parametrize("size", [(1920, 1080), (720, 1280), (1808, 768)])
def test_exact_size_and_format(fmt, pil, size):
    gen = generate(request(width=size[0], height=size[1], output_format=fmt, output_quality=80))
    img = Image.open(io.BytesIO(gen.images[0].data))
    img.load()
    assert img.format == pil and img.size == size


def test_same_request_same_bytes_and_the_node_name_does_not_matter():
    a = generate(request())
    b = generate(request(node_id="renamed/shot"))
    assert a.images[0].data == b.images[0].data


def test_seed_and_prompt_change_the_frame():
    a = generate(request()).images[0].data
    assert generate(request(seed=99)).images[0].data != a
    assert generate(request(prompt="another prompt")).images[0].data != a


def test_takes_are_distinct_images():
    gen = generate(request(takes=3))
    assert len(gen.images) == 3
    assert len({hashlib.sha256(i.data).hexdigest() for i in gen.images}) == 3
    assert len({i.seed for i in gen.images}) == 3 and gen.cost == 0.0


def test_reference_thumbnails_are_drawn():
    ref_bytes = io.BytesIO()
    Image.new("RGB", (320, 180), (255, 255, 255)).save(ref_bytes, "PNG")
    data = ref_bytes.getvalue()
    ref = Reference(data=data, sha256=hashlib.sha256(data).hexdigest(), tag="mara", source="character:mara")
    plain = Image.open(io.BytesIO(generate(request()).images[0].data)).convert("L")
    with_ref = Image.open(io.BytesIO(generate(request(references=(ref,), tagged=True)).images[0].data)).convert("L")
    # a white thumbnail appears at the right of the caption band
    box = (1360 - 200, 768 - 100, 1360 - 30, 768 - 40)
    assert with_ref.crop(box).getextrema()[1] > plain.crop(box).getextrema()[1]


def test_unicode_prompts_draw_with_the_bundled_font():
    gen = generate(request(prompt="Mära fährt nach Łódź — «страх» ★"))
    assert Image.open(io.BytesIO(gen.images[0].data)).size == (1360, 768)


# -- thumbnails of frames this backend drew (F9) ---------------------------------------------


def png_ref(data: bytes, tag: str | None = None) -> Reference:
    return Reference(data=data, sha256=hashlib.sha256(data).hexdigest(), tag=tag)


@pytest.mark.parametrize("size", [(1920, 1080), (1360, 768), (720, 1280), (333, 201)])
def test_thumbnail_of_a_frame_just_drawn_is_the_decoded_one(size):
    from shotflow.backends.preview import _ref_box

    backend = PreviewBackend()
    data = backend.draw_all(request(width=size[0], height=size[1]))[0].data
    digest = hashlib.sha256(data).hexdigest()
    assert backend._drawn.get(digest) is not None  # held: no decoding needed
    for frame in [(1920, 1080), (1024, 1024), (720, 1280), size]:
        box = _ref_box(*frame)
        held = backend._thumbnail(data, digest, box)
        decoded = PreviewBackend()._thumbnail(data, digest, box)  # a new backend decodes the PNG
        assert held.size == decoded.size and held.tobytes() == decoded.tobytes()


def test_same_bytes_whether_or_not_the_references_were_drawn_here_or_thumbnails_cached():
    drawer = PreviewBackend()
    first = drawer.draw_all(request(prompt="the harbor at dawn", width=1920, height=1080, seed=7))[0].data
    sheet = drawer.draw_all(request(prompt="mara, character sheet", width=1024, height=1024, seed=8))[0].data
    jpg = drawer.draw_all(request(prompt="a photo", output_format="JPG", seed=9))[0].data
    shot = request(
        prompt="mara walks to the harbor",
        width=1920,
        height=1080,
        takes=2,
        tagged=True,
        references=(png_ref(first, "harbor"), png_ref(sheet, "mara"), png_ref(jpg, "photo")),
    )
    warm_drawn = drawer.draw_all(shot)  # first and sheet are held by the backend that drew them
    warm_thumbs = drawer.draw_all(shot)  # now their thumbnails are cached too
    cold = PreviewBackend().draw_all(shot)  # nothing seen: every reference decoded
    assert [i.data for i in warm_drawn] == [i.data for i in warm_thumbs] == [i.data for i in cold]
    # the next shot in a chain, with the just-drawn frame as its reference
    nxt = request(prompt="closer on mara", width=1920, height=1080, references=(png_ref(cold[0].data),))
    assert drawer.draw_all(nxt)[0].data == PreviewBackend().draw_all(nxt)[0].data


def test_lossy_frames_are_not_held():
    backend = PreviewBackend()
    for fmt in ("JPG", "WEBP"):
        backend.draw_all(request(output_format=fmt))
    assert len(backend._drawn) == 0


def test_the_caches_are_bounded():
    backend = PreviewBackend()
    for i in range(24):  # 2 MB each: more than the byte budget of the held frames
        backend.draw_all(request(width=1920, height=1080, seed=i))
    assert len(backend._drawn) <= backend._drawn.max_entries
    assert 0 < backend._drawn.nbytes <= backend._drawn.max_bytes
    tiny = Image.new("RGB", (64, 36), (90, 90, 90))
    buf = io.BytesIO()
    tiny.save(buf, "PNG")
    refs = [Reference(data=buf.getvalue(), sha256=f"fake{i}") for i in range(300)]
    for i in range(0, 300, 3):
        backend.draw_all(request(width=320, height=180, references=tuple(refs[i : i + 3])))
    assert len(backend._thumbs) == backend._thumbs.max_entries == 256
    assert backend._thumbs.nbytes <= backend._thumbs.max_bytes
    asyncio.run(backend.aclose())
    assert len(backend._thumbs) == len(backend._drawn) == 0 and backend._thumbs.nbytes == 0


def test_lru_evicts_the_least_recently_used_and_counts_bytes():
    from shotflow.backends.preview import _Lru

    lru = _Lru(max_entries=3, max_bytes=100)
    for key in "abc":
        lru.put(key, key.upper(), 10)
    assert lru.get("a") == "A"  # a is now the most recent
    lru.put("d", "D", 10)
    assert lru.get("b") is None and len(lru) == 3 and lru.nbytes == 30
    lru.put("e", "E", 85)  # over the byte budget: the oldest go
    assert lru.get("e") == "E" and lru.nbytes <= 100
    lru.put("huge", "H", 101)  # never fits: not kept
    assert lru.get("huge") is None and lru.nbytes <= 100


def test_frames_drawn_in_threads_are_the_frames_drawn_in_turn():
    upstream = PreviewBackend().draw_all(request(seed=1))[0].data
    shots = [request(prompt=f"shot {i}", seed=i, references=(png_ref(upstream, "prev"),)) for i in range(8)]

    async def together(backend):
        return await asyncio.gather(*(backend.generate(s) for s in shots))

    backend = PreviewBackend()
    backend.draw_all(request(seed=1))  # holds upstream
    concurrent = asyncio.run(together(backend))
    in_turn = [PreviewBackend().draw_all(s) for s in shots]
    assert [g.images[0].data for g in concurrent] == [t[0].data for t in in_turn]


def pillow_thumbnail(data: bytes, box):
    """What the backend's thumbnail of ``data`` must be: Pillow's decoding, shrunk."""
    from shotflow.backends.preview import _shrink

    with Image.open(io.BytesIO(data)) as img:
        img.draft("L", box)
        img = img.convert("L")
    return _shrink(img, box)


@pytest.mark.parametrize("size", [(1920, 1080), (1360, 768), (333, 201)])
def test_panels_drawn_by_another_run_read_without_pillow_give_pillows_pixels(size):
    from shotflow.backends.preview import _read_own_png, _ref_box

    data = PreviewBackend().draw_all(request(width=size[0], height=size[1], seed=size[0]))[0].data
    grey, palette = _read_own_png(data)
    assert grey.size == size
    backend = PreviewBackend()  # never drew it: reads it
    for frame in [(1920, 1080), (720, 1280), size]:
        box = _ref_box(*frame)
        thumb = backend._thumbnail(data, "not-the-digest", box)
        expected = pillow_thumbnail(data, box)
        assert thumb.size == expected.size and thumb.tobytes() == expected.tobytes()
    # and a frame just drawn (held) gives the same as Pillow too
    held = PreviewBackend()
    data = held.draw_all(request(width=size[0], height=size[1], seed=3))[0].data
    box = _ref_box(1920, 1080)
    ours = held._thumbnail(data, hashlib.sha256(data).hexdigest(), box)
    assert ours.tobytes() == pillow_thumbnail(data, box).tobytes()


def test_other_pngs_are_left_to_pillow():
    from shotflow.backends.preview import _read_own_png

    own = PreviewBackend().draw_all(request(width=320, height=180))[0].data
    assert _read_own_png(own) is not None
    others = []
    for mode in ("RGB", "L", "P"):
        buf = io.BytesIO()
        Image.new(mode, (320, 180), 90).save(buf, "PNG")
        others.append(buf.getvalue())
    others += [own[:-20], own[:100], own[:40] + b"\x00" + own[41:], b"", b"GIF89a"]
    big = bytearray(own)  # a huge IHDR with a right CRC: not read here
    import struct
    import zlib

    big[16:24] = struct.pack(">II", 100_000, 100_000)
    big[29:33] = struct.pack(">I", zlib.crc32(bytes(big[12:29])) & 0xFFFFFFFF)
    others.append(bytes(big))
    for data in others:
        assert _read_own_png(data) is None
    # a PNG of exactly that layout written by someone else is read, with Pillow's pixels
    buf = io.BytesIO()
    Image.open(io.BytesIO(own)).save(buf, "PNG")
    resaved = buf.getvalue()
    if _read_own_png(resaved) is not None:
        grey, palette = _read_own_png(resaved)
        from shotflow.backends.preview import _luminance

        assert grey.point(_luminance(palette)).tobytes() == Image.open(io.BytesIO(resaved)).convert("L").tobytes()


def test_text_masks_kept_give_the_same_pixels():
    from shotflow.backends import preview

    shot = request(prompt="a long prompt that wraps " * 12, takes=3, width=1920, height=1080)
    preview._MASKS.clear()
    preview._prompt_layout.cache_clear()
    first = [i.data for i in PreviewBackend().draw_all(shot)]  # takes 2 and 3 reuse the prompt's masks
    assert len(preview._MASKS) > 0
    again = [i.data for i in PreviewBackend().draw_all(shot)]  # everything from the caches
    alone = []
    for take in range(3):  # each take drawn with nothing kept
        preview._MASKS.clear()
        preview._prompt_layout.cache_clear()
        seed = (shot.seed + take * 7919) & 0x7FFFFFFF
        grey, palette = preview._draw_grey(shot, take, seed, PreviewBackend()._thumbnail)
        alone.append(preview._encode(grey, palette, shot.output_format, shot.output_quality))
    assert first == again == alone
    assert preview._MASKS.nbytes <= preview._MASKS.max_bytes


def test_foreign_references_are_decoded_one_at_a_time_whatever_the_threads(monkeypatch):
    """Up to 50 megapixels a reference: decoding is what could take memory, so it is serial
    even when many shots draw at once (--jobs threads of the preview backend)."""
    import threading
    import time

    backend = PreviewBackend()
    inside, most, guard = 0, 0, threading.Lock()
    real_open = Image.open

    def counting_open(*args, **kwargs):
        nonlocal inside, most
        with guard:
            inside += 1
            most = max(most, inside)
        time.sleep(0.02)  # long enough for the other threads to arrive
        with guard:
            inside -= 1
        return real_open(*args, **kwargs)

    monkeypatch.setattr(Image, "open", counting_open)  # the backend looks it up at each decode
    photos = []
    for i in range(6):
        buffer = io.BytesIO()
        Image.new("RGB", (64, 48), (i * 40, 90, 200 - i * 30)).save(buffer, "JPEG")
        photos.append(buffer.getvalue())
    threads = [
        threading.Thread(target=backend._thumbnail, args=(data, hashlib.sha256(data).hexdigest(), (32, 24)))
        for data in photos
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert most == 1


def test_no_more_frames_are_drawn_at_once_than_there_are_cores(monkeypatch):
    """Drawing is CPU work: whatever --jobs, a core a frame (each holds ~4 MB of buffers)."""
    import os
    import threading
    import time

    import shotflow.backends.preview as preview

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert cores == preview.DRAWS_AT_ONCE
    monkeypatch.setattr(preview, "_DRAWING", threading.BoundedSemaphore(2))  # as on a 2-core machine
    inside, most, guard = 0, 0, threading.Lock()
    real_draw = PreviewBackend.draw_all

    def counting_draw(self, req):
        nonlocal inside, most
        with guard:
            inside += 1
            most = max(most, inside)
        time.sleep(0.05)  # long enough for the other shots to arrive
        try:
            return real_draw(self, req)
        finally:
            with guard:
                inside -= 1

    monkeypatch.setattr(PreviewBackend, "draw_all", counting_draw)
    backend = PreviewBackend()

    async def six_shots_at_once():
        return await asyncio.gather(*(backend.generate(request(seed=i, width=640, height=360)) for i in range(6)))

    generations = asyncio.run(six_shots_at_once())
    assert most == 2 and len({g.images[0].data for g in generations}) == 6
