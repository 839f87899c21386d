"""``shotflow contact-sheet``: a grid of the picked frames with captions, as PNG or PDF.

    ┌──────────────────────────────────────────────────────────────┐
    │ The Lighthouse Keeper    11 shots · 3 scenes · 0:31 · page 1/2│
    │ ┌──────┐ ┌──────┐ ┌──────┐ ┌──────┐                           │
    │ │frame │ │frame │ │//////│ │frame │   a placeholder for a     │
    │ └──────┘ └──────┘ └──────┘ └──────┘   shot with no frame      │
    │ 010_0010 arrival/wide  4 s · 96 fr    <- code, id, duration   │
    │ extreme wide · 24mm · slow push in    <- camera               │
    │ MARA: Not tonight.                    <- dialogue (2 lines)   │
    └──────────────────────────────────────────────────────────────┘

Story order, reference sheets first (``--shots-only`` leaves them out). A ``.pdf`` is
paginated on real pages: ``--page a4|letter``, ``--orientation landscape|portrait``
(150 dpi), 1 to 4 columns, the frame size following from the page. A ``.png`` (or
``.jpg``) is one tall image, ``--width`` pixels a frame, up to 12 columns.

Under each frame the id, then the fields chosen with ``--fields`` (default
``code,duration,camera,dialogue``): ``code`` the shot code, ``duration`` seconds and
frames at the storyboard's rate, ``camera`` framing, angle, lens and move, ``dialogue``,
``action`` and ``notes`` up to two lines each.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from .._text import counted
from ..status import Status
from ._frames import Panel, Sequence, format_duration, frame_counts

FORMATS = {".png": "PNG", ".pdf": "PDF", ".jpg": "JPEG", ".jpeg": "JPEG"}
FIELDS = ("code", "duration", "camera", "dialogue", "action", "notes")
DEFAULT_FIELDS = ("code", "duration", "camera", "dialogue")
TEXT_FIELDS = ("dialogue", "action", "notes")  # wrapped, up to two lines
DPI = 150
PAGES = {"a4": (210 / 25.4, 297 / 25.4), "letter": (8.5, 11.0)}  # inches, portrait
PDF_COLUMNS = range(1, 5)


@dataclass(frozen=True)
class Page:
    """A printed page: its size in pixels at DPI."""

    name: str = "a4"
    orientation: str = "landscape"

    @property
    def size(self) -> tuple[int, int]:
        w, h = (round(inches * DPI) for inches in PAGES[self.name])
        return (h, w) if self.orientation == "landscape" else (w, h)


def default_output(seq: Sequence) -> Path:
    return seq.project.renders_dir / "contact-sheet.png"


def parse_fields(text: str | None) -> tuple[str, ...]:
    """``"code,duration,notes"`` -> the fields in that order; an unknown name is an error."""
    from ..errors import UsageError, did_you_mean

    if text is None:
        return DEFAULT_FIELDS
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    for name in names:
        if name not in FIELDS:
            raise UsageError(
                f"--fields: unknown field '{name}'", hint=did_you_mean(name, FIELDS) or "fields: " + ",".join(FIELDS)
            )
    return tuple(dict.fromkeys(names))


def write_contact_sheet(
    seq: Sequence,
    output: Path,
    *,
    columns: int = 4,
    width: int = 480,
    shots_only: bool = False,
    fields: tuple[str, ...] = DEFAULT_FIELDS,
    page: Page | None = None,
) -> Path:
    """Draw the sheet and save it; the format follows the extension (.png, .pdf, .jpg).

    ``page`` (PDF only; default A4 landscape) sets the paper; ``width`` is for images only.
    """
    from .. import outputs
    from ..errors import UsageError

    output = Path(output)
    fmt = FORMATS.get(output.suffix.lower())
    if fmt is None:
        raise UsageError(
            f"contact sheet: cannot write {output.suffix or 'a file without extension'} "
            f"({output.name}); use .png, .pdf or .jpg"
        )
    if fmt == "PDF" and columns not in PDF_COLUMNS:
        raise UsageError(
            f"--columns {columns}: a PDF page holds 1 to 4 columns", hint="use --columns 4 or fewer, or write a .png"
        )
    if fmt != "PDF" and page is not None:
        raise UsageError(
            f"--page and --orientation set the paper of a PDF; {output.name} is an image",
            hint="write a .pdf, or leave --page out",
        )
    panels = seq.shots if shots_only else [p for p in seq.panels.values() if not p.spec.omit]
    if fmt == "PDF":
        sheet = _Sheet(seq, panels, columns=columns, fields=fields, page=page or Page())
    else:
        sheet = _Sheet(seq, panels, columns=columns, cell_width=width, fields=fields)
    pages = sheet.pages(paginate=fmt == "PDF")
    buffer = io.BytesIO()
    if fmt == "PDF":
        pages[0].save(
            buffer,
            "PDF",
            save_all=True,
            append_images=pages[1:],
            resolution=float(DPI),
            title=seq.title,
            author="shotflow",
        )
    elif fmt == "JPEG":
        pages[0].save(buffer, "JPEG", quality=90)
    else:
        pages[0].save(buffer, "PNG", optimize=True)
    outputs.write(output, buffer.getvalue())
    return output


class _Sheet:
    INK = (24, 24, 24)
    MUTED = (110, 110, 110)
    PAPER = (255, 255, 255)

    def __init__(
        self,
        seq: Sequence,
        panels: list[Panel],
        *,
        columns: int,
        cell_width: int | None = None,
        fields: tuple[str, ...] = DEFAULT_FIELDS,
        page: Page | None = None,
    ):
        from . import _draw

        self.d = _draw
        self.seq = seq
        self.panels = panels
        self.fields = fields
        self.page = page
        self.columns = max(1, min(columns, max(1, len(panels))))
        first = next((p.spec for p in panels if p.is_shot), panels[0].spec if panels else None)
        self.aspect = first.width / first.height if first else 16 / 9
        counts = frame_counts([p.duration for p in seq.shots], seq.editorial.fps)
        self.frames = {p.id: c for p, c in zip(seq.shots, counts, strict=True)}
        if page is None:
            self._layout(cell_width or 480)
        else:
            self._fit_page(page, columns)

    def _layout(self, cell_width: int) -> None:
        from . import _draw

        self.cell_w = cell_width
        self.frame_h = round(cell_width / self.aspect)
        self.gap = max(12, cell_width // 16)
        self.margin = self.gap * 2
        self.title_f = _draw.font(max(18, cell_width // 14), bold=True)
        self.meta_f = _draw.font(max(11, cell_width // 34))
        self.cap_f = _draw.font(max(11, cell_width // 30), bold=True)
        self.small_f = _draw.font(max(10, cell_width // 36))
        self.cap_line = round(self.cap_f.getbbox("Ag")[3] * 1.35)
        self.small_line = round(self.small_f.getbbox("Ag")[3] * 1.3)
        lines = sum(2 if f in TEXT_FIELDS else 1 for f in self.fields if f in ("camera", *TEXT_FIELDS))
        self.caption_h = self.cap_line + lines * self.small_line + self.gap // 3
        self.row_h = self.frame_h + self.caption_h + self.gap
        # (FreeType boxes are whole pixels, though Pillow types them as floats)
        self.header_h = int(self.title_f.getbbox("Ag")[3] + self.meta_f.getbbox("Ag")[3]) + self.gap * 2
        self.width = self.margin * 2 + self.columns * cell_width + (self.columns - 1) * self.gap

    def _fit_page(self, page: Page, columns: int) -> None:
        """The widest cell that puts ``columns`` frames across the page and a row on it."""
        page_w, page_h = page.size
        self.columns = columns  # the page keeps its grid even when a scene has fewer shots
        cell = page_w // columns
        while cell > 60:
            self._layout(cell)
            if self.width <= page_w and self.margin * 2 + self.header_h + self.row_h <= page_h:
                break
            cell -= max(1, cell // 50)
        self.margin += (page_w - self.width) // 2  # centred on the paper
        self.width = page_w

    def pages(self, *, paginate: bool):
        rows = max(1, -(-len(self.panels) // self.columns))
        if paginate:
            page_h = self.page.size[1] if self.page else round(self.width * 210 / 297)
            per_page = max(1, (page_h - self.header_h - self.margin * 2) // self.row_h)
        else:
            per_page = rows
        chunks = [
            self.panels[i : i + per_page * self.columns]
            for i in range(0, max(1, len(self.panels)), per_page * self.columns)
        ]
        total = len(chunks)
        result = []
        for number, chunk in enumerate(chunks, 1):
            height = page_h if paginate else self.margin * 2 + self.header_h + rows * self.row_h - self.gap
            result.append(self._page(chunk, height, number, total))
        return result

    def _page(self, panels: list[Panel], height: int, number: int, total: int):
        from PIL import Image, ImageDraw

        img = Image.new("RGB", (self.width, height), self.PAPER)
        draw = ImageDraw.Draw(img)
        seq = self.seq
        x0, y = self.margin, self.margin
        draw.text((x0, y), seq.title, font=self.title_f, fill=self.INK)
        facts = [
            counted(len(seq.shots), "shot"),
            counted(len(seq.scenes), "scene"),
            format_duration(seq.duration),
            seq.project.path.name,
            f"frames made on {seq.made_on}",
        ]
        if total > 1:
            facts.append(f"page {number}/{total}")
        missing = seq.without_frames()
        if missing:
            facts.append(missing)
        y += int(self.title_f.getbbox("Ag")[3]) + self.gap // 2
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
        if frame is not None and panel.state is not Status.FRESH:
            tag = panel.state.value.upper()
            tw = self.small_f.getlength(tag)
            pad = 5
            draw.rectangle(
                [x + box[0] - tw - 3 * pad, y + pad, x + box[0] - pad, y + pad * 2 + self.small_f.size],
                fill=d.STATE_COLOURS[panel.state],
            )
            draw.text((x + box[0] - tw - 2 * pad, y + pad * 1.5), tag, font=self.small_f, fill=(0, 0, 0))
        if panel.approved:
            self._approved(draw, x, y)
        cy = y + box[1] + self.gap // 3
        spec = panel.spec
        right = ""
        if not panel.is_shot:
            right = "sheet"
        elif "duration" in self.fields:
            frames = self.frames.get(panel.id)
            right = f"{panel.duration:g} s" + (f" · {frames} fr" if frames is not None else "")
        rw = self.cap_f.getlength(right) if right else 0
        code = panel.code if "code" in self.fields and panel.code else None
        title = d.ellipsize(
            " ".join(t for t in (code, panel.id) if t), self.cap_f, self.cell_w - rw - (self.gap if right else 0)
        )
        draw.text((x, cy), title, font=self.cap_f, fill=self.INK)
        if right:
            draw.text((x + self.cell_w - rw, cy), right, font=self.cap_f, fill=self.INK)
        cy += self.cap_line
        for name in self.fields:
            if name == "camera":
                text = camera_line(panel, with_backend=len(self.seq.frame_backends) > 1)
                if text:
                    draw.text((x, cy), d.ellipsize(text, self.small_f, self.cell_w), font=self.small_f, fill=self.MUTED)
                cy += self.small_line
            elif name in TEXT_FIELDS:
                text = getattr(spec, name)
                if text:
                    label = "" if name == "dialogue" else f"{name}: "
                    for i, line in enumerate(d.wrap(label + text, self.small_f, self.cell_w, max_lines=2)):
                        draw.text(
                            (x, cy + i * self.small_line),
                            line,
                            font=self.small_f,
                            fill=self.INK if name == "dialogue" else self.MUTED,
                        )
                cy += 2 * self.small_line

    APPROVED = (63, 178, 127)

    def _approved(self, draw, x: int, y: int) -> None:
        """The approved mark: a green tag in the frame's top-left corner."""
        tag = "✓ APPROVED"
        pad = 5
        tw = self.small_f.getlength(tag)
        draw.rectangle([x + pad, y + pad, x + tw + 3 * pad, y + pad * 2 + self.small_f.size], fill=self.APPROVED)
        draw.text((x + 2 * pad, y + pad * 1.5), tag, font=self.small_f, fill=(0, 0, 0))


def camera_line(panel: Panel, *, with_backend: bool = False) -> str:
    """The camera notes as the board shows them; first the backend that made the frame when
    the sheet's frames come from several."""
    cam = panel.spec.camera
    line = " · ".join(v for v in (cam.framing, cam.angle, cam.lens, cam.move) if v)
    if with_backend and panel.takes and panel.backend:
        line = f"[{panel.backend}] " + line
    return line


def caption(panel: Panel, *, with_backend: bool = False) -> str:
    """One line: the camera notes, then the dialogue."""
    line = camera_line(panel, with_backend=with_backend)
    if panel.spec.dialogue:
        line = (line + " — " if line else "") + panel.spec.dialogue
    return line
