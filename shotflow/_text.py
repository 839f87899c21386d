"""Small helpers for the words of messages."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``counted(1, "sheet")`` → "1 sheet", ``counted(3, "sheet")`` → "3 sheets"."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"


def shortlist(items, most: int = 5) -> str:
    """``a, b, c and 4 more``: the first ``most`` items, and how many more there are."""
    items = list(items)
    return ", ".join(items[:most]) + (f" and {len(items) - most} more" if len(items) > most else "")


def redacted_url(url: str) -> str:
    """``url`` as a message may show it: what stands before an ``@`` (a user, a password) and
    any query or fragment (a signature, a token) replaced by ``…``."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return "…"
    host = parts.netloc.rpartition("@")[2]
    shown = f"{parts.scheme}://" if parts.scheme else ""
    shown += ("…@" if "@" in parts.netloc else "") + host + parts.path
    return shown + ("?…" if parts.query else "") + ("#…" if parts.fragment else "")
