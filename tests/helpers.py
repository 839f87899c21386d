"""What several test files share: the two ways to run the CLI, and fake backends.

    run_cli_subprocess(*args)   ``python -m shotflow ARGS`` in a fresh process, as a user types it
                                (what a user sees on stderr, the exit code of the process)
    run_cli_in_process(*args)   the same command through click's CliRunner in this process: fast,
                                but it shares this process's imports and state
    Result                      what both return: CompletedProcess's ``returncode``/``stdout``/
                                ``stderr``, and the short names ``code``/``out``/``err``/``text``
    RefusingBackend(word)       the preview backend, refusing every prompt that contains ``word``
                                (a shot that fails, offline, for nothing)

conftest.py's ``cli`` fixture is ``run_cli_subprocess``. Import from here with
``from helpers import ...`` (pytest puts ``tests/`` on the path, as it does for conftest).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from shotflow.backends import Backend

SUBPROCESS_TIMEOUT = 180.0  # generous: a busy 2-core machine, never the point of a test


class Result(subprocess.CompletedProcess):
    """A finished shotflow command."""

    def __init__(self, args: Any, code: int, out: str, err: str):
        super().__init__(args, code, out, err)

    @property
    def code(self) -> int:
        return self.returncode

    @property
    def out(self) -> str:
        return self.stdout

    @property
    def err(self) -> str:
        return self.stderr

    @property
    def text(self) -> str:
        return self.stdout + self.stderr


def run_cli_subprocess(
    *args: Any, cwd: Path | None = None, env: dict | None = None, timeout: float = SUBPROCESS_TIMEOUT
) -> Result:
    """Run ``python -m shotflow ARGS`` as a user would, in a fresh process (no cache folder or
    Runware key from the environment of the tests, unless ``env`` gives one)."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("SHOTFLOW_CACHE", "RUNWARE_API_KEY")}
    full_env.update(env or {})
    command = [sys.executable, "-m", "shotflow", *map(str, args)]
    done = subprocess.run(command, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
    return Result(command, done.returncode, done.stdout, done.stderr)


def run_cli_in_process(*args: Any) -> Result:
    """Run a shotflow command in this process through click's CliRunner (exit code, stdout,
    stderr), as a user would type it. An exception the CLI does not map to an exit code is
    raised, not turned into a result."""
    from click.testing import CliRunner

    from shotflow.cli import main

    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return Result(args, result.exit_code, result.stdout, result.stderr)


class RefusingBackend(Backend):
    """The preview backend, refusing prompts that contain a word (a failure, offline).

    Install it with ``monkeypatch.setattr("shotflow.backends.create", lambda name, services:
    RefusingBackend("red trawler"))``."""

    name = "preview"

    def __init__(self, word: str):
        from shotflow.backends.preview import PreviewBackend

        super().__init__()
        self.inner = PreviewBackend()
        self.word = word

    async def generate(self, request, start=None):
        from shotflow.errors import RequestRejected

        if self.word in request.prompt:
            raise RequestRejected(f"the model refused this prompt (it mentions {self.word})")
        return await self.inner.generate(request)
