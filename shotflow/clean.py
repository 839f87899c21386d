"""``shotflow clean``: remove renders/, the cache, or both; the lock file stays."""

from __future__ import annotations

import shutil
from pathlib import Path

from ._text import counted
from .errors import UsageError
from .load import display_path
from .store import open_store


def _size(path: Path) -> tuple[int, int]:
    files = total = 0
    for p in path.rglob("*"):
        if p.is_file():
            files += 1
            total += p.stat().st_size
    return files, total


def _human(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def clean(storyboard: Path, what: str, *, cache_dir: Path | None = None, dry_run: bool = False,
          force: bool = False) -> list[str]:
    """Remove what was asked; returns the lines to show. ``what``: renders, cache or all."""
    storyboard = Path(storyboard).resolve()
    if not storyboard.is_file():
        raise UsageError(f"file not found: {display_path(storyboard)}")
    root = storyboard.parent
    store = open_store(root, cache_dir)
    targets: list[Path] = []
    paid = 0.0
    if what in ("renders", "all"):
        targets.append(root / "renders")
    if what in ("cache", "all"):
        pending = store.journal.entries()
        if pending and not force:
            raise UsageError(f"the cache holds {len(pending)} task(s) sent to Runware whose results were not "
                             "collected yet; render again to collect them first",
                             hint="or pass --force to throw them away")
        if store.actions_dir.is_dir():
            import json

            for record in store.actions_dir.rglob("*.json"):
                try:
                    paid += float(json.loads(record.read_bytes()).get("cost") or 0.0)
                except (ValueError, OSError):
                    continue
        targets.append(store.cache_dir)
    lines = []
    for target in targets:
        if not target.exists():
            lines.append(f"nothing to remove: {display_path(target)}")
            continue
        files, total = _size(target)
        verb = "would remove" if dry_run else "removed"
        lines.append(f"{verb} {display_path(target)}/ ({counted(files, 'file')}, {_human(total)})")
        if not dry_run:
            shutil.rmtree(target)
    if paid:
        lines.append(f"the cache held frames that cost ${paid:.2f} to generate"
                     + ("" if dry_run else "; the lock file still names them, re-rendering pays again"))
    if not dry_run and (root / ".shotflow" / "last-run.json").exists():
        (root / ".shotflow" / "last-run.json").unlink()
    return lines
