"""``shotflow init``: a new project's first files.

DIR/storyboard.yaml   a small commented storyboard that validates and renders as it is
                      (two characters, a location, four shots, a Turbo shot), its first
                      line pointing editors at the schema of this shotflow
DIR/.gitignore        the cache and the rendered copies stay out of git (the lock goes in)
"""

from __future__ import annotations

from pathlib import Path

from .errors import UsageError
from .load import display_path

STARTER = Path(__file__).resolve().parent / "_starter" / "storyboard.yaml"
IGNORED = (".shotflow/", "renders/")


def starter_text() -> str:
    """The starter storyboard, its first line naming the schema that this install ships."""
    from ._resources import schema_path

    return f"# yaml-language-server: $schema={schema_path()}\n" + STARTER.read_text(encoding="utf-8")


def init_project(folder: Path, *, force: bool = False) -> list[Path]:
    """Write the starter files into ``folder`` (made if missing); returns what was written.

    An existing storyboard.yaml is kept unless ``force``; an existing .gitignore gets the
    missing lines appended."""
    folder = Path(folder)
    story = folder / "storyboard.yaml"
    if story.exists() and not force:
        raise UsageError(
            f"{display_path(story)} already exists; nothing was written",
            hint="edit it, pass --force to replace it, or init another folder",
        )
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{display_path(folder)} is a file, not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    story.write_text(starter_text(), encoding="utf-8")
    written = [story]
    ignore = folder / ".gitignore"
    try:
        present = ignore.read_text(encoding="utf-8")
    except FileNotFoundError:
        present = None
    lines = set((present or "").splitlines())
    missing = [entry for entry in IGNORED if entry not in lines and entry.rstrip("/") not in lines]
    if missing:
        head = "" if present is None else ("" if present.endswith("\n") or not present else "\n")
        comment = "# shotflow: the cache and the rendered copies (commit storyboard.lock: it pins the frames)\n"
        with ignore.open("a", encoding="utf-8") as f:
            f.write(head + comment + "".join(f"{entry}\n" for entry in missing))
        written.append(ignore)
    return written
