"""The trust model (README "Security"): a storyboard, template, cache or server you do not
trust cannot hurt the person who renders it.

One section per point of the model: bounded work, no exit 3 from bad input (each case
exits 2 with a located message), nothing read or written outside the project, a user
cache that runs only what its user wrote, URL references from public addresses only.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import re
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import pytest
from helpers import run_cli_in_process

BOARD = """
shotflow: 1
characters:
  mara:
    description: a keeper
scenes:
  - id: arrival
    shots:
      - id: wide
        prompt: {prompt}
{extra}
"""


def board(prompt: str = "a lighthouse at dusk", extra: str = "") -> str:
    return BOARD.format(prompt=json.dumps(prompt), extra=extra)


def png(path: Path, size=(8, 8)) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (90, 120, 150)).save(path)
    return path


def fake_png_header(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height (no pixel data: nothing to decode)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def expect_2(result, pattern: str) -> None:
    assert result.code == 2, result.text
    assert "Traceback" not in result.text and "internal error" not in result.text, result.text
    assert re.search(pattern, result.err), f"expected /{pattern}/ in:\n{result.err}"


# -- 1. bounded work ----------------------------------------------------------------------------------


def test_billion_laughs_is_refused_at_load_quickly(write):
    from shotflow.errors import LoadError
    from shotflow.load import read_source

    levels = ["  a: &a [" + ", ".join(['"lol"'] * 9) + "]"]
    for n, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[n]
        levels.append(f"  {name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    path = write("shotflow: 1\nvars:\n" + "\n".join(levels) + "\nscenes: []\n")
    assert path.stat().st_size < 1000  # 9 ** 9 = 387 million strings if expanded
    started = time.perf_counter()
    with pytest.raises(LoadError) as caught:
        read_source(path)
    assert time.perf_counter() - started < 30  # a guard against the exponential (minutes), not a benchmark
    assert re.search(r"storyboard\.yaml:\d+:\d+: aliases expand this file", str(caught.value))


def test_a_billion_laughs_with_merge_keys_is_refused_too(write, cli):
    lines = ["  l0: &l0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8}"]
    for i in range(1, 12):
        eight = ", ".join([f"*l{i - 1}"] * 8)
        lines.append(f"  l{i}: &l{i} {{x: [{eight}]}}")
    path = write("shotflow: 1\nvars:\n" + "\n".join(lines) + "\nscenes: []\n")
    expect_2(cli("validate", path, timeout=30), r"storyboard\.yaml:\d+:\d+: aliases expand this file")


def test_deep_nesting_is_refused_with_its_place(write, cli):
    path = write("shotflow: 1\nvars:\n  deep: " + "[" * 100 + "]" * 100 + "\nscenes: []\n")
    expect_2(cli("validate", path), r"storyboard\.yaml:3:\d+: the data is nested more than 64 levels deep")
    path = write("shotflow: 1\nvars:\n  deep: " + "{a: " * 100 + "1" + "}" * 100 + "\nscenes: []\n")
    expect_2(cli("validate", path), r"storyboard\.yaml:3:\d+: the data is nested more than 64 levels deep")


def test_a_file_over_the_size_limit_is_refused_unless_the_user_raises_it(write, tmp_path, cli):
    path = write(board(extra="") + "# " + "x" * (17 * 1024 * 1024) + "\n")
    expect_2(cli("validate", path), r"storyboard\.yaml is 17\.0 MB; shotflow reads at most 16 MB .*max_file_mb")
    config = tmp_path / "config.toml"
    config.write_text("max_file_mb = 32\n")
    result = cli("validate", path, env={"SHOTFLOW_CONFIG": str(config)})
    assert result.code == 0, result.text


TEMPLATE_BOMBS = {
    "power": ("{{ 9 ** 99999999 }}", r"9 \*\* 99999999 is too large a number"),
    "repetition": ("{{ 'ab' * 1000000000 }}", r"builds a value of 2000000000 items or characters"),
    "list repetition": ("{{ ([1] * 100000000) | length }}", r"builds a value of 100000000"),
    "doubling": (
        "{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}x",
        r"builds a value of 131072",
    ),
    "range joined": ("{{ range(100000) | join('x' * 1000) }}", r"builds a value of"),
    "lipsum": ("{{ lipsum(100000) }}", r"lipsum\(\) takes at most 20 paragraphs"),
    "percent width": ("{{ '%999999999d' % 1 }}", r"a format width of 999999999"),
    "format width": ("{{ '{:>999999999}'.format(1) }}", r"a format width in .* is too large"),
    "ljust": ("{{ 'a'.ljust(999999999) }}", r"ljust\(999999999\) pads too wide"),
    "center filter": ("{{ 'a' | center(999999999) }}", r"a width of 999999999"),
    "replace growth": (
        "{% set ns = namespace(s='abcd') %}{% for i in range(9) %}{% set ns.s = ns.s.replace('', ns.s) %}{% endfor %}x",
        r"builds a value of",
    ),
    "output": (
        "{% for a in range(100000) %}{% for b in range(100) %}xxxxxxxxxx{% endfor %}{% endfor %}",
        r"the expansion is longer than 100000 characters",
    ),
    "time": (
        "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}x",
        r"the expansion took more than 2 s",
    ),
    "recursive macro": ("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}", r"calls or includes nest too deeply"),
    "nested parentheses": ("{{ " + "(" * 100 + "1" + ")" * 100 + " }}", r"brackets are nested 10\d deep"),
    "nested braces": ("{{ " + "{'a': " * 100 + "1" + "}" * 100 + " }}", r"brackets are nested 10\d deep"),
    "nested loops": (
        "".join(f"{{% for x{i} in [1] %}}" for i in range(25)) + "x" + "{% endfor %}" * 25,
        r"nests too deeply",
    ),
}


@pytest.mark.parametrize("name", sorted(TEMPLATE_BOMBS))
def test_template_bombs_are_refused_naming_the_shot_and_line(name, write, cli):
    prompt, message = TEMPLATE_BOMBS[name]
    result = cli("validate", write(board(prompt)), timeout=60)
    expect_2(result, r"storyboard\.yaml:9:17: arrival/wide: prompt(, line 1)?: (the template )?" + message)


def test_a_loop_that_calls_nothing_is_stopped_on_a_worker_thread_too(write):
    """``shotflow watch`` and the Python API may expand prompts off the main thread, where no
    real-time timer can interrupt: every pass of a loop checks the budget itself."""
    import threading

    from shotflow.errors import ShotflowError
    from shotflow.expand import load_project

    loops = "{% set x = range(10000) | list %}{% for a in x %}{% for b in x %}{% for c in x %}"
    path = write(board(loops + "{% endfor %}{% endfor %}{% endfor %}x"))
    caught: list[BaseException] = []

    def expand() -> None:
        try:
            load_project(path)
        except ShotflowError as exc:
            caught.append(exc)

    worker = threading.Thread(target=expand, daemon=True)
    worker.start()
    worker.join(30)  # 10^12 passes: without the check it would run for days
    assert not worker.is_alive()
    assert caught and "the expansion took more than 2 s" in str(caught[0])


def test_a_template_that_includes_itself_is_refused_with_its_line(write, cli):
    path = write(board("x", extra="        template: loop.j2"))
    (path.parent / "templates").mkdir()
    (path.parent / "templates" / "loop.j2").write_text("{{ prompt }}\n{% include 'loop.j2' %}\n")
    expect_2(cli("validate", path), r"arrival/wide: template loop\.j2, line 2: calls or includes nest too deeply")


def test_a_reference_that_is_not_an_image_is_a_validate_error(write, cli):
    path = write(board(extra="        refs: [{file: refs/notes.png}]"))
    (path.parent / "refs").mkdir()
    (path.parent / "refs" / "notes.png").write_text("meeting notes, not a picture")
    expect_2(
        cli("validate", path),
        r"storyboard\.yaml:10:16: arrival/wide: reference refs/notes\.png: "
        r"the file is not a PNG, JPEG or WebP image",
    )


def test_a_reference_over_the_pixel_limit_is_a_validate_error_never_decoded(write, cli):
    path = write(board(extra="        refs: [{file: refs/bomb.png}]"))
    (path.parent / "refs").mkdir()
    fake_png_header(path.parent / "refs" / "bomb.png", 20_000, 20_000)  # 400 megapixels in 57 bytes
    expect_2(
        cli("validate", path),
        r"storyboard\.yaml:10:16: arrival/wide: reference refs/bomb\.png: the file is a "
        r"larger image than Pillow opens .*at most 50 megapixels",
    )
    fake_png_header(path.parent / "refs" / "bomb.png", 10_000, 6_000)  # under Pillow's own limit, over ours
    expect_2(
        cli("validate", path),
        r"arrival/wide: reference refs/bomb\.png: the file is 10000x6000 pixels "
        r"\(60 megapixels\); at most 50 megapixels",
    )


# -- 2. no exit 3 from bad input ---------------------------------------------------------------------------

BAD = {
    "id is a list": (
        board(extra="      - id: [a, b]\n        prompt: x"),
        r"storyboard\.yaml:10:13: .*shots\[1\]\.id: must be a string",
    ),
    "scene id is a map": (
        "shotflow: 1\nscenes:\n  - id: {a: 1}\n    shots: []\n",
        r"storyboard\.yaml:3:9: scenes\[0\]\.id: must be a string",
    ),
    "!!int on text": (
        board(extra="        takes: !!int three"),
        r"storyboard\.yaml:10:16: 'three' is not a valid !!int",
    ),
    "!!float on text": (
        board(extra="        duration: !!float long"),
        r"storyboard\.yaml:10:19: 'long' is not a valid !!float",
    ),
    "!!bool on text": (
        board(extra="        takes: !!bool maybe"),
        r"storyboard\.yaml:10:16: 'maybe' is not a valid !!bool",
    ),
    "impossible date": (
        board(extra="        notes: 2024-02-30"),
        r"storyboard\.yaml:10:16: '2024-02-30' looks like a date but is not one",
    ),
    "300-character path": (
        board(extra="        refs: [{file: " + "a" * 300 + ".png}]"),
        r"storyboard\.yaml:10:16: arrival/wide: reference file not found: a{77}\.\.\.",
    ),
    "NUL in a path": (
        board(extra='        refs: [{file: "refs/a\\0.png"}]'),
        r"storyboard\.yaml:10:16: arrival/wide: reference refs/a\x00\.png: the path contains a NUL",
    ),
    "NUL in an include": (
        'shotflow: 1\ninclude: ["cast\\0.yaml"]\nscenes: []\n',
        r"storyboard\.yaml:2:\d+: include 'cast\\x00\.yaml': the path contains a NUL",
    ),
    "recursive alias and duplicate key": (
        "shotflow: 1\nvars: &v\n  me: *v\n  a: 1\n  a: 2\nscenes: []\n",
        r"storyboard\.yaml:3:7: alias \*v refers to a value that contains it",
    ),
    "id with a trailing newline": (
        board(extra='      - id: "door\\n"\n        prompt: x'),
        r"storyboard\.yaml:10:13: .*\"door\\n\" is not a valid id",
    ),
    "100 nested braces in YAML": ("shotflow: 1\ntitle: " + "{" * 100 + "\n", r"storyboard\.yaml:2:\d+: "),
    "tag with trailing newline": (
        board(extra="        cast: [mara]\n        refs: []")
        .replace("    description: a keeper", '    description: a keeper\n    tag: "mara\\n"')
        .replace('"a lighthouse at dusk"', '"@mara at dusk"'),
        r"storyboard\.yaml:5:10: characters\.mara\.tag: \"mara\\n\" is not a valid tag",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_exits_2_with_a_located_message(name, write, cli):
    text, pattern = BAD[name]
    expect_2(cli("validate", write(text)), pattern)


def test_recursive_macros_and_non_utf8_templates_exit_2(write, cli):
    path = write(board("x", extra="        template: latin.j2"))
    (path.parent / "templates").mkdir()
    (path.parent / "templates" / "latin.j2").write_bytes("caf\xe9 {{ prompt }}".encode("latin-1"))
    expect_2(cli("validate", path), r"arrival/wide: template latin\.j2: template 'latin\.j2' is not UTF-8 text")


def test_proc_self_mem_is_refused_even_when_its_folder_is_allowed(write, cli):
    path = write(board(extra="        refs: [{file: /proc/self/mem}]"))
    expect_2(
        cli("validate", path), r"storyboard\.yaml:10:16: arrival/wide: reference /proc/self/mem: .*system pseudo-file"
    )
    expect_2(
        cli("validate", path, "--allow-path", "/proc"),
        r"arrival/wide: reference /proc/self/mem: reference file /proc/\d+/mem is a system pseudo-file",
    )


def test_impossible_set_values_exit_2(write, cli):
    path = write(board())
    expect_2(
        cli("validate", path, "--set", "date=2024-02-30"),
        r"--set date=2024-02-30: '2024-02-30' looks like a date but is not one",
    )
    expect_2(cli("validate", path, "--set", "n=!!int many"), r"--set n=!!int many: 'many' is not a valid !!int")
    assert cli("validate", path, "--set-new", "date=2024-02-28").code == 0


def test_output_into_a_missing_folder_exits_2(write, cli, tmp_path):
    path = write(board())
    expect_2(cli("graph", path, "-o", tmp_path / "nowhere" / "g.mmd"), r"the folder .*nowhere does not exist")
    expect_2(cli("board", path, "-o", tmp_path / "nowhere" / "b.html"), r"the folder .*nowhere does not exist")


def test_clean_refuses_a_renders_folder_that_is_a_link(write, cli, tmp_path):
    path = write(board())
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("years of work")
    (path.parent / "renders").symlink_to(precious)
    expect_2(cli("clean", path), r"renders is a symbolic link .*shotflow removes only a real folder")
    assert (precious / "thesis.txt").read_text() == "years of work"


def test_clean_refuses_a_cache_folder_that_is_a_link(write, cli, tmp_path):
    path = write(board())
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text("keep me")
    (path.parent / ".shotflow").symlink_to(home)
    expect_2(cli("clean", path, "--all"), r"\.shotflow is a symbolic link")
    assert (home / ".bashrc").exists()


def _linked_project(tmp_path: Path, cli) -> tuple[Path, Path]:
    """A rendered project ``victim/`` and a folder ``evil/`` whose storyboard.yaml is a link to
    the victim's storyboard (as a cloned repository may hold)."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "storyboard.yaml").write_text(board())
    assert run_cli_in_process("render", victim / "storyboard.yaml").code == 0
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "storyboard.yaml").symlink_to(Path("..") / "victim" / "storyboard.yaml")
    return victim, evil


@pytest.mark.parametrize(
    "args", [["clean"], ["clean", "--all"], ["render"], ["validate"], ["plan"], ["board"], ["verify"], ["pull"]]
)
def test_a_storyboard_that_links_out_of_its_folder_moves_nothing(args, tmp_path, cli):
    victim, evil = _linked_project(tmp_path, cli)
    before = sorted(str(p.relative_to(victim)) for p in victim.rglob("*"))
    stamps = {p: p.stat().st_mtime_ns for p in victim.rglob("*") if p.is_file()}
    result = cli(*args, cwd=evil)  # the default storyboard.yaml, as a user types `shotflow clean`
    expect_2(
        result,
        r"storyboard\.yaml leads through a symbolic link to .*victim/storyboard\.yaml, outside the project "
        r"folder .*evil; .*name it: .*victim/storyboard\.yaml",
    )
    assert sorted(str(p.relative_to(victim)) for p in victim.rglob("*")) == before
    assert {p: p.stat().st_mtime_ns for p in victim.rglob("*") if p.is_file()} == stamps
    assert sorted(p.name for p in evil.iterdir()) == ["storyboard.yaml"]


def test_a_storyboard_link_is_refused_by_the_library_and_by_watch_too(tmp_path, cli):
    from shotflow.errors import UsageError
    from shotflow.live.rounds import Workspace
    from shotflow.options import RenderOptions
    from shotflow.writeback import Editor

    _, evil = _linked_project(tmp_path, cli)
    for open_it in (lambda p: Workspace(p, RenderOptions()), Editor):
        with pytest.raises(UsageError, match="leads through a symbolic link"):
            open_it(evil / "storyboard.yaml")


def test_a_folder_link_in_a_repository_cannot_move_the_project_either(tmp_path, cli):
    victim, _ = _linked_project(tmp_path, cli)
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "boards").symlink_to(victim)  # committed: boards/storyboard.yaml is the victim's
    expect_2(cli("clean", "--all", "boards/storyboard.yaml", cwd=repo), r"outside the project folder .*repo;")
    assert (victim / "renders").is_dir() and (victim / ".shotflow").is_dir()


def test_init_never_writes_through_a_link(tmp_path, cli):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "bashrc").write_text("# mine\n")
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / ".gitignore").symlink_to(Path("..") / "outside" / "bashrc")
    (evil / "storyboard.yaml").symlink_to(Path("..") / "outside" / "created-by-init.yaml")  # dangling
    expect_2(cli("init", cwd=evil), r"storyboard\.yaml already exists \(a symbolic link to .*created-by-init\.yaml\)")
    result = cli("init", "--force", cwd=evil)
    assert result.code == 0, result.text
    assert re.search(r"note: \.gitignore is a symbolic link to .*bashrc; shotflow left it as it is", result.err)
    story = evil / "storyboard.yaml"
    assert not story.is_symlink() and "The Night Ferry" in story.read_text()  # the link replaced, not followed
    assert sorted(p.name for p in outside.iterdir()) == ["bashrc"]
    assert (outside / "bashrc").read_text() == "# mine\n"


def test_import_never_writes_its_default_output_through_a_link_out_of_the_project(tmp_path, cli):
    script = Path(__file__).parent / "data" / "fountain" / "lighthouse.fountain"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "mine.yaml").write_text("mine")
    clone = tmp_path / "clone"
    clone.mkdir()
    (clone / "script.fountain").write_bytes(script.read_bytes())
    (clone / "script.yaml").symlink_to(Path("..") / "outside" / "new.yaml")  # dangling: exists() is False
    expect_2(cli("import", "script.fountain", cwd=clone), r"script\.yaml exists: .*--force to replace it")
    for target in ("new.yaml", "mine.yaml"):
        (clone / "script.yaml").unlink()
        (clone / "script.yaml").symlink_to(Path("..") / "outside" / target)
        expect_2(
            cli("import", "script.fountain", "--force", cwd=clone),
            r"refusing to write script\.yaml: it leads to .*outside/" + target + ", outside the project folder",
        )
    assert sorted(p.name for p in outside.iterdir()) == ["mine.yaml"] and (outside / "mine.yaml").read_text() == "mine"
    named = cli("import", "script.fountain", "-o", "script.yaml", "--force", cwd=clone)
    assert named.code == 0, named.text  # a path the user names: written through, as every output
    assert "scenes:" in (outside / "mine.yaml").read_text()


def test_a_storyboard_link_inside_its_project_is_followed(write, cli, tmp_path):
    real = write(board(), name="project/boards/ep1.yaml")
    (real.parent.parent / "storyboard.yaml").symlink_to(Path("boards") / "ep1.yaml")
    assert cli("render", cwd=real.parent.parent).code == 0
    assert (real.parent / "renders" / "arrival" / "wide.png").exists()  # the project of the real file
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "storyboard.yaml").symlink_to(real)  # a link out of its folder, whoever made it: the real file is named
    expect_2(cli("validate", mine / "storyboard.yaml"), r"name it: .*project/boards/ep1\.yaml")
    assert cli("validate", real).code == 0


@pytest.mark.parametrize("key", ["abc\ndef", "clé-secrète"])
def test_an_api_key_with_a_newline_or_non_ascii_is_refused_before_any_request(key, write, cli):
    from shotflow.testing import Emulator

    path = write(board())
    with Emulator(api_key="whatever") as emu:
        result = cli("render", path, "--backend", "runware", env={"RUNWARE_API_KEY": key, "RUNWARE_API_URL": emu.url})
        assert emu.stats.requests == 0
    expect_2(result, r"the Runware API key holds a line break, a control or a non-ASCII character; nothing was sent")


# -- 3. nothing outside the project is read or written -----------------------------------------------------


def test_a_templates_link_to_the_root_reads_nothing(write, cli):
    path = write(board("x", extra="        template: root/etc/hostname"))
    (path.parent / "templates").mkdir()
    (path.parent / "templates" / "root").symlink_to("/")
    expect_2(
        cli("validate", path),
        r"arrival/wide: template root/etc/hostname: template 'root/etc/hostname' leads to "
        r"/etc/hostname, outside the templates folders",
    )
    (path.parent / "templates" / "ok.j2").write_text("{% include 'root/etc/hostname' %}")
    path.write_text(board("x", extra="        template: ok.j2"))
    expect_2(cli("validate", path), r"template ok\.j2, line 1: template 'root/etc/hostname' leads to /etc/hostname")


def test_a_templates_folder_that_links_out_of_the_project_is_refused(write, cli, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "shot.j2").write_text("{{ prompt }} from elsewhere")
    path = write(board("x"), name="project/storyboard.yaml")
    (path.parent / "templates").symlink_to(elsewhere)
    expect_2(
        cli("validate", path),
        r"arrival/wide: template shot\.j2: template 'shot\.j2': .*templates/ leads to "
        r".*elsewhere, outside the project folder",
    )


def test_reference_files_outside_the_project_need_the_users_permission(write, cli, tmp_path):
    library = tmp_path / "library"
    png(library / "face.png")
    path = write(board(extra=f"        refs: [{{file: {library / 'face.png'}}}]"), name="project/storyboard.yaml")
    expect_2(
        cli("validate", path),
        r"storyboard\.yaml:10:16: arrival/wide: reference .*: reference file "
        r".*library/face\.png is outside the project folder .*--allow-path DIR",
    )
    assert cli("validate", path, "--allow-path", library).code == 0
    assert cli("--allow-path", library, "validate", path).code == 0  # before the command too
    config = tmp_path / "config.toml"
    config.write_text(f'allow_paths = ["{library}"]\n')
    assert cli("validate", path, env={"SHOTFLOW_CONFIG": str(config)}).code == 0


def test_a_storyboard_cannot_allow_paths_itself(write, cli):
    path = write(board() + "allow_paths: [/]\n")
    expect_2(cli("validate", path), r"unknown key 'allow_paths'")


def test_the_project_folder_is_the_top_of_the_git_repository(write, cli, tmp_path):
    repo = tmp_path / "repo"
    png(repo / "refs" / "tom.png")
    (repo / ".git").mkdir()
    path = write(board(extra="        refs: [{file: ../refs/tom.png}]"), name="repo/boards/ep1.yaml")
    assert cli("validate", path).code == 0
    (repo / ".git").rmdir()  # without git, the project is boards/ alone
    expect_2(cli("validate", path), r"reference \.\./refs/tom\.png: .* is outside the project folder .*boards")


def test_a_dotfiles_repository_holding_the_home_folder_is_no_project(write, cli, tmp_path):
    home = tmp_path / "home"
    (home / ".git").mkdir(parents=True)  # the user keeps their dotfiles in git, in ~ itself
    png(home / "Pictures" / "me.png")
    (home / ".aws").mkdir()
    (home / ".aws" / "shared.yaml").write_text("characters:\n  tom: {description: aws_secret_access_key}\n")
    included = board().replace("shotflow: 1\n", "shotflow: 1\ninclude: [../../.aws/shared.yaml]\n", 1)
    path = write(included, name="home/Downloads/board/storyboard.yaml")
    as_user = {"HOME": str(home)}
    # a storyboard saved anywhere in the home folder reads nothing of it outside its own folder
    expect_2(cli("validate", path, env=as_user), r"include \.\./\.\./\.aws/shared\.yaml: .* outside the project folder")
    path.write_text(board(extra="        refs: [{file: ../../Pictures/me.png}]"))
    pattern = r"reference \.\./\.\./Pictures/me\.png: .* outside the project folder .*board"
    expect_2(cli("validate", path, env=as_user), pattern)
    # the same repository anywhere but around the home folder is a project like any other
    assert cli("validate", path, env={"HOME": str(tmp_path / "elsewhere")}).code == 0
    # a storyboard saved in the home folder itself has it as its project, its hidden folders kept out
    at_home = home / "storyboard.yaml"
    at_home.write_text(included.replace("../../.aws/", ".aws/"))
    hidden = r"include \.aws/shared\.yaml: .* is in a hidden folder of your home"
    expect_2(cli("validate", at_home, env=as_user), hidden)
    at_home.write_text(board(extra="        refs: [{file: Pictures/me.png}]"))
    assert cli("validate", at_home, env=as_user).code == 0  # the rest of it is the project


def test_a_storyboard_named_through_the_users_own_link_out_of_a_dotfiles_home_is_taken(cli, tmp_path):
    home = tmp_path / "home"
    (home / ".git").mkdir(parents=True)
    work = tmp_path / "mnt" / "work"
    (work / "board").mkdir(parents=True)
    (work / "board" / "storyboard.yaml").write_text(board())
    (home / "work").symlink_to(work)  # ~/work -> /mnt/work: the user's route, not the project's
    result = cli("validate", "work/board/storyboard.yaml", cwd=home, env={"HOME": str(home)})
    assert result.code == 0, result.text


def test_includes_outside_the_project_are_refused(write, cli, tmp_path):
    (tmp_path / "shared.yaml").write_text("characters:\n  tom: {description: a radio operator}\n")
    path = write("shotflow: 1\ninclude: [../shared.yaml]\nscenes: []\n", name="project/storyboard.yaml")
    expect_2(
        cli("validate", path),
        r"storyboard\.yaml:2:\d+: include \.\./shared\.yaml: included file .* is outside "
        r"the project folder",
    )
    assert cli("validate", path, "--allow-path", tmp_path).code == 0


@pytest.mark.parametrize("kind", ["device", "fifo", "folder"])
def test_devices_fifos_and_folders_are_refused_clearly(kind, write, cli, tmp_path):
    path = write(board(extra="        refs: [{file: refs/x.png}]"))
    target = path.parent / "refs" / "x.png"
    target.parent.mkdir()
    if kind == "device":
        target.symlink_to("/dev/zero")
        pattern = r"is a system pseudo-file"
    elif kind == "fifo":
        os.mkfifo(target)
        pattern = r"is a device, FIFO or socket, not a regular file"
    else:
        target.mkdir()
        pattern = r"is a folder, not a file"
    expect_2(
        cli("validate", path, "--allow-path", "/dev", timeout=30),
        r"arrival/wide: reference refs/x\.png: " + ".*" + pattern,
    )


def test_a_crafted_state_file_deletes_nothing_shotflow_did_not_write(example, cli, tmp_path):
    story = example("lighthouse")
    assert cli("render", story).code == 0
    victim = tmp_path / "victim.txt"
    victim.write_text("not shotflow's")
    mine = story.parent / "renders" / "notes.txt"
    mine.write_text("the director's notes, kept in renders/")
    stale = story.parent / "renders" / "arrival" / "old.png"
    stale.write_bytes((story.parent / "renders" / "arrival" / "wide.png").read_bytes())
    manifest = story.parent / ".shotflow" / "storyboard.last-run.json"
    data = json.loads(manifest.read_text())
    for path in (victim, story.parent / "renders" / ".." / ".." / victim.name, mine, stale):
        data["outputs"][str(path)] = [1, 1, 1]
    data["signature"] = "changed"  # the fast path is not taken: the run records again
    manifest.write_text(json.dumps(data))
    assert cli("render", story).code == 0
    assert victim.read_text() == "not shotflow's"  # outside renders/, even through '..'
    assert mine.exists()  # inside renders/, but shotflow never wrote it
    assert stale.exists()  # a copy the user made: not a file shotflow recorded


def test_a_stale_render_shotflow_wrote_is_still_removed(example, cli):
    story = example("lighthouse")
    assert cli("render", story).code == 0
    frame = story.parent / "renders" / "radio" / "station.png"
    story.write_text(story.read_text().replace("- id: station", "- id: post"))
    assert cli("render", story).code == 0
    assert not frame.exists() and (story.parent / "renders" / "radio" / "post.png").exists()


def test_render_refuses_a_renders_folder_that_links_out_of_the_project(write, cli, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    path = write(board(), name="project/storyboard.yaml")
    (path.parent / "renders").mkdir()
    (path.parent / "renders" / "arrival").symlink_to(outside)
    expect_2(cli("render", path), r"renders/arrival is a symbolic link to .*outside, outside the project folder")
    assert list(outside.iterdir()) == []
    for command in (["board", "-o", outside.parent / "b.html"], ["verify"]):  # nor is anything read through it
        expect_2(
            run_cli_in_process(*command, path),
            r"renders/arrival is a symbolic link to .*outside, outside the project folder",
        )


def test_watch_refuses_a_renders_folder_that_links_out_of_the_project_too(write, tmp_path):
    from shotflow.live.rounds import Workspace
    from shotflow.options import RenderOptions

    outside = tmp_path / "outside"
    outside.mkdir()
    path = write(board(), name="project/storyboard.yaml")
    (path.parent / "renders").mkdir()
    (path.parent / "renders" / "arrival").symlink_to(outside)
    update = Workspace(path, RenderOptions()).round()
    assert any(re.search(r"renders/arrival is a symbolic link to .*outside", e) for e in update.errors), update.errors
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("inside", ["objects", "objects/ab", "actions/cd", "journal", "leases"])
def test_render_refuses_a_cache_folder_inside_that_links_out_of_the_project(inside, write, cli, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    path = write(board(), name="project/storyboard.yaml")
    link = path.parent / ".shotflow" / inside
    link.parent.mkdir(parents=True)
    link.symlink_to(outside)
    expect_2(
        run_cli_in_process("render", path),
        rf"\.shotflow/{inside} is a symbolic link to .*outside, outside the project folder",
    )
    assert list(outside.iterdir()) == []
    assert not (path.parent / "renders").exists()
    if inside == "objects/ab":  # the exports and verify read objects: nothing is read through it either
        expect_2(run_cli_in_process("board", path), r"\.shotflow/objects/ab is a symbolic link to .*outside")
        expect_2(run_cli_in_process("verify", path), r"\.shotflow/objects/ab is a symbolic link to .*outside")


def test_a_cache_elsewhere_does_not_let_the_state_folder_link_out(write, cli, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    path = write(board(), name="project/storyboard.yaml")
    (path.parent / ".shotflow").symlink_to(outside)
    result = cli("render", path, "--cache", tmp_path / "cache")
    expect_2(result, r"\.shotflow is a symbolic link to .*outside, outside the project folder")
    assert list(outside.iterdir()) == []


@pytest.mark.parametrize("link", ["objects", "objects/ab", "shelf/ab"])
def test_a_storyboards_folder_remote_cannot_write_through_a_link_out_of_the_project(link, write, cli, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    path = write(board(), name="project/storyboard.yaml")
    team = path.parent / "teamcache"
    team.mkdir()
    if link.startswith("shelf"):  # a link inside the project, to a folder holding a link out of it
        (team / "objects").symlink_to(path.parent / "shelf")
    target = path.parent / link if link.startswith("shelf") else team / link
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(outside)
    path.write_text(board() + f"remote: {team.as_uri()}\n")
    expect_2(
        cli("render", path),
        rf"the storyboard's remote: .*teamcache holds .*{link}, a symbolic link to .*outside, outside the project",
    )
    assert list(outside.iterdir()) == []
    expect_2(cli("pull", path), r"holds .*, a symbolic link to .*outside")
    assert cli("render", path, "--remote", team.as_uri()).code == 0  # named by the user: theirs to decide


def test_the_walk_of_a_storyboards_folder_remote_is_bounded(write, tmp_path, monkeypatch):
    from shotflow import remote
    from shotflow.errors import ConfigError

    path = write(board(), name="project/storyboard.yaml")
    team = path.parent / "teamcache" / "objects"
    for n in range(30):
        (team / f"{n:02x}").mkdir(parents=True)
    monkeypatch.delenv("SHOTFLOW_REMOTE", raising=False)
    monkeypatch.setenv("SHOTFLOW_CONFIG", str(tmp_path / "no-config.toml"))
    assert remote.resolve_url(None, team.parent.as_uri(), path.parent) == team.parent.as_uri()
    monkeypatch.setattr(remote, "MAX_CHECKED_ENTRIES", 20)
    with pytest.raises(ConfigError, match=r"holds more than 20 entries; .* and stops there"):
        remote.resolve_url(None, team.parent.as_uri(), path.parent)


def test_outputs_dash_is_standard_output(write, cli):
    path = write(board())
    result = cli("board", path, "-o", "-")
    assert result.code == 0, result.text
    assert result.out.lstrip().lower().startswith("<!doctype html>") and "wrote standard output" in result.err
    result = cli("export", path, "--csv", "-")
    assert result.code == 0 and result.out.startswith("number,code,scene,shot")


def test_an_output_symlink_is_written_through_not_replaced(write, cli, tmp_path):
    path = write(board())
    real = tmp_path / "shared" / "board.html"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "board-link.html"
    link.symlink_to(real)
    assert cli("board", path, "-o", link).code == 0
    assert link.is_symlink() and "<!doctype html>" in real.read_text().lower()


@pytest.mark.parametrize(
    "victim", ["storyboard.yaml", "storyboard.lock", "refs/face.png", "cast.yaml", "templates/shot.j2"]
)
def test_outputs_never_overwrite_the_storyboard_its_lock_includes_or_references(victim, write, cli):
    path = write(
        "shotflow: 1\ninclude: [cast.yaml]\nscenes:\n  - id: arrival\n    shots:\n      - id: wide\n"
        "        refs: [{file: refs/face.png}]\n        prompt: x\n"
    )
    (path.parent / "cast.yaml").write_text("characters:\n  tom: {description: a radio operator}\n")
    (path.parent / "templates").mkdir()
    (path.parent / "templates" / "shot.j2").write_text("{{ prompt }}")
    png(path.parent / "refs" / "face.png")
    assert run_cli_in_process("render", path).code == 0
    before = (path.parent / victim).read_bytes()
    for args in (
        ["board", path, "-o", path.parent / victim],
        ["export", path, "--csv", path.parent / victim],
        ["graph", path, "-o", path.parent / victim],
    ):
        expect_2(
            run_cli_in_process(*args), r"refusing to write .*: it is (the storyboard|a file the storyboard|a template)"
        )
    assert (path.parent / victim).read_bytes() == before


def test_a_default_output_that_links_out_of_the_project_is_refused(write, cli, tmp_path):
    outside = tmp_path / "outside.html"
    outside.write_text("mine")
    path = write(board(), name="project/storyboard.yaml")
    (path.parent / "renders").mkdir()
    (path.parent / "renders" / "board.html").symlink_to(outside)
    expect_2(
        cli("board", path), r"refusing to write .*renders/board\.html: it leads to .*outside\.html, outside the project"
    )
    assert outside.read_text() == "mine"


def test_a_renders_folder_linked_to_the_reference_images_is_refused(write, cli):
    """renders/arrival -> ../refs would make the frame of arrival/wide replace refs/wide.png."""
    path = write(
        board(extra="locations:\n  tower:\n    description: a tower\n    image: refs/wide.png\n"),
        name="project/storyboard.yaml",
    )
    reference = png(path.parent / "refs" / "wide.png")
    before = reference.read_bytes()
    (path.parent / "renders").mkdir()
    (path.parent / "renders" / "arrival").symlink_to("../refs")
    expect_2(cli("render", path), r"renders/arrival is a symbolic link to .*refs, which holds .*wide\.png")
    assert reference.read_bytes() == before


def test_a_default_output_path_that_links_inside_the_project_is_not_written_through(write, cli):
    path = write(board(), name="project/storyboard.yaml")
    config = path.parent / ".git" / "config"
    config.parent.mkdir()
    config.write_text("[core]\n")
    (path.parent / "renders").mkdir()
    (path.parent / "renders" / "board.html").symlink_to("../.git/config")
    expect_2(cli("board", path), r"refusing to write through .*renders/board\.html: it is a symbolic link")
    assert config.read_text() == "[core]\n"


def test_an_allowed_folder_is_for_reading_a_link_into_it_is_not_written_through(write, cli, tmp_path):
    library = tmp_path / "library"
    (library / "characters").mkdir(parents=True)
    (library / "characters" / "mara.png").write_text("ORIGINAL ART")
    path = write(board(), name="project/storyboard.yaml")
    (path.parent / "renders").symlink_to(library)
    expect_2(
        cli("--allow-path", library, "render", path), r"renders is a symbolic link to .*library, outside the project"
    )
    assert (library / "characters" / "mara.png").read_text() == "ORIGINAL ART"


def test_the_template_context_is_read_only(write, cli):
    path = write(
        board("{{ vars.update({'look': 'hacked'}) }}x").replace("shotflow: 1", "shotflow: 1\nvars: {look: calm}")
        + '      - id: door\n        prompt: "{{ vars.look }}"\n'
    )
    expect_2(
        cli("validate", path),
        r"arrival/wide: prompt, line 1: the template tried something the sandbox forbids "
        r"\(access to attribute 'update' of 'dict' object is unsafe",
    )
    path = write(board("{{ vars.names.append('x') }}x").replace("shotflow: 1", "shotflow: 1\nvars: {names: [a]}"))
    expect_2(cli("validate", path), r"attribute 'append' of 'list' object is unsafe")


TRAVERSAL = "..//../../../../../../../../../../../.."


def _rendered_with_lock(write, cli, tmp_path, change) -> tuple[Path, Path]:
    """A rendered project whose lock ``change`` then edits (a dict), and a file outside it."""
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    path = write(board(), name="project/storyboard.yaml")
    assert run_cli_in_process("render", path).code == 0
    lock = path.with_suffix(".lock")
    data = json.loads(lock.read_text())
    change(data, str(outside))
    lock.write_text(json.dumps(data))
    return path, outside


def _entry(data: dict) -> dict:
    return data["nodes"]["arrival/wide"]


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("digest", lambda d, o: _entry(d)["outputs"][0].update(sha256=TRAVERSAL + o), r"is not a sha256 digest"),
        ("url pin", lambda d, o: d.update(urls={"https://example.com/a.png": TRAVERSAL + o}), r"not a sha256 digest"),
        ("key", lambda d, o: _entry(d).update(key=TRAVERSAL + o), r"is not a request key"),
        ("ext", lambda d, o: _entry(d)["outputs"][0].update(ext='png"><script>alert(1)</script>'), r"not a file ext"),
        ("cost", lambda d, o: _entry(d).update(cost="a lot"), r"'arrival/wide': cost 'a lot' is not a number"),
        ("nodes", lambda d, o: d.update(nodes=3), r"nodes and urls must be JSON objects"),
        ("pick", lambda d, o: _entry(d).update(pick="2"), r"'arrival/wide': pick '2' is not a whole number"),
    ],
)
def test_a_crafted_lock_is_refused_before_it_names_a_file(name, change, message, write, cli, tmp_path):
    """Digests and keys in a lock name files in the cache (objects/ab/cdef…): one that climbs out
    made plan, render, the exports, verify, pull and push hash a file outside and delete it as corrupt."""
    path, outside = _rendered_with_lock(write, cli, tmp_path, change)
    every = (["plan"], ["render"], ["board", "-o", tmp_path / "b.html"], ["verify"], ["export", "--csv", "-"])
    for command in every if name == "digest" else every[:1]:  # every command reads the lock the same way
        done = cli(*command, path) if command == ["render"] else run_cli_in_process(*command, path)
        expect_2(done, rf"storyboard\.lock is not a valid shotflow lock file \(.*{message}")
    assert outside.read_text() == "keep me"


def test_a_crafted_action_record_deletes_nothing_outside(write, cli, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("keep me")
    path = write(board(), name="project/storyboard.yaml")
    assert cli("render", path).code == 0
    record = {"key": "zz", "backend": "preview", "outputs": [{"sha256": TRAVERSAL + str(outside), "ext": "png"}]}
    crafted = path.parent / ".shotflow" / "actions" / "zz" / "zz.json"
    crafted.parent.mkdir(parents=True)
    crafted.write_text(json.dumps(record))
    result = cli("verify", path)
    assert result.code in (0, 1) and "Traceback" not in result.text, result.text
    assert outside.read_text() == "keep me"


def test_a_lock_that_links_to_another_projects_lock_is_refused(write, cli, tmp_path):
    other = write(board(), name="other/storyboard.yaml")
    assert cli("render", other).code == 0
    path = write(board(), name="project/storyboard.yaml")
    path.with_suffix(".lock").symlink_to(other.with_suffix(".lock"))
    expect_2(cli("plan", path), r"storyboard\.lock is a symbolic link to .*other/storyboard\.lock, outside the project")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_a_lock_that_is_no_regular_file_is_refused_without_reading_it(kind, write, cli):
    path = write(board(), name="project/storyboard.yaml")
    lock = path.with_suffix(".lock")
    if kind == "fifo":
        os.mkfifo(lock)
        expect_2(cli("plan", path), r"storyboard\.lock cannot be read: a FIFO or a device, not a regular file")
    else:
        lock.symlink_to("/dev/zero")
        expect_2(cli("plan", path), r"storyboard\.lock is a symbolic link to /dev/zero, outside the project")


SCENE_FILE = "scenes:\n  - id: arrival\n    shots:\n      - id: wide\n        prompt: a lighthouse\n"
APPROVE = {"shots": {"arrival/wide": {"review": {"status": "approved", "notes": ["ok"]}}}}


def _scenes_from(include: str) -> str:
    return "shotflow: 1\ncharacters:\n  mara:\n    description: a keeper\nscenes:\n  - include: " + include + "\n"


def test_writing_back_follows_the_includes_the_loader_read_never_another_file(write, cli, tmp_path):
    """`include: 0o17` is the string "0o17" to the loader (YAML 1.1) and the number 15 to the
    editor (YAML 1.2): the editor opened `15`, a committed link, and wrote the review outside."""
    victim = tmp_path / "victim.yaml"
    victim.write_text(SCENE_FILE)
    path = write(_scenes_from("0o17"), name="project/storyboard.yaml")
    (path.parent / "0o17").write_text(SCENE_FILE)
    (path.parent / "15").symlink_to(victim)
    assert cli("validate", path).code == 0
    review = tmp_path / "review.json"
    review.write_text(json.dumps(APPROVE))
    expect_2(
        cli("review", "apply", review, path),
        r"an include in storyboard\.yaml reads as 15, not a file name, in YAML 1\.2",
    )
    assert victim.read_text() == SCENE_FILE


@pytest.mark.parametrize("where", ["before the command", "after it"])
def test_writing_back_into_an_allowed_folder_is_refused(write, cli, tmp_path, where):
    library = tmp_path / "library"
    library.mkdir()
    (library / "acts.yaml").write_text(SCENE_FILE)
    path = write(_scenes_from(str(library / "acts.yaml")), name="project/storyboard.yaml")
    review = tmp_path / "review.json"
    review.write_text(json.dumps(APPROVE))
    if where == "before the command":
        result = cli("--allow-path", library, "review", "apply", review, path)
    else:
        result = cli("review", "apply", review, path, "--allow-path", library)
    expect_2(result, r"acts\.yaml is outside the project folder .*read, never written")
    assert (library / "acts.yaml").read_text() == SCENE_FILE


def test_the_editorial_commands_read_an_allowed_include_with_allow_path_after_their_name(write, cli, tmp_path):
    """conform and import --update read the storyboard as every command does: its includes
    outside the project need --allow-path, given after the command name as well as before."""
    library = tmp_path / "library"
    library.mkdir()
    (library / "acts.yaml").write_text(SCENE_FILE)
    path = write(_scenes_from(str(library / "acts.yaml")), name="project/storyboard.yaml")
    cut = tmp_path / "cut.edl"
    cut.write_text("TITLE: an empty cut\n")
    outside = r"acts\.yaml is outside the project folder"
    expect_2(cli("conform", cut, "-s", path), outside)
    expect_2(cli("conform", cut, "-s", path, "--allow-path", library), r"cut\.edl has no video track")
    script = tmp_path / "script.fountain"
    script.write_text("INT. LAMP ROOM - NIGHT\n\nMara climbs.\n")
    expect_2(cli("import", script, "--update", path, "-n"), outside)
    updated = cli("import", script, "--update", path, "-n", "--allow-path", library)
    assert updated.code == 0 and "added scene lamp-room-night" in updated.out, updated.text


def test_keys_yaml_1_1_and_1_2_read_differently_are_an_error_when_writing_back(write, cli, tmp_path):
    path = write(board(extra="vars:\n  0o17: a\n  15: b\n"), name="project/storyboard.yaml")
    assert cli("validate", path).code == 0
    review = tmp_path / "review.json"
    review.write_text(json.dumps(APPROVE))
    expect_2(cli("review", "apply", review, path), r"storyboard\.yaml cannot be edited as YAML 1\.2 reads it")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
@pytest.mark.parametrize("kind", ["fifo", "zero"])
def test_a_committed_env_link_is_neither_waited_on_nor_read_whole(kind, write, cli, tmp_path):
    path = write(board(), name="project/storyboard.yaml")
    env_file = path.parent / ".env"
    if kind == "fifo":
        os.mkfifo(tmp_path / "pipe")
        env_file.symlink_to(tmp_path / "pipe")
    else:
        env_file.symlink_to("/dev/zero")
    result = cli("render", path, "--backend", "runware", env={"RUNWARE_API_KEY": ""}, timeout=60)
    expect_2(result, r"cannot read .*\.env: a FIFO or a device, not a regular file")


# -- 4. the user cache never runs code it did not write ----------------------------------------------------


def _user_env(tmp_path: Path) -> dict[str, str]:
    return {"SHOTFLOW_USER_CACHE": str(tmp_path / "usercache"), "SHOTFLOW_USER_KEY": str(tmp_path / "key" / "k")}


def test_a_tampered_compiled_template_is_rebuilt_never_run(write, cli, tmp_path):
    import hashlib
    import marshal

    env = _user_env(tmp_path)
    source = "{% if shot.takes > 1 %}many{% else %}one{% endif %} frame"
    path = write(board(source))
    assert cli("validate", path, env=env).code == 0
    [cache_file] = (tmp_path / "usercache").glob("templates-*.marshal")
    pwned = tmp_path / "pwned"
    evil = compile(f"open({str(pwned)!r}, 'w').write('ran')", "<template>", "exec")
    key = hashlib.sha256(source.encode()).hexdigest()
    for forged in (
        marshal.dumps({key: marshal.dumps(evil)}),  # the unauthenticated format
        cache_file.read_bytes()[:32] + marshal.dumps({key: marshal.dumps(evil)}),
    ):  # a stolen MAC
        cache_file.write_bytes(forged)
        result = cli("plan", path, "--json", env=env)
        assert result.code == 0, result.text
        assert not pwned.exists()
        assert json.loads(result.out)["nodes"][0]["prompt"] == "one frame"


def test_template_files_are_compiled_once_and_kept_with_the_prompts_under_the_same_seal(write, cli, tmp_path):
    env = _user_env(tmp_path)
    path = write(board("{% if shot.takes > 1 %}many{% else %}one{% endif %} frame"))
    assert cli("validate", path, env=env).code == 0
    read = "from shotflow import expand; print(sum(k.startswith('file:') for k in expand._CodeCache().codes))"
    kept = subprocess.run([sys.executable, "-c", read], env={**os.environ, **env}, capture_output=True, text=True)
    assert kept.stdout.strip() == "1", kept.stdout + kept.stderr  # the built-in shot template
    # a second run compiles nothing: every template, file or prompt, comes from the cache
    count = (
        "import sys; from shotflow import _sandbox, expand; n = []; real = _sandbox.BoundedSandbox.compile\n"
        "_sandbox.BoundedSandbox.compile = lambda self, *a, **k: (n.append(1), real(self, *a, **k))[1]\n"
        f"expand.load_project({str(path)!r}); print(len(n))"
    )
    again = subprocess.run([sys.executable, "-c", count], env={**os.environ, **env}, capture_output=True, text=True)
    assert again.stdout.strip() == "0", again.stdout + again.stderr


def test_a_forged_check_marker_does_not_skip_the_schema_check(write, cli, tmp_path):
    import hashlib

    from shotflow import validate

    env = _user_env(tmp_path)
    path = write("shotflow: 1\nscenes: [{id: Bad Id, shots: []}]\n")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    for checker in (b"", validate._CHECKER):  # the marker names of before and of now
        key = hashlib.sha256(validate._schema_bytes() + checker + b"storyboard" + digest.encode()).hexdigest()
        marker = tmp_path / "usercache" / "valid" / key[:2] / key
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    expect_2(cli("validate", path, env=env), r"\"Bad Id\" is not a valid id")


def test_a_key_others_can_read_turns_the_user_cache_off(tmp_path):
    code = "import os; from shotflow import _usercache as u; print(u.user_cache_dir())"
    env = {**os.environ, **_user_env(tmp_path)}
    key = tmp_path / "key" / "k"
    key.parent.mkdir()
    key.write_bytes(os.urandom(32))
    key.chmod(0o644)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.strip()
    assert out == "None"
    key.chmod(0o600)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True).stdout.strip()
    assert out == str(tmp_path / "usercache")


# -- 5. URL references ---------------------------------------------------------------------------------------


class _Server:
    """A loopback HTTP server: /img.png an image, /to?url=U a redirect, /slow a trickle."""

    def __init__(self):
        import io

        from PIL import Image

        buffer = io.BytesIO()
        Image.new("RGB", (16, 9), (10, 200, 30)).save(buffer, "PNG")
        image = buffer.getvalue()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.hits.append(self.path)
                if self.path.startswith("/to?url="):
                    self.send_response(302)
                    self.send_header("Location", self.path[len("/to?url=") :])
                    self.end_headers()
                elif self.path == "/slow":
                    self.send_response(200)
                    self.send_header("Content-Length", "1000000")
                    self.end_headers()
                    for _ in range(100):
                        self.wfile.write(b"x")
                        self.wfile.flush()
                        time.sleep(0.1)
                else:
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(image)))
                    self.end_headers()
                    self.wfile.write(image)

            def log_message(self, *args):
                pass

        self.hits: list[str] = []
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


def test_url_references_on_loopback_need_allow_private_urls(write, cli, server):
    path = write(board(extra=f"        refs: [{{url: {server.url}/img.png}}]"))
    result = cli("render", path, "--json")
    assert result.code == 1 and server.hits == []
    assert f"reference URL {server.url}/img.png: 127.0.0.1 is a private, loopback or link-local address" in result.out
    result = cli("render", path, "--allow-private-urls")
    assert result.code == 0, result.text
    assert server.hits == ["/img.png"]


def test_a_redirect_to_a_private_address_is_refused(server, monkeypatch):
    from shotflow import fetch
    from shotflow.errors import RefError

    monkeypatch.setattr(fetch, "is_public", lambda address: address == "127.0.0.1")  # as if 127.0.0.1 were public
    assert asyncio.run(fetch.fetch(f"{server.url}/img.png", allow_private=False)).startswith(b"\x89PNG")
    for target in ("http://169.254.169.254/latest/meta-data/", "http://127.0.0.2:9/x.png", "file:///etc/passwd"):
        with pytest.raises(RefError) as caught:
            asyncio.run(fetch.fetch(f"{server.url}/to?url={target}", allow_private=False))
        assert str(caught.value).startswith(f"reference URL {server.url}/to?url={target} (redirected to ")
    assert "169.254.169.254 is a private, loopback or link-local address" in str(
        pytest.raises(
            RefError, asyncio.run, fetch.fetch(f"{server.url}/to?url=http://169.254.169.254/x", allow_private=False)
        ).value
    )


def test_one_fetch_has_an_overall_deadline(server):
    from shotflow import fetch
    from shotflow.errors import RefError

    started = time.perf_counter()
    with pytest.raises(RefError) as caught:
        asyncio.run(fetch.fetch(f"{server.url}/slow", allow_private=True, deadline=1.0))
    assert time.perf_counter() - started < 8  # the server would trickle for 10 s (each read under any read timeout)
    assert str(caught.value) == f"reference URL {server.url}/slow: no complete answer within 1 s"


def test_a_fetched_reference_must_be_an_image(server, tmp_path):
    from shotflow import fetch
    from shotflow.errors import RefError

    with pytest.raises(RefError, match=r"reference URL .*/slow: no complete answer"):
        asyncio.run(fetch.fetch(f"{server.url}/slow", allow_private=True, deadline=0.3))
    with pytest.raises(RefError, match=r"only http:// and https:// URLs are fetched"):
        asyncio.run(fetch.fetch("ftp://example.com/x.png", allow_private=True))
