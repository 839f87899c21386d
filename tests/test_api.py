"""The public Python API, exactly as README.md and ``help(shotflow)`` show it."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

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
        "print('ok')\n"
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_importing_shotflow_imports_nothing_heavy():
    done = run_python(
        "import sys, shotflow; from shotflow import load_project, plan, render, RenderOptions\n"
        "print(sorted(m for m in ('yaml', 'jinja2', 'jsonschema', 'networkx', 'httpx', 'PIL') "
        "if m in sys.modules))"
    )
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr


def readme_snippet() -> str:
    """The Python block of README.md's "Python API" section, as a user would copy it."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 1
    return blocks[0]


def test_the_readme_python_example_runs_as_written(example):
    """In a copy of examples/lighthouse, as the README says, on the preview backend."""
    story = example("lighthouse")
    first = run_python(readme_snippet(), cwd=story.parent)
    assert first.returncode == 0, first.stderr
    out = first.stdout
    assert "will render arrival/wide - new: never rendered" in out
    assert "rendering 12 of 12 nodes on preview" in out
    assert "rendered rescue/trawler renders/rescue/trawler.png" in out  # the picked take's stable file
    assert "12 rendered, 0 cached, 0 failed, 0 skipped; cost $0.00" in out
    assert (story.parent / "renders/rescue/trawler.png").is_file()
    again = run_python(readme_snippet(), cwd=story.parent)
    assert again.returncode == 0, again.stderr
    assert "0 rendered, 12 cached" in again.stdout and "will render" not in again.stdout


def test_the_readme_python_example_overrides_a_var_the_example_defines(example):
    import shotflow

    story = example("lighthouse")
    overrides = re.findall(r"overrides=(\{.*?\})", readme_snippet())
    assert len(overrides) == 2 and overrides[0] == overrides[1]
    project = shotflow.load_project(story, overrides=ast.literal_eval(overrides[0]))
    assert "caught in the lighthouse beam, fog," in project.nodes["rescue/trawler"].prompt


def test_the_errors_the_readme_says_the_api_raises_are_public_and_raised(example):
    """README "Python API": a storyboard with problems raises shotflow.InputError, an override
    of a var it does not define shotflow.UsageError; both are ShotflowErrors with lines()."""
    import shotflow

    section = (ROOT / "README.md").read_text(encoding="utf-8").split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`shotflow\.(\w+)`", section))
    assert {"ShotflowError", "InputError", "UsageError"} <= named
    assert named <= set(shotflow.__all__)
    story = example("lighthouse")
    with pytest.raises(shotflow.UsageError) as raised:
        shotflow.load_project(story, overrides={"mood": "noir"})
    assert isinstance(raised.value, shotflow.ShotflowError)
    assert raised.value.lines() == [
        "--set mood: the storyboard has no var 'mood' (its vars: weather; "
        "to add a var on purpose: --set-new mood=VALUE)"
    ]
    with pytest.raises(shotflow.UsageError):
        shotflow.render(story, shotflow.RenderOptions(locked=True))


# -- the same functions in process: what they return, what they write ----------------------------


def tree(folder: Path) -> dict[str, int]:
    """Every file under ``folder`` with its size (what a call may have written)."""
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()}


def test_load_project_and_plan_in_process_write_nothing(example):
    import shotflow

    story = example("lighthouse")
    before = tree(story.parent)
    project = shotflow.load_project(story)
    assert isinstance(project, shotflow.Project)
    assert "rescue/trawler" in project.nodes and project.nodes["rescue/trawler"].prompt
    planned = shotflow.plan(project)
    assert isinstance(planned, shotflow.Plan)
    data = planned.to_json()
    assert {n["status"] for n in data["nodes"]} == {"render"}  # nothing rendered yet
    assert len(data["order"]) == len(project.nodes) and set(data["order"]) == set(project.nodes)
    assert planned.backend == "preview" and planned.cost == 0.0 and planned.runware_cost > 0
    assert tree(story.parent) == before  # no cache folder, no lock, no renders


def test_plan_after_a_render_says_fresh_in_process(example):
    import shotflow

    story = example("lighthouse")
    summary = shotflow.render(story)
    assert isinstance(summary, shotflow.Summary) and summary.ok and summary.rendered == 12 and not summary.failures
    after_render = tree(story.parent)
    planned = shotflow.plan(shotflow.load_project(story))
    assert {n["status"] for n in planned.to_json()["nodes"]} == {"fresh"}
    assert tree(story.parent) == after_render


def test_render_returns_a_failure_as_a_value(example, monkeypatch):
    from helpers import RefusingBackend

    import shotflow

    story = example("lighthouse")
    monkeypatch.setattr("shotflow.backends.create", lambda name, services: RefusingBackend("trawler pitching"))
    summary = shotflow.render(story, shotflow.RenderOptions())  # no exception: the failure is in the summary
    assert not summary.ok
    assert summary.failed == 1 and [node for node, _ in summary.failures] == ["rescue/trawler"]
    assert "the model refused this prompt" in summary.failures[0][1]
    assert summary.skipped == 2 and {node for node, _ in summary.skips} == {"rescue/signal", "rescue/dawn"}
    assert summary.rendered == 12 - 3  # every other node: independent branches finish


def test_load_project_raises_one_input_error_with_every_problem(write):
    import shotflow

    story = write("""
        shotflow: 1
        scenes:
          - id: s
            shots:
              - id: a
                promt: a typo
              - id: b
                prompt: fine
                takes: 0
    """)
    with pytest.raises(shotflow.ShotflowError) as raised:
        shotflow.load_project(story)
    text = str(raised.value)
    assert "unknown key 'promt'" in text and "must be at least 1, got 0" in text
