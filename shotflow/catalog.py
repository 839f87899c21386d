"""The model catalog: one JSON Schema per model in ``schemas/models/``.

Each file is the JSON Schema of one ``imageInference`` task for that model, with an
``x-shotflow`` block that the rest of shotflow reads::

    {"model": "runway:4@1", "price_per_image": 0.08,
     "references": {"min": 0, "max": 3}, "prompt": {"min": 1, "max": 1000},
     "sizes": {"1080p-16:9": [1920, 1080], ...}}

Adding a model means adding a file; nothing else names a model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from ._resources import data_dir
from .errors import ConfigError, did_you_mean


@dataclass(frozen=True)
class ModelSpec:
    id: str
    name: str
    price_per_image: float
    min_refs: int
    max_refs: int
    prompt_min: int
    prompt_max: int
    sizes: dict[str, tuple[int, int]]
    path: Path
    schema: dict[str, Any] = field(repr=False, compare=False)

    def size_named(self, name: str) -> tuple[int, int] | None:
        """``1K-16:9`` or ``1360x768`` to (width, height); None when the model lacks it."""
        if name in self.sizes:
            return self.sizes[name]
        w, sep, h = name.lower().partition("x")
        if sep and w.isdigit() and h.isdigit() and (int(w), int(h)) in self.sizes.values():
            return int(w), int(h)
        return None

    def size_name(self, width: int, height: int) -> str | None:
        for name, wh in self.sizes.items():
            if wh == (width, height):
                return name
        return None

    def validator(self):
        """A jsonschema validator for this model's task (imports jsonschema)."""
        return _validator(self.id)


def _read(path: Path) -> ModelSpec:
    schema = json.loads(path.read_text(encoding="utf-8"))
    meta = schema["x-shotflow"]
    return ModelSpec(
        id=meta["model"],
        name=meta["name"],
        price_per_image=float(meta["price_per_image"]),
        min_refs=int(meta["references"]["min"]),
        max_refs=int(meta["references"]["max"]),
        prompt_min=int(meta["prompt"]["min"]),
        prompt_max=int(meta["prompt"]["max"]),
        sizes={name: (int(w), int(h)) for name, (w, h) in meta["sizes"].items()},
        path=path,
        schema=schema,
    )


@cache
def models() -> dict[str, ModelSpec]:
    """Every model in the catalog, by id."""
    specs = (_read(p) for p in sorted((data_dir("schemas") / "models").glob("*.json")))
    return {spec.id: spec for spec in specs}


def get(model_id: str) -> ModelSpec:
    try:
        return models()[model_id]
    except KeyError:
        raise ConfigError(f"unknown model '{model_id}'", hint=unknown_model_hint(model_id)) from None


def unknown_model_hint(model_id: str) -> str:
    """The closest model (by id, or by name: 'gen4 turbo') and the list of the catalog's models."""
    catalog = models()
    listed = "models: " + ", ".join(f"{spec.id} ({spec.name})" for spec in catalog.values())
    close = did_you_mean(str(model_id), catalog)
    if close is None:
        by_name = {spec.name.lower().replace("-", ""): spec.id for spec in catalog.values()}
        import difflib

        near = difflib.get_close_matches(str(model_id).lower().replace("-", ""), list(by_name), n=1, cutoff=0.5)
        close = f"did you mean '{by_name[near[0]]}'?" if near else None
    return f"{close} {listed}" if close else listed


@cache
def _validator(model_id: str):
    import jsonschema

    schema = models()[model_id].schema
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def task_errors(task: dict[str, Any], *, by_shape: bool = False) -> list[str]:
    """Every way ``task`` breaks its model's schema, as readable lines (empty when valid).

    ``by_shape``: a task that passes is remembered by its shape, everything but the text of
    ``positivePrompt``, and a task of a shape that passed passes again without jsonschema
    (3 ms a task) when its prompt's length is within the schema's bounds. Only for tasks
    whose other fields say all there is to say (the Runware backend's check: a fixed task
    UUID, placeholder reference UUIDs), and only while the prompt's schema is a plain string
    with length bounds.
    """
    model_id = task.get("model")
    if model_id not in models():
        return [f"model: unknown model {model_id!r}; known: {', '.join(models())}"]
    shape = _shape(model_id, task) if by_shape else None
    if shape is not None and _shape_passed(model_id, shape):
        return []
    messages = []
    for error in sorted(_validator(model_id).iter_errors(task), key=lambda e: list(e.absolute_path)):
        path = ".".join(str(p) for p in error.absolute_path) or "(task)"
        messages.append(f"{path}: {_short(error)}")
    if shape is not None and not messages:
        from . import _usercache

        _passed.add(shape)
        _usercache.remember("task-shape", _shape_key(model_id, shape))
    return messages


def _shape_passed(model_id: str, shape: str) -> bool:
    """A task of this shape passed this model's schema before: in this process, or in an
    earlier one of this user (the user cache's authenticated markers; the next run's first
    tasks then go out without importing jsonschema, ~0.1 s)."""
    if shape in _passed:
        return True
    from . import _usercache

    if _usercache.has("task-shape", _shape_key(model_id, shape)):
        _passed.add(shape)
        return True
    return False


def _shape_key(model_id: str, shape: str) -> str:
    import hashlib

    return hashlib.sha256(_schema_digest(model_id).encode() + shape.encode()).hexdigest()


@cache
def _schema_digest(model_id: str) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(models()[model_id].schema, sort_keys=True).encode()).hexdigest()


_passed: set[str] = set()  # shapes of tasks that passed (task_errors by_shape)
_PLAIN_STRING = {"type", "minLength", "maxLength", "description"}


def _shape(model_id: str, task: dict[str, Any]) -> str | None:
    prompt = task.get("positivePrompt")
    rule = models()[model_id].schema.get("properties", {}).get("positivePrompt")
    if (
        not isinstance(prompt, str)
        or not isinstance(rule, dict)
        or set(rule) - _PLAIN_STRING
        or rule.get("type", "string") != "string"
    ):
        return None
    if not rule.get("minLength", 0) <= len(prompt) <= rule.get("maxLength", len(prompt)):
        return None  # the full check says how it is wrong
    try:
        return json.dumps({**task, "positivePrompt": None}, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError):
        return None


def _short(error) -> str:
    if error.validator == "anyOf" and error.schema_path and "then" in error.schema_path:
        size = f"{error.instance.get('width')}×{error.instance.get('height')}"
        return f"width × height {size} is not one of the model's sizes"
    if error.validator == "anyOf" and "image-to-image" in str(error.schema.get("description", "")):
        return "this model needs at least one reference image"
    if error.validator == "not":
        return "referenceImages given both at the top level and under inputs"
    message = error.message
    return message if len(message) < 200 else message[:197] + "..."
