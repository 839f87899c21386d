"""The command line as a whole: help, version, schema, and what it imports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = (
    "jsonschema",
    "networkx",
    "httpx",
    "PIL",
    "jinja2",
    "yaml",
    "rich",
    "opentimelineio",
    "imageio_ffmpeg",
    "obstore",
    "boto3",
    "botocore",
)


def imported(*args: str, cwd=None) -> set[str]:
    """Top-level modules a shotflow command imports (from python -X importtime)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "shotflow", *map(str, args)], capture_output=True, text=True, cwd=cwd
    )
    assert done.returncode == 0, done.stderr[-2000:]
    names = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    return names


def test_help_imports_nothing_heavy():
    assert not imported("--help") & set(HEAVY)


def test_a_noop_render_imports_nothing_heavy(example, cli):
    story = example("lighthouse")
    assert cli("render", story).code == 0
    assert not imported("render", story) & set(HEAVY)
    assert not imported("render", story, "--json") & set(HEAVY)


def test_version_and_every_command_has_help(cli):
    assert cli("--version").out.strip().startswith("shotflow, version")
    for command in ("validate", "plan", "render", "graph", "clean", "schema"):
        result = cli(command, "--help")
        assert result.code == 0 and "Usage:" in result.out


READ_NO_STORYBOARD = {("init",), ("schema",)}  # every other command reads one


def _commands(group, path: tuple[str, ...] = ()):
    """(name path, command) of every command under a click group, subgroups walked."""
    import click

    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, (*path, name))
        else:
            yield (*path, name), command


def test_every_command_that_reads_a_storyboard_takes_the_trust_options_after_its_name(tmp_path):
    """The README: every command that reads a storyboard takes --allow-path and
    --allow-private-urls before or after the command name. A new command is held to it unless
    it is added to READ_NO_STORYBOARD."""
    from helpers import run_cli_in_process

    from shotflow.cli import main

    commands = dict(_commands(main))
    assert commands.keys() >= READ_NO_STORYBOARD  # the exceptions are commands still
    for path in commands.keys() - READ_NO_STORYBOARD:
        after = run_cli_in_process(*path, "--allow-path", tmp_path, "--allow-private-urls", "--help")
        assert after.code == 0 and "--allow-path DIR" in after.out, (path, after.text)
        before = run_cli_in_process("--allow-path", tmp_path, "--allow-private-urls", *path, "--help")
        assert before.code == 0, (path, before.text)
    assert {("conform",), ("import",), ("review", "apply")} <= commands.keys()


DESCRIBED_ONCE = {"allow_path", "allow_private_urls", "sets", "sets_new", "backend", "cache_dir"}


def _readme_units(text: str) -> list[str]:
    """README.md in the pieces an option is looked for in: a paragraph of prose, or in a code
    block a line with the lines indented under it (one command of the Commands list)."""
    units: list[list[str]] = [[]]
    fenced = False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
            units.append([])
        elif not line.strip() or (fenced and not line[:1].isspace()):
            units.append([line])
        else:
            units[-1].append(line)
    return ["\n".join(unit) for unit in units if "".join(unit).strip()]


def test_the_readme_names_every_option_of_every_command():
    """Each option (-x or --long) is named beside the command's name in README.md: in the
    paragraph, or the entry of the Commands list, that names it. The options every command
    shares are described once (DESCRIBED_ONCE)."""
    import re
    from pathlib import Path

    import click

    from shotflow.cli import main

    units = _readme_units((Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8"))
    missing = []
    for path, command in _commands(main):
        name = re.escape(" ".join(path)).replace("\\-", "[- ]")  # contact-sheet: "the contact sheet" too
        beside = [u for u in units if re.search(rf"\b{name}\b", u, re.IGNORECASE)]
        for param in command.params:
            if not isinstance(param, click.Option) or param.name in DESCRIBED_ONCE:
                continue
            spelled = "|".join(re.escape(o) for o in param.opts)
            if not any(re.search(rf"(?<![\w-])({spelled})\b", u) for u in beside):
                missing.append(f"{' '.join(path)} {'/'.join(param.opts)}")
    assert not missing, missing


def test_schema_prints_the_storyboard_schema_and_models(cli):
    schema = json.loads(cli("schema").out)
    assert schema["title"].startswith("shotflow storyboard") and "shots" in json.dumps(schema)
    model = json.loads(cli("schema", "--model", "runway:4@2").out)
    assert model["x-shotflow"]["price_per_image"] == 0.02
    listing = cli("schema", "--list-models").out
    assert "runway:4@1" in listing and "$0.08/image" in listing
    bad = cli("schema", "--model", "runway:4@3")
    assert bad.code == 2 and "unknown model 'runway:4@3'" in bad.err


def test_the_examples_point_editors_at_the_schema():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    for story in (root / "examples").glob("*/storyboard.yaml"):
        first = story.read_text().splitlines()[0]
        assert first == "# yaml-language-server: $schema=../../schemas/storyboard.schema.json"
        assert (story.parent / "../../schemas/storyboard.schema.json").resolve().is_file()


def test_the_public_api_is_small_and_complete():
    import shotflow

    assert set(shotflow.__all__) == {
        "__version__",
        "Project",
        "NodeSpec",
        "Plan",
        "RenderOptions",
        "Summary",
        "ShotflowError",
        "InputError",
        "UsageError",
        "Reporter",
        "PlainReporter",
        "JsonReporter",
        "Outcome",
        "load_project",
        "plan",
        "render",
    }
    for name in shotflow.__all__:
        assert getattr(shotflow, name) is not None


@pytest.mark.parametrize(
    "args,needle",
    [
        (("render", "missing.yaml"), "file not found"),
        (("render", "missing.yaml", "--jobs", "0"), "Invalid value for '-j' / '--jobs'"),
        (("plan",), "no storyboard.yaml in this folder"),
    ],
)
def test_usage_errors_exit_2(cli, tmp_path, args, needle):
    result = cli(*args, cwd=tmp_path)
    assert result.code == 2 and needle in result.err and "Traceback" not in result.err


def test_clean_has_one_meaning_per_option(example, cli, tmp_path):
    """--cache DIR is where the cache is, for clean as for every command; --purge-cache removes it."""
    story = example("lighthouse")
    cache = tmp_path / "shared-cache"
    assert cli("render", story, "--cache", cache).code == 0
    assert (cache / "objects").is_dir()
    kept = cli("clean", story, "--cache", cache)
    assert kept.code == 0 and "Warning" not in kept.err and kept.err == "", kept.text
    assert not (story.parent / "renders").exists() and (cache / "objects").is_dir()
    dry = cli("clean", story, "--purge-cache", "--cache", cache, "--dry-run")
    assert dry.code == 0 and "would remove" in dry.out and str(cache) in dry.out and dry.err == ""
    assert cli("clean", story, "--purge-cache", "--cache", cache).code == 0
    assert not cache.exists()


def test_the_readme_counts_the_examples_shots_right():
    import re
    from pathlib import Path

    from shotflow import api

    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text()
    for name in ("lighthouse",):
        project = api.load_project(root / "examples" / name / "storyboard.yaml")
        shots = sum(1 for n in project.nodes.values() if n.scene is not None)
        said = re.search(rf"`examples/{name}`\]\([^)]*\) \| an? (\d+)-shot", readme)
        assert said and int(said[1]) == shots, (said and said[0], shots)


@pytest.mark.parametrize(("args", "code"), [(["validate", "{story}"], 0), (["validate", "missing.yaml"], 2)])
def test_the_command_ends_its_process_quickly_yet_runs_exit_handlers_and_waits_for_working_threads(example, args, code):
    """``cli.run`` skips the interpreter's teardown, not what a program asked for at exit: exit
    handlers run, the output is all there, a thread still working is waited for."""
    story = example("lighthouse")
    program = (
        "import atexit, sys, threading, time\n"
        "atexit.register(lambda: print('exit handler ran', flush=True))\n"
        "threading.Thread(target=lambda: (time.sleep(0.5), print('thread done', flush=True))).start()\n"
        f"sys.argv = ['shotflow', *{[a.format(story=story) for a in args]!r}]\n"
        "from shotflow.cli import run\n"
        "run()\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert done.returncode == code, done.stderr
    assert "thread done" in done.stdout and done.stdout.rstrip().endswith("exit handler ran")
    if code == 0:
        assert any(line.startswith("ok: ") for line in done.stdout.splitlines())  # the thread may print first
    else:
        assert "file not found" in done.stderr


def test_without_a_working_thread_the_command_ends_with_its_code_and_all_its_output(example):
    story = example("lighthouse")
    program = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('exit handler ran', flush=True))\n"
        f"sys.argv = ['shotflow', 'plan', {str(story)!r}, '--json']\n"
        "from shotflow.cli import run\n"
        "run()\n"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    body, _, tail = done.stdout.rpartition("}")
    assert json.loads(body + "}")["order"] and tail.strip() == "exit handler ran"


def _first_line_then_gone(args: list, cwd, lines: int = 1) -> tuple[str, subprocess.CompletedProcess]:
    """Run ``python -m shotflow ARGS`` with its standard output read up to its first line (or
    none: ``lines=0``), then closed, as ``| head -1`` does."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "shotflow", *map(str, args)],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first = proc.stdout.readline() if lines else ""
    proc.stdout.close()
    err = proc.stderr.read()
    proc.wait(timeout=120)
    return first, subprocess.CompletedProcess(proc.args, proc.returncode, "", err)


def test_a_render_piped_into_head_finishes_its_work_and_is_no_bug(example):
    """`shotflow render --json | head -1`: the reader goes away after one line; the render is not
    cut short (a paid render must finish what it sent) and the exit is the render's own."""
    story = example("lighthouse")
    first, done = _first_line_then_gone(["render", story, "--json"], story.parent)
    assert first.startswith('{"event": "node"')
    assert done.returncode == 0, done.stderr
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr and "Broken pipe" not in done.stderr
    again = subprocess.run(
        [sys.executable, "-m", "shotflow", "render", str(story), "--json"], capture_output=True, text=True, timeout=120
    )
    assert json.loads(again.stdout.splitlines()[-1])["cached"] == 12  # every node was rendered the first time


def test_a_command_whose_reader_goes_away_exits_1_quietly(example):
    story = example("lighthouse")
    assert subprocess.run([sys.executable, "-m", "shotflow", "render", str(story)], capture_output=True).returncode == 0
    _, done = _first_line_then_gone(["board", story, "-o", "-"], story.parent, lines=0)  # gone before it writes
    assert done.returncode == 1, done.stderr
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr


def test_the_readme_exit_codes_of_a_plan_whose_reader_goes_away(example):
    """README "Exit codes": `shotflow plan | true` exits 1 (nothing read it); `shotflow plan --json
    | head -1` exits 0 (plan wrote all its output before head took its line)."""
    story = example("lighthouse")
    _, gone = _first_line_then_gone(["plan", story], story.parent, lines=0)
    assert gone.returncode == 1 and gone.stderr == "", gone.stderr
    first, read = _first_line_then_gone(["plan", story, "--json"], story.parent)
    assert first == "{\n" and read.returncode == 0, read.stderr
