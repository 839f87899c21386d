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


def readme_snippet() -> str:
    """The Python block of README.md's "Python API" section, as a user would copy it."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1
    return blocks[0]


def test_the_readme_python_example_runs_as_written(tmp_path, cli):
    assert cli("init", cwd=tmp_path).code == 0  # a storyboard.yaml with a var 'mood'
    first = run_python(readme_snippet(), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    out = first.stdout
    assert "will render departure/wide - new: never rendered" in out
    assert "rendering 5 of 5 nodes on preview" in out
    assert "rendered departure/boy renders/departure/boy.png" in out  # the picked take's stable file
    assert "5 rendered, 0 cached, 0 failed, 0 skipped; cost $0.00" in out
    assert (tmp_path / "renders/departure/meeting.png").is_file()
    again = run_python(readme_snippet(), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "0 rendered, 5 cached" in again.stdout and "will render" not in again.stdout
