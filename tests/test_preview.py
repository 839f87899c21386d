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
    base = dict(key="k" * 64, node_id="a/b", model="runway:4@1", prompt="a lighthouse keeper climbs the stairs",
                width=1360, height=768, seed=1234)
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
    # a white thumbnail appears in the bottom-left strip
    box = (40, 768 - 150, 200, 768 - 60)
    assert with_ref.crop(box).getextrema()[1] > plain.crop(box).getextrema()[1]


def test_unicode_prompts_draw_with_the_bundled_font():
    gen = generate(request(prompt="Mära fährt nach Łódź — «страх» ★"))
    assert Image.open(io.BytesIO(gen.images[0].data)).size == (1360, 768)
