"""Where a node stands and how it ended: one vocabulary from the plan to the board.

    the plan        FRESH (its frames are in the cache)  RENDER (it will be generated)
                    HELD (it would render, but its approved frames are kept)
    a run's end     RENDERED  CACHED  FAILED  SKIPPED  HELD   (render --json, .shotflow/NAME.status.json)
    an export       FRESH  STALE  FAILED  SKIPPED  NOT_RENDERED   (what a board shows)

A status's ``value`` is what the JSON contract and the status files write; statuses are
compared as members (``is``), never as text. ``Outcome`` is how one node of a run ended.
This module sits on the ground floor and imports nothing heavy: a render with nothing to
do reports every node as CACHED having imported little more than it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Status(enum.Enum):
    """Where a node stands (see the module docstring)."""

    FRESH = "fresh"  # plan: its key has a complete record; export: the frame is what the storyboard asks for
    RENDER = "render"  # plan: it will be generated (the reason says why)
    HELD = "held"  # an approved shot whose storyboard changed: its approved frames are kept
    RENDERED = "rendered"  # a run generated it
    CACHED = "cached"  # a run found it in the cache (or the team's)
    FAILED = "failed"  # the last render of it failed (the shot's fault, or shotflow's)
    SKIPPED = "skipped"  # not tried: an upstream node failed, or the run stopped
    STALE = "stale"  # a frame exists, but the storyboard (or an upstream frame) changed since
    NOT_RENDERED = "not rendered"  # never rendered: no frame at all

    @property
    def ok(self) -> bool:
        """A run that ended so left its node a frame (its users may go on)."""
        return self is Status.RENDERED or self is Status.CACHED or self is Status.HELD

    @property
    def css(self) -> str:
        """The status as a CSS class name (``not-rendered``)."""
        return self.value.replace(" ", "-")

    @classmethod
    def read(cls, value: object) -> Status | None:
        """The status a status file wrote (``"failed"``), or None for anything else."""
        try:
            return cls(value)
        except ValueError:
            return None


INTERRUPTED = "interrupted (the run stopped)"  # the error of a node Ctrl-C left undone (SKIPPED)


@dataclass(frozen=True)
class Outcome:
    """How one node of a run ended (the scheduler's result; reporters show it). ``value``
    carries what dependents need (the stage's record)."""

    id: str
    status: Status  # RENDERED, CACHED, FAILED, SKIPPED or HELD
    value: object = None
    outputs: tuple[str, ...] = ()
    error: str | None = None
    cost: float = 0.0
    elapsed: float = 0.0
    internal: bool = False  # True when shotflow itself broke (not the shot)
    fatal: bool = False  # True when no other node can succeed either (e.g. a rejected API key)
    note: str | None = None  # HELD: what changed since the approved frames (not an error)


def skipped(node: str, because: str) -> Outcome:
    """The outcome of a node not tried because ``because`` (upstream) failed."""
    return Outcome(node, Status.SKIPPED, error=f"skipped: upstream {because} failed")
