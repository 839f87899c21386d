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


def create(name: str, services: Services) -> Backend:
    """The backend ``name``, for one run."""
    return backend_class(name)(services)
