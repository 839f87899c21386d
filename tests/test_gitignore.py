"""Would git ignore a file (shotflow/_gitignore.py)? Read from the ignore files alone, for the
warning about a Runware key in a ``.env`` that would be committed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from shotflow._gitignore import ignored, tracked


@pytest.fixture
def tree(tmp_path, monkeypatch) -> Path:
    """A git work tree (a ``.git`` folder is all it takes) with ``proj/.env``; a home of its own."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    top = tmp_path / "repo"
    (top / ".git" / "info").mkdir(parents=True)
    (top / "proj").mkdir()
    (top / "proj" / ".env").write_text("RUNWARE_API_KEY=x\n")
    return top


def _index_lists(data: bytes, name: bytes, object_name: int) -> bool | None:
    """Whether the index ``data`` itself has an entry for ``name`` (None: not an index of this shape)."""
    from shotflow._gitignore import _entries

    found = _entries(data, name, object_name)
    return None if found is None else found[0] >= 0


def test_outside_a_work_tree_there_is_no_answer(tmp_path):
    (tmp_path / ".env").write_text("x")
    assert ignored(tmp_path / ".env") is None


def test_nothing_ignores_it_until_a_rule_does(tree):
    env = tree / "proj" / ".env"
    assert ignored(env) is False
    for rule in (".env", "*.env", "**/.env", ".env*", "proj/", "/proj/.env", "proj/.env"):
        (tree / ".gitignore").write_text(f"# secrets\n{rule}\n")
        assert ignored(env) is True, rule
    for rule in ("/.env", "other/", ".envrc", "env", "/proj/.env/"):
        (tree / ".gitignore").write_text(f"{rule}\n")
        assert ignored(env) is False, rule


def test_later_rules_and_deeper_files_win(tree):
    env = tree / "proj" / ".env"
    (tree / ".gitignore").write_text(".env\n!.env\n")
    assert ignored(env) is False
    (tree / "proj" / ".gitignore").write_text(".env\n")  # deeper: overrides the top's re-include
    assert ignored(env) is True
    (tree / "proj" / ".gitignore").write_text("/.env\n")  # anchored to proj/
    assert ignored(env) is True
    (tree / ".gitignore").write_text(".env\n")
    (tree / "proj" / ".gitignore").write_text("!.env\n")
    assert ignored(env) is False


def test_the_repository_exclude_and_the_users_global_excludes_count(tree):
    env = tree / "proj" / ".env"
    (tree / ".git" / "info" / "exclude").write_text(".env\n")
    assert ignored(env) is True
    (tree / ".git" / "info" / "exclude").write_text("")
    home = Path.home()
    (home / ".config" / "git").mkdir(parents=True)
    (home / ".config" / "git" / "ignore").write_text(".env\n")  # git's default global file
    assert ignored(env) is True
    (home / "my-ignores").write_text("*.env\n")
    (home / ".gitconfig").write_text("[core]\n\texcludesFile = ~/my-ignores\n")  # replaces the default
    assert ignored(env) is True
    (home / "my-ignores").write_text("")
    assert ignored(env) is False


def test_a_linked_gitignore_in_the_project_is_not_read(tree, tmp_path):
    (tmp_path / "elsewhere").write_text(".env\n")
    (tree / ".gitignore").symlink_to(tmp_path / "elsewhere")
    assert ignored(tree / "proj" / ".env") is False


def test_a_linked_file_is_judged_where_it_is_named(tree, tmp_path):
    """Git commits the link, not its target: the path as named is what counts."""
    (tmp_path / "secrets.env").write_text("RUNWARE_API_KEY=x\n")
    (tree / "proj" / ".env").unlink()
    (tree / "proj" / ".env").symlink_to(tmp_path / "secrets.env")
    (tree / ".gitignore").write_text("proj/.env\n")
    assert ignored(tree / "proj" / ".env") is True
    (tree / ".gitignore").write_text("")
    assert ignored(tree / "proj" / ".env") is False


def test_the_runware_warning_is_for_a_key_git_would_commit_not_a_link_to_one(tree, tmp_path):
    import warnings

    from shotflow.backends.runware import _warn_unless_ignored
    from shotflow.errors import ShotflowWarning

    env = tree / "proj" / ".env"
    with pytest.warns(ShotflowWarning, match="which git does not ignore"):
        _warn_unless_ignored(env)
    env.unlink()
    env.symlink_to(tmp_path / "secrets.env")  # the user's own link to a key kept elsewhere
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _warn_unless_ignored(env)


def test_a_crafted_ignore_file_costs_a_bounded_time(tree):
    """A megabyte of distinct rules: only the first RULES count, each at most RULE_CHARS long."""
    import time

    from shotflow import _gitignore

    lines = [f"x{i}*y{i}*z{i}" for i in range(45_000)] + ["a" * 5000 + "*", ".env"]
    (tree / ".gitignore").write_text("\n".join(lines) + "\n")
    assert len((tree / ".gitignore").read_bytes()) < _gitignore.IGNORE_FILE_BYTES
    started = time.perf_counter()
    assert ignored(tree / "proj" / ".env") is False  # the .env rule is past the first RULES
    assert time.perf_counter() - started < 20  # 0.7 s here; without the bound 3.5 s, and more with a megabyte of rules


def test_the_rule_budget_is_for_all_the_ignore_files_together(tree, monkeypatch):
    from shotflow import _gitignore

    monkeypatch.setattr(_gitignore, "RULES", 3)
    (tree / ".gitignore").write_text("a\nb\n")
    (tree / "proj" / ".gitignore").write_text("c\n.env\n")  # the 4th rule on the way: not read
    assert ignored(tree / "proj" / ".env") is False
    (tree / ".gitignore").write_text("a\n")
    assert ignored(tree / "proj" / ".env") is True


# -- tracked: git's index, read by hand ------------------------------------------------------------------

GIT = shutil.which("git")


def git(folder: Path, *args: str) -> None:
    subprocess.run(
        [GIT, "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main", *args],
        cwd=folder,
        check=True,
        capture_output=True,
    )


@pytest.mark.skipif(GIT is None, reason="the tests build indexes with git; shotflow itself never runs it")
@pytest.mark.parametrize("version", [2, 3, 4])
@pytest.mark.parametrize("object_format", ["sha1", "sha256"])
def test_the_index_says_which_files_git_tracks(tmp_path, version, object_format):
    top = tmp_path / "repo"
    (top / "proj" / "deep").mkdir(parents=True)
    git(top, "init", "-q", f"--object-format={object_format}")
    assert tracked(top / "proj" / ".env") is False  # no index yet: nothing is tracked
    for name in ("a.txt", "proj/.env", "proj/deep/" + "long-" * 40 + ".txt", "proj/.envrc", "x/proj/.env"):
        (top / name).parent.mkdir(parents=True, exist_ok=True)
        (top / name).write_text("x")
    (top / "proj" / "untracked.env").write_text("x")
    git(top, "add", "a.txt", "proj/.env", "proj/deep", "proj/.envrc", "x")
    if version == 3:  # the extended flags: an intent-to-add entry
        (top / "intent.txt").write_text("x")
        git(top, "add", "-N", "intent.txt")
    git(top, "update-index", "--index-version", str(version))
    git(top, "commit", "-q", "-m", "one")
    assert tracked(top / "proj" / ".env") is True
    assert tracked(top / "proj" / "deep" / ("long-" * 40 + ".txt")) is True
    assert tracked(top / "proj" / "untracked.env") is False
    assert tracked(top / ".env") is False  # "proj/.env" and "x/proj/.env" are other paths
    git(top, "rm", "-q", "--cached", "proj/.env")
    assert tracked(top / "proj" / ".env") is False
    assert tracked(tmp_path / "elsewhere.env") is None  # no work tree


def test_an_index_it_cannot_read_gives_no_answer(tmp_path):
    top = tmp_path / "repo"
    (top / ".git").mkdir(parents=True)
    (top / ".env").write_text("x")
    index = top / ".git" / "index"
    for data in (
        b"",
        b"DIRC",
        b"DIRC\x00\x00\x00\x09\x00\x00\x00\x01",
        b"DIRC\x00\x00\x00\x02\x7f\xff\xff\xff" + b"\x00" * 70,
    ):
        index.write_bytes(data)
        assert tracked(top / ".env") in (None, False)
    index.unlink()
    index.mkdir()  # not a regular file: never read
    assert tracked(top / ".env") is None
    shutil.rmtree(top / ".git")
    for text in ("gitdir: nowhere\n", "gitdir: a\0b\n", "\xff" * 5000):  # a .git file from an archive
        (top / ".git").write_text(text)
        assert tracked(top / ".env") is None


def test_a_path_of_4095_bytes_or_more_is_read_to_its_nul(tmp_path):
    """The flags hold a name's length up to 4094 bytes; longer ones say 0xFFF and end at their NUL
    (no path that long fits a file system here, so the index is written by hand)."""

    def entry(name: bytes) -> bytes:
        head = b"\0" * 40 + b"\x11" * 20 + min(len(name), 0xFFF).to_bytes(2, "big")
        size = (len(head) + len(name) + 8) // 8 * 8
        return (head + name).ljust(size, b"\0")

    long = b"d/" * 2600 + b".env"  # 5204 bytes
    names = sorted([b"a.txt", long, b"z/.env"])
    index = b"DIRC" + (2).to_bytes(4, "big") + len(names).to_bytes(4, "big") + b"".join(map(entry, names))
    index += b"\x22" * 20  # the checksum
    assert _index_lists(index, long, 20) is True
    assert _index_lists(index, b"z/.env", 20) is True  # found after it: the long entry was stepped over
    assert _index_lists(index, b"d/.env", 20) is False
    assert _index_lists(index, long, 32) is None  # the wrong object name size never gives an answer


@pytest.mark.skipif(GIT is None, reason="the tests build indexes with git; shotflow itself never runs it")
@pytest.mark.parametrize("version", [2, 4])
@pytest.mark.parametrize("object_format", ["sha1", "sha256"])
def test_a_split_index_lists_what_its_shared_index_does(tmp_path, version, object_format):
    """``update-index --split-index`` (core.splitIndex) leaves .git/index with what changed since
    "sharedindex.<object name>": the rest are there, less those its delete bitmap removes."""
    top = tmp_path / "repo"
    top.mkdir()
    git(top, "init", "-q", f"--object-format={object_format}")
    for name in (".env", *(f"f{i}" for i in range(100))):
        (top / name).write_text("x")
    git(top, "add", ".")
    git(top, "commit", "-q", "-m", "one")
    git(top, "update-index", "--split-index")
    (top / "new").write_text("x")
    git(top, "add", "new")
    git(top, "rm", "-q", "--cached", "f70")
    git(top, "update-index", "--index-version", str(version))
    assert list((top / ".git").glob("sharedindex.*"))
    assert tracked(top / ".env") is True  # in the shared index alone: was "not tracked"
    assert tracked(top / "f99") is True and tracked(top / "new") is True
    assert tracked(top / "f70") is False  # deleted since: the bitmap says so
    assert tracked(top / "f700") is False
    git(top, "rm", "-q", "--cached", ".env")
    assert tracked(top / ".env") is False


@pytest.mark.skipif(GIT is None, reason="the tests build indexes with git; shotflow itself never runs it")
def test_a_file_in_a_sparse_folder_gets_no_answer(tmp_path):
    """A sparse index holds a folder out of the cone as one entry ("out/"): the files in it are
    not in the index, and only git's objects say which are tracked."""
    top = tmp_path / "repo"
    for name in ("in/.env", "out/deep/.env", "top"):
        (top / name).parent.mkdir(parents=True, exist_ok=True)
        (top / name).write_text("x")
    git(top, "init", "-q")
    git(top, "add", ".")
    git(top, "commit", "-q", "-m", "one")
    git(top, "sparse-checkout", "init", "--cone", "--sparse-index")
    git(top, "sparse-checkout", "set", "in")
    assert b"out/\0" in (top / ".git" / "index").read_bytes()
    assert tracked(top / "in" / ".env") is True and tracked(top / "top") is True
    assert tracked(top / "out" / "deep" / ".env") is None  # was "not tracked"
    assert tracked(top / "outer" / ".env") is False


def test_a_crafted_v4_index_costs_a_bounded_time():
    """Version 4 paths each one byte longer than the last: the previous path is extended in
    place, never copied whole at every entry (64 MB of them took half a minute)."""
    import time

    count = 400_000
    entry = b"\0" * 40 + b"\x11" * 20 + b"\0\x01" + b"\0" + b"a\0"  # strip nothing, add "a"
    index = b"DIRC" + (4).to_bytes(4, "big") + count.to_bytes(4, "big") + entry * count + b"\x22" * 20
    began = time.process_time()  # CPU time: a busy machine (the suite's other workers) does not count
    assert _index_lists(index, b".env", 20) is False
    assert time.process_time() - began < 1.5


def test_a_linked_dotenv_to_a_key_the_repository_holds_is_refused(tree, tmp_path):
    """A link is committed, not its target; but a link to a file git tracks in the same work tree
    (a committed ``.env -> config/keys`` with ``config/keys``) hands over the committer's key."""
    from shotflow.backends.runware import _refuse_if_tracked
    from shotflow.errors import ConfigError

    shutil.rmtree(tree / ".git")
    (tree / "config").mkdir()
    (tree / "config" / "keys").write_text("RUNWARE_API_KEY=theirs\n")
    env = tree / "proj" / ".env"
    env.unlink()
    env.symlink_to("../config/keys")
    if GIT is None:
        pytest.skip("the tests build indexes with git")
    git(tree, "init", "-q")
    git(tree, "add", "config/keys", "proj/.env")
    with pytest.raises(ConfigError, match="a link to") as refused:
        _refuse_if_tracked(env)
    assert "theirs" not in str(refused.value)
    git(tree, "rm", "-q", "--cached", "proj/.env")  # the user's own link, to the repository's key
    with pytest.raises(ConfigError):
        _refuse_if_tracked(env)
    (tmp_path / "secrets.env").write_text("RUNWARE_API_KEY=mine\n")
    env.unlink()
    env.symlink_to(tmp_path / "secrets.env")  # a link to a key kept outside: the user's own
    git(tree, "add", "proj/.env")
    _refuse_if_tracked(env)
