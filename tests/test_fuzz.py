"""Fuzzing: mutated example storyboards end in exit 0 or 2, never a traceback.

The mutator is ``bench/fuzz.py``'s (hostile YAML, values, paths, Jinja, --set, damage);
here a few hundred cases run in this process as ``validate`` and ``plan`` would. The long
run (10 000 cases, each watched for time and memory) is ``python bench/fuzz.py``.
``tests/fuzz_corpus/`` keeps every case that ever failed (each ``.json`` says which file
of which example it replaces, its ``--set`` pairs, and what it did before the fix).
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(__file__).resolve().parent / "fuzz_corpus"
CASES = 300
SEED = 20261202


@pytest.fixture(scope="module")
def fuzz():
    spec = importlib.util.spec_from_file_location("shotflow_bench_fuzz", ROOT / "bench" / "fuzz.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def projects(fuzz, tmp_path_factory):
    base = tmp_path_factory.mktemp("fuzz")
    return {name: fuzz.prepare(name, base) for name in fuzz.PROJECTS}


def test_a_few_hundred_mutated_storyboards_end_in_0_or_2(fuzz, projects):
    outcomes: dict[int, int] = {}
    bad = []
    for index in range(CASES):
        case = fuzz.make_case(SEED, index)
        started = time.perf_counter()
        code, detail = fuzz.run_case(case, projects[case["project"]])
        elapsed = time.perf_counter() - started
        outcomes[code] = outcomes.get(code, 0) + 1
        if code not in (0, 2) or "Traceback" in detail or elapsed > 10:
            bad.append((index, code, round(elapsed, 1), detail[-400:]))
    assert not bad, f"{len(bad)} of {CASES} cases failed (seed {SEED}); first: {bad[0]}"
    assert outcomes.get(2, 0) > CASES // 2  # the mutations do reach the checks


def _corpus():
    return sorted(CORPUS.glob("*.json"))


@pytest.mark.parametrize("meta", _corpus(), ids=lambda p: p.stem)
def test_every_case_that_ever_failed_ends_in_0_or_2(fuzz, projects, meta):
    info = json.loads(meta.read_text())
    data = next(p for p in CORPUS.glob(meta.stem + ".*") if p.suffix != ".json").read_bytes()
    case = {"project": meta.stem.split("-")[0], "file": info["file"], "data": data, "sets": info["sets"]}
    started = time.perf_counter()
    code, detail = fuzz.run_case(case, projects[case["project"]])
    assert code in (0, 2), detail
    assert "Traceback" not in detail
    assert time.perf_counter() - started < 10
