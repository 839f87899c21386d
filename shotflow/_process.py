"""A render that owns its process (the ``shotflow`` command, ``RenderOptions.own_process``)
may tune it; a program that embeds shotflow keeps its own settings.

``begin()``: glibc shares one malloc heap among the worker threads (``_glibc``), and the cyclic
garbage collector pauses while the storyboard is loaded and planned: loading builds a few
hundred thousand objects and frees almost none, and importing networkx (built in a thread while
the first shots render) set off a full collection mid-run (measured: 30-50 ms at 400 shots,
with tasks waiting on the event loop).

``planned()``: the loaded project, its graph and its plan live to the end of the run: they are
moved out of the collector's walks (``gc.freeze``) and it resumes. The few hundred cycles that
loading leaves (under 0.5 MB at 10 000 shots) are kept rather than sought.
"""

from __future__ import annotations

import gc


def begin() -> None:
    from ._glibc import one_malloc_arena

    one_malloc_arena()
    gc.disable()


def planned() -> None:
    if not gc.isenabled():
        gc.freeze()
        gc.enable()
