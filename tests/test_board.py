"""shotflow board: one self-contained HTML page, checked as markup and in a real headless
Chromium (Debian's ``chromium``; those tests are skipped only where no browser exists).

The project is the lighthouse rendered, then changed (see test_exports.make_mixed's
twin below): a failed shot, skipped and stale ones, and a shot never rendered.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from helpers import RefusingBackend, run_cli_in_process, run_cli_subprocess

from shotflow import api
from shotflow.exports._browser import dump_dom, find_chromium, screenshot
from shotflow.render import RenderOptions
from shotflow.report import RecordingReporter

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
STORY_ORDER = [
    "character:mara",
    "arrival/wide",
    "arrival/lamp",
    "arrival/door",
    "arrival/stairs",
    "radio/console",
    "radio/station",
    "radio/reaction",
    "rescue/gallery",
    "rescue/trawler",
    "rescue/signal",
    "rescue/dawn",
    "rescue/flare",
]
HOSTILE = """      - id: flare
        prompt: a red distress flare arcs over the sea
        duration: 1.25
        dialogue: "MARA: <script>alert('x')</script> & \\"wait\\""
        notes: "<img src=x onerror=alert(1)> — ça brûle"
"""


def browser(test):
    """A test that drives a real headless Chromium: skipped only where there is none."""
    skip = pytest.mark.skipif(
        find_chromium() is None, reason="no headless browser on this machine (apt-get install chromium)"
    )
    return pytest.mark.browser(skip(test))


def render(story: Path) -> None:
    api.render(story, RenderOptions(), RecordingReporter())


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("board") / "lighthouse"
    shutil.copytree(EXAMPLES / "lighthouse", root, ignore=shutil.ignore_patterns("renders", ".shotflow", "*.lock"))
    story = root / "storyboard.yaml"
    render(story)
    text = story.read_text(encoding="utf-8").replace("a small trawler pitching", "a small red trawler pitching")
    story.write_text(text, encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("shotflow.backends.create", lambda name, services: RefusingBackend("red trawler"))
        render(story)
    text = story.read_text(encoding="utf-8").replace("her son's", "her brother's")
    story.write_text(text + HOSTILE, encoding="utf-8")
    return story


@pytest.fixture(scope="module")
def page(project) -> Path:
    done = run_cli_subprocess("board", project)
    assert done.returncode == 0, done.stderr
    assert "wrote" in done.stdout and "1 shot without a frame" in done.stdout
    path = project.parent / "renders" / "board.html"  # the default place
    assert path.is_file()
    return path


class Page(HTMLParser):
    """What the tests look at: panels, images, links, scripts, ids."""

    def __init__(self, text: str):
        super().__init__()
        self.panels: list[dict] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self.ids: set[str] = set()
        self.scripts = 0
        self.placeholders: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "article":
            self.panels.append(a)
        elif tag == "img" and a.get("src"):
            self.images.append(a["src"])
        elif tag == "a":
            self.links.append(a.get("href", ""))
        elif tag == "script":
            self.scripts += 1
        elif "placeholder" in (a.get("class") or ""):
            self.placeholders.append(a.get("aria-label", ""))
        for name in ("src", "href"):
            assert not (a.get(name) or "").startswith(("http:", "https:", "//")), f"network reference: {a}"


def test_board_is_one_page_in_story_order_with_states_and_links(page):
    html = page.read_text(encoding="utf-8")
    doc = Page(html)
    assert [p["data-shot-id"] for p in doc.panels] == STORY_ORDER
    states = {p["data-shot-id"]: p["data-state"] for p in doc.panels}
    assert states["arrival/wide"] == "fresh" and states["rescue/trawler"] == "failed"
    assert states["rescue/signal"] == "skipped" and states["radio/reaction"] == "stale"
    assert states["rescue/gallery"] == "stale" and states["rescue/flare"] == "not-rendered"
    assert {p["data-shot-id"]: p["id"] for p in doc.panels}["arrival/wide"] == "shot-arrival-wide"
    assert doc.placeholders == ["rescue/flare: not rendered"]
    assert "the model refused this prompt (it mentions red trawler)" in html  # the failure's message
    # every reference is a link to a panel that exists, files are shown as their path
    internal = [h[1:] for h in doc.links if h.startswith("#")]
    assert "shot-arrival-wide" in internal and "sheet-character-mara" in internal
    assert all(target in doc.ids for target in internal)
    assert "<code>refs/lighthouse.jpg</code>" in html
    # self-contained: every frame is embedded (13 panels, 12 with a frame, plus the takes of door and signal),
    # and the lineup's pictures: mara's sheet (a PNG frame), tom's and the lighthouse's given JPEGs
    assert len(doc.images) == 12 + 3 + 2 + 3
    assert all(src.startswith(("data:image/png;base64,", "data:image/jpeg;base64,")) for src in doc.images)
    # totals
    assert "<strong>12</strong> shots" in html and "<strong>0:32.2</strong> running time" in html
    assert "frames cost <strong>$0.00</strong>" in html
    # print: a storyboard sheet, three panels a row, a page per scene
    assert "@media print" in html and "repeat(3,1fr)" in html and "break-before:page" in html


def test_user_text_is_escaped(page):
    html = page.read_text(encoding="utf-8")
    doc = Page(html)
    assert doc.scripts == 1  # ours, and no other
    assert "<script>alert" not in html and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp;" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt; — ça brûle" in html


def test_relative_board_links_the_renders(project, page):
    out = project.parent / "board-relative.html"
    done = run_cli_in_process("board", project, "-o", out, "--relative")
    assert done.returncode == 0, done.stderr
    doc = Page(out.read_text(encoding="utf-8"))
    assert doc.images and all(src.startswith(("renders/", "refs/")) for src in doc.images)
    assert all((project.parent / src).is_file() for src in doc.images)
    assert out.stat().st_size < 100_000 < page.stat().st_size  # the embedded page holds the frames


@browser
def test_board_in_chromium_every_panel_and_image_loads(page, tmp_path):
    offline = tmp_path / "board.html"  # away from renders/: only embedded images can load
    shutil.copyfile(page, offline)
    dom = dump_dom(offline)
    body = re.search(r"<body([^>]*)>", dom).group(1)
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', body))
    assert attrs.get("data-ready") == "1", attrs
    assert attrs["data-images-total"] == "20" and attrs["data-images-loaded"] == "20", attrs
    assert attrs["data-images-broken"] == "0"
    assert re.findall(r'<article [^>]*data-shot-id="([^"]+)"', dom) == STORY_ORDER
    assert dom.count('class="placeholder"') == 1


@browser
def test_relative_board_in_chromium_loads_from_renders(project):
    out = project.parent / "board-relative-browser.html"
    assert run_cli_in_process("board", project, "-o", out, "--relative").returncode == 0
    dom = dump_dom(out)
    attrs = dict(re.findall(r'([\w-]+)="([^"]*)"', re.search(r"<body([^>]*)>", dom).group(1)))
    assert attrs["data-images-loaded"] == attrs["data-images-total"] == "20"


@browser
def test_board_screenshot_is_a_real_picture(page, tmp_path):
    from PIL import Image

    png = screenshot(page, tmp_path / "board.png", width=1280, height=2000)
    with Image.open(png) as img:
        assert img.size == (1280, 2000)
        colours = img.convert("RGB").getcolors(1 << 20)
        assert colours is not None and len(colours) > 2000  # frames, text, badges: not a blank page
    assert png.stat().st_size > 100_000


@browser
def test_board_prints_a_page_per_scene(page, tmp_path):
    pdf = tmp_path / "board.pdf"
    browser_path = find_chromium()
    done = subprocess.run(
        [
            browser_path,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=5000",
            "--no-pdf-header-footer",
            f"--print-to-pdf={pdf}",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and pdf.is_file(), done.stderr[-2000:]
    pages = len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf.read_bytes()))
    # title and sheets on page 1, then each scene on its own page (the third one has 5 shots: 2 rows)
    assert pages == 4, pages


# -- the lineup and the prompts switch ----------------------------------------------------------------


def test_the_lineup_shows_every_character_and_location_with_its_picture(page, project):
    from shotflow.staging import colour_rgb, css, tone_rgb

    html = page.read_text(encoding="utf-8")
    lineup = html[html.index('<section class="lineup"') : html.index('<section class="sheets"')]
    items = re.findall(r'<li class="who is-(\w+)" data-entity="([^"]+)" data-shots="(\d+)">(.*?)</li>', lineup, re.S)
    assert [(kind, entity, int(n)) for kind, entity, n, _ in items] == [
        ("character", "character:mara", 6),
        ("character", "character:tom", 1),
        ("location", "location:lighthouse", 12),
    ]
    body = {entity: text for _, entity, _, text in items}
    # mara's picture is her generated sheet, tom's and the lighthouse's the given images, embedded
    assert 'alt="character mara"' in body["character:mara"] and 'href="#sheet-character-mara"' in body["character:mara"]
    assert re.search(r'<img src="data:image/jpeg;base64,[^"]+" alt="character tom">', body["character:tom"])
    assert "<code>refs/tom.jpg</code>" in body["character:tom"]
    assert re.search(r'<img src="data:image/jpeg;base64,[^"]+" alt="location lighthouse">', body["location:lighthouse"])
    # the colour and tone the preview panels give them, and links to the shots they are in
    loaded = api.load_project(project)
    slots = {(e.kind.value, e.name): e.slot for e in loaded.entities}
    assert f"background:{css(colour_rgb(slots[('character', 'mara')]))}" in body["character:mara"]
    assert f"background:{css(colour_rgb(slots[('character', 'tom')]))}" in body["character:tom"]
    assert f"background:{css(tone_rgb(slots[('location', 'lighthouse')]))}" in body["location:lighthouse"]
    assert 'href="#shot-radio-station"' in body["character:tom"]


def test_a_character_described_in_words_has_a_placeholder(write, cli):
    story = write("""
        shotflow: 1
        characters:
          ghost: {description: a figure seen only in the fog}
          ines: {description: a fisher, image: "https://example.com/ines.png"}
        scenes:
          - id: a
            shots:
              - {id: b, cast: [ghost], prompt: the fog}
    """)
    assert cli("board", story).code == 0
    html = (story.parent / "renders" / "board.html").read_text(encoding="utf-8")
    assert 'data-entity="character:ghost" data-shots="1"' in html and "described in words" in html
    assert 'data-entity="character:ines" data-shots="0"' in html and "not fetched yet" in html
    assert "https://example.com/ines.png" in html and 'src="https://' not in html  # shown, never loaded


def test_the_prompts_switch_hides_them_on_screen_and_in_print(page, project):
    html = page.read_text(encoding="utf-8")
    assert '<input type="checkbox" id="show-prompts" checked>' in html
    # prompts shown by default
    assert re.search(r'<body data-shots="\d+" data-sheets="1" data-storyboard="[^"]+">', html)
    css = html[html.index("<style>") : html.index("</style>")]
    screen, print_ = css.split("@media print{", 1)
    assert ".no-prompts .prompt{display:none}" in screen
    assert ".no-prompts .detail{display:none !important}" in print_.replace(",.detail .label", "").replace(
        ".detail>:not(.prompt),", ""
    )
    assert ".detail .prompt{" in print_  # shown, the switch on: printed too
    out = project.parent / "board-no-prompts.html"
    assert run_cli_in_process("board", project, "-o", out, "--hide-prompts").returncode == 0
    hidden = out.read_text(encoding="utf-8")
    assert re.search(r'<body data-shots="\d+" data-sheets="1" data-storyboard="[^"]+" class="no-prompts">', hidden)
    assert hidden.count('class="prompt"') == html.count('class="prompt"')  # hidden, not removed: the switch shows them


@browser
def test_the_prompts_switch_works_in_chromium(project, page):
    out = project.parent / "board-switch.html"
    assert run_cli_in_process("board", project, "-o", out, "--hide-prompts").returncode == 0
    dom = dump_dom(out)
    body = dict(re.findall(r'([\w-]+)="([^"]*)"', re.search(r"<body([^>]*)>", dom).group(1)))
    assert body["class"] == "no-prompts" and body["data-prompts"] == "hidden"  # the script read the page's choice
    shown = dump_dom(page)
    body = dict(re.findall(r'([\w-]+)="([^"]*)"', re.search(r"<body([^>]*)>", shown).group(1)))
    assert body["data-prompts"] == "shown" and "no-prompts" not in body.get("class", "")


def test_board_counts_shots_and_sheets_without_a_frame_apart(example):
    """Nothing rendered yet: "11 shots … 12 without a frame" read as more missing than there are shots."""
    story = example("lighthouse")
    done = run_cli_in_process("board", story)
    assert done.code == 0, done.err
    assert "(11 shots, " in done.out and "; 11 shots and 1 sheet without a frame)" in done.out
