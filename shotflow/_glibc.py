"""glibc's malloc, tuned for a render that owns its process (Linux only; elsewhere nothing).

A render in the CLI's own process lets its worker threads share one heap (``one_malloc_arena``)
and gives the heap its frames freed back to the system before the lock and manifest are
written (``give_back_freed_memory``). A program that embeds shotflow keeps its own malloc
settings: ``render`` calls these only with ``RenderOptions.own_process``. Written by hand
(ctypes): no library exposes ``mallopt``/``malloc_trim``.
"""

from __future__ import annotations

import sys


def give_back_freed_memory() -> None:
    """Return the heap the frames freed to the system before the lock and manifest are
    written (glibc keeps it otherwise, and the writing would add to it): at 10 000 shots
    the difference between staying under 150 MB and not."""
    _glibc("malloc_trim", 0)


def one_malloc_arena() -> None:
    """Let the threads that draw and store frames allocate from the main heap (glibc only).

    glibc gives each thread that allocates its own heap ("arena"), and each keeps the
    buffers of the largest frame it handled: 30-40 MB of resident memory for the preview
    backend's few worker threads, on top of a heap the load left half empty. Their
    allocations are a few large buffers a frame, so sharing one arena costs no time.
    """
    _glibc("mallopt", -8, 1)  # M_ARENA_MAX: takes effect for threads not started yet


def _glibc(function: str, *args: int) -> None:
    """Call a C library function on Linux (glibc); elsewhere, or when it is missing, nothing."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        getattr(ctypes.CDLL(None), function)(*args)
    except (OSError, AttributeError):
        pass
