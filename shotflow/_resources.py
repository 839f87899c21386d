"""Where the files shipped with shotflow live.

In a wheel the top-level ``schemas/`` and ``templates/`` folders are installed as
``shotflow/_data/schemas`` and ``shotflow/_data/templates``; in a source checkout
(or an editable install) they sit beside the package.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


@cache
def data_dir(name: str) -> Path:
    """The folder ``schemas`` or ``templates``, wherever this install keeps it."""
    for candidate in (_PACKAGE / "_data" / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"shotflow is installed without its {name}/ folder")


def schema_path(name: str = "storyboard.schema.json") -> Path:
    return data_dir("schemas") / name


def font_path(bold: bool = False) -> Path:
    return _PACKAGE / "fonts" / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")
