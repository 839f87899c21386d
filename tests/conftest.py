"""Shared fixtures: copies of the examples, a storyboard writer and a CLI runner (``cli``: a
subprocess). Shared functions and fakes are in helpers.py."""

from __future__ import annotations

import os
import shutil
import tempfile
import textwrap
from pathlib import Path

import pytest
from helpers import run_cli_subprocess

ROOT = Path(__file__).resolve().parent.parent

# The per-user cache (compiled templates, schema checks) of the tests is their own, never
# the user's ~/.cache/shotflow; subprocesses inherit it. Each pytest process (the main one
# and every xdist worker) makes its own and removes it when it ends.
_USER_DIR = tempfile.mkdtemp(prefix="shotflow-tests-")
USER_CACHE = os.path.join(_USER_DIR, "cache")
os.environ["SHOTFLOW_USER_CACHE"] = USER_CACHE
# its key (which authenticates what is in it) outside it, as a user's is; and no user config
os.environ["SHOTFLOW_USER_KEY"] = os.path.join(_USER_DIR, "key", "usercache.key")
os.environ["SHOTFLOW_CONFIG"] = os.path.join(_USER_DIR, "config", "config.toml")
# nor the user's team cache: a test names its remote when it wants one
os.environ.pop("SHOTFLOW_REMOTE", None)
EXAMPLES = ROOT / "examples"


def pytest_xdist_auto_num_workers(config):
    """``-n auto`` (the README's test command): two workers more than the cores. The suite waits
    more than it computes (emulated task latencies, subprocesses, a headless browser), so on
    this 2-core machine 4 workers ran it in 121 s against 152 s with 2, and with another process
    busy on one core in 149 s against 234 s."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(2, cores) + 2


def pytest_unconfigure(config):
    shutil.rmtree(_USER_DIR, ignore_errors=True)


@pytest.fixture
def cli():
    """``run_cli_subprocess``: ``python -m shotflow ARGS`` in a fresh process (see helpers.py)."""
    return run_cli_subprocess


@pytest.fixture
def example(tmp_path):
    """Copy an example project into tmp_path and return its storyboard path."""

    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(EXAMPLES / name, target, ignore=shutil.ignore_patterns("renders", ".shotflow", "*.lock"))
        return target / "storyboard.yaml"

    return copy


@pytest.fixture
def write(tmp_path):
    """Write a storyboard (dedented) to tmp_path and return its path."""

    def _write(text: str, name: str = "storyboard.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return _write


@pytest.fixture
def image(tmp_path):
    """Write a small PNG and return its path."""

    def _image(name: str = "ref.png", color=(200, 60, 60), size=(64, 48)) -> Path:
        from PIL import Image

        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size, color).save(path)
        return path

    return _image
