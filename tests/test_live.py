"""shotflow watch and the board's review controls, in a real headless Chromium (Debian's
``chromium``, driven by playwright with ``executable_path``; skipped only where no browser exists).

    watch on a copy of the lighthouse ─► edit a prompt: the panel changes, nothing else is redrawn
                                      ─► break the file: its error on the page, the frames stay
                                      ─► pick / approve / note by clicking: the YAML, comments kept
                                      ─► edit the approved shot: held, on the board and by render
    the static board.html ─► the same clicks ─► review.json ─► review apply ─► the same YAML
"""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from test_review import DECIDED, DECISIONS
from test_writeback import changed_lines

from shotflow.exports._browser import find_chromium
from shotflow.render import RenderOptions

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
LIVE_TIMEOUT = 45_000  # ms: a round on a busy 2-core CI machine


def copy_lighthouse(folder: Path) -> Path:
    shutil.copytree(EXAMPLES / "lighthouse", folder, ignore=shutil.ignore_patterns("renders", ".shotflow", "*.lock"))
    story = folder / "storyboard.yaml"
    # a process of its own: playwright's sync API keeps an event loop running in this thread
    done = subprocess.run(
        [sys.executable, "-m", "shotflow", "render", str(story)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return story


class Watch:
    """``python -m shotflow watch STORY --port 0 --no-open ARGS`` as a user runs it."""

    def __init__(self, story: Path, *args: str):
        env = {k: v for k, v in os.environ.items() if k != "SHOTFLOW_CACHE"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "shotflow", "watch", str(story), "--port", "0", "--no-open", *args],
            cwd=story.parent,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue = queue.Queue()
        self.err: list[str] = []
        threading.Thread(target=self._read, args=(self.proc.stdout, self.lines.put), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, self.err.append), daemon=True).start()
        try:
            self.first = self.lines.get(timeout=60)
        except queue.Empty:
            self.stop()
            raise AssertionError("shotflow watch printed nothing: " + "".join(self.err)) from None
        assert self.first.startswith("serving http://"), self.first + "".join(self.err)
        self.url = self.first.split()[1]

    @staticmethod
    def _read(stream, put) -> None:
        for line in stream:
            put(line)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture(scope="module")
def chromium():
    path = find_chromium()
    if path is None:
        pytest.skip("no headless browser on this machine (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-gpu"])
        yield browser
        browser.close()


def wait_for_file(path: Path, predicate, timeout: float = 30) -> str:
    """The file's text once ``predicate`` holds (the server writes it on its own time)."""
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text(encoding="utf-8")
        if predicate(text):
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"{path.name} never got there:\n{text}")
        time.sleep(0.05)


def version(page) -> int:
    return int(page.evaluate("document.body.dataset.liveVersion"))


def wait_round(page, after: int) -> int:
    """Wait for the board to apply a round later than ``after``; its version."""
    page.wait_for_function(f"Number(document.body.dataset.liveVersion) > {after}", timeout=LIVE_TIMEOUT)
    return version(page)


PANEL = 'article.panel[data-shot-id="{}"]'


def off_loop(fn, *args, **kwargs):
    """Call ``fn`` on a thread of its own: a render runs asyncio, and playwright's sync API
    (the module's browser) keeps an event loop in this thread while it is open."""
    box: list = []

    def run():
        try:
            box.append((True, fn(*args, **kwargs)))
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller
            box.append((False, exc))

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(120)
    ok, value = box[0]
    if not ok:
        raise value
    return value


@pytest.mark.browser
def test_live_board_follows_the_file_and_writes_decisions_back(chromium, tmp_path):
    story = copy_lighthouse(tmp_path / "lighthouse")
    original = story.read_text(encoding="utf-8")
    watch = Watch(story)
    try:
        assert re.fullmatch(r"serving http://127\.0\.0\.1:\d+/\n", watch.first)
        page = chromium.new_page(viewport={"width": 1280, "height": 900})
        page.goto(watch.url)
        page.wait_for_function("Number(document.body.dataset.liveVersion) >= 2", timeout=LIVE_TIMEOUT)
        assert page.locator("article.panel").count() == 12
        assert page.evaluate("document.querySelectorAll('img.picked').length") == 12

        # -- an edit: that panel changes, the others stay the same elements, the scroll stays ----------
        page.evaluate("document.querySelector('[data-shot-id=\"arrival/wide\"]').__kept = true")
        page.evaluate("window.scrollTo(0, 1400)")
        scrolled = page.evaluate("window.scrollY")
        lamp = PANEL.format("arrival/lamp") + " img.picked"
        before = page.get_attribute(lamp, "src")
        v = version(page)
        story.write_text(original.replace("the great lamp", "the huge lamp"), encoding="utf-8")
        page.wait_for_function(
            f"document.querySelector('{lamp}').getAttribute('src') !== '{before}'", timeout=LIVE_TIMEOUT
        )
        v = wait_round(page, v)
        assert "huge lamp" in page.inner_text(PANEL.format("arrival/lamp") + " .prompt")
        assert page.evaluate("document.querySelector('[data-shot-id=\"arrival/wide\"]').__kept") is True
        assert page.evaluate("window.scrollY") == scrolled
        assert page.evaluate(f"fetch(document.querySelector('{lamp}').src).then(r => r.status)") == 200

        # -- bad edits: the error on the page as the CLI prints it, the last good frames kept -------------
        story.write_text(original.replace("{{ vars.weather }}", "{{ vars.wether }}", 1), encoding="utf-8")
        page.wait_for_selector("#live-status.is-error", timeout=LIVE_TIMEOUT)
        errors = page.inner_text("#live-status pre")
        assert re.search(r"error: storyboard\.yaml:\d+:\d+: arrival/wide: prompt", errors), errors
        assert "wether" in errors
        assert page.evaluate("document.querySelectorAll('img.picked').length") == 12
        story.write_text("shotflow: 1\nscenes: [\n", encoding="utf-8")  # not even YAML
        page.wait_for_function(
            "document.querySelector('#live-status pre').textContent.includes('storyboard.yaml:3:1')",
            timeout=LIVE_TIMEOUT,
        )
        assert page.locator("article.panel").count() == 12
        v = version(page)
        story.write_text(original, encoding="utf-8")  # fixed (and the lamp edit reverted)
        page.wait_for_selector("#live-status:not(.is-error)", timeout=LIVE_TIMEOUT)
        v = wait_round(page, v - 1)
        assert watch.proc.poll() is None
        assert "the great lamp" in page.inner_text(PANEL.format("arrival/lamp") + " .prompt")

        # -- decisions by clicking: written into the YAML, every other byte kept ----------------------
        page.click('[data-action="pick"][data-shot-id="arrival/door"][data-take="3"]')
        text = wait_for_file(story, lambda t: "pick: 3" in t)
        assert changed_lines(original, text) == DECIDED[:2]  # the comment after pick: survived
        page.wait_for_selector(
            '[data-action="pick"][data-shot-id="arrival/door"][data-take="3"][aria-pressed="true"]',
            timeout=LIVE_TIMEOUT,
        )
        dawn = PANEL.format("rescue/dawn")
        page.click(f'{dawn} [data-action="approve"]')
        wait_for_file(story, lambda t: "status: approved" in t)
        # as a user would: the approval is on the panel (its redraw done) before the note is typed
        page.wait_for_selector(f"{dawn}.is-approved .approved-mark", timeout=LIVE_TIMEOUT)
        page.fill(f"{dawn} .note-text", "hold the last frame: end card")
        page.click(f'{dawn} [data-action="note"]')
        text = wait_for_file(story, lambda t: "hold the last frame" in t)
        assert changed_lines(original, text) == DECIDED
        page.wait_for_function(f"document.querySelector('{dawn} .note-text').value === ''", timeout=LIVE_TIMEOUT)
        page.wait_for_selector(f"{dawn}.is-approved .approved-mark", timeout=LIVE_TIMEOUT)
        page.wait_for_function(
            f"document.querySelector('{dawn} .review-notes').textContent.includes('hold the last frame')",
            timeout=LIVE_TIMEOUT,
        )

        # -- the approved shot edited: held on the board and by render ------------------------------
        dawn_src = page.get_attribute(f"{dawn} img.picked", "src")
        story.write_text(text.replace("dawn after the storm", "dawn after the long storm"), encoding="utf-8")
        page.wait_for_selector(f"{dawn} .held", timeout=LIVE_TIMEOUT)
        assert "prompt changed" in page.inner_text(f"{dawn} .held")
        assert page.get_attribute(f"{dawn} img.picked", "src") == dawn_src
        done = subprocess.run(
            [sys.executable, "-m", "shotflow", "render", str(story), "--json"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        events = {e["id"]: e for e in map(json.loads, done.stdout.splitlines()) if e["event"] == "node"}
        assert events["rescue/dawn"]["status"] == "held"
        assert watch.proc.poll() is None
    finally:
        code = watch.stop()
    assert code == 0, "".join(watch.err)
    assert not any("Traceback" in line for line in watch.err), "".join(watch.err)


@pytest.mark.browser
def test_static_board_exports_a_review_that_review_apply_writes_the_same_way(chromium, tmp_path):
    story = copy_lighthouse(tmp_path / "lighthouse")
    original = story.read_text(encoding="utf-8")
    board = story.parent / "board.html"
    done = subprocess.run(
        [sys.executable, "-m", "shotflow", "board", str(story), "-o", str(board)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    context = chromium.new_context(accept_downloads=True)
    page = context.new_page()
    page.goto(board.as_uri())
    door = PANEL.format("arrival/door")
    page.click(f'{door} [data-action="pick"][data-take="3"]')
    take3 = page.get_attribute(f'{door} .take[data-take="3"] img', "src")
    assert page.get_attribute(f"{door} img.picked", "src") == take3  # the page shows the picked take
    assert page.get_attribute(f'{door} [data-take="3"] [data-action="pick"]', "aria-pressed") == "true"
    dawn = PANEL.format("rescue/dawn")
    page.click(f'{dawn} [data-action="reject"]')
    page.click(f'{dawn} [data-action="approve"]')  # changed their mind: the last decision counts
    page.fill(f"{dawn} .note-text", "hold the last frame: end card")
    page.click(f'{dawn} [data-action="note"]')
    assert "is-approved" in page.get_attribute(dawn, "class")
    assert page.get_attribute("body", "data-review-pending") == "2"
    assert original == story.read_text(encoding="utf-8")  # a static page writes nothing

    page.reload()  # the decisions stay with the page until exported
    # (waited for: on a busy machine the reloaded page may still be drawing when asked)
    restored = page.wait_for_selector(
        f'{door} [data-take="3"] [data-action="pick"][aria-pressed="true"]', timeout=30000
    )
    assert restored is not None
    with page.expect_download() as download:
        page.click('[data-action="export-review"]')
    review = story.parent / "downloads" / "review.json"
    download.value.save_as(review)
    assert download.value.suggested_filename == "review.json"
    assert json.loads(review.read_text()) == DECISIONS

    done = subprocess.run(
        [sys.executable, "-m", "shotflow", "review", "apply", str(review), str(story)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert changed_lines(original, story.read_text(encoding="utf-8")) == DECIDED  # as the live board wrote it

    # the board made again shows the applied decisions, and the page has nothing pending any more
    done = subprocess.run(
        [sys.executable, "-m", "shotflow", "board", str(story), "-o", str(board)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    page = context.new_page()  # the same browser profile: the decisions are still in its storage
    page.goto(board.as_uri())
    assert page.get_attribute("body", "data-review-pending") == "0"
    assert page.get_attribute(dawn, "data-review") == "approved"
    assert page.locator(f"{dawn} .review-notes li").count() == 1
    assert page.evaluate("JSON.parse(window.shotflowReview.json()).shots") == {}
    context.close()


class Asgi:
    """Requests to the server's ASGI app in process (httpx's ASGI transport), on a thread of
    their own: playwright's sync API may hold an event loop in this one."""

    def __init__(self, app, base_url: str):
        self.app, self.base_url = app, base_url
        self.cookies: dict[str, str] = {}

    def request(self, method: str, url: str, **kwargs):
        import asyncio

        import httpx

        async def go():
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url=self.base_url, cookies=self.cookies) as client:
                response = await client.request(method, url, **kwargs)
                self.cookies.update(client.cookies)
                return response

        box = []
        worker = threading.Thread(target=lambda: box.append(asyncio.run(go())))
        worker.start()
        worker.join(60)
        return box[0]

    def get(self, url: str, **kwargs):
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs):
        return self.request("POST", url, **kwargs)


def test_watch_guards_its_doors(tmp_path):
    """Loopback: a write needs the page's token and a loopback Host. Elsewhere: every request needs it."""
    from shotflow.live.server import LiveServer, ServeOptions

    story = copy_lighthouse(tmp_path / "lighthouse")
    server = LiveServer(story, RenderOptions(), ServeOptions(), out=sys.stdout, err=sys.stderr)
    off_loop(server.workspace.round, render=False)
    local = Asgi(server.app, "http://127.0.0.1:8765")
    page = local.get("/")
    assert page.status_code == 200 and f'<meta name="shotflow-token" content="{server.token}">' in page.text
    assert local.get("/", headers={"host": "attacker.example:8765"}).status_code == 403  # DNS rebinding
    body = {"shot": "arrival/door", "action": "pick", "take": 3}
    token = {"x-shotflow-token": server.token}
    assert local.post("/api/review", json=body).status_code == 403  # no token: another site's form
    assert (
        local.post("/api/review", content=json.dumps(body), headers={**token, "content-type": "text/plain"}).status_code
        == 415
    )
    bad = local.post("/api/review", json={**body, "take": 9}, headers=token)
    assert bad.status_code == 400 and "the shot has 3 takes" in bad.json()["error"]
    unknown = local.post("/api/review", json={**body, "shot": "arrival/dor"}, headers=token)
    assert unknown.status_code == 400 and "did you mean 'arrival/door'" in unknown.json()["error"]
    big = local.post(
        "/api/review", content=b"{" + b" " * 70_000 + b"}", headers={**token, "content-type": "application/json"}
    )
    assert big.status_code == 413
    ok = local.post("/api/review", json=body, headers=token)
    assert ok.status_code == 200 and ok.json() == {"ok": True, "written": ["storyboard.yaml"]}
    assert "pick: 3" in story.read_text()
    assert local.get("/frames/" + "0" * 64 + ".png").status_code == 404  # only the board's own frames
    sha = next(iter(server.workspace.frames))
    assert local.get(f"/frames/{sha}.png").headers["content-type"] == "image/png"

    server.loopback = False  # as with --host 0.0.0.0
    shared = Asgi(server.app, "http://192.0.2.7:8765")  # in process: no packet leaves
    assert shared.get("/").status_code == 403
    assert shared.get(f"/frames/{sha}.png").status_code == 403
    assert shared.get("/?token=wrong").status_code == 403
    first = shared.get(f"/?token={server.token}")
    assert first.status_code == 200 and "shotflow_token" in first.headers["set-cookie"]
    assert "httponly" in first.headers["set-cookie"].lower()
    assert "samesite=strict" in first.headers["set-cookie"].lower()
    assert shared.get(f"/frames/{sha}.png").status_code == 200  # the cookie carries the token from then on


def test_watch_on_another_host_warns_and_prints_its_token(tmp_path):
    story = copy_lighthouse(tmp_path / "lighthouse")
    watch = Watch(story, "--host", "0.0.0.0")
    try:
        match = re.fullmatch(r"serving http://[^/]+:(\d+)/\?token=([\w-]{20,})\n", watch.first)
        assert match, watch.first
        import httpx

        port, token = match.groups()
        local = f"http://127.0.0.1:{port}/"  # only ever reached on loopback here
        assert httpx.get(local, timeout=30).status_code == 403
        assert httpx.get(f"{local}?token={token}", timeout=30).status_code == 200
    finally:
        watch.stop()
    assert any("warning: the board is served on 0.0.0.0" in line for line in watch.err), watch.err


def test_watch_says_what_is_missing(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "shotflow", "watch", str(tmp_path / "nope.yaml"), "--no-open"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "nope.yaml: no such storyboard" in done.stderr


def test_help_imports_nothing_of_the_live_board():
    from test_cli import imported

    assert not imported("--help") & {"starlette", "uvicorn", "watchfiles", "ruamel", "anyio"}


def test_rounds_follow_includes_templates_and_reference_files(tmp_path):
    """What the watcher hands a round: a change of any file the storyboard reads redraws what it
    changed (the watcher itself is the browser test's); files it does not read start nothing."""
    from shotflow.live.rounds import Workspace

    root = tmp_path / "heist"
    shutil.copytree(EXAMPLES / "heist", root, ignore=shutil.ignore_patterns("renders", ".shotflow", "*.lock"))
    story = root / "storyboard.yaml"
    workspace = Workspace(story, RenderOptions())
    assert off_loop(workspace.round, render=False).errors == []
    first = off_loop(workspace.round)
    assert first.errors == [] and "rendered" in first.summary
    assert workspace.folders == {root, root / "refs", root / "templates"}
    assert not workspace.changed_since_last_round()
    assert not workspace.concerns(root / "renders" / "board.html") and not workspace.concerns(root / "notes.txt")
    assert not workspace.concerns(story.with_suffix(".lock"))

    act2 = root / "act2.yaml"
    act2_shot = next(n for n, spec in workspace.project.nodes.items() if spec.where.file.endswith("act2.yaml"))
    text = act2.read_text()
    first_prompt = re.search(r"prompt: (.+)", text).group(1)
    act2.write_text(
        text.replace(
            first_prompt, first_prompt.rstrip('"') + ", at night" + ('"' if first_prompt.endswith('"') else ""), 1
        )
    )
    assert workspace.concerns(act2) and workspace.changed_since_last_round()
    update = off_loop(workspace.round)
    assert act2_shot in update.panels and update.errors == []

    template = root / "templates" / "insert.j2"
    assert workspace.concerns(template) and workspace.concerns(root / "templates" / "new.j2")
    users = {n for n, spec in workspace.project.nodes.items() if spec.template == "insert.j2"}
    template.write_text(template.read_text() + " extreme detail")
    update = off_loop(workspace.round)
    assert users and users <= set(update.panels)

    vera = root / "refs" / "vera.jpg"
    assert workspace.concerns(vera)
    from PIL import Image

    Image.new("RGB", (64, 64), (200, 30, 30)).save(vera)
    update = off_loop(workspace.round)
    assert update.panels and all(workspace.project.nodes[n].refs for n in update.panels)

    with workspace._mutex:  # a round under way (a long render): a browser that connects gets the last board
        assert 'data-shot-id="' in off_loop(workspace.page, head="", script="")


def test_rounds_use_the_remote_the_user_named_not_the_storyboards(tmp_path, monkeypatch):
    """`watch --remote off` (or --remote URL) holds for the board's redraw too, not only for the render."""
    import shotflow.remote
    from shotflow.live.rounds import Workspace

    root = tmp_path / "heist"
    shutil.copytree(EXAMPLES / "heist", root, ignore=shutil.ignore_patterns("renders", ".shotflow", "*.lock"))
    story = root / "storyboard.yaml"
    story.write_text(story.read_text() + "\nremote: s3://someone-elses-bucket/cache\n")
    asked, real = [], shotflow.remote.open_team
    monkeypatch.setattr(shotflow.remote, "open_team", lambda url, *a, **k: (asked.append(url), real(url, *a, **k))[1])
    workspace = Workspace(story, RenderOptions(remote="off"))
    update = off_loop(workspace.round)
    assert update.errors == [] and "rendered" in update.summary
    assert asked and set(asked) == {"off"}  # the render's and the redraw's: never the storyboard's


def test_a_round_over_max_cost_spends_nothing_and_says_why(tmp_path, monkeypatch):
    from shotflow.live.rounds import Workspace

    monkeypatch.setenv("RUNWARE_API_KEY", "never-used")
    monkeypatch.setenv("RUNWARE_API_URL", "http://127.0.0.1:9/v1")  # nothing listens: a request would fail
    root = tmp_path / "lighthouse"
    shutil.copytree(EXAMPLES / "lighthouse", root, ignore=shutil.ignore_patterns("renders", ".shotflow", "*.lock"))
    workspace = Workspace(root / "storyboard.yaml", RenderOptions(backend="runware", max_cost=0.10))
    update = off_loop(workspace.round)
    assert len(update.errors) == 1 and "would cost about $" in update.errors[0], update.errors
    assert "--max-cost is $0.10; nothing was spent" in update.errors[0]
    assert not (root / "storyboard.lock").exists()
    assert len(update.panels) == 12 or update.sections  # the board is drawn, every shot "not rendered"
    assert 'data-state="not-rendered"' in (update.sections or "")
