"""The soak (bench/soak.py) in CI: 20 SIGKILLs on the strict emulator with random 429s, dropped
connections and a lost answer; then two processes on one cache. About 30 s."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.slow
def test_soak_pays_once_through_kills_faults_and_a_shared_cache(tmp_path):
    spec = importlib.util.spec_from_file_location("soak", BENCH / "soak.py")
    soak = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(soak)
    lines: list[str] = []
    result = soak.soak(kills=20, latency=0.4, seed=7, work=tmp_path, log=lines.append)
    killed, shared = result["kills"], result["shared_cache"]
    assert killed["kills"] == 20 and killed["kills_with_tasks_in_flight"] >= 10, lines
    assert killed["images_billed"] == killed["images_needed"], (killed, lines)  # nothing paid twice or lost
    assert killed["problems"] == [] and killed["projects_verified"] == killed["projects"], killed
    assert killed["faults_fired"] >= 2  # the lost answer and at least one random fault
    assert shared["exit_codes"] == [0, 0], shared["errors"]
    assert shared["tasks_billed"] == shared["unique_keys"] and shared["images_billed"] == shared["images_needed"]
    assert result["ok"]
