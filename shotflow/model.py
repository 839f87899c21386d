"""The storyboard as typed values, after loading and expansion.

    Project
    ├── nodes: {id: NodeSpec}        story order: sheets, then scenes' shots (an omitted
    │                                shot only when a shot in the cut references it)
    │     NodeSpec ── refs: (RefSpec(kind=NODE|FILE|URL, target, tag), ...)
    │              └─ staging: Staging(cast=(Figure(name, colour, x, facing), ...), location, camera)
    ├── entities: (Entity(kind, name, slot, picture), ...)   characters, then locations
    ├── scenes: (SceneInfo(id, title, location, shots=(node ids in the cut...)), ...)
    └── editorial (fps, start, shot code format), codes {shot id: code}, omitted (shot ids)

Node ids: ``scene/shot`` for shots, ``character:NAME`` and ``location:NAME`` for
sheets. Everything here is frozen: later stages derive, they never mutate.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .editorial import Editorial
from .errors import Located


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


class ReviewStatus(enum.Enum):
    APPROVED = "approved"  # keep this frame: render holds it when its key changes
    CHANGES = "changes"  # sent back: it renders like any shot


@dataclass(frozen=True, slots=True)
class Review:
    """A shot's ``review:`` as written by the board or ``shotflow review apply``."""

    status: ReviewStatus | None = None
    notes: tuple[str, ...] = ()

    @property
    def approved(self) -> bool:
        return self.status is ReviewStatus.APPROVED


@dataclass(frozen=True)
class NodeSpec:
    """One shot or sheet, fully expanded: what to generate and what to show."""

    id: str
    kind: NodeKind
    name: str  # the id inside its scene (or the character / location name)
    scene: str | None
    story_index: int
    where: Located
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
    # a staging.Staging (staging builds on this module's Camera, so it is not imported here):
    # cast, blocking, place and camera as the preview backend draws them
    staging: Any = None
    omit: bool = False  # out of the cut; in the graph only as a reference of a shot in the cut
    review: Review = Review()  # not part of the request key: a decision about the frame, not its pixels

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
    shots: tuple[str, ...]  # the shots in the cut, in story order (omitted shots are not)


@dataclass(frozen=True)
class Entity:
    """A character or a location of the storyboard, for the board's lineup."""

    kind: NodeKind  # CHARACTER or LOCATION
    name: str
    description: str | None
    slot: int  # its colour (a character) or tone (a location) on preview panels: see staging
    picture: RefSpec | None  # its sheet (a NODE) or its given image (FILE or URL); None: words only


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
    entities: tuple[Entity, ...] = ()  # characters, then locations, in definition order
    editorial: Editorial = field(default_factory=Editorial)
    #: every shot's code, omitted ones too (numbering counts them), in story order
    codes: dict[str, str] = field(default_factory=dict)
    omitted: tuple[str, ...] = ()  # shots marked omit: true, in story order
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


def frame_names(spec: NodeSpec) -> tuple[str, list[str]]:
    """(folder in renders/, file names without extension) of a node's takes, in take order:
    strings only, cheap enough to check 10 000 nodes for clashes on every load."""
    if spec.kind is NodeKind.SHOT:
        folder = str(spec.scene)
    else:
        folder = "characters" if spec.kind is NodeKind.CHARACTER else "locations"
    picked = min(max(spec.pick, 1), spec.takes)
    return folder, [spec.name if i == picked else f"{spec.name}-take{i}" for i in range(1, spec.takes + 1)]


def frame_paths(project: Project, spec: NodeSpec) -> list[Path]:
    """Where a node's takes are written, in take order. The picked take is always
    ``renders/SCENE/SHOT.png`` (``renders/characters/NAME.png``, ``renders/locations/NAME.png``
    for sheets), so an editor or a script links one file that follows the pick; every other
    take sits beside it as ``SHOT-take2.png``, ``SHOT-take3.png``…::

        takes: 3, pick: 2   →   [door-take1.png, door.png, door-take3.png]
    """
    ext = EXTENSIONS[spec.output_format]
    folder, names = frame_names(spec)
    base = project.renders_dir / folder
    return [base / f"{name}.{ext}" for name in names]


def check_frame_names(nodes: dict[str, NodeSpec]) -> None:
    """Refuse two nodes whose frames would be one file in renders/ (a scene called
    ``characters`` beside a character of the same name as one of its shots; a shot ``a`` with
    two takes beside a shot ``a-take2``), naming both. Formats do not tell files apart here:
    ``a-take2.png`` and ``a-take2.jpg`` of two shots would only confuse."""
    from .errors import InputError, raise_all

    owner: dict[tuple[str, str], str] = {}
    problems: list[InputError] = []
    for spec in nodes.values():
        folder, names = frame_names(spec)
        for name in names:
            other = owner.setdefault((folder, name), spec.id)
            if other != spec.id:
                problems.append(
                    InputError(
                        f"{other} and {spec.id} would both write renders/{folder}/{name}: ids end up in file names",
                        where=spec.where,
                        hint="rename one of them",
                    )
                )
                break
    raise_all(problems)


def picked_first(paths: list[Path], pick: int) -> list[Path]:
    """``frame_paths`` with the picked take's file first (what a render reports)."""
    i = min(max(pick, 1), len(paths)) - 1
    return [paths[i], *paths[:i], *paths[i + 1 :]]
