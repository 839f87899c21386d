"""Test helpers that ship with shotflow, for its own tests and for users' CI.

    from shotflow.testing import Emulator, Fault

    with Emulator(latency=0.0, api_key="test-key-123") as emu:
        os.environ["RUNWARE_API_URL"] = emu.url     # point the runware backend at it
        emu.inject(Fault.status(503), times=2)
        ...
        assert emu.stats.billed == 1

``Emulator`` is a Runware REST API on loopback (see ``shotflow.testing.emulator``). Names are
loaded on first use, so importing this package costs nothing until then (and
``python -m shotflow.testing.emulator`` runs the module once).
"""

from __future__ import annotations

from typing import Any

__all__ = ["Emulator", "Fault", "FaultKind", "Stats"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import emulator

        return getattr(emulator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
