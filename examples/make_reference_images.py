"""Draws the small reference images the examples use (made here, not downloaded).

    python examples/make_reference_images.py

Each image is a simple, recognisable stand-in: a portrait, a lighthouse, a vault.
"""

from pathlib import Path

from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent


def gradient(size, top, bottom):
    w, h = size
    img = Image.new("RGB", size)
    draw = ImageDraw.Draw(img)
    for y in range(h):
        f = y / (h - 1)
        draw.line([(0, y), (w, y)], fill=tuple(int(a + (b - a) * f) for a, b in zip(top, bottom)))
    return img


def portrait(path: Path, skin, hair, jacket, background):
    img = gradient((384, 512), background, tuple(c // 2 for c in background))
    d = ImageDraw.Draw(img)
    d.rounded_rectangle([70, 330, 314, 560], radius=80, fill=jacket)  # shoulders
    d.rectangle([170, 280, 214, 340], fill=skin)  # neck
    d.ellipse([117, 110, 267, 300], fill=skin)  # face
    d.chord([108, 90, 276, 250], 180, 360, fill=hair)  # hair
    for x in (160, 214):
        d.ellipse([x, 190, x + 12, 202], fill=(40, 30, 30))  # eyes
    d.arc([170, 230, 214, 262], 20, 160, fill=(120, 60, 60), width=4)  # mouth
    d.line([(192, 335), (192, 560)], fill=tuple(c // 2 for c in jacket), width=4)  # zip
    img.save(path, quality=88)


def lighthouse(path: Path):
    img = gradient((640, 400), (40, 52, 78), (190, 120, 90))
    d = ImageDraw.Draw(img)
    d.rectangle([0, 300, 640, 400], fill=(24, 44, 60))  # sea
    d.polygon([(180, 300), (250, 250), (420, 240), (520, 300)], fill=(25, 25, 28))  # basalt
    for i in range(6):  # striped tower
        top = 90 + i * 27
        color = (200, 40, 40) if i % 2 == 0 else (235, 235, 230)
        d.polygon([(318 - 26 + i * 2, top), (318 + 26 - i * 2, top), (318 + 28 - i * 2, top + 27),
                   (318 - 28 + i * 2, top + 27)], fill=color)
    d.rectangle([296, 66, 340, 92], fill=(250, 220, 120))  # lamp room
    d.polygon([(290, 66), (318, 44), (346, 66)], fill=(30, 30, 30))
    d.polygon([(340, 72), (640, 20), (640, 120)], fill=(250, 230, 160))  # beam
    img.save(path, quality=88)


def vault(path: Path):
    img = gradient((640, 400), (30, 34, 40), (12, 14, 18))
    d = ImageDraw.Draw(img)
    d.ellipse([170, 50, 470, 350], fill=(120, 124, 130), outline=(200, 200, 205), width=8)
    d.ellipse([250, 130, 390, 270], fill=(90, 94, 100), outline=(210, 210, 215), width=6)
    for angle in range(0, 360, 45):
        import math

        x = 320 + 60 * math.cos(math.radians(angle))
        y = 200 + 60 * math.sin(math.radians(angle))
        d.line([(320, 200), (x, y)], fill=(220, 220, 225), width=6)
    img.save(path, quality=88)


if __name__ == "__main__":
    portrait(HERE / "lighthouse/refs/tom.jpg", (224, 180, 150), (60, 40, 25), (30, 60, 110), (120, 140, 160))
    lighthouse(HERE / "lighthouse/refs/lighthouse.jpg")
    portrait(HERE / "heist/refs/vera.jpg", (200, 150, 120), (20, 20, 20), (110, 20, 30), (60, 60, 70))
    portrait(HERE / "heist/refs/otto.jpg", (230, 190, 160), (180, 170, 150), (70, 70, 60), (90, 80, 70))
    vault(HERE / "heist/refs/vault.jpg")
