"""``shotflow contact-sheet``: a grid of the picked frames with captions, as PNG or PDF.

    ┌──────────────────────────────────────────────────────────────┐
    │ The Lighthouse Keeper            11 shots · 0:31 · 3 scenes  │
    │ ┌──────┐ ┌──────┐ ┌──────┐ ┌──────┐                           │
    │ │frame │ │frame │ │//////│ │frame │   a placeholder for a     │
    │ └──────┘ └──────┘ └──────┘ └──────┘   shot with no frame      │
    │ 1.1 arrival/wide  4 s   1.2 arrival/lamp  1.5 s …             │
    └──────────────────────────────────────────────────────────────┘

Story order, reference sheets first (``--shots-only`` leaves them out). A ``.pdf``
output is paginated (A4 landscape proportions, header on every page); a ``.png`` is
one tall image.
"""

from __future__ import annotations

import io
from pathlib import Path

from ._frames import Panel, Sequence, State, format_duration

PAGE_RATIO = 297 / 210  # A4 landscape
FORMATS = {".png": "PNG", ".pdf": "PDF", ".jpg": "JPEG", ".jpeg": "JPEG"}


def default_output(seq: Sequence) -> Path:
    return seq.project.renders_dir / "contact-sheet.png"


def write_contact_sheet(seq: Sequence, output: Path, *, columns: int = 4, width: int = 480,
                        shots_only: bool = False) -> Path:
    """Draw the sheet and save it; the format follows the extension (.png, .pdf, .jpg)."""
    from ..errors import UsageError
    from ..store import atomic_write

    output = Path(output)
    fmt = FORMATS.get(output.suffix.lower())
    if fmt is None:
        raise UsageError(f"contact sheet: cannot write {output.suffix or 'a file without extension'} "
                         f"({output.name}); use .png, .pdf or .jpg")
    panels = seq.shots if shots_only else list(seq.panels.values())
    pages = _Sheet(seq, panels, columns=columns, cell_width=width).pages(paginate=fmt == "PDF")
    buffer = io.BytesIO()
    if fmt == "PDF":
        pages[0].save(buffer, "PDF", save_all=True, append_images=pages[1:], resolution=150.0,
                      title=seq.title, author="shotflow")
    elif fmt == "JPEG":
        pages[0].save(buffer, "JPEG", quality=90)
    else:
        pages[0].save(buffer, "PNG", optimize=True)
    atomic_write(output, buffer.getvalue(), mode=0o644)
    return output


class _Sheet:
    INK = (24, 24, 24)
    MUTED = (110, 110, 110)
    PAPER = (255, 255, 255)

    def __init__(self, seq: Sequence, panels: list[Panel], *, columns: int, cell_width: int):
        from . import _draw

        self.d = _draw
        self.seq = seq
        self.panels = panels
        self.columns = max(1, min(columns, max(1, len(panels))))
        self.cell_w = cell_width
        first = next((p.spec for p in panels if p.is_shot), panels[0].spec if panels else None)
        aspect = first.width / first.height if first else 16 / 9
        self.frame_h = round(cell_width / aspect)
        self.gap = max(12, cell_width // 16)
        self.margin = self.gap * 2
        self.title_f = _draw.font(max(18, cell_width // 14), bold=True)
        self.meta_f = _draw.font(max(11, cell_width // 34))
        self.cap_f = _draw.font(max(11, cell_width // 30), bold=True)
        self.small_f = _draw.font(max(10, cell_width // 36))
        line = self.cap_f.getbbox("Ag")[3]
        self.caption_h = round(line * 1.35 + self.small_f.getbbox("Ag")[3] * 1.3) + self.gap // 3
        self.row_h = self.frame_h + self.caption_h + self.gap
        self.header_h = self.title_f.getbbox("Ag")[3] + self.meta_f.getbbox("Ag")[3] + self.gap * 2
        self.width = self.margin * 2 + self.columns * cell_width + (self.columns - 1) * self.gap

    def pages(self, *, paginate: bool):
        rows = max(1, -(-len(self.panels) // self.columns))
        if paginate:
            page_h = round(self.width / PAGE_RATIO)
            per_page = max(1, (page_h - self.header_h - self.margin * 2) // self.row_h)
        else:
            per_page = rows
        chunks = [self.panels[i:i + per_page * self.columns] for i in range(0, max(1, len(self.panels)),
                                                                          per_page * self.columns)]
        total = len(chunks)
        result = []
        for number, chunk in enumerate(chunks, 1):
            height = round(self.width / PAGE_RATIO) if paginate else \
                self.margin * 2 + self.header_h + rows * self.row_h - self.gap
            result.append(self._page(chunk, height, number, total))
        return result

    def _page(self, panels: list[Panel], height: int, number: int, total: int):
        from PIL import Image, ImageDraw

        img = Image.new("RGB", (self.width, height), self.PAPER)
        draw = ImageDraw.Draw(img)
        seq = self.seq
        x0, y = self.margin, self.margin
        draw.text((x0, y), seq.title, font=self.title_f, fill=self.INK)
        facts = [f"{len(seq.shots)} shots", f"{len(seq.scenes)} scenes", format_duration(seq.duration),
                 seq.project.path.name]
        if total > 1:
            facts.append(f"page {number}/{total}")
        missing = sum(1 for p in seq.panels.values() if p.picked is None)
        if missing:
            facts.append(f"{missing} without a frame")
        y += self.title_f.getbbox("Ag")[3] + self.gap // 2
        draw.text((x0, y), "  ·  ".join(facts), font=self.meta_f, fill=self.MUTED)
        y = self.margin + self.header_h
        draw.line([(x0, y - self.gap // 2), (self.width - self.margin, y - self.gap // 2)], fill=(200, 200, 200))
        for i, panel in enumerate(panels):
            row, col = divmod(i, self.columns)
            self._cell(img, draw, panel, x0 + col * (self.cell_w + self.gap), y + row * self.row_h)
        return img

    def _cell(self, img, draw, panel: Panel, x: int, y: int) -> None:
        d = self.d
        box = (self.cell_w, self.frame_h)
        frame = d.open_picked(panel, box)
        if frame is None:
            label, detail = d.state_label(panel)
            tile = d.placeholder(box, label, detail, dark=False, accent=d.STATE_COLOURS[panel.state])
        else:
            tile = d.fit(frame, box, background=(16, 16, 16))
        img.paste(tile, (x, y))
        draw.rectangle([x, y, x + box[0] - 1, y + box[1] - 1], outline=(40, 40, 40))
        if frame is not None and panel.state is not State.FRESH:
            tag = panel.state.value.upper()
            tw = self.small_f.getlength(tag)
            pad = 5
            draw.rectangle([x + box[0] - tw - 3 * pad, y + pad, x + box[0] - pad, y + pad * 2 + self.small_f.size],
                           fill=d.STATE_COLOURS[panel.state])
            draw.text((x + box[0] - tw - 2 * pad, y + pad * 1.5), tag, font=self.small_f, fill=(0, 0, 0))
        if panel.approved:
            self._approved(draw, x, y)
        cy = y + box[1] + self.gap // 3
        right = f"{panel.duration:g} s" if panel.is_shot else "sheet"
        rw = self.cap_f.getlength(right)
        title = d.ellipsize(f"{panel.number}  {panel.id}", self.cap_f, self.cell_w - rw - self.gap)
        draw.text((x, cy), title, font=self.cap_f, fill=self.INK)
        draw.text((x + self.cell_w - rw, cy), right, font=self.cap_f, fill=self.INK)
        cy += round(self.cap_f.getbbox("Ag")[3] * 1.35)
        cam = panel.spec.camera
        line = " · ".join(v for v in (cam.framing, cam.lens, cam.move) if v)
        if panel.spec.dialogue:
            line = (line + " — " if line else "") + panel.spec.dialogue
        if line:
            draw.text((x, cy), d.ellipsize(line, self.small_f, self.cell_w), font=self.small_f, fill=self.MUTED)

    APPROVED = (63, 178, 127)

    def _approved(self, draw, x: int, y: int) -> None:
        """The approved mark: a green tag in the frame's top-left corner."""
        tag = "✓ APPROVED"
        pad = 5
        tw = self.small_f.getlength(tag)
        draw.rectangle([x + pad, y + pad, x + tw + 3 * pad, y + pad * 2 + self.small_f.size], fill=self.APPROVED)
        draw.text((x + 2 * pad, y + pad * 1.5), tag, font=self.small_f, fill=(0, 0, 0))
