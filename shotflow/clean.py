"""``shotflow clean``: remove renders/, the cache, or both; the lock file stays."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .errors import UsageError
from .load import display_path
from .store import open_store


def _size(path: Path) -> tuple[int, int]:
    import os

    files = total = 0
    for folder, _, names in os.walk(path):  # links are counted, never followed
        for name in names:
            files += 1
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return files, total


def _refuse_link(target: Path) -> None:
    """A folder shotflow removes must be a real folder: through a link (committed to a
    repository, say) ``clean`` would empty whatever it points to."""
    if target.is_symlink():
        import os

        raise UsageError(f"{display_path(target)} is a symbolic link (to {os.readlink(target)}); "
                         "shotflow removes only a real folder of its own",
                         hint="remove the link yourself if that is what you want")


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
        default = cache_dir is None and not os.environ.get("SHOTFLOW_CACHE")
        targets.append(root / ".shotflow" if default and store.cache_dir == (root / ".shotflow").resolve()
                       else store.cache_dir)
    lines = []
    for target in targets:
        if not target.exists():
            lines.append(f"nothing to remove: {display_path(target)}")
            continue
        _refuse_link(target)
        files, total = _size(target)
        verb = "would remove" if dry_run else "removed"
        lines.append(f"{verb} {display_path(target)}/ ({files} files, {_human(total)})")
        if not dry_run:
            shutil.rmtree(target)
    if paid:
        lines.append(f"the cache held frames that cost ${paid:.2f} to generate"
                     + ("" if dry_run else "; the lock file still names them, re-rendering pays again"))
    if not dry_run and (root / ".shotflow" / "last-run.json").is_file() and not (root / ".shotflow").is_symlink():
        (root / ".shotflow" / "last-run.json").unlink()
    return lines
