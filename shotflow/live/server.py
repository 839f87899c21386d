"""The live board's server: Starlette on uvicorn, server-sent events, a file watcher.

    GET  /                the board as it stands (review controls write through the server)
    GET  /events          text/event-stream: "hello" (the board's version, its errors), then
                          "update" after every round (Update.to_json); while a round renders,
                          "panels" ({id: html} of each shot as its new frame is ready) and "status"
    GET  /frames/SHA.EXT  a frame the board shows (content-addressed: cached for good)
    POST /api/review      {"shot", "action": pick|approve|reject|note, "take" | "text"}

Access: on a loopback address (the default) anyone on this machine may look; a write needs
the page's token in an ``X-Shotflow-Token`` header (another web site cannot read the page,
so cannot forge one), and a Host header naming loopback (a DNS-rebinding page cannot
pass). On any other address every request needs the token (``?token=`` once, then a
cookie), and ``shotflow watch`` prints a warning with the URL that carries it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import secrets
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from ..errors import ConfigError, ShotflowError
from .rounds import Workspace

if TYPE_CHECKING:
    import uvicorn

COOKIE = "shotflow_token"
MAX_REQUEST_BYTES = 64 * 1024
PING_SECONDS = 15.0  # a comment line keeps proxies and the browser from closing a quiet stream
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]"}


@dataclass(frozen=True)
class ServeOptions:
    host: str = "127.0.0.1"
    port: int = 8765
    open_browser: bool = True
    #: watchfiles: a burst of writes (an editor's save) is one change once quiet this long (ms)
    settle_ms: int = 30


def serve(
    storyboard: Path, render_options, options: ServeOptions, *, out: TextIO | None = None, err: TextIO | None = None
) -> None:
    """Serve the live board until interrupted (what ``shotflow watch`` runs)."""
    _require_extra()
    server = LiveServer(Path(storyboard), render_options, options, out=out or sys.stdout, err=err or sys.stderr)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a watch ends: every round's work was recorded
        asyncio.run(server.run())
    server._say("stopped")


def _require_extra() -> None:
    missing = []
    for module in ("starlette", "uvicorn", "watchfiles"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ConfigError(f"shotflow watch needs {', '.join(missing)}", hint="pip install 'shotflow[live]'")


class Hub:
    """Every open board's event queue; a round's update is put in each."""

    def __init__(self):
        self.queues: set[asyncio.Queue] = set()

    def subscribe(self) -> asyncio.Queue:
        queue: asyncio.Queue = asyncio.Queue(maxsize=256)
        self.queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        self.queues.discard(queue)

    def publish(self, event: str, data: dict) -> None:
        message = f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
        for queue in list(self.queues):
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:  # a board that stopped reading: it reloads when it comes back
                self.queues.discard(queue)


class LiveServer:
    def __init__(self, storyboard: Path, render_options, options: ServeOptions, *, out: TextIO, err: TextIO):
        self.options = options
        self.out, self.err = out, err
        self.token = secrets.token_urlsafe(18)
        self.hub = Hub()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.workspace = Workspace(storyboard, render_options, progress=self._progress, early=self._early)
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shotflow-round")
        self.wake = asyncio.Event()
        self.watched: set[Path] = set()
        self.restart_watch: asyncio.Event | None = None
        self.writing = asyncio.Lock()
        self.loopback = True
        self.uvicorn: uvicorn.Server | None = None
        self.app = self._app()

    @property
    def stopping(self) -> bool:
        return self.uvicorn is not None and self.uvicorn.should_exit

    # -- running ----------------------------------------------------------------------------------

    async def run(self) -> None:
        import uvicorn

        self.loop = asyncio.get_running_loop()
        sock, self.loopback = _bind(self.options.host, self.options.port)
        port = sock.getsockname()[1]
        url = _url(self.options.host, port, None if self.loopback else self.token)
        first = await self.loop.run_in_executor(self.pool, lambda: self.workspace.round(render=False))
        self._say(f"serving {url}")
        if not self.loopback:
            self._warn(
                f"warning: the board is served on {self.options.host}, not only on this machine: anyone "
                f"who can reach port {port} and has the token in the URL above can see every frame and "
                f"write picks, approvals and notes into {self.workspace.storyboard.name}"
            )
        for line in first.errors:
            self._warn(line)
        if self.options.open_browser:
            import webbrowser

            threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()
        config = uvicorn.Config(
            self.app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=1
        )
        server = self.uvicorn = uvicorn.Server(config)
        helpers = [asyncio.ensure_future(self._rounds()), asyncio.ensure_future(self._watch())]
        self.wake.set()  # the first round renders what changed since the last render
        try:
            await server.serve(sockets=[sock])
        finally:
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            self.pool.shutdown(wait=False, cancel_futures=True)

    async def _rounds(self) -> None:
        assert self.loop is not None
        while True:
            await self.wake.wait()
            self.wake.clear()
            update = await self.loop.run_in_executor(self.pool, self.workspace.round)
            self.hub.publish("update", update.to_json())
            self._say(f"round {update.version}: {update.summary} ({update.elapsed:.2f} s)")
            for line in update.errors:
                self._warn(line)
            if self.restart_watch is not None and self.workspace.folders != self.watched:
                self.restart_watch.set()  # an include or a reference folder came or went

    async def _watch(self) -> None:
        from watchfiles import awatch

        while True:
            self.watched = self.workspace.folders
            self.restart_watch = asyncio.Event()
            async for changes in awatch(
                *self.watched,
                stop_event=self.restart_watch,
                recursive=False,
                step=self.options.settle_ms,
                rust_timeout=1000,
                yield_on_timeout=False,
            ):
                paths = [Path(p) for _, p in changes]
                if (
                    any(self.workspace.concerns(p) or self.workspace.concerns(p.resolve()) for p in paths)
                    and self.workspace.changed_since_last_round()
                ):
                    self.wake.set()

    def _progress(self, text: str) -> None:
        """From the round's thread: tell the boards how far the render is."""
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.hub.publish, "status", {"text": text})

    def _early(self, panels: dict[str, str]) -> None:
        """From the round's thread: a panel whose new frame is ready before the round ends."""
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.hub.publish, "panels", {"panels": panels})

    def _say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def _warn(self, text: str) -> None:
        self.err.write(text + "\n")
        self.err.flush()

    # -- the web side -----------------------------------------------------------------------------

    def _app(self):
        from starlette.applications import Starlette
        from starlette.routing import Route

        return Starlette(
            routes=[
                Route("/", self._page),
                Route("/events", self._events),
                Route("/frames/{name}", self._frame),
                Route("/api/review", self._review, methods=["POST"]),
            ]
        )

    def _denied(self, request, *, write: bool = False):
        """None when the request may go on, else the response that refuses it."""
        from starlette.responses import JSONResponse, PlainTextResponse

        if self.loopback:
            if _hostname(request.headers.get("host", "")) not in LOOPBACK_NAMES:
                return PlainTextResponse("this board answers on its loopback address only", status_code=403)
        else:
            given = (
                request.query_params.get("token")
                or request.headers.get("x-shotflow-token")
                or request.cookies.get(COOKIE)
                or ""
            )
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return PlainTextResponse(
                    "this board needs its token: open the URL that shotflow watch printed", status_code=403
                )
        if write:
            header = request.headers.get("x-shotflow-token", "")
            if not hmac.compare_digest(header.encode(), self.token.encode()):
                return JSONResponse({"error": "a write needs the board's token (reload the board)"}, status_code=403)
            if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
                return JSONResponse({"error": "a write is a JSON request"}, status_code=415)
        return None

    async def _page(self, request):
        from starlette.responses import HTMLResponse

        denied = self._denied(request)
        if denied is not None:
            return denied
        from importlib.resources import files

        script = files(__package__).joinpath("live.js").read_text(encoding="utf-8")
        head = f'<meta name="shotflow-token" content="{self.token}">\n'
        html = await asyncio.to_thread(self.workspace.page, head=head, script=script)
        response = HTMLResponse(html, headers={"Cache-Control": "no-store"})
        if not self.loopback:
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict")
        return response

    async def _events(self, request):
        from starlette.responses import StreamingResponse

        denied = self._denied(request)
        if denied is not None:
            return denied
        queue = self.hub.subscribe()
        hello = {"version": self.workspace.board_version, "errors": self.workspace.errors}

        async def stream():
            try:
                yield f"event: hello\ndata: {json.dumps(hello, ensure_ascii=False)}\n\n"
                quiet = 0.0
                # a stream ends when the server stops (so shutdown need not cut it), and when the hub
                # dropped a board that stopped reading (it reconnects, and reloads if it missed a round)
                while not self.stopping and queue in self.hub.queues:
                    try:
                        yield await asyncio.wait_for(queue.get(), 0.25)
                        quiet = 0.0
                    except TimeoutError:
                        quiet += 0.25
                        if quiet >= PING_SECONDS:
                            yield ": ping\n\n"
                            quiet = 0.0
            finally:
                self.hub.unsubscribe(queue)

        return StreamingResponse(
            stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )

    async def _frame(self, request):
        from starlette.responses import FileResponse, PlainTextResponse

        denied = self._denied(request)
        if denied is not None:
            return denied
        name = request.path_params["name"]
        digest, _, ext = name.partition(".")
        path = self.workspace.frames.get(digest)
        if path is None or not path.is_file():
            return PlainTextResponse("no such frame on this board", status_code=404)
        media = {"png": "image/png", "jpg": "image/jpeg", "webp": "image/webp"}.get(ext, "application/octet-stream")
        return FileResponse(path, media_type=media, headers={"Cache-Control": "private, max-age=31536000, immutable"})

    async def _review(self, request):
        from starlette.responses import JSONResponse

        denied = self._denied(request, write=True)
        if denied is not None:
            return denied
        body = await _read_body(request)
        if body is None:
            return JSONResponse(
                {"error": f"a review request is at most {MAX_REQUEST_BYTES // 1024} KiB"}, status_code=413
            )
        from ..load import display_path
        from ..review import apply, decision_from_action

        try:
            decision = decision_from_action(json.loads(body))
            project = self.workspace.project
            if project is None:
                return JSONResponse({"error": "the storyboard has errors: fix them before reviewing"}, status_code=409)
            async with self.writing:
                written = await asyncio.to_thread(apply, self.workspace.storyboard, [decision], project)
        except ValueError:
            return JSONResponse({"error": "a review request is JSON"}, status_code=400)
        except ShotflowError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        if written:
            self.wake.set()  # no need to wait for the watcher to notice our own write
        self._say(
            f"review: {decision.shot}: {', '.join(decision.describe())}"
            + (f" -> {', '.join(display_path(p) for p in written)}" if written else " (already so)")
        )
        return JSONResponse({"ok": True, "written": [p.name for p in written]})


async def _read_body(request) -> bytes | None:
    """The request's body, or None when it is larger than MAX_REQUEST_BYTES."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_REQUEST_BYTES):
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_REQUEST_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _bind(host: str, port: int) -> tuple[socket.socket, bool]:
    """A listening socket on host:port (0: a free port), and whether it is loopback only."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host}: {exc.strerror}") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror}", hint="choose another --port (0 picks a free one)"
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    try:
        loopback = ipaddress.ip_address(str(address[0]).split("%")[0]).is_loopback
    except ValueError:
        loopback = False
    return sock, loopback


def _url(host: str, port: int, token: str | None) -> str:
    name = host
    if host in ("0.0.0.0", "::", ""):
        name = socket.gethostname()
    elif ":" in host:
        name = f"[{host}]"
    return f"http://{name}:{port}/" + (f"?token={token}" if token else "")


def _hostname(header: str) -> str:
    """The host of a Host header, without its port ("[::1]:8765" -> "[::1]")."""
    if header.startswith("["):
        return header.split("]", 1)[0] + "]"
    return header.rsplit(":", 1)[0]
