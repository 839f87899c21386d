"""What a backend is: ``Backend``, the whole contract with the run, and the values that cross it
(``Request`` and its ``Reference``s in; ``Generation`` and its ``Image``s out; the ``Services``
a run hands over: journal, memo, settings). The registry is in ``backends/__init__.py``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from ..staging import Staging


@dataclass(frozen=True, slots=True)
class Reference:
    """One reference image of a request, in request order.

    ``data`` is always the image's bytes (the upstream shot's picked take, a file, a
    fetched URL); ``sha256`` is their content hash. ``remote_ids`` holds ids a backend
    gave these bytes before (``{"runware": imageUUID}`` for an upstream shot rendered
    on Runware), so a backend can pass an id instead of uploading the bytes again.
    """

    data: bytes = field(repr=False)
    sha256: str
    tag: str | None = None
    source: str = ""  # what the storyboard wrote: a node id, a path or a URL (messages only)
    remote_ids: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Request:
    """Everything that decides the pixels of one node, plus delivery options.

    ``key`` is the request key (DESIGN.md §3); ``seed`` is derived from it and the
    node's roll count (backends without a seed parameter ignore it). ``tagged`` says
    whether references are sent as ``{image, tag}`` objects (the prompt names @tags).
    ``options`` holds delivery settings that are not part of the key (output type,
    webhook, upload endpoint, ttl, delivery method). ``staging`` is the shot's cast,
    blocking, place and camera (``shotflow.staging``): the preview backend draws it
    (and it is in a preview frame's key); Runware never sees it.
    """

    key: str
    node_id: str  # for messages and logs only; never part of the pixels
    model: str
    prompt: str
    width: int
    height: int
    output_format: str = "PNG"
    output_quality: int = 95
    takes: int = 1
    references: tuple[Reference, ...] = ()
    tagged: bool = False
    seed: int = 0
    safety: dict[str, Any] | None = None
    provider_settings: dict[str, Any] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    staging: Staging | None = None


@dataclass(frozen=True, slots=True)
class Image:
    """One generated image. ``remote_id`` is the backend's id for it (Runware imageUUID)."""

    data: bytes = field(repr=False)
    seed: int | None = None
    remote_id: str | None = None
    url: str | None = None
    cost: float | None = None


@dataclass(frozen=True, slots=True)
class Generation:
    """The result of one request: one image per take, in take order."""

    images: tuple[Image, ...]
    task_id: str | None = None
    cost: float | None = None
    backend: str = ""
    # request fields the backend sent otherwise than asked, so the run can key what was really
    # made: {"prompt": "...", "tagged": False} when a model refused tagged references
    sent: dict[str, Any] = field(default_factory=dict)


class Journal(Protocol):
    """Durable record of tasks sent to a paid backend (owned by the store).

    ``begin`` must be durable before the task is sent: a run that was killed
    finds the task again with ``pending`` and polls it instead of paying twice.
    The backend calls ``finish`` only when a task failed for good; after a success
    the run that owns the journal calls it, once the images are recorded.
    """

    def pending(self, key: str) -> dict[str, Any] | None: ...

    def begin(self, key: str, record: dict[str, Any]) -> None: ...

    def finish(self, key: str) -> None: ...


class Memo(Protocol):
    """A small persistent key-value store with expiry (owned by the store)."""

    def get(self, name: str) -> Any | None: ...

    def put(self, name: str, value: Any, ttl_seconds: float | None = None) -> None: ...

    def drop(self, name: str) -> None: ...


@dataclass(frozen=True)
class Services:
    """What a backend may be handed by the run that owns it."""

    project_dir: Path
    journal: Journal | None = None
    memo: Memo | None = None
    settings: dict[str, Any] = field(default_factory=dict)  # the storyboard's backend section, CLI overrides


class Start(Protocol):
    """The permit to send that the scheduler hands a backend that prepares (see ``Backend``)."""

    async def __call__(self) -> None:
        """Wait for the permit; awaited exactly once, just before the first request leaves."""

    def release(self) -> None:
        """The service's part of the request is over (every take is known; fetching the images
        is not the service's work): the next shot may send meanwhile. Once is enough; the
        scheduler releases a permit still held when ``generate`` returns."""


class Backend:
    """The whole contract between a run and a backend, as httpx's ``AsyncBaseTransport`` is
    between a client and its transport. Subclass it; ``backends.create`` makes one per run.

    What a backend is told:
        ``__init__(services)`` — the project's folder, the journal and memo it may keep (a paid
        backend's durable record of sent tasks), and its settings (the storyboard's backend
        section with the CLI's overrides). It is created the first time a node must be made.
        ``generate(request, start)`` — one node's request (``Request``: everything that decides
        its pixels), called concurrently from one event loop, as many at once as the scheduler
        (``resolve``, the one owner of ``--jobs``) lets send.
        ``aclose()`` — once, at the end of the run.
        ``warm_up()`` — a class method, called as soon as a run knows it will send something
        (before the plan is finished), and for Runware named on the command line as the run
        starts (``backends.warm_up``): start one-time setup that can run beside the load and the
        planning in a thread (Runware: the TLS context). It must return at once and never fail,
        and may be called more than once; a backend created without it works the same, only later.

    What it returns: a ``Generation``, one ``Image`` per take in take order, with what it cost
    and the request fields it sent otherwise than asked (``sent``). A failure is a
    ``BackendError``: ``TransientError`` (the next run tries again; nothing is lost),
    ``RequestRejected`` (this request will never work), ``AccountError`` (stops the run).

    What it says of itself (class attributes, read before the first request):
        ``deterministic`` — the same request always gives the same bytes, and nothing is paid:
        ``--locked`` may draw a missing frame again, and no team lease is taken for it.
        ``prepares`` — ``generate`` has work worth doing before it sends (checks, the references'
        upload ids, a durable journal entry). The scheduler then runs twice ``--jobs`` nodes and
        passes ``start``: the permit to send, awaited exactly once, just before the first request
        leaves, and released (``start.release()``) as soon as the service has answered with every
        take, before the images are fetched. A backend that does not prepare is called holding its
        permit (``start`` is None).
        ``notes`` — things the run's summary says once, at the end (filled while running).

    A backend never reads ``--jobs``: it may limit its own load against its service (Runware's
    ``max_in_flight`` and its 429 back-off) but the scheduler alone decides how many nodes run.
    """

    name: ClassVar[str] = ""
    deterministic: ClassVar[bool] = False
    prepares: ClassVar[bool] = False

    def __init__(self, services: Services | None = None) -> None:
        self.services = services
        self.notes: list[str] = []

    @classmethod
    def warm_up(cls) -> None:
        """Start slow one-time setup in the background (see the class); nothing by default."""

    async def generate(self, request: Request, start: Start | None = None) -> Generation:
        """Make ``request.takes`` images; raise BackendError on failure (see the class)."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release what the run's requests held (connections, threads); called once."""
