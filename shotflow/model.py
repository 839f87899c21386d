"""The storyboard as typed values, after loading and expansion.

    Project
    ├── nodes: {id: NodeSpec}        story order: sheets, then scenes' shots
    │     NodeSpec ── refs: (RefSpec(kind=NODE|FILE|URL, target, tag), ...)
    └── scenes: (SceneInfo(id, title, location, shots=(node ids...)), ...)

Node ids: ``scene/shot`` for shots, ``character:NAME`` and ``location:NAME`` for
sheets. Everything here is frozen: later stages derive, they never mutate.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import Mark


class NodeKind(enum.Enum):
    SHOT = "shot"
    CHARACTER = "character"
    LOCATION = "location"


class RefKind(enum.Enum):
    NODE = "node"  # another shot or sheet of this storyboard
    FILE = "file"  # a local image file (absolute path)
    URL = "url"  # an http(s) URL


@dataclass(frozen=True, slots=True)
class RefSpec:
    kind: RefKind
    target: str  # node id, absolute file path, or URL
    tag: str | None
    label: str  # as shown to users: node id, path relative to the storyboard, or URL
    via: str  # "location", "cast" or "refs": why the reference is there


@dataclass(frozen=True, slots=True)
class Camera:
    framing: str | None = None
    angle: str | None = None
    lens: str | None = None
    move: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"framing": self.framing, "angle": self.angle, "lens": self.lens, "move": self.move}


@dataclass(frozen=True)
class NodeSpec:
    """One shot or sheet, fully expanded: what to generate and what to show."""

    id: str
    kind: NodeKind
    name: str  # the id inside its scene (or the character / location name)
    scene: str | None
    story_index: int
    where: Mark
    model: str
    width: int
    height: int
    output_format: str
    output_quality: int
    takes: int
    pick: int
    prompt: str
    refs: tuple[RefSpec, ...]
    tagged: bool
    template: str | None = None
    safety: dict[str, Any] | None = None
    provider_settings: dict[str, Any] | None = None
    options: dict[str, Any] = field(default_factory=dict)  # ttl, webhookURL, uploadEndpoint: not in the key
    title: str | None = None
    camera: Camera = Camera()
    duration: float = 2.0
    dialogue: str | None = None
    action: str | None = None
    notes: str | None = None

    @property
    def size(self) -> str:
        return f"{self.width}x{self.height}"


@dataclass(frozen=True)
class SceneInfo:
    id: str
    title: str | None
    location: str | None
    description: str | None
    notes: str | None
    shots: tuple[str, ...]


@dataclass(frozen=True)
class Project:
    """A storyboard, loaded, checked and expanded."""

    path: Path  # the storyboard file
    title: str | None
    backend: str
    style: str | None
    settings: dict[str, Any]  # the runware: section
    nodes: dict[str, NodeSpec]
    scenes: tuple[SceneInfo, ...]
    inputs: tuple[Path, ...]  # every file read: YAML sources, templates, reference files
    remote: str | None = None  # the storyboard's default team cache (a URL, never credentials)

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def lock_path(self) -> Path:
        return self.path.with_suffix(".lock")

    @property
    def renders_dir(self) -> Path:
        return self.root / "renders"


EXTENSIONS = {"PNG": "png", "JPG": "jpg", "WEBP": "webp"}


def frame_paths(project: Project, spec: NodeSpec) -> list[Path]:
    """Where a node's takes are written: ``renders/SCENE/SHOT.png``, ``SHOT-take2.png``,
    ``renders/characters/NAME.png``, ``renders/locations/NAME.png``."""
    ext = EXTENSIONS[spec.output_format]
    if spec.kind is NodeKind.SHOT:
        folder = project.renders_dir / str(spec.scene)
    else:
        folder = project.renders_dir / ("characters" if spec.kind is NodeKind.CHARACTER else "locations")
    if spec.takes == 1:
        return [folder / f"{spec.name}.{ext}"]
    return [folder / f"{spec.name}-take{i}.{ext}" for i in range(1, spec.takes + 1)]
