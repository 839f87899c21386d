"""``shotflow verify``: every byte of the cache and the lock, hashed."""

from __future__ import annotations

import json
import os


def _rot(path):
    """Flip one byte and put the mtime back: what the stat index cannot see."""
    st = path.stat()
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0x10
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_verify_reports_corrupt_and_missing_objects_and_renders(example, cli):
    story = example("lighthouse")
    assert cli("render", story).code == 0
    ok = cli("verify", story)
    assert ok.code == 0 and "all bytes verify" in ok.out
    lock = json.loads(story.with_suffix(".lock").read_text())["nodes"]
    objects = story.parent / ".shotflow" / "objects"
    rotten, gone = lock["arrival/wide"]["picked"], lock["arrival/door"]["outputs"][0]["sha256"]
    _rot(objects / rotten[:2] / rotten[2:])
    (objects / gone[:2] / gone[2:]).unlink()
    _rot(story.parent / "renders" / "arrival" / "lamp.png")
    result = cli("verify", story)
    assert result.code == 1, result.text
    assert f"arrival/wide: object {rotten[:12]} is corrupt" in result.out
    assert "arrival/door take 1: object" in result.out and "is missing" in result.out
    assert "renders/arrival/lamp.png does not hold the lock's bytes; the next render copies it" in result.out
    assert not (objects / rotten[:2] / rotten[2:]).exists()  # removed: nothing uses it
    # on the preview backend the lock's frames can be redrawn to the byte: --locked restores them
    assert cli("render", story, "--locked").code == 0
    assert cli("verify", story).code == 0


def test_two_storyboards_in_one_folder_keep_their_own_state_and_frames(example, cli):
    story = example("lighthouse")
    other = story.with_name("teaser.yaml")
    other.write_text("shotflow: 1\nscenes:\n  - id: teaser\n    shots:\n      - {id: one, prompt: a lighthouse}\n")
    assert cli("render", story).code == 0
    frames = sorted(p.relative_to(story.parent) for p in (story.parent / "renders").rglob("*.png"))
    assert cli("render", other).code == 0
    assert cli("render", story).out.startswith("nothing to do")  # its no-op record is its own
    after = sorted(p.relative_to(story.parent) for p in (story.parent / "renders").rglob("*.png"))
    assert set(frames) <= set(after) and (story.parent / "renders" / "teaser" / "one.png").is_file()
    state = story.parent / ".shotflow"
    assert (state / "storyboard.status.json").is_file() and (state / "teaser.status.json").is_file()
    assert (state / "storyboard.last-run.json").is_file() and (state / "teaser.last-run.json").is_file()
