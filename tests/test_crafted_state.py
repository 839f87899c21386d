"""A crafted ``.shotflow/`` (committed, copied, restored from a CI cache) cannot crash, hang or
exhaust shotflow (README "Security"), nor lose what was rendered.

    state file damaged (deep, wrong shape, folder, odd values) ─► a miss: exit 0/1, one warning line
    state file a link to /dev/zero, or a FIFO                 ─► never read, never waited on
    object file a link, FIFO or folder                        ─► corrupt: made again, never hashed forever
    run.lock, CACHEDIR.TAG a folder or link; a state file a folder that a render writes
                                                              ─► exit 2 naming it, and the fix

Every case runs a command on a copy of one small rendered project; none may exit 3 (shotflow
broke) or print a traceback. The damaged-content cases run in this process (fast); the links
to /dev/zero and the FIFOs run in a subprocess with a memory cap and a deadline.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import run_cli_in_process

BOARD = """
shotflow: 1
backend: preview
scenes:
  - id: harbor
    shots:
      - id: wide
        prompt: a harbor at dawn
      - id: close
        prompt: a rope on a bollard
        refs: [wide]
"""

DEEP = "[" * 100_000
DAMAGE = {  # how a state file's content is damaged
    "deep": DEEP,
    "list": "[1]",
    "number": "1",
    "odd-values": json.dumps(
        {
            "version": 1,
            "key": 5,
            "outputs": [None],
            "nodes": {"x": None},
            "inputs": 5,
            "forced": 3,
            "done": [[1]],
            "harbor/wide": {"status": "failed", "error": ["not", "text"]},
            "harbor/close": [],
        }
    ),
    "folder": None,
}
# each state file the audit crashed shotflow with, the damage, and a command that reads it
PLAN, RENDER, VERIFY, BOARD_OUT = ["plan"], ["render"], ["verify"], ["board"]
FORCE = ["render", "--force", "harbor/wide"]
CASES = [
    *(("stat.json", kind, PLAN) for kind in ("deep", "list", "number", "folder")),
    *(("storyboard.last-run.json", kind, RENDER) for kind in ("deep", "list", "number", "odd-values", "folder")),
    *(("storyboard.status.json", kind, BOARD_OUT) for kind in ("deep", "list", "number")),
    ("storyboard.status.json", "folder", RENDER),
    *(("forced.json", kind, FORCE) for kind in ("deep", "folder")),
    *(("journal/0123.json", kind, VERIFY) for kind in ("deep", "folder")),
    *(("leases/0123.lease", kind, VERIFY) for kind in ("deep", "folder")),
    ("actions/ab/abcd.json", "deep", VERIFY),
    ("actions/ab/abcd.json", "deep", ["clean", "--all", "-n"]),
]
# what a render writes: as a folder, an error that names it (read elsewhere, a miss with a warning)
WRITTEN = {"storyboard.last-run.json", "storyboard.status.json", "forced.json"}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> Path:
    """A small project rendered once (preview backend); tests copy it."""
    folder = tmp_path_factory.mktemp("rendered") / "project"
    folder.mkdir()
    (folder / "storyboard.yaml").write_text(BOARD.lstrip(), encoding="utf-8")
    assert _subprocess(folder, "render").returncode == 0
    return folder


@pytest.fixture
def project(rendered, tmp_path, monkeypatch) -> Path:
    """A fresh copy of the rendered project, as the working folder."""
    copy = tmp_path / "project"
    shutil.copytree(rendered, copy, symlinks=True)
    monkeypatch.chdir(copy)
    monkeypatch.setattr("shotflow._process.begin", lambda: None)  # this process keeps its garbage collector
    return copy


def _subprocess(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m shotflow ARGS`` with 1 GB of address space and 20 s: a read of /dev/zero
    fails, a FIFO waited on times out (the test fails either way)."""

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))

    env = {k: v for k, v in os.environ.items() if k not in ("SHOTFLOW_CACHE", "RUNWARE_API_KEY")}
    command = [sys.executable, "-m", "shotflow", *args]
    return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=20, preexec_fn=cap)


def _craft(path: Path, kind: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    if kind == "folder":
        (path / "inside").mkdir(parents=True)
    elif kind == "devzero":
        path.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path.write_text(DAMAGE[kind])


def _sane(code: int, text: str) -> None:
    assert code in (0, 1, 2), text
    assert "Traceback" not in text and "internal error" not in text, text


@pytest.mark.parametrize(("name", "kind", "args"), CASES, ids=[f"{n}-{k}-{a[0]}" for n, k, a in CASES])
def test_a_damaged_state_file_is_a_miss_never_a_crash(name, kind, args, project):
    _craft(project / ".shotflow" / name, kind)
    if args == BOARD_OUT:
        args = ["board", "-o", str(project / "board.html")]
    result = run_cli_in_process(*args)
    _sane(result.code, result.stdout + result.stderr)
    if kind == "folder" and name in WRITTEN:
        assert result.code == 2 and f".shotflow/{name} is a folder" in result.stderr and "rm -r" in result.stderr
    elif name.startswith("leases/"):  # a lease no process could have written: broken, as a dead one's
        assert result.code == 0 and "1 lease(s) of processes that died were broken" in result.stdout
    elif name.startswith("actions/"):  # verify names an unreadable record among its problems; clean skips it
        assert result.code == (1 if args == VERIFY else 0)
        assert args != VERIFY or "action record .shotflow/actions/ab/abcd.json cannot be read" in result.stdout
    else:
        assert result.code == 0, result.stderr
        if kind != "odd-values":  # JSON of the right shape at its top: its values are checked where used
            assert f"warning: .shotflow/{name} is damaged" in result.stderr


def test_a_damaged_state_file_is_named_in_one_warning_line(project):
    (project / ".shotflow" / "stat.json").write_text(DEEP)
    result = run_cli_in_process("plan")
    assert result.code == 0
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == ["warning: .shotflow/stat.json is damaged (nested too deep); shotflow ignores it"]


def test_thousands_of_damaged_files_are_a_screenful_of_warnings_not_thousands(project):
    journal = project / ".shotflow" / "journal"
    journal.mkdir(exist_ok=True)
    for i in range(40):
        (journal / f"{i:04x}.json").write_text("[1]")
    result = run_cli_in_process("verify")
    _sane(result.code, result.stdout + result.stderr)
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 6, warnings
    assert all(".shotflow/journal/" in line and "is damaged" in line for line in warnings[:5]), warnings
    assert warnings[5] == "warning: 35 more damaged state file(s) were ignored as well"


def test_a_status_error_that_is_not_text_is_ignored_on_the_board(project):
    status = project / ".shotflow" / "storyboard.status.json"
    status.write_text(json.dumps({"harbor/wide": {"status": "failed", "error": {"a": 1}}}))
    shutil.rmtree(project / "renders")  # not fresh: the board shows the last run's status
    for name in os.listdir(project / ".shotflow" / "objects"):
        shutil.rmtree(project / ".shotflow" / "objects" / name)
    result = run_cli_in_process("board", "-o", project / "board.html")
    assert result.code == 0, result.stderr
    assert "the last render of this shot failed" in (project / "board.html").read_text()


@pytest.mark.parametrize("kind", ["devzero", "fifo"])
@pytest.mark.parametrize("args", [["render"], ["verify"], ["board", "-o", "b.html"]])
def test_state_and_object_files_that_are_links_or_fifos_are_never_read(args, kind, project):
    """Every state file (and the object of a locked frame) at once: each command reads some
    (the board plans, as ``plan`` does)."""
    for name in sorted({name for name, _, _ in CASES}):
        _craft(project / ".shotflow" / name, kind)
    lock = json.loads((project / "storyboard.lock").read_text())
    picked = lock["nodes"]["harbor/wide"]["picked"]
    _craft(project / ".shotflow" / "objects" / picked[:2] / picked[2:], kind)
    done = _subprocess(project, *args)
    _sane(done.returncode, done.stdout + done.stderr)
    if args == ["verify"]:
        assert done.returncode == 1 and f"object {picked[:12]} is corrupt" in done.stdout
    else:
        assert done.returncode == 0, done.stderr


def test_clean_reads_no_fifo_in_the_journal_or_the_actions(project):
    for name in ("journal/0123.json", "actions/ab/abcd.json"):
        _craft(project / ".shotflow" / name, "fifo")
    done = _subprocess(project, "clean", "--all", "-n")
    _sane(done.returncode, done.stdout + done.stderr)
    assert done.returncode == 0


@pytest.mark.parametrize("kind", ["folder", "object-link"])
def test_a_locked_object_that_is_not_a_file_is_made_again(kind, project):
    picked = json.loads((project / "storyboard.lock").read_text())["nodes"]["harbor/wide"]["picked"]
    path = project / ".shotflow" / "objects" / picked[:2] / picked[2:]
    path.unlink()
    if kind == "folder":
        path.mkdir()
    else:
        path.symlink_to(project / "renders" / "harbor" / "wide.png")  # the right bytes, but not the store's file
    (project / ".shotflow" / "stat.json").unlink()
    result = run_cli_in_process("render")
    assert result.code == 0, result.stderr
    assert path.is_file() and not path.is_symlink()
    assert run_cli_in_process("verify").code == 0


@pytest.mark.parametrize("kind", ["folder", "devzero"])
@pytest.mark.parametrize("name", ["run.lock", "CACHEDIR.TAG"])
def test_the_run_lock_or_cache_marker_as_a_folder_or_link_is_an_error_with_the_fix(name, kind, project):
    _craft(project / ".shotflow" / name, kind)
    result = run_cli_in_process("render", "--force", "harbor/wide")
    assert result.code == 2, result.stderr
    assert f".shotflow/{name} is a {'folder' if kind == 'folder' else 'symbolic link'}" in result.stderr
    assert "remove it: rm" in result.stderr


def test_a_named_cache_whose_marker_is_a_fifo_is_refused_clearly(project, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    os.mkfifo(cache / "CACHEDIR.TAG")
    done = _subprocess(project, "clean", "--purge-cache", "--cache", str(cache), "-n")
    assert done.returncode == 2 and "CACHEDIR.TAG is a FIFO" in done.stderr, done.stderr


@pytest.mark.parametrize(
    "nodes",
    [
        [["a/b", ["renders/a/b.png"], "held", "more"]],
        [["a/b"]],
        [["a/b", "renders/a/b.png"]],
        [["a/b", [3]]],
        [[1, []]],
        [["a/b", [], 7]],
        [{"id": "a/b", "paths": []}],
        ["ab"],
        [None],
        "nodes",
    ],
)
def test_a_manifest_of_another_shape_is_not_replayed(nodes):
    """The no-op path replays a manifest's nodes as they are: a crafted shape is a full render instead."""
    from shotflow.state import _replayable

    good = {
        "inputs": {},
        "outputs": {},
        "backend": "preview",
        "nodes": [["a/b", ["renders/a/b.png"]], ["c", [], "why"]],
    }
    assert _replayable(good)
    assert not _replayable({**good, "nodes": nodes})


def test_a_large_index_of_tiny_values_is_refused_before_it_is_parsed(tmp_path, monkeypatch):
    """Tiny JSON values take ~25 times their bytes in memory: an index over 16 MB may hold at
    most INDEX_FILE_VALUES of them (lowered here, so that the file stays small), and a legit
    one of that size reads."""
    from shotflow import statefile

    monkeypatch.setattr(statefile, "STATE_FILE_BYTES", 1000)
    monkeypatch.setattr(statefile, "INDEX_FILE_VALUES", 500)
    crafted = tmp_path / "stat.json"
    crafted.write_text('{"x": [' + "[]," * 600 + "[]]}")
    with pytest.warns(statefile.DamagedState, match=r"stat.json is damaged \(over 500 JSON values\)"):
        assert statefile.read_state(crafted, limit=statefile.INDEX_FILE_BYTES) is None
    legit = tmp_path / "manifest.json"
    legit.write_text(json.dumps({f"scene/shot{i:03}": {"key": "a" * 64, "outputs": ["b" * 64]} for i in range(40)}))
    assert legit.stat().st_size > 1000
    assert len(statefile.read_state(legit, limit=statefile.INDEX_FILE_BYTES)) == 40


def test_a_lock_of_tiny_values_is_refused_before_it_is_parsed(tmp_path, monkeypatch):
    from shotflow import statefile, store
    from shotflow.errors import LockedError

    monkeypatch.setattr(statefile, "STATE_FILE_BYTES", 1000)
    monkeypatch.setattr(statefile, "INDEX_FILE_VALUES", 500)
    monkeypatch.setattr(store, "INDEX_FILE_VALUES", 500)
    lock = tmp_path / "storyboard.lock"
    lock.write_text('{"version": 1, "nodes": {}, "pad": [' + "{}," * 600 + "{}]}")
    with pytest.raises(LockedError, match="holds over 500 JSON values"):
        store.LockFile.read(lock)
