"""``shotflow init`` and the commands that find ``storyboard.yaml`` by themselves."""

from __future__ import annotations

from pathlib import Path

from shotflow import api


def test_init_writes_a_commented_storyboard_that_validates_and_renders(tmp_path, cli):
    result = cli("init", "film", cwd=tmp_path)
    assert result.code == 0, result.err
    folder = tmp_path / "film"
    story = folder / "storyboard.yaml"
    text = story.read_text()
    first = text.splitlines()[0]
    assert first.startswith("# yaml-language-server: $schema=")
    schema = Path(first.split("$schema=", 1)[1])
    assert schema.is_file() and schema.name == "storyboard.schema.json"
    assert sum(1 for line in text.splitlines() if "#" in line) >= 15  # it explains itself
    ignored = (folder / ".gitignore").read_text().splitlines()
    assert ".shotflow/" in ignored and "renders/" in ignored and ".env" in ignored  # a key put there stays out of git

    project = api.load_project(story)
    shots = [n for n in project.nodes.values() if n.scene is not None]
    assert len(shots) == 4 and len(project.scenes) == 1
    assert any(n.model == "runway:4@2" for n in shots)  # a Turbo shot, with its reference
    loaded = story.read_text()
    assert "characters:" in loaded and "locations:" in loaded

    validated = cli("validate", cwd=folder)  # no FILE: storyboard.yaml here
    assert validated.code == 0 and "4 shots, 1 sheet, 1 scene)" in validated.out, validated.text
    rendered = cli("render", cwd=folder)
    assert rendered.code == 0, rendered.text
    assert "5 rendered" in rendered.out
    assert (folder / "renders/departure/meeting.png").is_file()
    assert (folder / "renders/characters/ines.png").is_file()
    again = cli("render", cwd=folder)
    assert again.code == 0 and "nothing to do" in again.out
    for command in (("plan",), ("graph",), ("board",), ("export", "--csv", "shots.csv")):
        done = cli(*command, cwd=folder)
        assert done.code == 0, (command, done.text)
    assert (folder / "renders/board.html").is_file() and (folder / "shots.csv").is_file()


def test_init_keeps_what_is_there(tmp_path, cli):
    (tmp_path / ".gitignore").write_text("*.pyc\nrenders\n")
    assert cli("init", cwd=tmp_path).code == 0
    assert (tmp_path / ".gitignore").read_text().splitlines()[:2] == ["*.pyc", "renders"]
    assert (tmp_path / ".gitignore").read_text().count("renders") == 1
    assert ".shotflow/" in (tmp_path / ".gitignore").read_text().splitlines()
    story = tmp_path / "storyboard.yaml"
    story.write_text("shotflow: 1\ntitle: mine\n")
    again = cli("init", cwd=tmp_path)
    assert again.code == 2 and "already exists" in again.err and "--force" in again.err
    assert story.read_text() == "shotflow: 1\ntitle: mine\n"
    assert cli("init", "--force", cwd=tmp_path).code == 0
    assert "The Night Ferry" in story.read_text()


def test_without_a_file_and_without_storyboard_yaml_the_error_says_what_to_do(tmp_path, cli):
    for command in ("render", "validate", "plan", "board"):
        result = cli(command, cwd=tmp_path)
        assert result.code == 2 and "no storyboard.yaml in this folder" in result.err, (command, result.text)
        assert "shotflow init" in result.err and "Traceback" not in result.err


def test_init_keeps_a_gitignore_that_is_not_utf8(tmp_path):
    """A .gitignore in Latin-1 (someone else's repository): its lines are compared, never a crash."""
    from shotflow.scaffold import init_project

    (tmp_path / ".gitignore").write_bytes(b"caf\xe9\nrenders/\n")
    written = init_project(tmp_path)
    assert (tmp_path / ".gitignore") in written
    text = (tmp_path / ".gitignore").read_bytes()
    assert text.startswith(b"caf\xe9\nrenders/\n") and text.count(b"renders/") == 1 and b".shotflow/" in text
