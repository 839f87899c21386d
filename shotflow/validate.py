"""Stage 2: check a loaded file against ``schemas/storyboard.schema.json``.

Every error is mapped back to ``file:line:column`` through the Source's marks, with
the path inside the document, and an unknown key suggests the closest valid one::

    storyboard.yaml:14:9: scenes[0].shots[1]: unknown key 'promt' (did you mean 'prompt'?)
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from typing import Any, Protocol

from . import _usercache
from ._resources import schema_path
from .errors import Mark, SchemaError, did_you_mean


class Source(Protocol):
    """What the check reads of a file ``load`` read (``load.Source``): its data, its bytes'
    hash and the marks of its values. A protocol, so that ``load`` may call ``check``
    without the two importing each other."""

    data: Any
    sha256: str

    def mark(self, path: tuple, key: bool = False) -> Mark: ...


_CHECKER = b"\0ecma-patterns"  # what the check does beyond the schema: in the keys of passed checks


@cache
def _schema_bytes() -> bytes:
    return schema_path().read_bytes()


@cache
def storyboard_schema() -> dict[str, Any]:
    return json.loads(_schema_bytes())


@cache
def _validator(definition: str):

    schema = storyboard_schema()
    if definition != "storyboard":
        schema = {**schema, "$ref": f"#/$defs/{definition}"}
        for key in ("properties", "required", "additionalProperties", "type"):
            schema.pop(key, None)
    return _Validator()(schema)


@cache
def _Validator():
    """Draft 2020-12 with ECMA-262's ``$``: the end of the text. Python's ``$`` also matches
    before a final newline, which would let an id such as ``"wide\\n"`` through."""
    import jsonschema

    def pattern(validator, patrn, instance, schema):
        if validator.is_type(instance, "string") and not _ecma(patrn).search(instance):
            yield jsonschema.ValidationError(f"{instance!r} does not match {patrn!r}")

    return jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": pattern})


@cache
def _ecma(patrn: str):
    import re

    if patrn.endswith("$") and not patrn.endswith("\\$"):
        patrn = patrn[:-1] + "\\Z"
    return re.compile(patrn)


def check(source: Source, definition: str = "storyboard") -> list[SchemaError]:
    """All schema errors of one file (``storyboard``, ``library`` or ``scenes_file``), in file order."""
    data = source.data
    if not isinstance(data, dict):
        return [SchemaError("the file must be a YAML mapping (key: value lines)", where=source.mark(()))]
    if definition == "storyboard" and "shotflow" not in data:
        return [
            SchemaError(
                "not a shotflow storyboard: the first key must be 'shotflow: 1' (the format version)",
                where=source.mark(()),
            )
        ]
    # a file whose exact bytes passed this exact schema before passes again: skip jsonschema
    key = hashlib.sha256(_schema_bytes() + _CHECKER + definition.encode() + source.sha256.encode()).hexdigest()
    cached = bool(source.sha256) and _usercache.user_cache_dir() is not None
    if cached and _usercache.has("valid", key):
        return []
    scenes = data.get("scenes")
    if cached and definition in ("storyboard", "scenes_file") and isinstance(scenes, list) and len(scenes) > 1:
        errors = _check_by_scene(source, definition, data, scenes)
    else:
        errors = _errors(source, _validator(definition), data)
    if not errors and cached:
        _usercache.remember("valid", key)
    unique = {(str(e.where), e.message): e for e in errors}
    return sorted(
        unique.values(), key=lambda e: (e.where.line, e.where.column) if isinstance(e.where, Mark) else (0, 0)
    )


def _check_by_scene(source: Source, definition: str, data: dict, scenes: list) -> list[SchemaError]:
    """The same check, scene by scene: a scene whose exact data passed before is not
    checked again, so editing one prompt of a long storyboard rechecks one scene."""
    errors = _errors(source, _validator(definition), {**data, "scenes": []})
    validator = _validator("scene_item")
    salt = _schema_bytes() + _CHECKER + b"scene_item"
    for index, scene in enumerate(scenes):
        text = json.dumps(scene, sort_keys=True, ensure_ascii=False, default=repr)
        key = hashlib.sha256(salt + text.encode()).hexdigest()
        if _usercache.has("valid", key):
            continue
        found = _errors(source, validator, scene, ("scenes", index))
        if not found:
            _usercache.remember("valid", key)
        errors += found
    return errors


def _errors(source: Source, validator, data, prefix: tuple = ()) -> list[SchemaError]:
    """The schema errors of ``data`` (found at ``prefix`` in the file), translated. A value of
    the wrong type is one error: what else its schema says of it (keys it must have) is noise."""
    errors = list(_leaf_errors(validator.iter_errors(data)))
    mistyped = {tuple(e.absolute_path) for e in errors if e.validator == "type"}
    return [
        _translate(source, e, prefix) for e in errors if e.validator == "type" or tuple(e.absolute_path) not in mistyped
    ]


def _leaf_errors(errors):
    """Descend into if/then/else and $ref wrappers to the error that says what is wrong."""
    for error in errors:
        if error.validator in ("oneOf", "anyOf") and error.context and "x-message" not in error.schema:
            from jsonschema.exceptions import best_match

            yield best_match(error.context)
        else:
            yield error


def _location(path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _translate(source: Source, error, prefix_path: tuple = ()) -> SchemaError:
    path = (*prefix_path, *error.absolute_path)
    where_path = _location(path)
    prefix = f"{where_path}: " if where_path else ""
    schema = error.schema if isinstance(error.schema, dict) else {}
    v, value = error.validator, error.instance
    if v == "additionalProperties":
        allowed = list(schema.get("properties", {}))
        extras = [k for k in value if k not in allowed] if isinstance(value, dict) else []
        key = extras[0] if extras else "?"
        hint = did_you_mean(key, allowed) or ("allowed keys: " + ", ".join(allowed) if allowed else None)
        return SchemaError(f"{prefix}unknown key '{key}'", where=source.mark((*path, key), key=True), hint=hint)
    where = source.mark(path)
    if v == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return SchemaError(f"{prefix}missing required key '{missing}'", where=where)
    if v == "dependentRequired":
        return SchemaError(f"{prefix}width and height go together: give both, or a named size", where=where)
    if v == "not" and "x-message-not" in schema:
        return SchemaError(f"{prefix}{schema['x-message-not']}", where=where)
    if v == "pattern" and path and path[-1] == "model" and isinstance(value, str):
        from .catalog import unknown_model_hint

        return SchemaError(f"{prefix}unknown model '{value}'", where=where, hint=unknown_model_hint(value))
    if "x-message" in schema and v in ("pattern", "const", "oneOf", "anyOf", "maxLength"):
        shown = json.dumps(value) if not isinstance(value, dict) else "this"
        if path and path[-1] == "remote" and isinstance(value, str):  # it may hold a secret: never echoed
            from ._text import redacted_url

            shown = json.dumps(redacted_url(value), ensure_ascii=False)
        return SchemaError(f"{prefix}{shown} {schema['x-message']}".replace("this a ", "a "), where=where)
    if v == "type" and "x-message-type" in schema:
        return SchemaError(f"{prefix}{_show(value) or _kind(value)} {schema['x-message-type']}", where=where)
    if v == "type":
        expected = schema.get("type")
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        article = "an" if str(expected)[0] in "aeiou" else "a"
        shown = "" if value is None else f" {_show(value)}".rstrip()
        return SchemaError(f"{prefix}must be {article} {expected}, got {_kind(value)}{shown}", where=where)
    if v == "enum":
        options = ", ".join(str(o) for o in schema["enum"])
        hint = did_you_mean(str(value), [str(o) for o in schema["enum"]])
        if hint is None and isinstance(value, str):
            upper = [str(o) for o in schema["enum"] if str(o).lower() == value.lower()]
            hint = f"did you mean '{upper[0]}'?" if upper else None
        return SchemaError(f"{prefix}{_show(value)} is not one of {options}", where=where, hint=hint)
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        bound = schema[v]
        words = {
            "minimum": "at least",
            "maximum": "at most",
            "exclusiveMinimum": "more than",
            "exclusiveMaximum": "less than",
        }
        return SchemaError(f"{prefix}must be {words[v]} {bound}, got {_show(value)}", where=where)
    if v == "uniqueItems":
        return SchemaError(f"{prefix}lists the same item twice", where=where)
    if v == "const":
        return SchemaError(f"{prefix}must be {json.dumps(schema['const'])}, got {_show(value)}", where=where)
    if v == "minLength":
        return SchemaError(f"{prefix}must not be empty", where=where)
    return SchemaError(f"{prefix}{error.message}", where=where)


def _kind(value: Any) -> str:
    return {
        dict: "a mapping",
        list: "a list",
        str: "text",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        type(None): "nothing",
    }.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return ""
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) < 60 else text[:57] + '..."'
