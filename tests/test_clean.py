"""``shotflow clean``: only shotflow's own entries, only in a folder marked as a shotflow cache."""

from __future__ import annotations

import os

import pytest

from shotflow import clean as cleaning
from shotflow.errors import UsageError
from shotflow.store import open_store


def test_clean_cache_on_a_shared_cache_removes_only_shotflows_entries(example, cli, tmp_path):
    story = example("lighthouse")
    shared = tmp_path / "shared"
    assert cli("render", story, "--cache", shared).code == 0
    assert (shared / "CACHEDIR.TAG").is_file() and "shotflow" in (shared / "CACHEDIR.TAG").read_text()
    (shared / "notes.txt").write_text("someone else's file")
    (shared / "photos").mkdir()
    (shared / "photos" / "cat.jpg").write_bytes(b"meow")
    result = cli("clean", story, "--all", env={"SHOTFLOW_CACHE": str(shared)})
    assert result.code == 0, result.text
    assert sorted(p.name for p in shared.iterdir()) == ["notes.txt", "photos"]
    assert (shared / "photos" / "cat.jpg").read_bytes() == b"meow"


def test_clean_refuses_a_cache_folder_shotflow_did_not_mark(example, cli, tmp_path):
    story = example("lighthouse")
    folder = tmp_path / "not-a-cache"
    (folder / "objects").mkdir(parents=True)
    (folder / "objects" / "precious").write_text("keep me")
    result = cli("clean", story, "--all", env={"SHOTFLOW_CACHE": str(folder)})
    assert result.code == 2 and "is not a shotflow cache" in result.err and "Traceback" not in result.text
    assert (folder / "objects" / "precious").read_text() == "keep me"


def test_clean_cache_of_the_project_removes_it_and_leaves_other_storyboards_state(example, cli):
    story = example("lighthouse")
    assert cli("render", story).code == 0
    state = story.parent / ".shotflow"
    (state / "other.status.json").write_text("{}")  # another storyboard of the folder
    result = cli("clean", story, "--all")
    assert result.code == 0, result.text
    assert sorted(p.name for p in state.iterdir()) in (["other.status.json"], ["other.status.json", "run.lock"])
    assert cli("render", story).code == 0  # and it renders again from scratch


# -- clean.clean in process: what it refuses, and that a refusal removes nothing --------------


def rendered_project(write, tmp_path):
    """A one-shot storyboard rendered on preview (in process): renders/, .shotflow/, the lock."""
    from shotflow import render
    from shotflow.render import RenderOptions

    story = write("""
        shotflow: 1
        backend: preview
        defaults: {model: runway:4@1}
        scenes:
          - id: s
            shots:
              - id: a
                prompt: a lighthouse in a storm
    """)
    summary = render(story, RenderOptions())
    assert summary.ok and summary.rendered == 1
    return story


def listing(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_unit_refuses_an_unmarked_cache_folder_and_removes_nothing(write, tmp_path):
    story = rendered_project(write, tmp_path)
    folder = tmp_path / "elsewhere"
    (folder / "objects").mkdir(parents=True)
    (folder / "objects" / "precious").write_text("keep me")
    before = listing(tmp_path)
    with pytest.raises(UsageError, match="is not a shotflow cache") as refused:
        cleaning.clean(story, "all", cache_dir=folder)
    assert "CACHEDIR.TAG" in refused.value.message and refused.value.hint
    assert listing(tmp_path) == before  # renders/ too: the refusal comes before anything is removed


def test_unit_a_marker_without_shotflows_words_is_not_a_mark(write, tmp_path):
    story = rendered_project(write, tmp_path)
    folder = tmp_path / "other-tool-cache"
    (folder / "objects").mkdir(parents=True)
    (folder / "CACHEDIR.TAG").write_text("Signature: 8a477f597d28d172789f06886806bc55\n# another tool's cache\n")
    with pytest.raises(UsageError, match="is not a shotflow cache"):
        cleaning.clean(story, "cache", cache_dir=folder)
    assert (folder / "objects").is_dir()


@pytest.mark.parametrize("what", ["renders", "all"])
def test_unit_refuses_a_symlinked_renders_folder(write, tmp_path, what):
    story = rendered_project(write, tmp_path)
    renders = story.parent / "renders"
    elsewhere = tmp_path / "someone-elses-pictures"
    renders.rename(elsewhere)
    renders.symlink_to(elsewhere, target_is_directory=True)
    before = listing(elsewhere)
    with pytest.raises(UsageError, match="is a symbolic link") as refused:
        cleaning.clean(story, what)
    assert refused.value.hint
    assert listing(elsewhere) == before and renders.is_symlink()


@pytest.mark.parametrize("what", ["cache", "all"])
def test_unit_refuses_a_symlinked_state_folder(write, tmp_path, what):
    story = rendered_project(write, tmp_path)
    state = story.parent / ".shotflow"
    elsewhere = tmp_path / "linked-state"
    state.rename(elsewhere)
    state.symlink_to(elsewhere, target_is_directory=True)
    before, renders = listing(elsewhere), listing(story.parent / "renders")
    with pytest.raises(UsageError, match="is a symbolic link"):
        cleaning.clean(story, what)
    assert listing(elsewhere) == before and listing(story.parent / "renders") == renders


def test_unit_pending_paid_tasks_are_kept_unless_forced(write, tmp_path):
    story = rendered_project(write, tmp_path)
    store = open_store(story.parent)
    store.journal.begin("k" * 64, {"task_uuid": "0b9a6c1e-6f0e-4a8e-9c1d-2f3a4b5c6d7e", "sent": 1.0})
    before = listing(story.parent)
    with pytest.raises(UsageError, match=r"1 task\(s\) sent to Runware") as refused:
        cleaning.clean(story, "cache")
    assert "--force" in refused.value.hint
    assert listing(story.parent) == before
    lines = cleaning.clean(story, "cache", force=True)
    assert any(line.startswith("removed shotflow's cache in") for line in lines)
    assert not (story.parent / ".shotflow" / "journal").exists()
    assert story.with_suffix(".lock").is_file()  # the lock file stays


def test_unit_dry_run_removes_nothing_and_says_what_it_would(write, tmp_path):
    story = rendered_project(write, tmp_path)
    before = listing(story.parent)
    lines = cleaning.clean(story, "all", dry_run=True)
    assert listing(story.parent) == before
    assert lines[0].startswith("would remove ") and lines[0].endswith(")") and "renders/ (1 file, " in lines[0]
    assert lines[1].startswith("would remove shotflow's cache in ")


def test_unit_renders_only_keeps_the_cache_and_says_nothing_when_there_is_nothing(write, tmp_path):
    story = rendered_project(write, tmp_path)
    objects = listing(story.parent / ".shotflow" / "objects")
    lines = cleaning.clean(story, "renders")
    assert not (story.parent / "renders").exists() and lines[0].startswith("removed")
    assert listing(story.parent / ".shotflow" / "objects") == objects
    assert cleaning.clean(story, "renders")[0].startswith("nothing to remove:")


def test_unit_a_missing_storyboard_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="file not found"):
        cleaning.clean(tmp_path / "missing.yaml", "all")
    assert os.listdir(tmp_path) == []


def test_the_cache_marker_names_an_option_clean_has(example, cli):
    story = example("lighthouse")
    assert cli("render", story).code == 0
    marker = (story.parent / ".shotflow" / "CACHEDIR.TAG").read_text()
    named = {word.strip("`(),.") for word in marker.split() if word.startswith("`--") or word.startswith("--")}
    assert named == {"--purge-cache", "--cache"}, named
    options = cli("clean", "--help").out
    assert all(option in options for option in named)


def test_purge_cache_help_says_frames_in_renders_are_paid_for_again(cli):
    """The purge does not read renders/ back into the cache: every frame is rendered, and on
    Runware paid for, again (the help once said only frames missing from renders/ were)."""
    options = " ".join(cli("clean", "--help").out.split())
    purge = options.split("--purge-cache", 1)[1].split("--all", 1)[0]
    assert "not in renders/" not in purge
    assert "every frame is then rendered again" in purge and "renders/ too" in purge


@pytest.mark.parametrize("what", ["renders", "cache", "all"])
def test_clean_refuses_while_a_render_of_the_project_holds_its_run_lock(example, cli, what):
    """A render that is running reads and writes what clean removes (a purge mid-run left a lock
    naming frames the cache no longer had, paid for again): clean waits for nobody, it refuses."""
    from shotflow.errors import BusyError
    from shotflow.store import ProjectLock

    story = example("lighthouse")
    assert cli("render", story).code == 0
    store = open_store(story.parent)
    with ProjectLock(store.state_dir, 1):  # what a running render holds
        with pytest.raises(BusyError) as busy:
            cleaning.clean(story, what, force=True)
        assert "a shotflow render of this project is running" in busy.value.message
        assert "nothing was removed" in busy.value.message
        assert (story.parent / "renders").is_dir() and any(store.actions())
        assert cleaning.clean(story, what, dry_run=True)  # saying what it would remove is harmless
    assert cleaning.clean(story, what, force=True)
