"""shotflow render --backend runware, end to end: the CLI in a real process against the
Runware emulator over a loopback socket."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shotflow.testing import Emulator, Fault

KEY = "sk-test-0123456789abcdef"


@pytest.fixture(params=["lenient", "strict"])
def strict(request) -> bool:
    """Every end-to-end test runs against both modes of the emulator."""
    return request.param == "strict"


def shotflow(*args, emu: Emulator, key: str = KEY, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("SHOTFLOW_CACHE", "RUNWARE_API_KEY")}
    env.update(RUNWARE_API_URL=emu.url, RUNWARE_API_KEY=key)
    return subprocess.run(
        [sys.executable, "-m", "shotflow", *map(str, args)], env=env, capture_output=True, text=True, timeout=timeout
    )


def fast(story: Path, **settings) -> None:
    """Short retry and poll delays for tests (the storyboard's runware: section)."""
    values = {"retry_base": 0.01, "poll_initial": 0.05, "poll_max": 0.2, **settings}
    body = "".join(f"\n  {k}: {json.dumps(v)}" for k, v in values.items())
    story.write_text(story.read_text() + f"\nrunware:{body}\n")


def events(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("name,nodes,uploads", [("lighthouse", 12, 2), ("heist", 8, 3)])
def test_every_example_renders_on_runware_and_nothing_is_paid_twice(example, strict, name, nodes, uploads):
    story = example(name)
    fast(story)
    with Emulator(api_key=KEY, strict=strict) as emu:
        planned = json.loads(shotflow("plan", story, "--json", "--backend", "runware", emu=emu).stdout)
        first = shotflow("render", story, "--backend", "runware", "--json", emu=emu)
        assert first.returncode == 0, first.stderr
        summary = events(first.stdout)[-1]
        assert summary["rendered"] == nodes and summary["failed"] == 0
        assert emu.stats.billed == nodes  # one task a node, each billed once
        assert summary["cost"] == pytest.approx(planned["cost"]) == pytest.approx(emu.stats.cost)
        # local reference files are uploaded once each; upstream frames go by their imageUUID
        assert emu.stats.uploads == uploads
        lock = json.loads(story.with_suffix(".lock").read_text())
        generated = {o["remote_id"] for entry in lock["nodes"].values() for o in entry["outputs"]}
        sent = {
            ref if isinstance(ref, str) else ref["image"]
            for body in emu.stats.bodies
            if body.get("taskType") == "imageInference"
            for ref in (body.get("inputs") or {}).get("referenceImages", [])
        }
        assert sent & generated  # later shots reference earlier frames by UUID
        assert all(
            entry["backend"] == "runware" and entry["outputs"][0]["seed"] is not None
            for entry in lock["nodes"].values()
        )
        # and again: nothing is generated or paid for
        again = shotflow("render", story, "--backend", "runware", "--json", emu=emu)
        assert again.returncode == 0 and events(again.stdout)[-1]["cached"] == nodes
        assert emu.stats.billed == nodes


@pytest.mark.parametrize("delivery", ["async", "sync"])
def test_both_deliveries_end_to_end(example, strict, delivery):
    story = example("heist")
    fast(story, delivery=delivery)
    with Emulator(api_key=KEY, latency=0.1, strict=strict) as emu:
        result = shotflow("render", story, "--backend", "runware", "--json", emu=emu)
        assert result.returncode == 0, result.stderr
        polls = emu.stats.tasks.get("getResponse", 0)
        assert polls >= 1 if delivery == "async" else polls == 0
        assert emu.stats.billed == 8
        sent = {body["deliveryMethod"] for body in emu.stats.bodies if body["taskType"] == "imageInference"}
        assert sent == {delivery}


def test_a_rejected_key_is_one_clear_line_and_nothing_else(example, strict):
    story = example("lighthouse")
    fast(story)
    with Emulator(api_key="the-right-key", strict=strict) as emu:
        result = shotflow("render", story, "--backend", "runware", emu=emu, key="a-wrong-key")
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert errors == ["error: Runware rejected the API key (401): check RUNWARE_API_KEY; nothing was generated"]
    assert "Traceback" not in result.stdout + result.stderr
    assert "a-wrong-key" not in result.stdout + result.stderr


def test_insufficient_balance_is_one_clear_line_and_keeps_what_was_paid(example, strict):
    story = example("lighthouse")
    fast(story)
    with Emulator(api_key=KEY, balance=0.17, strict=strict) as emu:  # enough for two single-take Gen-4 frames
        result = shotflow("render", story, "--backend", "runware", "--jobs", "1", emu=emu)
        billed = emu.stats.billed
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: insufficient Runware balance (402)")
    assert f"the {billed} shot(s) rendered before it are kept" in errors[0]
    lock = json.loads(story.with_suffix(".lock").read_text())
    assert len(lock["nodes"]) == billed >= 1


def test_a_missing_key_is_one_clear_line(example, tmp_path):
    story = example("lighthouse")
    env = {k: v for k, v in os.environ.items() if k != "RUNWARE_API_KEY"}
    result = subprocess.run(
        [sys.executable, "-m", "shotflow", "render", str(story), "--backend", "runware"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "no Runware API key" in lines[0] and "RUNWARE_API_KEY" in lines[0]
    assert result.stdout == ""  # said before anything else: no "rendering 12 of 12 nodes" first
    assert not (story.parent / "renders").exists()


def test_the_key_from_dotenv_and_it_appears_nowhere(example, strict):
    """Point 8: an API error that echoes the key, in any field, shows it nowhere."""
    story = example("heist")
    fast(story)
    (story.parent / ".env").write_text(f'RUNWARE_API_KEY="{KEY}"\n')
    with Emulator(api_key=KEY, strict=strict) as emu:
        env = {k: v for k, v in os.environ.items() if k not in ("RUNWARE_API_KEY", "SHOTFLOW_CACHE")}
        env["RUNWARE_API_URL"] = emu.url
        outputs = []
        for args in (
            ["render", story, "--backend", "runware", "--json"],
            ["plan", story, "--backend", "runware"],
            ["board", story],
            ["export", story, "--csv", story.parent / "shots.csv"],
        ):
            done = subprocess.run(
                [sys.executable, "-m", "shotflow", *map(str, args)],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert done.returncode == 0, done.stderr
            outputs.append(done.stdout + done.stderr)
        emu.inject(Fault.status(500), times=None)
        story.write_text(story.read_text().replace("rain on the cobbles", "rain on the roofs"))
        failing = subprocess.run(
            [sys.executable, "-m", "shotflow", "render", str(story), "--backend", "runware"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        outputs.append(failing.stdout + failing.stderr)
        assert failing.returncode == 1
        emu.clear_faults()  # a task error that echoes the key in every field it has
        emu.inject(
            Fault.task_error(
                "roofs",
                f"refused for key {KEY}",
                code=f"bad{KEY}",
                parameter=["positivePrompt", KEY],
                extra={"detail": {"apiKey": KEY}},
            ),
            times=None,
        )
        for args in (
            ["render", story, "--backend", "runware", "--json"],
            ["render", story, "--backend", "runware"],
            ["board", story],
        ):
            done = subprocess.run(
                [sys.executable, "-m", "shotflow", *map(str, args)],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            outputs.append(done.stdout + done.stderr)
        assert "refused for key ***" in outputs[-3] and '"status": "failed"' in outputs[-3]
    assert not any(KEY in text for text in outputs)
    for path in story.parent.rglob("*"):
        if path.is_file() and path.name != ".env":
            assert KEY.encode() not in path.read_bytes(), path


def test_a_killed_render_resumes_by_polling_and_pays_nothing_twice(example, strict):
    """SIGKILL in the middle of a render on Runware, then the same command again."""
    story = example("lighthouse")
    fast(story)
    with Emulator(api_key=KEY, latency=0.8, strict=strict) as emu:
        env = {k: v for k, v in os.environ.items() if k not in ("SHOTFLOW_CACHE",)}
        env.update(RUNWARE_API_URL=emu.url, RUNWARE_API_KEY=KEY)
        proc = subprocess.Popen(
            [sys.executable, "-m", "shotflow", "render", str(story), "--backend", "runware", "--json", "--jobs", "4"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        journal = story.parent / ".shotflow" / "journal"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            sent = list(journal.glob("*.json")) if journal.is_dir() else []
            if len(sent) >= 2 and emu.stats.billed >= 1:
                break
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        in_flight = len(list(journal.glob("*.json")))
        assert in_flight >= 1  # tasks were sent and not yet recorded when it died
        time.sleep(1.0)  # let the emulator finish (and bill) what the dead run had sent
        billed_before = emu.stats.billed
        again = subprocess.run(
            [sys.executable, "-m", "shotflow", "render", str(story), "--backend", "runware", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert again.returncode == 0, again.stderr
        summary = events(again.stdout)[-1]
        assert summary["failed"] == 0 and summary["rendered"] + summary["cached"] == 12
        assert emu.stats.billed == 12  # every node paid exactly once, across both runs
        assert emu.stats.tasks.get("getResponse", 0) >= 1  # the dead run's tasks were polled
        assert billed_before >= 1
        assert not list(journal.glob("*.json"))  # nothing left pending


def render_env(emu: Emulator, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SHOTFLOW_CACHE", "RUNWARE_API_KEY")}
    env.update(RUNWARE_API_URL=emu.url, RUNWARE_API_KEY=KEY, **more)
    return env


def test_a_model_that_refuses_tags_gets_positions_and_the_next_run_pays_nothing(example, strict):
    """Point 2 end to end: heist's prompts name @tags; the service refuses {image, tag}."""
    story = example("heist")
    fast(story)
    with Emulator(api_key=KEY, strict=strict, refuse_tags=True) as emu:
        first = shotflow("render", story, "--backend", "runware", "--json", emu=emu)
        assert first.returncode == 0, first.stderr
        summary = events(first.stdout)[-1]
        assert summary["rendered"] == 8 and len(summary["notes"]) == 1 and "@tags" in summary["notes"][0]
        assert emu.stats.billed == 8  # a refused task is not billed
        sent = [b for b in emu.stats.bodies if b["taskType"] == "imageInference" and "inputs" in b]
        assert any("the subject of reference" in b["positivePrompt"] for b in sent)
        plain = shotflow("render", story, "--backend", "runware", "--force", "casing/watchers", emu=emu)
        assert plain.returncode == 0 and plain.stdout.count("note: Runware refused tagged") == 1
        again = shotflow("render", story, "--backend", "runware", "--json", emu=emu)
        assert again.returncode == 0 and events(again.stdout)[-1]["cached"] == 8
        assert emu.stats.billed == 9  # the one forced take


def test_a_journal_entry_left_after_recording_does_not_fake_a_new_take(example, strict):
    """Point 7: a run killed between recording a task's images and clearing its journal entry
    must not make a later --force hand back the old frames as new ("1 rendered, $0.08", nothing billed)."""
    story = example("lighthouse")
    fast(story)
    with Emulator(api_key=KEY, strict=strict) as emu:
        assert shotflow("render", story, "--backend", "runware", emu=emu).returncode == 0
        lock = json.loads(story.with_suffix(".lock").read_text())
        entry = lock["nodes"]["arrival/wide"]
        journal = story.parent / ".shotflow" / "journal"
        journal.mkdir(exist_ok=True)
        (journal / f"{entry['key']}.json").write_text(
            json.dumps(
                {"key": entry["key"], "task_uuid": entry["task_id"], "model": entry["model"], "delivery": "async"}
            )
        )
        billed = emu.stats.billed
        forced = shotflow("render", story, "--backend", "runware", "--force", "arrival/wide", "--json", emu=emu)
        assert forced.returncode == 0, forced.stderr
        assert emu.stats.billed == billed + 1  # really generated, and paid for once
        summary = events(forced.stdout)[-1]
        assert summary["rendered"] == 1 and summary["cost"] == pytest.approx(0.08)
        after = json.loads(story.with_suffix(".lock").read_text())["nodes"]["arrival/wide"]
        assert after["task_id"] != entry["task_id"] and after["roll"] == entry["roll"] + 1
        assert not list(journal.glob("*.json"))


def test_bit_rot_is_caught_by_locked_verify_and_the_exports(example, strict):
    """Point 9: a flipped byte with its mtime restored."""
    story = example("lighthouse")
    fast(story)
    with Emulator(api_key=KEY, strict=strict) as emu:
        assert shotflow("render", story, "--backend", "runware", emu=emu).returncode == 0
        healthy = shotflow("verify", story, emu=emu)
        assert healthy.returncode == 0 and "all bytes verify" in healthy.stdout
        lock = json.loads(story.with_suffix(".lock").read_text())
        digest = lock["nodes"]["arrival/wide"]["picked"]
        obj = story.parent / ".shotflow" / "objects" / digest[:2] / digest[2:]
        for path in (obj, story.parent / "renders" / "arrival" / "wide.png"):
            st = path.stat()
            path.chmod(0o644)
            data = bytearray(path.read_bytes())
            data[len(data) // 2] ^= 0x01
            path.write_bytes(bytes(data))
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
        board = shotflow("board", story, "-o", story.parent / "board.html", emu=emu)
        assert board.returncode == 0
        import base64
        import hashlib

        html = (story.parent / "board.html").read_text()
        embedded = [
            hashlib.sha256(base64.b64decode(chunk.split('"', 1)[0])).hexdigest() for chunk in html.split("base64,")[1:]
        ]
        assert embedded and hashlib.sha256(bytes(data)).hexdigest() not in embedded  # the rotten bytes are not shown
        locked = shotflow("render", story, "--backend", "runware", "--locked", emu=emu)
        assert locked.returncode == 2, locked.stdout + locked.stderr
        assert "arrival/wide" in locked.stderr and "Traceback" not in locked.stderr
        checked = shotflow("verify", story, emu=emu)
        assert checked.returncode == 1 and "arrival/wide" in checked.stdout
        assert emu.stats.billed == 12  # --locked and verify never generate


def test_three_processes_sharing_one_cache_pay_once_per_key(example, strict, tmp_path):
    """Point 6: three copies of a project (same request keys) render at once into one cache:
    every key's lease is raced three ways, and each is paid for once."""
    import shutil

    first = example("lighthouse")
    fast(first)
    stories = [first]
    for name in ("copy", "another"):
        stories.append(tmp_path / name / "storyboard.yaml")
        shutil.copytree(first.parent, stories[-1].parent)
    with Emulator(api_key=KEY, latency=0.3, strict=strict) as emu:
        env = render_env(emu, SHOTFLOW_CACHE=str(tmp_path / "shared-cache"))
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "shotflow", "render", str(story), "--backend", "runware", "--json"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for story in stories
        ]
        outs = [proc.communicate(timeout=180) for proc in procs]
        assert [proc.returncode for proc in procs] == [0, 0, 0], [err for _, err in outs]
        summaries = [events(out)[-1] for out, _ in outs]
        assert emu.stats.billed == 12  # unique keys, not 36
        assert sum(s["rendered"] for s in summaries) == 12
        assert sum(s["cost"] for s in summaries) == pytest.approx(emu.stats.cost)
        locks = [json.loads(story.with_suffix(".lock").read_text())["nodes"] for story in stories]
        picked = [{n: e["picked"] for n, e in lock.items()} for lock in locks]
        assert picked[0] == picked[1] == picked[2]
        assert not list((tmp_path / "shared-cache" / "leases").glob("*.lease"))


def test_a_folder_where_a_record_goes_fails_its_shot_before_anything_is_paid(example):
    """A damaged cache (a folder where a shot's action record is written) would fail the shot
    after paying for it; the shot fails before its task is sent, naming the fix."""
    story = example("lighthouse")
    fast(story)
    with Emulator(api_key=KEY) as emu:
        assert shotflow("render", story, "--backend", "runware", emu=emu).returncode == 0
        billed = emu.stats.billed
        lock = json.loads(story.with_suffix(".lock").read_text())
        node, entry = sorted(lock["nodes"].items())[-1]
        record = story.parent / ".shotflow" / "actions" / entry["key"][:2] / f"{entry['key']}.json"
        record.unlink()
        (record / "x").mkdir(parents=True)
        story.with_suffix(".lock").unlink()  # the lock holds the record too
        again = shotflow("render", story, "--backend", "runware", "--json", emu=emu)
        assert again.returncode == 1, again.stderr
        failed = [e for e in events(again.stdout) if e.get("status") == "failed"]
        assert [e["id"] for e in failed] == [node]
        assert "is a folder where shotflow keeps this shot's action record" in failed[0]["error"]
        assert "rm -r" in failed[0]["error"] and "internal error" not in again.stdout + again.stderr
        assert emu.stats.billed == billed  # nothing sent for it


def test_a_key_in_a_dotenv_git_would_commit_is_warned_of_once(example, tmp_path):
    story = example("heist")
    fast(story)
    (story.parent / ".git").mkdir()  # a git work tree
    (story.parent / ".env").write_text(f"RUNWARE_API_KEY={KEY}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("RUNWARE_API_KEY", "SHOTFLOW_CACHE")}
    env.update(HOME=str(tmp_path / "home"), XDG_CONFIG_HOME=str(tmp_path / "home" / ".config"))
    with Emulator(api_key=KEY) as emu:
        env["RUNWARE_API_URL"] = emu.url

        def render() -> subprocess.CompletedProcess:
            return subprocess.run(
                [sys.executable, "-m", "shotflow", "render", str(story), "--backend", "runware"],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )

        first = render()
        assert first.returncode == 0, first.stderr
        warned = [line for line in first.stderr.splitlines() if line.startswith("warning: the Runware key comes from")]
        assert len(warned) == 1 and "which git does not ignore" in warned[0] and "add .env to .gitignore" in warned[0]
        assert KEY not in first.stdout + first.stderr
        from shotflow.scaffold import _add_ignored

        _add_ignored(story.parent / ".gitignore", print)  # what `shotflow init` writes
        assert ".env" in (story.parent / ".gitignore").read_text().splitlines()
        story.write_text(story.read_text().replace("rain on the cobbles", "rain on the roofs"))
        billed = emu.stats.billed
        again = render()  # something renders: the key is read again
        assert again.returncode == 0 and emu.stats.billed > billed
        assert "warning" not in again.stderr, again.stderr


@pytest.mark.skipif(shutil.which("git") is None, reason="the test commits with git; shotflow never runs it")
def test_a_key_in_a_dotenv_git_tracks_is_never_used(example, tmp_path):
    """It came with the repository: the key of whoever committed it (renders, prompts and
    reference images would go to their account). Refused before anything is sent."""
    story = example("heist")
    fast(story)
    folder = story.parent
    (folder / ".env").write_text(f"RUNWARE_API_KEY={KEY}\n")
    for args in (["init", "-q"], ["add", ".env"], ["commit", "-q", "-m", "their key"]):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=folder, check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("RUNWARE_API_KEY", "SHOTFLOW_CACHE")}
    env.update(HOME=str(tmp_path / "home"), XDG_CONFIG_HOME=str(tmp_path / "home" / ".config"))
    with Emulator(api_key=KEY) as emu:
        env["RUNWARE_API_URL"] = emu.url
        command = [sys.executable, "-m", "shotflow", "render", str(story), "--backend", "runware"]
        refused = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
        assert "which git tracks" in refused.stderr and "RUNWARE_API_KEY" in refused.stderr
        assert KEY not in refused.stdout + refused.stderr and emu.stats.requests == 0
        mine = subprocess.run(command, env={**env, "RUNWARE_API_KEY": KEY}, capture_output=True, text=True, timeout=120)
        assert mine.returncode == 0, mine.stderr  # the environment's key is the user's own: used
        assert emu.stats.billed > 0
