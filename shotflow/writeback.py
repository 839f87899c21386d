"""Writing decisions back into the user's YAML: picks, reviews, conformed cuts, new scenes.

    storyboard.yaml ──ruamel round trip──► tree with comments ──edit──► new text
          │ - include: act2.yaml                 │
          └──► act2.yaml (the file that          └── only the hunks inside the edited
               defines the shot is the one            nodes are kept; every other line
               that is edited)                        stays byte for byte as it was

A storyboard is the user's file: its comments, key order, quoting and formatting are theirs.
ruamel.yaml's round-trip mode keeps most of them, but it may still re-indent or re-wrap
lines it did not need to touch. So the new text is not written as ruamel dumps it: a line
diff against the original keeps only the changes that fall inside the nodes that were
edited, and every other line is copied from the original. Reading stays on PyYAML's C
loader (load.py); ruamel is imported here only, on this path.

    editor = Editor(Path("storyboard.yaml"))
    editor.set_shot("arrival/door", "pick", 2)
    editor.set_shot("arrival/door", "review", {"status": "approved", "notes": ["good"]})
    editor.update_review("arrival/door", status="changes", notes=["tighter"])  # edits in place
    editor.save()            # -> the files that changed
"""

from __future__ import annotations

import difflib
import hashlib
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import InputError, did_you_mean

__all__ = ["Editor", "WriteBackError"]

#: Include depth followed when looking for the file that defines a scene.
_MAX_INCLUDE_DEPTH = 16


class WriteBackError(InputError):
    """A decision cannot be written back (unknown shot, the file changed meanwhile, ...)."""


@dataclass
class _File:
    """One YAML file of the storyboard, as text and as a round-trip tree."""

    path: Path
    text: str
    digest: str
    tree: Any
    newline: str
    yaml: Any  # the ruamel instance set to this file's indentation
    #: ruamel's dump of the tree as read: what its reformatting alone looks like.
    before: str
    edited: bool = False


@dataclass
class _Scene:
    file: _File
    node: Any  # the scene's CommentedMap


class Editor:
    """The storyboard's files, open for editing; ``save()`` writes the ones that changed."""

    def __init__(self, storyboard: Path | str):
        from .trust import project_folder, storyboard_file

        self.path = storyboard_file(storyboard)
        self.root = project_folder(self.path.parent)  # what is written must be inside
        self._files: dict[Path, _File] = {}
        self._scenes: dict[str, _Scene] = {}
        self._scene_order: list[str] = []
        main = self._open(self.path)
        self._collect(main, depth=0)

    # -- finding things ---------------------------------------------------------------

    @property
    def scene_ids(self) -> list[str]:
        return list(self._scene_order)

    def shot_ids(self, scene_id: str) -> list[str]:
        return [str(s.get("id")) for s in self._shots(scene_id) if hasattr(s, "get")]

    def file_of(self, shot_or_scene: str) -> Path:
        """The file that defines a scene, or the scene of a ``scene/shot`` id."""
        return self._scene(shot_or_scene.split("/", 1)[0]).file.path

    def shot(self, shot_id: str) -> Mapping[str, Any]:
        """The shot's mapping as written (a round-trip node: read it, do not keep it)."""
        return self._find_shot(shot_id)[1]

    # -- edits ------------------------------------------------------------------------

    def set_shot(self, shot_id: str, key: str, value: Any) -> None:
        """Set ``key`` of a shot (added at the end of the shot when new); None deletes it."""
        scene, node = self._find_shot(shot_id)
        if value is None:
            if key in node:
                del node[key]
        elif node.get(key) != value:
            new = key not in node
            if new and key != "review" and "review" in node:
                # review: stays the shot's last key, whatever order decisions come in
                node.insert(list(node.keys()).index("review"), key, _plain_to_tree(value))
            else:
                node[key] = _plain_to_tree(value)
                if new:
                    _move_trailing_comment(node, key)
        else:
            return
        scene.file.edited = True

    def update_review(self, shot_id: str, *, status: str | None = None, notes: Iterable[str] = ()) -> bool:
        """Set a shot's ``review.status`` and append ``notes`` to ``review.notes``, in place.

        A note the shot already has is not added again (applying one review twice changes
        nothing). Returns True when something changed. A new ``review:`` or ``notes:``
        is written in block style, one note a line, as a person would write them.
        """
        scene, node = self._find_shot(shot_id)
        review = node.get("review")
        if not hasattr(review, "get"):  # none yet (or not a mapping, which the schema refuses)
            have: list[str] = []
            value: dict[str, Any] = {}
            if status is not None:
                value["status"] = status
            new = [n for n in dict.fromkeys(notes) if n not in have]
            if new:
                value["notes"] = new
            if not value:
                return False
            tree = _plain_to_tree(value)
            if "notes" in tree:
                tree["notes"].fa.set_block_style()
            existed = "review" in node
            node["review"] = tree
            if not existed:
                _move_trailing_comment(node, "review")
            scene.file.edited = True
            return True
        changed = False
        if status is not None and review.get("status") != status:
            added = "status" not in review
            if added:
                review.insert(0, "status", status)
            else:
                review["status"] = status
            changed = True
        listed = review.get("notes")
        have = [str(n) for n in listed] if isinstance(listed, list) else []
        new = [n for n in dict.fromkeys(notes) if n not in have]
        if new:
            if isinstance(listed, list):
                _append_items(listed, new)
            else:
                from ruamel.yaml.comments import CommentedSeq

                seq = CommentedSeq(new)
                seq.fa.set_block_style()
                review["notes"] = seq
                _move_trailing_comment(review, "notes")
            changed = True
        if changed:
            scene.file.edited = True
        return changed

    def reorder_shots(self, scene_id: str, order: Iterable[str]) -> None:
        """Put a scene's shots in ``order`` (shot names); shots not named keep their place at the end."""
        scene = self._scene(scene_id)
        shots = scene.node.get("shots")
        by_id = {str(s.get("id")): s for s in shots}
        wanted = [name for name in order if name in by_id]
        rest = [s for s in shots if str(s.get("id")) not in set(wanted)]
        new = [by_id[name] for name in wanted] + rest
        if [id(s) for s in new] == [id(s) for s in shots]:
            return
        # Comments attached to list items travel with ruamel's items; move whole items.
        del shots[:]
        shots.extend(new)
        scene.file.edited = True

    def append_scene(self, scene: Mapping[str, Any], *, comment: str | None = None) -> None:
        """Add a scene at the end of the main file's ``scenes:``."""
        main = self._files[self.path]
        scenes = main.tree.get("scenes")
        if scenes is None:
            from ruamel.yaml.comments import CommentedSeq

            main.tree["scenes"] = scenes = CommentedSeq()
        node = _plain_to_tree(scene)
        scenes.append(node)
        if comment:
            scenes.yaml_set_comment_before_after_key(len(scenes) - 1, before=comment, indent=2)
        sid = str(scene.get("id"))
        main.edited = True
        self._scenes[sid] = _Scene(main, node)
        self._scene_order.append(sid)

    def insert_scene(self, scene: Mapping[str, Any], *, after: str | None, comment: str | None = None) -> None:
        """Add a scene right after scene ``after`` (in the file that defines it), or first when None."""
        if after is None:
            f, scenes, index = self._files[self.path], self._scene_list(self._files[self.path]), 0
        else:
            anchor = self._scene(after)
            f = anchor.file
            scenes = self._scene_list(f)
            index = next(i for i, item in enumerate(scenes) if item is anchor.node) + 1
        if index >= len(scenes) and f is self._files[self.path]:
            self.append_scene(scene, comment=comment)
            return
        node = _plain_to_tree(scene)
        scenes.insert(index, node)
        if comment:
            scenes.yaml_set_comment_before_after_key(index, before=comment, indent=_item_indent(f))
        sid = str(scene.get("id"))
        f.edited = True
        self._scenes[sid] = _Scene(f, node)
        position = (self._scene_order.index(after) + 1) if after is not None else 0
        self._scene_order.insert(position, sid)

    def add_entry(self, section: str, name: str, value: Mapping[str, Any], *, comment: str | None = None) -> None:
        """Add ``name`` to a top-level mapping of the main file (``characters``, ``locations``);
        ``comment`` goes at the end of its first line. An existing entry is left as it is."""
        main = self._files[self.path]
        table = main.tree.get(section)
        if table is None:
            from ruamel.yaml.comments import CommentedMap

            main.tree[section] = table = CommentedMap()
        if name in table:
            return
        node = _plain_to_tree(value)
        table[name] = node
        if comment and hasattr(node, "yaml_add_eol_comment") and len(node):
            node.yaml_add_eol_comment(comment, next(iter(node.keys())))
        if len(table) > 1:
            _pass_on_trailing_lines(table, list(table.keys())[-2], name)
        main.edited = True

    def _scene_list(self, f: _File) -> Any:
        scenes = f.tree.get("scenes")
        if scenes is None:
            from ruamel.yaml.comments import CommentedSeq

            f.tree["scenes"] = scenes = CommentedSeq()
        return scenes

    # -- writing ----------------------------------------------------------------------

    def save(self) -> list[Path]:
        """Write every edited file atomically; returns the paths written.

        A file that changed on disk since it was read is not overwritten: the caller reads
        it again and repeats the edit (an editor or the user saved it in between).
        """
        from .trust import inside

        written = []
        for f in self._files.values():  # nothing is written unless everything may be
            if f.edited and not inside(f.path, self.root):
                raise WriteBackError(
                    f"{f.path} is outside the project folder {self.root}: a file a storyboard may "
                    "include from an allowed folder is read, never written",
                    where=str(f.path),
                    hint="move the scene into the project, or make the change there by hand",
                )
        for f in self._files.values():
            if not f.edited:
                continue
            current = f.path.read_bytes()
            if hashlib.sha256(current).hexdigest() != f.digest:
                raise WriteBackError(
                    f"{f.path.name} changed on disk while shotflow was editing it",
                    where=str(f.path),
                    hint="run the command again",
                )
            new = self._render(f)
            if new != f.text:
                _atomic_write(f.path, new)
                written.append(f.path)
            f.text, f.digest, f.edited = new.replace("\r\n", "\n"), hashlib.sha256(new.encode()).hexdigest(), False
            f.before = _dump(f.yaml, f.tree)
        return written

    # -- internals --------------------------------------------------------------------

    def _open(self, path: Path) -> _File:
        """Read one file of the storyboard as the loader would allow it (a regular file inside
        the project or an allowed folder, within the size limit), as a round-trip tree.
        What ruamel (YAML 1.2) cannot read as the loader (YAML 1.1) did is an error, never a crash."""
        from ruamel.yaml.error import YAMLError

        from .trust import Refused, read_limited, readable_file

        try:
            path = readable_file(path, self.root, "included file")
            raw = read_limited(path, f"included file {path}")
            text = raw.decode("utf-8")
        except Refused as exc:
            raise WriteBackError(exc.message, where=str(path), hint=exc.hint) from None
        except UnicodeDecodeError:
            raise WriteBackError(f"{path} is not UTF-8 text", where=str(path)) from None
        newline = "\r\n" if "\r\n" in text else "\n"
        text = text.replace("\r\n", "\n")
        try:
            yaml = _round_trip(text)  # it reads the file's indentation: a parse too
            tree = yaml.load(text)
        except (YAMLError, RecursionError) as exc:
            raise WriteBackError(
                f"{path} cannot be edited as YAML 1.2 reads it: {str(exc).splitlines()[0] if str(exc) else exc!r}",
                where=str(path),
                hint="quote the key or value YAML 1.1 and 1.2 read differently (0o17, yes/no, a key written twice)",
            ) from None
        f = _File(path, text, hashlib.sha256(raw).hexdigest(), tree, newline, yaml, _dump(yaml, tree))
        self._files[path] = f
        return f

    def _collect(self, f: _File, depth: int) -> None:
        scenes = f.tree.get("scenes") if hasattr(f.tree, "get") else None
        if not scenes:
            return
        for item in scenes:
            if not hasattr(item, "get"):
                continue
            if "include" in item:
                rel = item["include"]
                if not isinstance(rel, str):  # the loader (YAML 1.1) read a string: `0o17` is 15 here
                    raise WriteBackError(
                        f"an include in {f.path.name} reads as {rel!r}, not a file name, in YAML 1.2 "
                        "(the loader, in YAML 1.1, read a name: the two would edit different files)",
                        where=str(f.path),
                        hint="quote the file name",
                    )
                target = Path(os.path.realpath(f.path.parent / rel))
                if depth < _MAX_INCLUDE_DEPTH and os.path.lexists(target) and target not in self._files:
                    self._collect(self._open(target), depth + 1)
                continue
            sid = str(item.get("id"))
            self._scenes[sid] = _Scene(f, item)
            self._scene_order.append(sid)

    def _scene(self, scene_id: str) -> _Scene:
        try:
            return self._scenes[scene_id]
        except KeyError:
            raise WriteBackError(
                f"no scene '{scene_id}' in {self.path.name}", hint=did_you_mean(scene_id, self._scenes)
            ) from None

    def _shots(self, scene_id: str) -> list[Any]:
        return list(self._scene(scene_id).node.get("shots") or [])

    def _find_shot(self, shot_id: str) -> tuple[_Scene, Any]:
        if "/" not in shot_id:
            raise WriteBackError(f"'{shot_id}' is not a shot id", hint="write it as scene/shot")
        scene_id, name = shot_id.split("/", 1)
        scene = self._scene(scene_id)
        shots = scene.node.get("shots") or []
        for node in shots:
            if hasattr(node, "get") and str(node.get("id")) == name:
                return scene, node
        names = [str(s.get("id")) for s in shots if hasattr(s, "get")]
        raise WriteBackError(f"no shot '{shot_id}' in {scene.file.path.name}", hint=did_you_mean(name, names))

    def _render(self, f: _File) -> str:
        text = _patch(f.text, f.before, _dump(f.yaml, f.tree))
        return text.replace("\n", f.newline) if f.newline != "\n" else text


def _item_indent(f: _File) -> int:
    """The column where a comment before an item of ``scenes:`` goes (the dash's column)."""
    return _indentation(f.text)["offset"]


def _dump(yaml: Any, tree: Any) -> str:
    import io

    out = io.StringIO()
    yaml.dump(tree, out)
    return out.getvalue()


def _patch(original: str, before: str, after: str) -> str:
    """Apply the change ``before`` -> ``after`` (two dumps of one tree) to ``original``.

    ``before`` is ruamel's dump of the file as it was read, ``after`` its dump once edited.
    Where ruamel reformats a line it did not need to touch, the reformatting is in both
    dumps and cancels out; only the edit reaches the original text (a three-way merge).
    """
    a = original.splitlines(keepends=True)
    b = before.splitlines(keepends=True)
    c = after.splitlines(keepends=True)
    blocks = difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks()

    def to_a(j: int, *, end: bool) -> int:
        """The line of ``original`` that corresponds to line boundary ``j`` of ``before``."""
        prev_a = 0
        for ai, bj, size in blocks:
            if bj <= j <= bj + size and (size or j == bj):
                return ai + (j - bj)
            if j < bj:
                # j falls in a stretch ruamel reformatted: widen to the whole stretch.
                return ai if end else prev_a
            prev_a = ai + size
        return len(a)

    hunks = []
    for tag, j1, j2, k1, k2 in difflib.SequenceMatcher(None, b, c, autojunk=False).get_opcodes():
        if tag != "equal":
            hunks.append((to_a(j1, end=False), to_a(j2, end=True), c[k1:k2]))
    for i1, i2, lines in reversed(hunks):
        a[i1:i2] = lines
    return "".join(a)


def _round_trip(text: str):
    from ruamel.yaml import YAML

    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 1 << 16  # never re-wrap a long prompt
    y.indent(**_indentation(text))
    return y


def _indentation(text: str) -> dict[str, int]:
    """The file's own indentation, so that added lines look like their neighbours.

    ruamel guesses the sequence indent and the dash offset; the mapping indent (a key
    under a key) it does not, so it is read here: the smallest step from a ``key:`` that
    opens a block to the key below it.
    """
    from ruamel.yaml.util import load_yaml_guess_indent

    _, sequence, offset = load_yaml_guess_indent(text)
    steps = []
    previous: tuple[int, bool] | None = None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(line.lstrip(" "))
        opens = stripped.endswith(":") and not stripped.startswith("-")
        if previous and previous[1] and not stripped.startswith("-") and indent > previous[0]:
            steps.append(indent - previous[0])
        previous = (indent, opens)
    mapping = min(steps) if steps else 2
    sequence = sequence or mapping
    return {"mapping": mapping, "sequence": sequence, "offset": offset or 0}


def _move_trailing_comment(node: Any, key: str) -> None:
    """Keep the blank lines and comments that followed a mapping after it when a key is added.

    ruamel attaches what follows a block mapping (a blank line before the next scene, a
    comment) to the end of its last key's value; a key appended after it would land below them.
    """
    keys = list(node.keys())
    if len(keys) < 2:
        return
    holder, slot, position = _tail_slot(node, keys[-2])
    entry = holder.ca.items.get(slot)
    if not entry or len(entry) <= position or entry[position] is None:
        return
    tail, entry[position] = entry[position], None
    target, target_slot, target_position = _tail_slot(node, key)
    item = target.ca.items.setdefault(target_slot, [None, None, None, None])
    item[target_position] = tail


def _pass_on_trailing_lines(table: Any, previous: Any, new: Any) -> None:
    """What followed entry ``previous`` (blank lines, the comment above the next section)
    follows entry ``new`` once it is added after it; ``previous`` keeps its end-of-line comment."""
    import copy

    holder, last = _deepest_last(table, previous)
    entry = holder.ca.items.get(last) if holder is not None else None
    if not entry or len(entry) < 3 or entry[2] is None or "\n" not in entry[2].value:
        return
    token = entry[2]
    cut = token.value.index("\n") + 1
    tail = token.value[cut:]
    if not tail:
        return
    token.value = token.value[:cut]
    target, target_key = _deepest_last(table, new)
    slot = target.ca.items.setdefault(target_key, [None, None, None, None])
    if slot[2] is None:
        moved = copy.copy(token)
        moved.value = "\n" + tail
        slot[2] = moved
    else:
        ending = slot[2].value if slot[2].value.endswith("\n") else slot[2].value + "\n"
        slot[2].value = ending + tail


def _deepest_last(node: Any, key: Any) -> tuple[Any, Any]:
    """The block mapping and key that hold the end of ``node[key]``."""
    value = node[key]
    if hasattr(value, "ca") and hasattr(value, "keys") and len(value) and not value.fa.flow_style():
        return _deepest_last(value, list(value.keys())[-1])
    return node, key


def _tail_slot(node: Any, key: Any) -> tuple[Any, Any, int]:
    """Where ruamel keeps the comment that follows ``node[key]``: (container, key or index, position).

    After a scalar value it is the mapping key's third slot; after a block mapping, that of
    its last key; after a block sequence, the first slot of its last item (or deeper)."""
    value = node[key]
    if hasattr(value, "ca") and not value.fa.flow_style() and len(value):
        if hasattr(value, "keys"):
            return _tail_slot(value, list(value.keys())[-1])
        last = len(value) - 1
        item = value[last]
        if hasattr(item, "keys") and hasattr(item, "ca") and len(item) and not item.fa.flow_style():
            return _tail_slot(item, list(item.keys())[-1])
        return value, last, 0
    return node, key, 2


def _append_items(seq: Any, items: list[Any]) -> None:
    """Append to a sequence, keeping what followed its last item (a blank line, a comment) after the new ones."""
    last = len(seq) - 1
    entry = seq.ca.items.get(last) if last >= 0 and not seq.fa.flow_style() else None
    tail = None
    if entry and entry[0] is not None:
        tail, entry[0] = entry[0], None
    seq.extend(items)
    if tail is not None:
        seq.ca.items.setdefault(len(seq) - 1, [None, None, None, None])[0] = tail


def _plain_to_tree(value: Any) -> Any:
    """Plain dicts and lists as ruamel nodes, short ones in flow style as a user would write them."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(value, Mapping):
        node = CommentedMap((k, _plain_to_tree(v)) for k, v in value.items())
        return node
    if isinstance(value, list | tuple):
        seq = CommentedSeq(_plain_to_tree(v) for v in value)
        if all(not isinstance(v, Mapping | list | tuple) for v in value):
            seq.fa.set_flow_style()
        return seq
    return value


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            out.write(text)
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
