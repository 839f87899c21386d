"""``shotflow clean``: only shotflow's own entries, only in a folder marked as a shotflow cache."""

from __future__ import annotations


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
