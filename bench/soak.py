"""Soak: pay once through kills, 429s, dropped connections and a lost answer.

    python bench/soak.py [--kills 20] [--latency 0.4] [--seed 1] [--json out.json]

On the **strict** Runware emulator (Runware's documented behaviour, not shotflow's), with random
faults armed for the whole run — 429 with Retry-After on 6 % of requests, a dropped connection
(before the tasks are accepted) on 4 %, and one lost answer (a submission accepted, billed, and
its connection dropped) — shotflow renders copies of the examples with async delivery
(the default):

1. **kills**: ``shotflow render`` is started and, once a task is in flight (a journal entry
   exists), SIGKILLed after a random 0-1.2 s; again and again, ``--kills`` times, on
   lighthouse, heist, then fresh copies of them (each with its own cache) as work runs out.
   Then each project is rendered to the end.
   Checked: the images billed equal the images the lock files hold (nothing paid twice, no
   paid image lost), and every frame in every lock is present and hashes to its name
   (``shotflow verify``, which trusts no stat index).
2. **two processes, one cache**: two copies of lighthouse share ``SHOTFLOW_CACHE`` and
   render at the same time. Checked: tasks billed = unique request keys.

Exit status 1 when a check fails. ``tests/test_soak.py`` runs it in CI.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
KEY = "soak-test-key"


def _env(emu, **more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SHOTFLOW_CACHE", "RUNWARE_API_KEY")}
    env.update(RUNWARE_API_URL=emu.url, RUNWARE_API_KEY=KEY, **more)
    return env


def _copy(example: str, where: Path) -> Path:
    shutil.copytree(ROOT / "examples" / example, where, ignore=shutil.ignore_patterns("renders", ".shotflow", "*.lock"))
    story = where / "storyboard.yaml"
    # short retry pauses for the faults; everything else as a user has it (async delivery)
    story.write_text(story.read_text() + "\nrunware:\n  retry_base: 0.05\n")
    return story


def _render(story: Path, env: dict[str, str], *more: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shotflow",
            "render",
            str(story),
            "--backend",
            "runware",
            "--jobs",
            "2",
            "--json",
            *more,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _images_in_lock(story: Path) -> tuple[int, set[str], list[str]]:
    """(images the lock holds, their request keys, problems with their objects)."""
    import hashlib

    lock = json.loads(story.with_suffix(".lock").read_text())["nodes"]
    images, keys, problems = 0, set(), []
    objects = story.parent / ".shotflow" / "objects"
    for node, entry in lock.items():
        keys.add(entry["key"])
        for output in entry["outputs"]:
            images += 1
            path = objects / output["sha256"][:2] / output["sha256"][2:]
            if not path.is_file():
                problems.append(f"{node}: object {output['sha256'][:12]} missing")
            elif hashlib.sha256(path.read_bytes()).hexdigest() != output["sha256"]:
                problems.append(f"{node}: object {output['sha256'][:12]} corrupt")
    return images, keys, problems


def _arm(emu, rng_seed: int) -> None:
    from shotflow.testing import Fault

    emu.inject(Fault.drop(after_accept=True), times=1, task_type="imageInference")  # the lost answer
    emu.inject(Fault.status(429, retry_after=0.1), times=None, probability=0.06)
    emu.inject(Fault.drop(), times=None, probability=0.04)


def kills_phase(emu, work: Path, kills: int, rng: random.Random, log) -> dict:
    """Render copies of the examples, killing renders in flight ``kills`` times; then finish them."""
    env = _env(emu)
    projects: list[Path] = []
    done_kills = in_flight = 0
    names = ["lighthouse", "heist"]
    started = time.monotonic()
    while done_kills < kills:
        story = _copy(names[len(projects) % 2], work / f"p{len(projects)}-{names[len(projects) % 2]}")
        projects.append(story)
        journal = story.parent / ".shotflow" / "journal"
        while done_kills < kills:
            proc = _render(story, env)
            deadline = time.monotonic() + 60
            while proc.poll() is None and time.monotonic() < deadline:
                if journal.is_dir() and any(journal.glob("*.json")):
                    break
                time.sleep(0.01)
            if proc.poll() is not None:  # finished (or failed) before a task was in flight
                proc.communicate()
                if proc.returncode == 0:
                    break  # nothing left to render here: next project
                continue
            time.sleep(rng.uniform(0.0, 1.2))
            pending = len(list(journal.glob("*.json")))
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
            if proc.returncode == -signal.SIGKILL:
                done_kills += 1
                in_flight += pending > 0
                log(f"kill {done_kills}: {story.parent.name}, {pending} task(s) in the journal")
    finals = {}
    for story in projects:
        for attempt in range(3):
            out, err = _render(story, env).communicate(timeout=300)
            summary = [json.loads(line) for line in out.splitlines() if line.startswith("{")][-1:]
            if summary and summary[0].get("failed") == 0 and summary[0].get("skipped") == 0:
                finals[story.parent.name] = summary[0]
                break
            log(f"{story.parent.name}: resume attempt {attempt + 1} did not finish: {err.strip()[-300:]}")
    images = 0
    keys: set[str] = set()
    problems: list[str] = []
    verified = 0
    for story in projects:
        count, project_keys, bad = _images_in_lock(story)
        images += count
        keys |= project_keys
        problems += [f"{story.parent.name}: {p}" for p in bad]
        check = subprocess.run(
            [sys.executable, "-m", "shotflow", "verify", str(story)], env=env, capture_output=True, text=True
        )
        verified += check.returncode == 0
        if check.returncode != 0:
            problems.append(f"{story.parent.name}: shotflow verify: {check.stdout.strip()[-300:]}")
    stats = emu.stats
    return {
        "kills": done_kills,
        "kills_with_tasks_in_flight": in_flight,
        "projects": len(projects),
        "projects_finished": len(finals),
        "projects_verified": verified,
        "images_needed": images,
        "images_billed": stats.images,
        "tasks_billed": stats.billed,
        "requests": stats.requests,
        "faults_fired": stats.faults,
        "throttled": stats.throttled,
        "problems": problems,
        "seconds": round(time.monotonic() - started, 1),
    }


def shared_cache_phase(emu, work: Path) -> dict:
    """Two processes, two copies of one project, one cache, at the same time."""
    cache = work / "shared-cache"
    stories = [_copy("lighthouse", work / f"shared-{i}") for i in range(2)]
    env = _env(emu, SHOTFLOW_CACHE=str(cache))
    before_tasks, before_images = emu.stats.billed, emu.stats.images
    started = time.monotonic()
    procs = [_render(story, env) for story in stories]
    outs = [proc.communicate(timeout=300) for proc in procs]
    codes = [proc.returncode for proc in procs]
    keys: set[str] = set()
    images = 0
    for story in stories:
        lock = json.loads(story.with_suffix(".lock").read_text())["nodes"]
        keys |= {entry["key"] for entry in lock.values()}
        images = max(images, sum(len(entry["outputs"]) for entry in lock.values()))
    return {
        "exit_codes": codes,
        "unique_keys": len(keys),
        "tasks_billed": emu.stats.billed - before_tasks,
        "images_needed": images,
        "images_billed": emu.stats.images - before_images,
        "errors": [err.strip()[-300:] for (_, err), code in zip(outs, codes, strict=True) if code != 0],
        "seconds": round(time.monotonic() - started, 1),
    }


def soak(kills: int = 20, latency: float = 0.4, seed: int = 1, work: Path | None = None, log=print) -> dict:
    from shotflow.testing import Emulator

    rng = random.Random(seed)
    own = work is None
    work = Path(tempfile.mkdtemp(prefix="shotflow-soak-")) if own else work
    try:
        with Emulator(api_key=KEY, latency=latency, strict=True, retry_after=0.1, seed=seed) as emu:
            _arm(emu, seed)
            killed = kills_phase(emu, work, kills, rng, log)
        with Emulator(api_key=KEY, latency=latency, strict=True, retry_after=0.1, seed=seed + 1) as emu:
            _arm(emu, seed + 1)
            shared = shared_cache_phase(emu, work)
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)
    ok = (
        killed["kills"] == kills
        and killed["images_billed"] == killed["images_needed"]
        and not killed["problems"]
        and killed["projects_finished"] == killed["projects"]
        and killed["projects_verified"] == killed["projects"]
        and shared["exit_codes"] == [0, 0]
        and shared["tasks_billed"] == shared["unique_keys"]
        and shared["images_billed"] == shared["images_needed"]
    )
    return {"ok": ok, "kills": killed, "shared_cache": shared}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/soak.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.4, help="seconds per task on the emulator")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here too")
    args = parser.parse_args(argv)
    result = soak(args.kills, args.latency, args.seed, log=lambda line: print(line, file=sys.stderr))
    text = json.dumps(result, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
