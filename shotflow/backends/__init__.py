"""Backends turn one validated request into images.

The interface is deliberately small (``Backend`` states the whole contract)::

    Request ──► Backend.generate(request, start) ──► Generation(images=[Image(data, seed, remote_id, url, cost)])

Keys, cache and DAG know nothing of any backend; a backend knows nothing of them
either, except through the two small stores it may be handed (``Services``): a
journal of submitted tasks and a key-value memo (for upload UUIDs).
"""

from __future__ import annotations

from ._base import Backend, Generation, Image, Journal, Memo, Reference, Request, Services, Start

__all__ = [
    "Backend",
    "Generation",
    "Image",
    "Journal",
    "Memo",
    "Reference",
    "Request",
    "Services",
    "Start",
    "backend_class",
    "create",
    "names",
    "warm_up",
]


def names() -> list[str]:
    return ["preview", "runware"]


def backend_class(name: str) -> type[Backend]:
    """A backend's class by name (the registry); heavy modules are imported only here."""
    if name == "preview":
        from .preview import PreviewBackend

        return PreviewBackend
    if name == "runware":
        from .runware import RunwareBackend

        return RunwareBackend
    from ..errors import ConfigError, did_you_mean

    raise ConfigError(f"unknown backend '{name}'", hint=did_you_mean(name, names()) or "use preview or runware")


def warm_up(name: str | None) -> None:
    """Start backend ``name``'s one-time setup (``Backend.warm_up``) now: a run told its backend
    before it loads the storyboard calls this first, so that the setup runs beside the load
    (Runware: the TLS context, ~25 ms, made on a second core while the storyboard is read). Only
    Runware is warmed up this early: the preview backend has no setup and its module (~40 ms of
    imports) is left until a frame is drawn. An unknown name (or None) is left to the run."""
    if name == "runware":
        backend_class(name).warm_up()


def create(name: str, services: Services) -> Backend:
    """The backend ``name``, for one run."""
    return backend_class(name)(services)
