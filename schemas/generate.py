"""Writes schemas/storyboard.schema.json (format 1). Run: python schemas/generate.py

The schema is data; this script only keeps its repetition (shots, sheets and defaults
share the generation fields) in one place.
"""

import json
from pathlib import Path

ID = {
    "type": "string",
    "pattern": "^[a-z0-9][a-z0-9_-]*$",
    "maxLength": 64,
    "x-message": (
        "is not a valid id: use lower-case letters, digits, '-' and '_', starting with a letter or "
        "digit (ids become file names)"
    ),
}
NODE_REF = {
    "type": "string",
    "minLength": 1,
    "description": (
        "a shot 'scene/shot' (or 'shot' in the same scene), 'character:NAME', 'location:NAME', a "
        "file path or an https URL"
    ),
}
TAG = {
    "type": "string",
    "pattern": "^[A-Za-z][A-Za-z0-9]{2,15}$",
    "x-message": "is not a valid tag: 3-16 letters and digits, starting with a letter (the prompt names it as @tag)",
}
TEXT = {"type": "string"}

GENERATION = {
    "model": {
        "type": "string",
        "pattern": "^[a-z0-9_-]+:[0-9]+@[0-9]+$",
        "description": "Runware model id: runway:4@1 (Gen-4 Image) or runway:4@2 (Gen-4 Image Turbo)",
        "examples": ["runway:4@1", "runway:4@2"],
    },
    "size": {
        "type": "string",
        "pattern": "^(([0-9]+[pK]-[0-9]+:[0-9]+)|([0-9]+x[0-9]+))$",
        "description": "a named size from the model's table (1080p-16:9, 1K-1:1, 720p-21:9 ...) or WIDTHxHEIGHT",
        "examples": ["1080p-16:9", "1K-16:9", "1K-1:1", "720p-16:9", "1080p-21:9"],
        "x-message": "is not a size: write a name from the model's table such as 1080p-16:9 or 1K-1:1, or WIDTHxHEIGHT",
    },
    "width": {"type": "integer", "minimum": 1, "description": "with height: one of the model's sizes"},
    "height": {"type": "integer", "minimum": 1, "description": "with width: one of the model's sizes"},
    "output": {
        "type": "object",
        "additionalProperties": False,
        "description": "file format of the frames",
        "properties": {
            "format": {"enum": ["PNG", "JPG", "WEBP"], "default": "PNG"},
            "quality": {"type": "integer", "minimum": 20, "maximum": 99, "default": 95},
        },
    },
    "template": {
        "type": ["string", "null"],
        "description": "prompt template: searched in ./templates, then the built-in ones; null: the prompt as written",
    },
    "takes": {
        "type": "integer",
        "minimum": 1,
        "maximum": 20,
        "default": 1,
        "description": "how many variations to generate (numberResults)",
    },
    "safety": {
        "type": "object",
        "additionalProperties": False,
        "description": "content safety checking",
        "properties": {
            "check_content": {"type": "boolean", "default": False},
            "mode": {"enum": ["none", "fast"], "default": "none"},
        },
    },
    "ttl": {
        "type": "integer",
        "minimum": 60,
        "description": "seconds generated URLs stay available (Runware outputType URL)",
    },
    "provider_settings": {
        "type": "object",
        "additionalProperties": False,
        "description": "settings of the model's provider",
        "properties": {
            "runway": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "public_figure_threshold": {
                        "enum": ["auto", "low"],
                        "default": "auto",
                        "description": "public figure filtering strictness",
                    }
                },
            }
        },
    },
    "webhook_url": {"type": "string", "pattern": "^https?://", "description": "Runware POSTs each finished image here"},
    "upload_endpoint": {
        "type": "string",
        "pattern": "^https?://",
        "description": "Runware PUTs each generated file here (e.g. a presigned S3 URL)",
    },
}
CAMERA = {
    "type": "object",
    "additionalProperties": False,
    "description": "camera notes; the built-in shot.j2 puts them in the prompt",
    "properties": {
        "framing": {
            "type": "string",
            "examples": [
                "extreme wide",
                "wide",
                "full",
                "medium",
                "medium close-up",
                "close-up",
                "extreme close-up",
                "over the shoulder",
                "insert",
            ],
        },
        "angle": {"type": "string", "examples": ["eye level", "low angle", "high angle", "bird's eye", "dutch angle"]},
        "lens": {"type": ["string", "number"], "examples": ["24mm", "35mm", "50mm", "85mm"]},
        "move": {"type": "string", "examples": ["static", "pan left", "tilt up", "dolly in", "handheld", "crane up"]},
    },
}
REF_OBJECT = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "shot": NODE_REF,
        "file": {"type": "string", "minLength": 1},
        "url": {"type": "string", "pattern": "^https?://"},
        "tag": TAG,
    },
    "oneOf": [{"required": ["shot"]}, {"required": ["file"]}, {"required": ["url"]}],
    "x-message": "a reference object names exactly one of shot, file or url (and optionally a tag)",
    "x-message-type": (
        "is not a reference: write a shot id, a file path or a URL as text, or {shot|file|url: …, tag: …}"
    ),
}
REFS = {
    "type": "array",
    "items": {"if": {"type": "string"}, "then": NODE_REF, "else": REF_OBJECT},
    "description": (
        "reference images after the location and cast: shots, files or URLs, as strings or {shot|file|url, tag}"
    ),
}
PICK = {"type": "integer", "minimum": 1, "description": "which take feeds downstream shots and the board (default 1)"}
REVIEW = {
    "type": "object",
    "additionalProperties": False,
    "description": (
        "the director's review (written by the board and `shotflow review apply`); an approved "
        "shot is held: render keeps its frame until --include-approved"
    ),
    "properties": {
        "status": {"enum": ["approved", "changes"], "description": "approved: keep this frame; changes: sent back"},
        "notes": {
            "type": "array",
            "maxItems": 200,
            "items": {"type": "string", "maxLength": 4000},
            "description": "review notes, oldest first",
        },
    },
}
WH = {
    "dependentRequired": {"width": ["height"], "height": ["width"]},
    "not": {"type": "object", "required": ["size", "width"]},
    "x-message-not": "give either size or width + height, not both",
}


def obj(props, required=(), description=None, **extra):
    o = {"type": "object", "additionalProperties": False, "properties": props}
    if required:
        o["required"] = list(required)
    if description:
        o["description"] = description
    o.update(extra)
    return o


BLOCKING = {
    "type": "object",
    "propertyNames": ID,
    "additionalProperties": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "x": {"enum": ["left", "center", "right"], "description": "the side of the frame the character stands on"},
            "facing": {
                "enum": ["left", "right", "camera", "away"],
                "description": "where the character looks: screen left, screen right, into the lens, away from it",
            },
        },
    },
    "description": "where each cast member stands and looks, as the preview panel draws it: "
    "{mara: {x: left, facing: right}}. "
    "Without it figures spread evenly, facing the centre, and keep their side of the frame from shot to shot "
    "within a scene (the 180° rule)",
}

SHOT = obj(
    {
        "id": ID,
        "title": TEXT,
        "prompt": {"type": "string", "description": "Jinja template of the shot's prompt"},
        "cast": {
            "type": "array",
            "items": ID,
            "uniqueItems": True,
            "description": "characters in the shot: context and references",
        },
        "refs": REFS,
        "pick": PICK,
        "camera": CAMERA,
        "blocking": BLOCKING,
        "drop_refs": {
            "type": "array",
            "items": ID,
            "uniqueItems": True,
            "description": "the scene's location or cast members whose image this shot does not send (they "
            "stay in the prompt's context): room under the 3-reference cap for refs",
        },
        "duration": {
            "type": "number",
            "exclusiveMinimum": 0,
            "maximum": 3600,
            "description": "seconds on the animatic (default 2)",
        },
        "dialogue": {"type": "string"},
        "action": {"type": "string"},
        "notes": {"type": "string"},
        "omit": {
            "type": "boolean",
            "default": False,
            "description": (
                "kept in the file, out of the cut and the render (shotflow conform --write sets it for "
                "shots dropped from the edit)"
            ),
        },
        "review": REVIEW,
        **GENERATION,
    },
    required=["id"],
    description="one shot",
    **WH,
)
SHEET = obj(
    {"prompt": TEXT, "refs": REFS, "pick": PICK, "camera": CAMERA, **GENERATION},
    description="a generated reference sheet: a shot like any other",
    **WH,
)
DEFAULTS = obj(
    {
        **GENERATION,
        "camera": CAMERA,
        "pick": PICK,
        "duration": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600},
    },
    description="any generation field of a shot; a shot overrides it",
    **WH,
)
ENTITY = obj(
    {
        "description": TEXT,
        "sheet": SHEET,
        "image": {
            "type": "string",
            "minLength": 1,
            "description": "an existing image: a path relative to this file, or an https URL",
        },
        "tag": TAG,
        "notes": TEXT,
    },
    not_={"required": ["sheet", "image"]},
)
ENTITY["not"] = ENTITY.pop("not_")
ENTITY["x-message-not"] = "give either sheet (generated) or image (existing), not both"
NAMED = {"type": "object", "propertyNames": ID, "additionalProperties": {"$ref": "#/$defs/entity"}}
SCENE = obj(
    {
        "id": ID,
        "title": TEXT,
        "location": ID,
        "description": TEXT,
        "notes": TEXT,
        "shots": {"type": "array", "items": {"$ref": "#/$defs/shot"}},
    },
    required=["id"],
    description="a scene",
)
SCENE_ITEM = {
    "if": {"type": "object", "required": ["include"]},
    "then": obj(
        {"include": {"type": "string", "minLength": 1, "description": "a file whose scenes are spliced in here"}}
    ),
    "else": {"$ref": "#/$defs/scene"},
}
INCLUDE = {
    "type": "array",
    "items": {"type": "string", "minLength": 1},
    "description": "files whose characters, locations and vars are merged in (paths relative to this file)",
}
VARS = {"type": "object", "description": "free values for templates; --set key=value overrides them"}
RUNWARE = obj(
    {
        "delivery": {"enum": ["sync", "async"], "default": "sync"},
        "output_type": {"enum": ["URL", "base64Data", "dataURI"], "default": "base64Data"},
        "timeout": {
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "seconds a task may take, end to end (default 600)",
        },
        "batch": {
            "type": "integer",
            "minimum": 1,
            "maximum": 64,
            "description": "tasks per HTTP request: polls, uploads (default 8)",
        },
        "sync_batch": {
            "type": "integer",
            "minimum": 1,
            "maximum": 64,
            "description": (
                "sync generations per HTTP request (default 1: a shared request answers when its slowest task ends)"
            ),
        },
        "max_in_flight": {
            "type": "integer",
            "minimum": 1,
            "maximum": 64,
            "description": "HTTP requests in flight (default 15; sync generations: 15 × batch / sync_batch)",
        },
        "batch_window": {
            "type": "number",
            "minimum": 0,
            "maximum": 5,
            "description": "seconds to gather ready shots into one request (default 0: those ready at the same moment)",
        },
        "request_timeout": {
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "seconds one HTTP request may take (default 120)",
        },
        "retries": {
            "type": "integer",
            "minimum": 0,
            "maximum": 20,
            "description": "retries of a failed request: 429, 5xx, timeouts, dropped connections (default 4)",
        },
        "retry_base": {
            "type": "number",
            "minimum": 0,
            "description": "first backoff in seconds, doubled each retry, with jitter (default 1)",
        },
        "retry_cap": {"type": "number", "minimum": 0, "description": "longest backoff in seconds (default 30)"},
        "poll_initial": {
            "type": "number",
            "minimum": 0,
            "description": (
                "first getResponse pause while a model's task time is unknown, growing ×1.25 (async "
                "delivery, default 0.05)"
            ),
        },
        "poll_min": {
            "type": "number",
            "minimum": 0,
            "description": "shortest pause between polls of a task (default 0.0025)",
        },
        "poll_max": {
            "type": "number",
            "minimum": 0,
            "description": "longest pause between polls of a task (default 10)",
        },
    },
    description="settings of the runware backend (not part of any request key)",
)

EDITORIAL = obj(
    {
        "fps": {
            "enum": [
                23.976,
                24,
                25,
                29.97,
                30,
                50,
                59.94,
                60,
                "23.976",
                "24000/1001",
                "29.97",
                "30000/1001",
                "59.94",
                "60000/1001",
            ],
            "default": 24,
            "description": (
                "frame rate of timelines and the animatic: 23.976 is 24000/1001, 29.97 30000/1001, 59.94 "
                "60000/1001 (--fps wins)"
            ),
        },
        "start": {
            "type": "string",
            "pattern": "^[0-9]{2}:[0-9]{2}:[0-9]{2}[:;][0-9]{2}$",
            "description": 'timecode of the cut\'s first frame, e.g. "01:00:00:00" (drop-frame at 29.97 and 59.94)',
            "x-message": 'is not a timecode: write HH:MM:SS:FF in quotes, e.g. "01:00:00:00"',
        },
        "shot_code": {
            "type": "string",
            "minLength": 1,
            "maxLength": 64,
            "description": (
                "shot code format: fields {scene_number} {shot_number} (steps of 10), {scene_index} "
                "{shot_index} (1, 2, 3), {scene} {shot} (ids); e.g. {scene_number:03d}_{shot_number:04d} "
                "-> 010_0010"
            ),
            "examples": ["{scene_number:03d}_{shot_number:04d}", "SQ{scene_number:03d}_SH{shot_number:04d}"],
        },
    },
    description="frame rate, start timecode and shot codes of the cut (timelines, EDL, animatic, CSV, board)",
)

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://shotflow.dev/schemas/storyboard.schema.json",
    "title": "shotflow storyboard (format 1)",
    "description": "A storyboard: characters, locations, scenes and shots, rendered by shotflow.",
    "type": "object",
    "additionalProperties": False,
    "required": ["shotflow"],
    "properties": {
        "shotflow": {
            "const": 1,
            "description": "format version",
            "x-message": "is not a format this shotflow reads: write 'shotflow: 1'",
        },
        "title": TEXT,
        "backend": {"enum": ["preview", "runware"], "default": "preview", "description": "the --backend option wins"},
        "defaults": {"$ref": "#/$defs/defaults"},
        "style": TEXT,
        "vars": VARS,
        "include": INCLUDE,
        "characters": NAMED,
        "locations": NAMED,
        "scenes": {"type": "array", "items": {"$ref": "#/$defs/scene_item"}},
        "runware": RUNWARE,
        "editorial": EDITORIAL,
        "remote": {
            "type": "string",
            "pattern": r"^(s3|gs|az)://[^@?#\s]+$|^file:///[^?#\s]*$",
            "x-message": "is not a team cache URL: write s3://bucket/prefix, gs://bucket/prefix, "
            "az://container/prefix or file:///folder (never credentials: they come from the "
            "provider's environment)",
            "description": "the team's default remote cache (--remote, $SHOTFLOW_REMOTE and the user config "
            "win); a URL, never credentials; a bucket is used only under a prefix the user trusts "
            "(trusted_remotes in their config), a folder only inside the project",
        },
    },
    "$defs": {
        "shot": SHOT,
        "sheet": SHEET,
        "defaults": DEFAULTS,
        "entity": ENTITY,
        "scene": SCENE,
        "scene_item": SCENE_ITEM,
        "library": obj(
            {"include": INCLUDE, "characters": NAMED, "locations": NAMED, "vars": VARS},
            description="a file included at the top level: characters, locations and vars",
        ),
        "scenes_file": obj(
            {"scenes": {"type": "array", "items": {"$ref": "#/$defs/scene_item"}}},
            required=["scenes"],
            description="a file included inside scenes:",
        ),
    },
}

if __name__ == "__main__":
    root = Path(__file__).resolve().parent
    (root / "storyboard.schema.json").write_text(json.dumps(SCHEMA, indent=2, ensure_ascii=False) + "\n")
    for name, ref, title in [
        ("library.schema.json", "library", "shotflow include file (characters, locations, vars)"),
        ("scenes.schema.json", "scenes_file", "shotflow include file (scenes)"),
    ]:
        small = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": title,
            "$ref": f"storyboard.schema.json#/$defs/{ref}",
        }
        (root / name).write_text(json.dumps(small, indent=2) + "\n")
