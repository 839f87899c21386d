"""Headless Chromium, driven from the command line (no extra Python dependency).

Used to check the board as a browser sees it (``dump_dom`` after its scripts ran)
and to take the README's screenshot. Debian's package: ``apt-get install chromium``.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import ConfigError

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")

# Offline and quiet: nothing may reach the network, so a page that needs it shows it.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--mute-audio",
    "--hide-scrollbars",
)


def find_chromium() -> str | None:
    """The path of a Chromium-like browser on the PATH, or None."""
    for name in NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(page: Path, extra: list[str], *, budget_ms: int, timeout: float) -> str:
    browser = find_chromium()
    if browser is None:
        raise ConfigError(
            "no headless browser found (looked for " + ", ".join(NAMES) + ")", hint="apt-get install chromium"
        )
    with tempfile.TemporaryDirectory(prefix="shotflow-chromium-") as profile:
        cmd = [
            browser,
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={budget_ms}",
            *extra,
            Path(page).resolve().as_uri(),
        ]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            raise ConfigError(f"{browser} did not finish within {timeout:g} s") from exc
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise ConfigError(f"{browser} failed (exit {done.returncode}): {tail}")
    return done.stdout


def dump_dom(page: Path, *, budget_ms: int = 5000, timeout: float = 90) -> str:
    """The page's DOM as serialised after its scripts and image loads ran."""
    return _run(page, ["--dump-dom"], budget_ms=budget_ms, timeout=timeout)


def screenshot(
    page: Path, png: Path, *, width: int = 1280, height: int = 2000, budget_ms: int = 5000, timeout: float = 90
) -> Path:
    """A PNG of the page's first ``width`` × ``height`` pixels."""
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    _run(page, [f"--screenshot={png}", f"--window-size={width},{height}"], budget_ms=budget_ms, timeout=timeout)
    if not png.is_file():
        raise ConfigError(f"the browser wrote no screenshot to {png}")
    return png
