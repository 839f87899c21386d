"""Stage 9: exports read what a render left (lock, cache, renders) and never generate.

Each export module adds its own command; ``commands()`` lists them for the CLI.
"""

from __future__ import annotations


def commands() -> list:
    return []
