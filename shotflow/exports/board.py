"""``shotflow board``: one self-contained HTML storyboard of what the renders left.

    renders/board.html                      (default; -o elsewhere)
    ├── header: title, shots, running time, cost, states, scene index, the prompts switch
    ├── Cast and locations                  the lineup: each one's picture (sheet or given
    │                                       image), its colour / tone on preview panels, its shots
    ├── Reference sheets                    character:… / location:… panels
    └── Scene 1 · title · location          one <section> per scene, story order
        └── <article id="shot-arrival-wide" data-shot-id="arrival/wide" data-state="fresh">
              picked frame (or a placeholder box), other takes, number, camera,
              duration, action / dialogue / notes, prompt, references as links

The page opens from disk with no network: no CDN, no web font, images embedded as
data: URIs (``--relative`` links to renders/ instead). Review controls on every shot —
pick a take (``data-action="pick"``), approve / send back, add a note — keep decisions
in the page and export them as review.json (``review.js``, the page's one review
script); served by ``shotflow watch`` the same controls write into the storyboard. ``@media print`` turns it into
a classic storyboard sheet: three panels a row, caption under each frame, a page per
scene. The prompts switch (a director reads pictures) hides every prompt, on screen and
in print; ``--hide-prompts`` writes the page with it off. Every piece of user text goes
through ``html.escape``.

    python -m shotflow.exports.board STORYBOARD --screenshot docs/board.png

renders the storyboard into a temporary copy, writes its board, and has headless
Chromium take the screenshot the README shows (see ``_browser``).
"""

from __future__ import annotations

import base64
import os
from html import escape
from pathlib import Path
from urllib.parse import quote

from ..model import NodeKind, RefKind, ReviewStatus
from ..status import Status
from ._frames import Panel, SceneView, Sequence, Take, anchors, format_duration

EMBED_AS_IS = 400 * 1024  # frames up to this size are embedded byte for byte
FRAME_EDGE = 1600  # larger ones are scaled to this long edge (JPEG) for the page
TAKE_EDGE = 640
LINEUP_EDGE = 480

BADGE = {  # the states a panel can be in, in the order the board counts them
    Status.FRESH: "fresh",
    Status.STALE: "stale",
    Status.FAILED: "failed",
    Status.SKIPPED: "skipped",
    Status.NOT_RENDERED: "not rendered",
}


def default_output(seq: Sequence) -> Path:
    return seq.project.renders_dir / "board.html"


def write_board(
    seq: Sequence, output: Path, *, relative: bool = False, full_res: bool = False, hide_prompts: bool = False
) -> Path:
    """Write the board of ``seq`` to ``output`` (atomically) and return it."""
    from .. import outputs

    if not outputs.is_stdout(output):
        output = Path(output).absolute()
    images = _Images(Path.cwd() if outputs.is_stdout(output) else output.parent, relative=relative, full_res=full_res)
    outputs.write(output, render_html(seq, images, hide_prompts=hide_prompts).encode("utf-8"))
    return output


# -- images ---------------------------------------------------------------------------


class _Images:
    """The ``src`` of each take: a data: URI, or a path relative to the page."""

    def __init__(self, page_dir: Path, *, relative: bool, full_res: bool):
        self.page_dir = page_dir
        self.relative = relative
        self.full_res = full_res

    def src(self, take: Take, edge: int) -> str:
        assert take.path is not None
        if self.relative and take.in_renders:
            rel = os.path.relpath(take.path, self.page_dir)
            return quote(Path(rel).as_posix())
        data, mime = take.read_bytes(), take.mime
        if not self.full_res and len(data) > EMBED_AS_IS:
            data, mime = _shrink(data, edge), "image/jpeg"
        return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"

    def file_src(self, path: Path, edge: int, *, link: bool = True) -> str:
        """The ``src`` of an image that is no take: a character's or a location's given image.

        Embedded like the frames (linked with ``--relative`` when ``link``); what is not a
        PNG, JPEG or WebP, or is too large, is redrawn as a JPEG by Pillow.
        """
        if self.relative and link:
            return quote(Path(os.path.relpath(path, self.page_dir)).as_posix())
        data = Path(path).read_bytes()
        mime = _sniff(data)
        if mime is None or (not self.full_res and len(data) > EMBED_AS_IS):
            data, mime = _shrink(data, edge), "image/jpeg"
        return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _sniff(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def _shrink(data: bytes, edge: int) -> bytes:
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as source:
        source.draft("RGB", (edge, edge))
        img = source.convert("RGB")
        img.thumbnail((edge, edge), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        img.save(out, "JPEG", quality=85, optimize=True)
        return out.getvalue()


# -- the page ----------------------------------------------------------------------------


def view_of(seq: Sequence, images) -> _View:
    """The board's parts for ``seq`` (``shotflow watch`` redraws single panels with it)."""
    ids = anchors(seq.panels)
    users: dict[str, list[str]] = {}
    for panel in seq.panels.values():
        for ref in panel.spec.refs:
            if ref.kind is RefKind.NODE:
                users.setdefault(ref.target, []).append(panel.id)
    return _View(seq, images, ids, users)


def render_html(seq: Sequence, images, *, head: str = "", script: str = "", hide_prompts: bool = False) -> str:
    """The whole page; ``head`` and ``script`` are extra markup and JavaScript (the live board's)."""
    from .._version import __version__

    view = view_of(seq, images)
    title = escape(seq.title)
    body = [view.header()]
    if seq.project.entities:
        body.append(view.lineup())
    if seq.sheets:
        body.append(view.sheets())
    body.extend(view.scene(scene) for scene in seq.scenes)
    body.append(
        '<footer class="foot">Made by shotflow '
        + escape(__version__)
        + " from "
        + escape(seq.project.path.name)
        + " and "
        + escape(seq.project.lock_path.name)
        + ". Exports never generate: run <code>shotflow render</code> to fill the gaps.</footer>"
    )
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta name="generator" content="shotflow {escape(__version__)}">\n'
        f"<title>{title} — storyboard</title>\n<style>{CSS}{REVIEW_CSS}</style>\n{head}</head>\n"
        f'<body data-shots="{len(seq.shots)}" data-sheets="{len(seq.sheets)}" '
        f'data-storyboard="{escape(seq.project.path.name)}"'
        + (' class="no-prompts"' if hide_prompts else "")
        + ">\n"
        + "\n".join(body)
        + '\n<div id="lightbox" hidden><img alt=""><p></p></div>\n'
        + f"<script>{SCRIPT}\n{review_script()}\n{script}</script>\n"
        + "</body>\n</html>\n"
    )


class _View:
    def __init__(self, seq: Sequence, images: _Images, ids: dict[str, str], users: dict[str, list[str]]):
        self.seq = seq
        self.images = images
        self.ids = ids
        self.users = users

    def header(self) -> str:
        seq = self.seq
        shots, sheets = len(seq.shots), len(seq.sheets)
        facts = [
            _plural(shots, "shot"),
            _plural(len(seq.scenes), "scene"),
            *([_plural(sheets, "reference sheet")] if sheets else []),
            f"<strong>{format_duration(seq.duration)}</strong> running time",
            f"frames cost <strong>${seq.cost:.2f}</strong> (made on {escape(seq.made_on)})",
        ]
        if set(seq.frame_backends) != {"runware"}:
            facts.append(f"≈ ${seq.runware_estimate:.2f} on Runware")
        states = "".join(
            f'<li class="badge is-{state.css}" data-state="{state.css}" data-count="{seq.count(state)}">'
            f"{seq.count(state)} {BADGE[state]}</li>"
            for state in BADGE
            if seq.count(state) or state is Status.FRESH
        )
        index = "".join(
            f'<li><a href="#scene-{escape(s.info.id)}"><span class="num">{s.number}</span> '
            f'{escape(s.info.title or s.info.id)} <span class="muted">{format_duration(s.duration)}</span></a></li>'
            for s in seq.scenes
        )
        return (
            '<header class="top">\n<p class="kicker">Storyboard</p>\n'
            f"<h1>{escape(seq.title)}</h1>\n"
            f'<p class="facts">{" · ".join(facts)}</p>\n'
            f'<ul class="states">{states}</ul>\n'
            f"{self.review_bar()}"
            f'<nav class="index"><ol>{index}</ol></nav>\n'
            '<label class="switch" '
            'title="a director reads pictures: hide every prompt, on screen and in print (key P)">'
            '<input type="checkbox" id="show-prompts" checked> prompts</label>\n</header>'
        )

    def lineup(self) -> str:
        """Every character and location: its picture, its colour or tone on preview panels, its shots."""
        seen: dict[tuple[str, str], list[Panel]] = {}
        for panel in self.seq.shots:
            staging = panel.spec.staging
            if staging is None:
                continue
            for figure in staging.cast:
                seen.setdefault(("character", figure.name), []).append(panel)
            if staging.location:
                seen.setdefault(("location", staging.location), []).append(panel)
        items = "\n".join(self.who(e, seen.get((e.kind.value, e.name), [])) for e in self.seq.project.entities)
        return (
            '<section class="lineup" id="lineup">\n<header class="scene-head"><h2>Cast and locations</h2>'
            '<p class="muted">who and where: each one\'s picture, and the colour or tone the preview panels give '
            "them</p></header>\n"
            f'<ul class="who-list">\n{items}\n</ul>\n</section>'
        )

    def who(self, entity, panels: list[Panel]) -> str:
        from ..staging import colour_rgb, css, tone_rgb

        kind = entity.kind.value
        colour = css(colour_rgb(entity.slot) if entity.kind is NodeKind.CHARACTER else tone_rgb(entity.slot))
        picture, source = self.picture(entity)
        what = "colour" if entity.kind is NodeKind.CHARACTER else "tone"
        parts = [
            f'<h3><span class="swatch" style="background:{colour}" title="its {what} on preview panels">'
            f'</span>{escape(entity.name)} <span class="muted">{kind}</span></h3>'
        ]
        if entity.description:
            parts.append(f'<p class="who-desc">{escape(entity.description)}</p>')
        parts.append(f'<p class="who-src">{source}</p>')
        if panels:
            links = " ".join(
                f'<a class="ref" href="#{self.ids[p.id]}" title="{escape(p.id)}">{escape(p.number)}</a>' for p in panels
            )
            parts.append(f'<p class="who-shots"><span class="label">In</span> {links}</p>')
        else:
            parts.append('<p class="who-shots muted">in no shot</p>')
        return (
            f'<li class="who is-{kind}" data-entity="{kind}:{escape(entity.name)}" data-shots="{len(panels)}">'
            f'<div class="who-pic">{picture}</div><div class="who-text">{"".join(parts)}</div></li>'
        )

    def picture(self, entity) -> tuple[str, str]:
        """The entity's picture (an img, or a placeholder saying why there is none) and where it comes from."""
        ref = entity.picture
        alt = escape(f"{entity.kind.value} {entity.name}")
        if ref is None:
            return '<div class="who-none">described in words</div>', "no picture: described in words"
        if ref.kind is RefKind.NODE:
            panel = self.seq.panels.get(ref.target)
            link = (
                f'sheet <a class="ref" href="#{self.ids[ref.target]}">{escape(panel.number)}</a>'
                if panel
                else f"sheet {escape(ref.target)}"
            )
            if panel is not None and panel.picked is not None:
                return f'<img src="{self.images.src(panel.picked, LINEUP_EDGE)}" alt="{alt}">', f"generated {link}"
            return '<div class="who-none">sheet not rendered</div>', f"generated {link}"
        if ref.kind is RefKind.FILE:
            source = f"image <code>{escape(ref.label)}</code>"
            try:
                return f'<img src="{self.images.file_src(Path(ref.target), LINEUP_EDGE)}" alt="{alt}">', source
            except OSError:
                return '<div class="who-none">image missing</div>', source
        source = f"image <code>{escape(ref.label)}</code>"
        path = self.url_object(ref.target)
        if path is not None:
            try:
                return f'<img src="{self.images.file_src(path, LINEUP_EDGE, link=False)}" alt="{alt}">', source
            except OSError:
                pass
        return '<div class="who-none">not fetched yet</div>', source

    def url_object(self, url: str) -> Path | None:
        """The cached bytes of a URL reference that a render fetched and pinned in the lock, if any."""
        from ..store import LockFile, open_store

        project = self.seq.project
        digest = LockFile.read(project.lock_path).urls.get(url)
        if not digest:
            return None
        store = open_store(project.root)
        return store.object_path(digest) if store.has(digest) else None  # its bytes match its name

    def review_bar(self) -> str:
        """Approved / sent-back counts, and the export of the decisions made in this page."""
        shots = self.seq.shots
        approved = sum(1 for p in shots if p.approved)
        changes = sum(1 for p in shots if p.spec.review.status is ReviewStatus.CHANGES)
        return (
            f'<div class="review-bar" id="review-bar"><span class="review-count" data-approved="{approved}" '
            f'data-changes="{changes}"><strong>{approved}</strong> approved · <strong>{changes}</strong> '
            f'sent back</span> <span class="review-pending" id="review-pending" aria-live="polite"></span> '
            '<button type="button" class="review-export" data-action="export-review" '
            'title="Download the picks, approvals and notes made on this page; apply them with: '
            'shotflow review apply review.json">Export review.json</button></div>\n'
        )

    def sheets(self) -> str:
        panels = "\n".join(self.panel(p) for p in self.seq.sheets)
        return (
            f'<section class="sheets" id="sheets">\n<header class="scene-head"><h2>Reference sheets</h2>'
            f'<p class="muted">characters and locations generated to keep shots consistent</p></header>\n'
            f'<div class="grid">\n{panels}\n</div>\n</section>'
        )

    def scene(self, scene: SceneView) -> str:
        info = scene.info
        meta = [_plural(len(scene.panels), "shot"), format_duration(scene.duration)]
        if info.location:
            meta.insert(0, f"location: {escape(info.location)}")
        notes = "".join(f'<p class="scene-text">{escape(text)}</p>' for text in (info.description, info.notes) if text)
        panels = "\n".join(self.panel(p) for p in scene.panels)
        return (
            f'<section class="scene" id="scene-{escape(info.id)}" data-scene-id="{escape(info.id)}">\n'
            f'<header class="scene-head"><h2><span class="num">{scene.number}</span> '
            f"{escape(info.title or info.id)}</h2>"
            f'<p class="muted">{escape(info.id)} · {" · ".join(meta)}</p>{notes}</header>\n'
            f'<div class="grid">\n{panels}\n</div>\n</section>'
        )

    def panel(self, panel: Panel) -> str:
        spec, state = panel.spec, panel.state
        kind = "shot" if panel.is_shot else "sheet"
        review = spec.review.status.value if spec.review.status else ""
        return (
            f'<article class="panel is-{state.css} is-{kind}{" is-" + review if review else ""}" '
            f'id="{self.ids[panel.id]}" data-shot-id="{escape(panel.id)}" data-state="{state.css}" '
            f'data-review="{review}" data-pick="{panel.pick}" data-duration="{spec.duration:g}">\n'
            f'<div class="frame" style="aspect-ratio: {spec.width} / {spec.height}">{self.frame(panel)}</div>\n'
            f"{self.takes(panel)}"
            f'<div class="caption">{self.caption(panel)}</div>\n'
            f"{self.review(panel)}"
            f'<div class="detail">{self.detail(panel)}</div>\n</article>'
        )

    def review(self, panel: Panel) -> str:
        """A shot's review: its mark, notes and controls (approve, send back, add a note)."""
        if not panel.is_shot:
            return ""
        sid = escape(panel.id)
        review = panel.spec.review
        labels: dict[ReviewStatus | None, str] = {
            ReviewStatus.APPROVED: "approved",
            ReviewStatus.CHANGES: "changes requested",
        }
        status = labels.get(review.status, "")
        held = (
            (
                f'<p class="held" title="render --include-approved, or send it back, to render it">kept as approved; '
                f"since then: {escape(panel.held)}</p>"
            )
            if panel.held
            else ""
        )
        notes = "".join(f"<li>{escape(note)}</li>" for note in review.notes)
        approved = "true" if review.approved else "false"
        changes = "true" if review.status is ReviewStatus.CHANGES else "false"
        return (
            f'<div class="review">'
            f'<p class="review-status">{escape(status)}</p>{held}'
            f'<ol class="review-notes">{notes}</ol>'
            f'<div class="review-controls">'
            f'<button type="button" data-action="approve" data-shot-id="{sid}" '
            f'aria-pressed="{approved}">Approve</button>'
            f'<button type="button" data-action="reject" data-shot-id="{sid}" '
            f'aria-pressed="{changes}">Send back</button>'
            f'<textarea class="note-text" rows="1" maxlength="4000" placeholder="Note…" aria-label="note on {sid}">'
            f"</textarea>"
            f'<button type="button" data-action="note" data-shot-id="{sid}">Add note</button>'
            f"</div></div>\n"
        )

    def frame(self, panel: Panel) -> str:
        """The picked frame (marked when it is an old one), or a placeholder box; badge, duration."""
        spec, state = panel.spec, panel.state
        badge = escape(BADGE[state])
        picked = panel.picked
        if picked is not None:
            label = f"{panel.id}, take {picked.index}" if len(panel.takes) > 1 else panel.id
            html = (
                f'<img class="picked" src="{self.images.src(picked, FRAME_EDGE)}" '
                f'alt="{escape(label)}" width="{spec.width}" height="{spec.height}">'
            )
            if state is not Status.FRESH:
                html += f'<span class="ribbon">{badge}</span>'
        else:
            why = {Status.FAILED: "render failed", Status.SKIPPED: "skipped"}.get(state, "not rendered")
            if panel.takes and state in (Status.FRESH, Status.STALE):
                why = "frame missing from renders/ and the cache"
            html = (
                f'<div class="placeholder" role="img" aria-label="{escape(panel.id)}: {escape(why)}">'
                f"<span>{escape(why)}</span></div>"
            )
        html += f'<span class="badge is-{state.css}">{badge}</span>'
        if panel.approved:
            html += '<span class="approved-mark" title="approved">✓ approved</span>'
        if panel.is_shot:
            html += f'<span class="dur">{spec.duration:g} s</span>'
        return html

    def takes(self, panel: Panel) -> str:
        """Every take, small, the picked one marked (only when there are several)."""
        if len(panel.takes) < 2:
            return ""
        items = []
        for take in panel.takes:
            picked = take.index == panel.pick
            if take.path is None:
                thumb = '<span class="take-missing">missing</span>'
            else:
                thumb = f'<img src="{self.images.src(take, TAKE_EDGE)}" alt="{escape(panel.id)}, take {take.index}">'
            caption = f"take {take.index}" + (" · picked" if picked else "")
            control = ""
            if panel.is_shot:
                control = (
                    f'<button type="button" class="pick" data-action="pick" data-shot-id="{escape(panel.id)}" '
                    f'data-take="{take.index}" aria-pressed="{"true" if picked else "false"}">'
                    f"{'picked' if picked else 'pick'}</button>"
                )
            items.append(
                f'<li class="take{" is-picked" if picked else ""}" data-take="{take.index}">'
                f"{thumb}<span>{caption}</span>{control}</li>"
            )
        return f'<ul class="takes">{"".join(items)}</ul>'

    def caption(self, panel: Panel) -> str:
        """What a storyboard sheet prints under the frame: number, camera, action, dialogue, notes."""
        spec, state = panel.spec, panel.state
        title = escape(spec.name if panel.is_shot else spec.id)
        parts = [
            f'<h3><span class="num">{escape(panel.number)}</span> {title}'
            + (f' <span class="sid">{escape(panel.id)}</span>' if panel.is_shot else "")
            + "</h3>"
        ]
        camera = [escape(v) for v in (spec.camera.framing, spec.camera.angle, spec.camera.lens, spec.camera.move) if v]
        if camera:
            parts.append(f'<p class="camera">{" · ".join(camera)}</p>')
        if spec.action:
            parts.append(f'<p class="action">{escape(spec.action)}</p>')
        if spec.dialogue:
            parts.append(f'<p class="dialogue">{escape(spec.dialogue)}</p>')
        if spec.notes:
            parts.append(f'<p class="notes"><strong>Note:</strong> {escape(spec.notes)}</p>')
        if panel.message and state is not Status.FRESH:
            parts.append(
                f'<p class="message is-{state.css}"><strong>{escape(BADGE[state])}:</strong> '
                f"{escape(panel.message)}</p>"
            )
        return "".join(parts)

    def detail(self, panel: Panel) -> str:
        """The screen-only part: prompt, references and what the frame feeds, model, key, cost."""
        spec = panel.spec
        parts = [f'<p class="prompt"><span class="label">Prompt</span> {escape(spec.prompt)}</p>']
        refs = [self.ref(r, spec.tagged) for r in spec.refs]
        if refs:
            parts.append(f'<p class="refs"><span class="label">References</span> {" ".join(refs)}</p>')
        feeds = self.users.get(panel.id)
        if feeds:
            links = " ".join(f'<a class="ref" href="#{self.ids[u]}">{escape(u)}</a>' for u in feeds)
            parts.append(f'<p class="refs"><span class="label">Feeds</span> {links}</p>')
        tech = [escape(spec.model), f"{spec.width}×{spec.height}"]
        if spec.takes > 1:
            tech.append(f"{spec.takes} takes, pick {panel.pick}")
        if panel.key:
            tech.append(f'key <code title="{escape(panel.key)}">{escape(panel.key[:12])}</code>')
        if panel.cost is not None:
            tech.append(f"${panel.cost:.2f}")
        if panel.backend and panel.takes:
            tech.append(f'<span class="backend">made on {escape(panel.backend)}</span>')
        parts.append(f'<p class="tech">{" · ".join(tech)}</p>')
        return "".join(parts)

    def ref(self, ref, tagged: bool) -> str:
        """A reference: a link to the panel it comes from, or a file's path / a URL."""
        tag = f'<span class="tag">@{escape(ref.tag)}</span> ' if tagged and ref.tag else ""
        if ref.kind is RefKind.NODE:
            return f'<a class="ref" href="#{self.ids[ref.target]}">{tag}{escape(ref.target)}</a>'
        kind = "file" if ref.kind is RefKind.FILE else "url"
        return f'<span class="ref is-{kind}" title="{escape(ref.via)}">{tag}<code>{escape(ref.label)}</code></span>'


def _plural(n: int, word: str) -> str:
    return f"<strong>{n}</strong> {word}{'' if n == 1 else 's'}"


# -- style and behaviour --------------------------------------------------------------------

CSS = """
:root{--bg:#121418;--card:#1b1e24;--line:#2c313a;--text:#ebe7e0;--muted:#9aa1ab;--accent:#e3b45a;
--fresh:#3fb27f;--stale:#e0a030;--failed:#e5534b;--skipped:#a58bd8;--none:#7b8494;color-scheme:dark}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--text);
font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
a{color:var(--accent)}
code{font:12px/1.3 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.muted{color:var(--muted)}
.top{padding:36px 40px 24px;border-bottom:1px solid var(--line);
background:linear-gradient(180deg,#1a1d23 0%,var(--bg) 100%)}
.kicker{margin:0;text-transform:uppercase;letter-spacing:.18em;font-size:12px;color:var(--accent)}
h1{margin:4px 0 10px;font-size:34px;line-height:1.15;font-weight:700;letter-spacing:-.01em}
.facts{margin:0 0 14px;color:var(--muted)}
.facts strong{color:var(--text);font-weight:600}
.states{display:flex;flex-wrap:wrap;gap:8px;list-style:none;margin:0 0 18px;padding:0}
.index ol{display:flex;flex-wrap:wrap;gap:8px 22px;list-style:none;margin:0;padding:0}
.index a{text-decoration:none;color:var(--text)}
.index a:hover{color:var(--accent)}
.num{display:inline-block;min-width:1.9em;padding:1px 6px;margin-right:4px;border-radius:4px;background:#2a2f38;
color:var(--accent);font-weight:700;font-size:.82em;text-align:center;font-variant-numeric:tabular-nums}
section{padding:28px 40px 8px}
.scene-head{margin-bottom:16px}
.scene-head h2{margin:0;font-size:22px}
.scene-head p{margin:4px 0 0}
.scene-text{color:var(--text);max-width:70ch}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:22px}
.sheets .grid{grid-template-columns:repeat(auto-fill,minmax(210px,250px));gap:18px}
.is-sheet .prompt{display:-webkit-box;-webkit-line-clamp:3;-webkit-box-orient:vertical;overflow:hidden}
.panel{background:var(--card);border:1px solid var(--line);border-radius:10px;overflow:hidden;
display:flex;flex-direction:column;scroll-margin-top:16px}
.panel:target{outline:2px solid var(--accent);outline-offset:2px}
.frame{position:relative;background:#0b0c0e;overflow:hidden}
.frame img.picked{display:block;width:100%;height:100%;object-fit:contain;cursor:zoom-in}
.placeholder{position:absolute;inset:0;display:flex;align-items:center;justify-content:center;
border:2px dashed #4a505b;margin:10px;border-radius:6px;
background:repeating-linear-gradient(135deg,#15171b 0 14px,#1b1e23 14px 28px)}
.placeholder span{text-transform:uppercase;letter-spacing:.14em;font-weight:700;color:var(--muted);font-size:13px;
background:#121418;padding:6px 12px;border-radius:4px}
.is-failed .placeholder{border-color:var(--failed)}
.is-failed .placeholder span{color:var(--failed)}
.is-skipped .placeholder{border-color:var(--skipped)}
.ribbon{position:absolute;left:0;right:0;bottom:0;padding:4px 10px;background:rgba(224,160,48,.88);color:#1b1300;
font-weight:700;font-size:12px;text-transform:uppercase;letter-spacing:.12em}
.is-failed .ribbon{background:rgba(229,83,75,.9);color:#fff}
.is-skipped .ribbon{background:rgba(165,139,216,.9);color:#160f24}
.frame .badge{position:absolute;bottom:8px;right:8px}
.dur{position:absolute;left:8px;bottom:8px;padding:2px 8px;border-radius:999px;background:rgba(0,0,0,.65);
font-size:12px;font-weight:600;font-variant-numeric:tabular-nums}
.badge{display:inline-block;padding:2px 9px;border-radius:999px;font-size:12px;font-weight:600;
background:#2a2f38;color:var(--text);border:1px solid transparent}
.badge.is-fresh{background:rgba(63,178,127,.16);color:var(--fresh);border-color:rgba(63,178,127,.45)}
.badge.is-stale{background:rgba(224,160,48,.18);color:var(--stale);border-color:rgba(224,160,48,.5)}
.badge.is-failed{background:rgba(229,83,75,.18);color:var(--failed);border-color:rgba(229,83,75,.5)}
.badge.is-skipped{background:rgba(165,139,216,.18);color:var(--skipped);border-color:rgba(165,139,216,.5)}
.badge.is-not-rendered{background:rgba(123,132,148,.2);color:#c3c9d3;border-color:rgba(123,132,148,.5)}
.frame .badge{background:rgba(10,11,13,.8)}
.ribbon~.badge,.ribbon~.dur{bottom:34px}
.takes{display:flex;gap:6px;list-style:none;margin:0;padding:8px 10px 0;overflow-x:auto}
.take{flex:0 0 auto;width:92px;font-size:11px;color:var(--muted);text-align:center}
.take img{display:block;width:92px;height:52px;object-fit:cover;border-radius:3px;border:2px solid transparent;
cursor:zoom-in}
.take.is-picked img{border-color:var(--accent)}
.take.is-picked{color:var(--accent)}
.take-missing{display:flex;align-items:center;justify-content:center;height:52px;border:1px dashed #4a505b;
border-radius:3px}
.caption{padding:12px 14px 4px}
.caption h3{margin:0 0 4px;font-size:16px}
.sid{font-weight:400;color:var(--muted);font-size:12px;margin-left:4px}
.camera{margin:0 0 6px;color:var(--accent);font-size:13px;text-transform:lowercase;letter-spacing:.02em}
.action{margin:0 0 6px}
.dialogue{margin:0 0 6px;padding-left:10px;border-left:3px solid var(--accent);font-style:italic}
.notes{margin:0 0 6px;color:#d8cfb8;font-size:13px}
.message{margin:6px 0;padding:6px 8px;border-radius:6px;font-size:13px;background:#25282f}
.message.is-failed{background:rgba(229,83,75,.12);color:#f2b8b4}
.message.is-stale{background:rgba(224,160,48,.12);color:#f0d49a}
.detail{padding:0 14px 12px;font-size:12.5px;color:var(--muted)}
.detail p{margin:6px 0 0}
.label{display:inline-block;margin-right:6px;text-transform:uppercase;letter-spacing:.1em;font-size:10.5px;
color:#737b87;font-weight:700}
.prompt{color:#b7bdc6}
.ref{display:inline-block;margin:0 6px 2px 0;padding:0 7px;border:1px solid var(--line);border-radius:999px;
text-decoration:none;color:var(--text);font-size:12px}
a.ref:hover{border-color:var(--accent);color:var(--accent)}
.ref.is-file code,.ref.is-url code{font-size:11.5px;color:var(--muted)}
.tag{color:var(--accent)}
.tech{font-size:11.5px;color:#737b87}
.foot{padding:28px 40px 40px;color:#737b87;font-size:12.5px}
.switch{display:inline-flex;align-items:center;gap:6px;margin-top:14px;padding:3px 10px;border:1px solid var(--line);
border-radius:999px;font-size:13px;color:var(--muted);cursor:pointer;user-select:none}
.switch input{accent-color:var(--accent);margin:0}
.no-prompts .prompt{display:none}
.who-list{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:14px;list-style:none;margin:0;padding:0}
.who{display:flex;gap:12px;background:var(--card);border:1px solid var(--line);border-radius:10px;padding:10px;
break-inside:avoid}
.who-pic{flex:0 0 112px;height:112px;border-radius:6px;overflow:hidden;background:#0b0c0e}
.who-pic img{display:block;width:100%;height:100%;object-fit:cover;cursor:zoom-in}
.who-none{display:flex;align-items:center;justify-content:center;height:100%;padding:6px;text-align:center;
font-size:12px;color:var(--muted);border:1px dashed #4a505b;border-radius:6px}
.who h3{margin:0 0 4px;font-size:16px}
.who h3 .muted{font-weight:400;font-size:12px}
.swatch{display:inline-block;width:.9em;height:.9em;border-radius:3px;margin-right:7px;vertical-align:-1px;
box-shadow:0 0 0 1px rgba(255,255,255,.25);-webkit-print-color-adjust:exact;print-color-adjust:exact}
.who-desc{margin:0 0 4px;font-size:13px;display:-webkit-box;
-webkit-line-clamp:2;-webkit-box-orient:vertical;overflow:hidden}
.who-src,.who-shots{margin:0 0 3px;font-size:12px;color:var(--muted)}
.who-shots .ref{padding:0 6px;margin:0 3px 2px 0}
#lightbox{position:fixed;inset:0;background:rgba(5,6,8,.92);display:flex;flex-direction:column;align-items:center;
justify-content:center;padding:24px;cursor:zoom-out;z-index:10}
#lightbox[hidden]{display:none}
#lightbox img{max-width:100%;max-height:calc(100% - 40px);object-fit:contain}
#lightbox p{margin:10px 0 0;color:var(--muted)}
@media print{
@page{size:A4 landscape;margin:10mm}
:root{--text:#000;--muted:#444;--line:#999;color-scheme:light}
body{background:#fff;color:#000;font-size:10pt}
.top{padding:0 0 4mm;background:none;border-bottom:1px solid #000}
h1{font-size:20pt;margin:0 0 2mm}
.kicker{color:#000}
.states,.index,.takes,.foot,#lightbox,.frame .badge,.dur,.ribbon,.switch{display:none !important}
.detail{padding:.5mm 0 0;font-size:7pt;color:#333}
.detail>:not(.prompt),.detail .label,.no-prompts .detail{display:none !important}
.detail .prompt{margin:0;color:#333;display:-webkit-box;
-webkit-line-clamp:3;-webkit-box-orient:vertical;overflow:hidden}
.lineup{break-before:auto;padding:0;margin-top:4mm}
.lineup+.sheets .grid{grid-template-columns:repeat(4,1fr)}
.who-list{grid-template-columns:repeat(4,1fr);gap:3mm}
.who{border:0;padding:0;background:none;gap:2mm}
.who-pic{flex-basis:16mm;height:16mm;border:1px solid #000;-webkit-print-color-adjust:exact;print-color-adjust:exact}
.who h3{font-size:9pt;margin:0}
.who-desc,.who-src,.who-shots{font-size:7pt;margin:0;color:#000}
.who-shots .ref{border:0;padding:0;color:#000}
section{padding:0;break-before:page}
.top+section,.lineup+section{break-before:auto;margin-top:6mm}
.scene-head{margin:0 0 4mm;border-bottom:1px solid #000}
.scene-head h2{font-size:14pt}
.num{background:none;color:#000;padding:0;min-width:0}
.grid,.sheets .grid{display:grid;grid-template-columns:repeat(3,1fr);gap:6mm 5mm}
.panel{background:none;border:0;border-radius:0;break-inside:avoid;page-break-inside:avoid;display:block}
.frame{border:1px solid #000;background:#fff;-webkit-print-color-adjust:exact;print-color-adjust:exact}
.placeholder{margin:0;border:0;background:repeating-linear-gradient(135deg,#fff 0 3mm,#eee 3mm 6mm)}
.placeholder span{background:#fff;color:#000}
.caption{padding:1.5mm 0 0}
.caption h3{font-size:10pt;margin:0 0 .5mm}
.sid{color:#444}
.camera{color:#000;font-size:8.5pt;margin:0 0 .5mm}
.action,.dialogue,.notes,.message{font-size:8.5pt;margin:0 0 .5mm;color:#000;background:none;padding:0}
.dialogue{border-left:2px solid #000;padding-left:2mm}
.message{font-style:italic}
}
"""

SCRIPT = r"""
(function () {
  var body = document.body, imgs = Array.prototype.slice.call(document.images);
  function tally() {
    var ok = 0, bad = 0;
    imgs.forEach(function (img) {
      if (img.closest('#lightbox')) return;
      if (img.complete) { if (img.naturalWidth > 0) ok++; else bad++; }
    });
    body.setAttribute('data-images-total', imgs.length - 1);
    body.setAttribute('data-images-loaded', ok);
    body.setAttribute('data-images-broken', bad);
  }
  imgs.forEach(function (img) { img.addEventListener('load', tally); img.addEventListener('error', tally); });
  window.addEventListener('load', function () { tally(); body.setAttribute('data-ready', '1'); });
  tally();
  var box = document.getElementById('lightbox'), big = box.querySelector('img'), note = box.querySelector('p');
  document.addEventListener('click', function (e) {
    var img = e.target.closest('.frame img, .take img, .who-pic img');
    if (img) { big.src = img.src; note.textContent = img.alt; box.hidden = false; return; }
    if (!box.hidden && e.target.closest('#lightbox')) box.hidden = true;
  });
  var toggle = document.getElementById('show-prompts');
  function prompts(shown, remember) {
    body.classList.toggle('no-prompts', !shown);
    body.setAttribute('data-prompts', shown ? 'shown' : 'hidden');
    toggle.checked = shown;
    if (remember) { try { localStorage.setItem('shotflow.prompts', shown ? 'shown' : 'hidden'); } catch (e) {} }
  }
  if (toggle) {
    var saved = null;
    try { saved = localStorage.getItem('shotflow.prompts'); } catch (e) {}
    prompts(saved ? saved === 'shown' : !body.classList.contains('no-prompts'), false);
    toggle.addEventListener('change', function () { prompts(toggle.checked, true); });
  }
  document.addEventListener('keydown', function (e) {
    if (e.key === 'Escape') box.hidden = true;
    if ((e.key === 'p' || e.key === 'P') && toggle && !e.ctrlKey && !e.metaKey && !e.altKey
        && !/^(INPUT|TEXTAREA|SELECT)$/.test((e.target.tagName || ''))) prompts(!toggle.checked, true);
  });
})();
"""


REVIEW_CSS = """
.review-bar{display:flex;flex-wrap:wrap;align-items:center;gap:10px;margin:0 0 16px;color:var(--muted)}
.review-bar strong{color:var(--text)}
.review-pending{color:var(--accent)}
button{font:inherit;font-size:12px;color:var(--text);background:#2a2f38;border:1px solid var(--line);
border-radius:6px;padding:3px 10px;cursor:pointer}
button:hover{border-color:var(--accent)}
button[aria-pressed="true"]{background:rgba(227,180,90,.2);border-color:var(--accent);color:var(--accent)}
.review-export{background:var(--accent);color:#1b1300;border-color:var(--accent);font-weight:700}
body[data-live] .review-export{display:none}
.take .pick{display:block;width:100%;margin-top:3px;padding:1px 4px;font-size:11px}
.review{padding:0 14px 6px;font-size:13px}
.review-status{margin:0;font-weight:700;color:var(--accent)}
.review-status:empty,.review-notes:empty,.held:empty{display:none}
.is-approved .review-status{color:var(--fresh)}
.is-changes .review-status{color:var(--stale)}
.held{margin:2px 0;font-size:12px;color:var(--stale)}
.review-notes{margin:4px 0;padding-left:20px;color:#d8cfb8}
.review-notes li.is-new{color:var(--accent)}
.review-controls{display:flex;flex-wrap:wrap;gap:6px;align-items:center;margin:6px 0 2px}
.note-text{flex:1 1 140px;min-width:0;font:inherit;font-size:12px;color:var(--text);background:#121418;
border:1px solid var(--line);border-radius:6px;padding:3px 6px;resize:vertical}
.approved-mark{position:absolute;left:8px;bottom:8px;padding:2px 9px;border-radius:999px;font-size:12px;
font-weight:700;background:rgba(63,178,127,.92);color:#04140c}
.panel.is-approved{border-color:rgba(63,178,127,.7)}
#live-status{position:sticky;top:0;z-index:5;padding:8px 40px;font-size:13px;background:#1f2329;
border-bottom:1px solid var(--line);color:var(--muted)}
#live-status.is-error{background:#3a1c1c;color:#f2b8b4}
#live-status pre{margin:4px 0 0;white-space:pre-wrap;font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}
@media print{
.review-bar,.review-controls,.take .pick,#live-status{display:none !important}
.approved-mark{display:inline-block !important;position:static;background:none;color:#000;padding:0;
border:1px solid #000}
.review{padding:0;font-size:8.5pt}
.review-status,.held{color:#000}
.review-notes{color:#000;margin:0;padding-left:4mm}
}
"""


def review_script() -> str:
    """The review controls' JavaScript (``review.js`` beside this module): the one place it lives."""
    from importlib.resources import files

    return files(__package__).joinpath("review.js").read_text(encoding="utf-8")


def _main(argv: list[str] | None = None) -> None:
    """``python -m shotflow.exports.board STORYBOARD --screenshot PNG``: the README's picture."""
    import argparse
    import shutil
    import tempfile

    from ..expand import load_project
    from ..render import RenderOptions
    from ..render import render as run
    from ..report import RecordingReporter
    from ._browser import screenshot
    from ._frames import read_sequence

    parser = argparse.ArgumentParser(prog="python -m shotflow.exports.board", description=_main.__doc__)
    parser.add_argument("storyboard", type=Path)
    parser.add_argument("--screenshot", type=Path, required=True, metavar="PNG")
    parser.add_argument("--size", default="1280x2000", help="window size, WIDTHxHEIGHT (default 1280x2000)")
    args = parser.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="shotflow-board-") as tmp:
        copy = Path(tmp) / "project"
        shutil.copytree(
            args.storyboard.resolve().parent, copy, ignore=shutil.ignore_patterns(".shotflow", "renders", "*.html")
        )
        story = copy / args.storyboard.name
        run(story, RenderOptions(), RecordingReporter())
        page = write_board(read_sequence(load_project(story)), copy / "board.html")
        screenshot(page, args.screenshot, width=width, height=height)
    print(f"wrote {args.screenshot}")


if __name__ == "__main__":
    _main()
