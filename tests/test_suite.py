"""The test suite itself: it leaves nothing behind in the system's temporary folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_test_run_leaves_no_user_cache_behind(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    env.pop("SHOTFLOW_USER_CACHE", None)
    # the main process and two xdist workers each import conftest.py
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-n",
            "2",
            "-p",
            "no:cacheprovider",
            "tests/test_api.py::test_importing_shotflow_imports_nothing_heavy",
            "tests/test_api.py::test_the_documented_import_line_gives_the_functions",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "2 passed" in done.stdout
    assert sorted(p.name for p in tmp.iterdir() if p.name.startswith("shotflow-")) == []
