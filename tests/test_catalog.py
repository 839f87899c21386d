"""The model catalog: one JSON Schema per model, checked against Runware's own examples."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from shotflow import catalog

SPEC_EXAMPLES = json.loads((Path(__file__).parent / "data/runware_spec_examples.json").read_text())


def test_both_models_are_in_the_catalog_with_prices_and_sizes():
    models = catalog.models()
    assert set(models) >= {"runway:4@1", "runway:4@2"}
    gen4, turbo = models["runway:4@1"], models["runway:4@2"]
    assert gen4.price_per_image == 0.08 and turbo.price_per_image == 0.02
    assert (gen4.min_refs, gen4.max_refs, turbo.min_refs, turbo.max_refs) == (0, 3, 1, 3)
    assert len(gen4.sizes) == 16 and gen4.sizes["1080p-16:9"] == (1920, 1080) and gen4.sizes["1K-21:9"] == (1808, 768)
    assert gen4.size_named("1360x768") == (1360, 768) and gen4.size_named("1000x1000") is None
    assert gen4.size_name(2112, 912) == "1080p-21:9"


@pytest.mark.parametrize("model,index", [(m, i) for m, items in SPEC_EXAMPLES.items() for i in range(len(items))])
def test_every_example_request_of_the_specs_validates(model, index):
    task = SPEC_EXAMPLES[model][index]
    assert catalog.task_errors(task) == []


def test_the_specs_have_nine_examples():
    # 5 for runway:4@1, 4 for runway:4@2 (the issue said ten; the spec files hold nine)
    assert {m: len(v) for m, v in SPEC_EXAMPLES.items()} == {"runway:4@1": 5, "runway:4@2": 4}


def base(model="runway:4@1", **extra):
    task = {
        "taskType": "imageInference",
        "taskUUID": "399b9ed9-eb64-41a8-b67e-3d40cef5c664",
        "model": model,
        "positivePrompt": "a lighthouse",
        "width": 1360,
        "height": 768,
    }
    task.update(extra)
    return task


@pytest.mark.parametrize(
    "change,needle",
    [
        ({"width": 1000}, "not one of the model's sizes"),
        ({"outputQuality": 10}, "outputQuality: 10 is less than the minimum of 20"),
        ({"outputFormat": "TIFF"}, "outputFormat"),
        ({"numberResults": 21}, "numberResults"),
        ({"positivePrompt": ""}, "positivePrompt"),
        ({"positivePrompt": "x" * 1001}, "positivePrompt"),
        ({"inputs": {"referenceImages": ["a", "b", "c", "d"]}}, "referenceImages"),
        ({"inputs": {"referenceImages": [{"image": "a", "tag": "x"}]}}, "tag"),
        ({"ttl": 30}, "ttl"),
        ({"deliveryMethod": "later"}, "deliveryMethod"),
        (
            {"providerSettings": {"runway": {"contentModeration": {"publicFigureThreshold": "high"}}}},
            "publicFigureThreshold",
        ),
        ({"taskUUID": "not-a-uuid"}, "taskUUID"),
        ({"seed": 3}, "seed"),
    ],
)
def test_invalid_tasks_are_caught(change, needle):
    errors = catalog.task_errors(base(**change))
    assert errors and any(needle in e for e in errors), errors


@pytest.mark.parametrize(
    "change,needle",
    [
        ({"positivePrompt": ""}, "positivePrompt"),
        ({"positivePrompt": "x" * 1001}, "positivePrompt"),
        ({"width": 1000}, "not one of the model's sizes"),
        ({"inputs": {"referenceImages": [{"image": "a", "tag": "x"}]}}, "tag"),
    ],
)
def test_a_shape_that_passed_passes_again_without_jsonschema_and_nothing_else_does(change, needle, monkeypatch):
    assert catalog.task_errors(base(), by_shape=True) == []
    calls = []
    validator = catalog._validator("runway:4@1")
    monkeypatch.setattr(catalog, "_validator", lambda model: calls.append(model) or validator)
    assert catalog.task_errors(base(positivePrompt="another prompt, same shape"), by_shape=True) == []
    assert calls == []
    errors = catalog.task_errors(base(**change), by_shape=True)
    assert errors and any(needle in e for e in errors), errors
    assert catalog.task_errors(base(positivePrompt="x" * 1001)) != []


def test_width_needs_height():
    task = base()
    del task["height"]
    assert any("height" in e for e in catalog.task_errors(task))


def test_turbo_needs_a_reference_and_accepts_both_forms():
    assert any("at least one reference" in e for e in catalog.task_errors(base("runway:4@2")))
    assert catalog.task_errors(base("runway:4@2", inputs={"referenceImages": [{"image": "uuid", "tag": "mara"}]})) == []
    assert catalog.task_errors(base("runway:4@2", referenceImages=["https://example.com/a.jpg"])) == []


def test_unknown_model_is_named():
    assert catalog.task_errors(base("runway:9@9")) and "unknown model" in catalog.task_errors(base("runway:9@9"))[0]


def test_a_shape_that_passed_in_an_earlier_process_passes_without_importing_jsonschema(tmp_path):
    """The user cache remembers a passed shape (authenticated): the next run's first tasks do
    not import jsonschema. Another user's key (a forged marker) is not trusted."""
    import subprocess
    import sys

    env = {**os.environ, "SHOTFLOW_USER_CACHE": str(tmp_path / "cache"), "SHOTFLOW_USER_KEY": str(tmp_path / "key")}
    probe = (
        "import json, sys; from shotflow import catalog; "
        "task = json.loads(sys.argv[1]); "
        "print(json.dumps([catalog.task_errors(task, by_shape=True), 'jsonschema' in sys.modules]))"
    )

    def run(task, **extra):
        done = subprocess.run(
            [sys.executable, "-c", probe, json.dumps(task)], env={**env, **extra}, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    assert run(base()) == [[], True]  # the first time: checked by jsonschema
    assert run(base(positivePrompt="another prompt, same shape")) == [[], False]  # remembered
    assert run(base(width=1000))[1] is True  # another shape: checked (and refused)
    assert run(base(), SHOTFLOW_USER_KEY=str(tmp_path / "other-key")) == [[], True]  # not this user's marker
