"""shotflow: declarative storyboards and a cached shot pipeline for film previs.

The public face is small; everything else lives in private modules::

    from shotflow import load_project, plan, render, RenderOptions

Names are imported on first use, so ``import shotflow`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "Project",
    "NodeSpec",
    "Plan",
    "RenderOptions",
    "Summary",
    "ShotflowError",
    "InputError",
    "load_project",
    "plan",
    "render",
]

_LAZY = {
    "Project": ("shotflow.model", "Project"),
    "NodeSpec": ("shotflow.model", "NodeSpec"),
    "Plan": ("shotflow.plan", "Plan"),
    "RenderOptions": ("shotflow.render", "RenderOptions"),
    "Summary": ("shotflow.report", "Summary"),
    "ShotflowError": ("shotflow.errors", "ShotflowError"),
    "InputError": ("shotflow.errors", "InputError"),
    "load_project": ("shotflow.api", "load_project"),
    "plan": ("shotflow.api", "plan"),
    "render": ("shotflow.api", "render"),
}

if TYPE_CHECKING:  # pragma: no cover
    from .api import load_project, plan, render
    from .errors import InputError, ShotflowError
    from .model import NodeSpec, Project
    from .plan import Plan
    from .render import RenderOptions
    from .report import Summary


def __getattr__(name: str):
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'shotflow' has no attribute {name!r}") from None
    import importlib

    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
