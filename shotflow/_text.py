"""Small helpers for the words of messages."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``counted(1, "sheet")`` → "1 sheet", ``counted(3, "sheet")`` → "3 sheets"."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"
