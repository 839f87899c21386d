"""The public Python API, exactly as README.md and ``help(shotflow)`` show it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_python(code: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """A fresh interpreter: which submodules are already imported decides what a name is."""
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_the_documented_import_line_gives_the_functions():
    done = run_python(
        "from shotflow import load_project, plan, render, RenderOptions\n"
        "import shotflow.render, shotflow.plan  # what every render imports\n"
        "from shotflow import plan as plan2, render as render2\n"
        "import shotflow\n"
        "for f in (load_project, plan, render, plan2, render2, shotflow.plan, shotflow.render):\n"
        "    assert callable(f) and not isinstance(f, type(shotflow)), f\n"
        "from shotflow.render import RenderOptions as R\n"
        "assert R is RenderOptions\n"
        "print('ok')\n")
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_importing_shotflow_imports_nothing_heavy():
    done = run_python("import sys, shotflow; from shotflow import load_project, plan, render, RenderOptions\n"
                      "print(sorted(m for m in ('yaml', 'jinja2', 'jsonschema', 'networkx', 'httpx', 'PIL') "
                      "if m in sys.modules))")
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr
