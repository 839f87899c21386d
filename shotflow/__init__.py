"""shotflow: declarative storyboards and a cached shot pipeline for film previs.

The public face is small; everything else lives in private modules::

    from shotflow import load_project, plan, render, RenderOptions

    project = load_project("storyboard.yaml")      # InputError lists every problem; UsageError: a bad override
    print(plan(project).cost)                       # what would render, why, the estimate
    summary = render("storyboard.yaml", RenderOptions(jobs=8), PlainReporter())

Names are imported on first use, so ``import shotflow`` stays cheap.
"""

from __future__ import annotations

import sys
import types
from typing import TYPE_CHECKING

from ._version import __version__

__all__ = [
    "__version__",
    "Project",
    "NodeSpec",
    "Plan",
    "RenderOptions",
    "Summary",
    "ShotflowError",
    "InputError",
    "UsageError",
    "Reporter",
    "PlainReporter",
    "JsonReporter",
    "Outcome",
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
    "UsageError": ("shotflow.errors", "UsageError"),
    "Reporter": ("shotflow.report", "Reporter"),
    "PlainReporter": ("shotflow.report", "PlainReporter"),
    "JsonReporter": ("shotflow.report", "JsonReporter"),
    "Outcome": ("shotflow.status", "Outcome"),
    "load_project": ("shotflow.api", "load_project"),
    "plan": ("shotflow.api", "plan"),
    "render": ("shotflow.api", "render"),
}

if TYPE_CHECKING:  # pragma: no cover
    from .api import load_project, plan, render
    from .errors import InputError, ShotflowError, UsageError
    from .model import NodeSpec, Project
    from .plan import Plan
    from .render import RenderOptions
    from .report import JsonReporter, PlainReporter, Reporter, Summary
    from .status import Outcome


class _Package(types.ModuleType):
    """The package's own module type: ``plan`` and ``render`` stay the functions.

    Importing a submodule makes it an attribute of its package, so the first
    ``import shotflow.render`` (which any render does) would replace the function
    ``shotflow.render`` with the module of that name, and ``from shotflow import render``
    would then give a module that cannot be called. The modules stay importable by
    their full names (``from shotflow.render import RenderOptions``).
    """

    def __setattr__(self, name: str, value) -> None:
        if name in _FUNCTIONS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


_FUNCTIONS = frozenset({"plan", "render"})
sys.modules[__name__].__class__ = _Package


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
