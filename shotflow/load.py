"""Stage 1: YAML files to plain data that remembers where every value came from.

    storyboard.yaml ──compose (C loader)──► nodes with marks ──► Source(data, marks)
          │ include: [cast.yaml]      merges characters, locations, vars
          └ scenes: [- include: act2.yaml]   splices scenes in place

Only the YAML core types are accepted: a ``!!python/...`` tag (or any other tag) is
an error and is never constructed. Duplicate keys in one mapping are errors too
(PyYAML would silently keep the last one).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ErrorList, LoadError, Mark, ShotflowError, did_you_mean, raise_all

Path_ = tuple[str | int, ...]

_SAFE_SCALAR_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:timestamp",
}
_STR = "tag:yaml.org,2002:str"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_MERGE = "tag:yaml.org,2002:merge"


@dataclass
class Source:
    """One loaded YAML file: its data, and (on demand) the mark of every value and key.

    ``mark(("scenes", 0, "shots", 2, "prompt"))`` is where that value starts;
    ``mark(path, key=True)`` where its key does (unknown keys are reported there).
    Marks are only needed to report errors, so they are computed the first time one is
    asked for, by reading the file's nodes again.
    """

    path: Path
    data: Any
    stat: tuple[int, int, int] = (0, 0, 0)  # size, mtime_ns, inode when read
    sha256: str = ""  # of the file's bytes
    text: bytes = field(default=b"", repr=False)
    _marks: dict[Path_, Mark] | None = field(default=None, repr=False)
    _key_marks: dict[Path_, Mark] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return display_path(self.path)

    def _index(self) -> None:
        import yaml

        self._marks, self._key_marks = {}, {}
        node = yaml.compose(self.text, Loader=_loader_class()) if self.text else None
        if node is not None:
            _Builder(self).build(node, ())

    def mark(self, path: Path_, key: bool = False) -> Mark:
        """The mark of ``path``, or of its nearest ancestor that has one."""
        if self._marks is None:
            self._index()
        table = self._key_marks if key else self._marks
        p = tuple(path)
        while p:
            if p in table:
                return table[p]
            if not key and p in self._key_marks:
                return self._key_marks[p]
            p = p[:-1]
        return self._marks.get((), Mark(self.name, 1, 1))

    def place(self, path: Path_, key: bool = False) -> Place:
        """A mark that is only looked up when it is printed."""
        return Place(self, tuple(path), key)


class Place:
    """A lazy Mark: where something is, resolved when an error prints it."""

    __slots__ = ("source", "path", "key", "_mark")

    def __init__(self, source: Source, path: Path_, key: bool = False):
        self.source, self.path, self.key, self._mark = source, path, key, None

    def mark(self) -> Mark:
        if self._mark is None:
            self._mark = self.source.mark(self.path, self.key)
        return self._mark

    @property
    def file(self) -> str:
        return self.mark().file

    @property
    def line(self) -> int:
        return self.mark().line

    @property
    def column(self) -> int:
        return self.mark().column

    def __str__(self) -> str:
        return str(self.mark())

    def __repr__(self) -> str:
        return f"Place({self.source.name}, {self.path!r})"


def display_path(path: Path) -> str:
    """A path as a user would type it: relative to the working folder when inside it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if rel.startswith("..") else rel


def _loader_class():
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def read_source(path: Path) -> Source:
    """Parse one YAML file into a Source; errors name file:line:column."""
    import yaml

    name = display_path(path)
    try:
        st = os.stat(path)
        text = path.read_bytes()
    except FileNotFoundError:
        raise LoadError(f"file not found: {name}") from None
    except OSError as exc:
        raise LoadError(f"cannot read {name}: {exc.strerror}") from exc
    try:
        node = yaml.compose(text, Loader=_loader_class())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Mark(name, mark.line + 1, mark.column + 1) if mark else name
        problem = exc.problem or exc.context or "invalid YAML"
        raise LoadError(f"YAML syntax error: {problem}", where=where) from None
    except yaml.YAMLError as exc:
        raise LoadError(f"YAML error: {exc}", where=name) from None
    import hashlib

    source = Source(path=path, data=None, stat=(st.st_size, st.st_mtime_ns, st.st_ino),
                    sha256=hashlib.sha256(text).hexdigest(), text=text)
    if node is None:
        source.data = {}
        return source
    errors: list[ShotflowError] = []
    source.data = _plain(node, _Checks(name, errors))
    raise_all(errors)
    return source


class _Checks:
    """What the fast build needs to report a bad tag or a duplicate key where it is."""

    def __init__(self, name: str, errors: list[ShotflowError]):
        import yaml.constructor

        self.name = name
        self.errors = errors
        self.constructor = yaml.constructor.SafeConstructor()

    def mark(self, node) -> Mark:
        return Mark(self.name, node.start_mark.line + 1, node.start_mark.column + 1)


def _plain(node, checks: _Checks):
    """Composed nodes to Python data, quickly: no marks (see Source.mark), same checks."""
    import yaml.nodes

    kind = type(node)
    if kind is yaml.nodes.ScalarNode:
        tag = node.tag
        if tag == _STR:
            return node.value
        if tag in _SAFE_SCALAR_TAGS:
            if tag == "tag:yaml.org,2002:timestamp":
                return node.value
            return checks.constructor.yaml_constructors[tag](checks.constructor, node)
        return _refuse_tag(node, checks)
    if kind is yaml.nodes.SequenceNode:
        if node.tag != _SEQ:
            return _refuse_tag(node, checks)
        return [_plain(item, checks) for item in node.value]
    if node.tag != _MAP:
        return _refuse_tag(node, checks)
    result: dict = {}
    pairs = node.value
    if any(k.tag == _MERGE for k, _ in pairs):
        pairs = _Builder.flatten(node, checks)
    for key_node, value_node in pairs:
        key = _plain(key_node, checks)
        if not isinstance(key, (str, int, float, bool)) or key is None:
            checks.errors.append(LoadError("mapping keys must be plain text", where=checks.mark(key_node)))
            continue
        if not isinstance(key, str):
            key = str(key)
        if key in result:
            first = next(k for k, _ in pairs if isinstance(k, yaml.nodes.ScalarNode) and k.value == key)
            checks.errors.append(LoadError(f"duplicate key '{key}' (first at line {first.start_mark.line + 1})",
                                           where=checks.mark(key_node)))
            continue
        result[key] = _plain(value_node, checks)
    return result


def _refuse_tag(node, checks) -> None:
    tag = node.tag.replace("tag:yaml.org,2002:", "!!")
    checks.errors.append(
        LoadError(f"YAML tag {tag} is not allowed: shotflow reads plain YAML only and never runs code from a file",
                  where=checks.mark(node), hint="remove the tag")
    )
    return None


class _Builder:
    """Walks composed YAML nodes and records the mark of every value and key (errors only)."""

    def __init__(self, source: Source):
        self.source = source
        self.name = source.name
        self.errors: list[ShotflowError] = []

    def mark(self, node) -> Mark:
        return Mark(self.name, node.start_mark.line + 1, node.start_mark.column + 1)

    def build(self, node, path: Path_) -> None:
        import yaml.nodes

        self.source._marks[path] = self.mark(node)
        if isinstance(node, yaml.nodes.MappingNode):
            seen = set()
            for key_node, value_node in self.flatten(node, self):
                if not isinstance(key_node, yaml.nodes.ScalarNode):
                    continue
                key = key_node.value
                if key in seen:
                    continue
                seen.add(key)
                self.source._key_marks[(*path, key)] = self.mark(key_node)
                self.build(value_node, (*path, key))
        elif isinstance(node, yaml.nodes.SequenceNode):
            for i, item in enumerate(node.value):
                self.build(item, (*path, i))

    @staticmethod
    def flatten(node, checks):
        """Mapping pairs with YAML merge keys (``<<: *base``) expanded, explicit keys winning."""
        import yaml.nodes

        pairs, merged = [], []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                sources = value_node.value if isinstance(value_node, yaml.nodes.SequenceNode) else [value_node]
                for src in sources:
                    if not isinstance(src, yaml.nodes.MappingNode):
                        checks.errors.append(LoadError("'<<' merges only mappings", where=checks.mark(src)))
                        continue
                    merged.extend(_Builder.flatten(src, checks))
            else:
                pairs.append((key_node, value_node))
        explicit = {k.value for k, _ in pairs if isinstance(k, yaml.nodes.ScalarNode)}
        inherited = []
        for key_node, value_node in merged:
            if key_node.value not in explicit:
                explicit.add(key_node.value)
                inherited.append((key_node, value_node))
        return inherited + pairs


# ---------------------------------------------------------------------------
# Storyboard assembly: includes and --set overrides


@dataclass
class Loaded:
    """The storyboard's main file, every file it includes, and the merged document.

    ``document`` is the main file's data with top-level includes merged in and scene
    includes spliced; ``origin`` maps each item to the Source it came from so that
    later stages can report file:line:column: ``origin[("characters", "mara")]`` and
    ``origin[("scenes", 3)]`` give ``(source, path_inside_that_source)``.
    """

    main: Source
    sources: list[Source]
    document: dict[str, Any]
    origin: dict[Path_, tuple[Source, Path_]]

    def where(self, path: Path_, key: bool = False) -> Place:
        """Where a path of the merged document (``("scenes", 3, "shots", 0, "prompt")``) is
        written, as a Place (resolved to file:line:column only when printed)."""
        for n in range(len(path), 0, -1):
            hit = self.origin.get(tuple(path[:n]))
            if hit:
                source, inner = hit
                return source.place((*inner, *path[n:]), key=key)
        return self.main.place(tuple(path), key=key)


def load(path: Path | str, overrides: dict[str, Any] | None = None) -> Loaded:
    """Read, check and assemble a storyboard and its includes.

    Schema errors of every file are collected and raised together.
    """
    from . import validate

    main_path = Path(path).resolve()
    main = read_source(main_path)
    errors: list[ShotflowError] = list(validate.check(main, "storyboard"))
    if not isinstance(main.data, dict) or "shotflow" not in main.data:
        raise_all(errors)  # not a storyboard at all: nothing more to say
    sources = [main]
    doc = dict(main.data)
    origin: dict[Path_, tuple[Source, Path_]] = {}
    for section in ("characters", "locations", "vars"):
        doc[section] = dict(doc[section]) if isinstance(doc.get(section), dict) else {}
        for name in doc[section]:
            origin[(section, name)] = (main, (section, name))
    defined_in: dict[tuple[str, str], Source] = {
        (section, name): main for section in ("characters", "locations", "vars") for name in doc[section]
    }

    def merge_library(src: Source, stack: tuple[Path, ...]):
        includes = src.data.get("include")
        for i, inc in enumerate(includes if isinstance(includes, list) else []):
            if not isinstance(inc, str):
                continue
            child = _include(src, ("include", i), inc, stack, "library", errors)
            if child is None:
                continue
            sources.append(child)
            for section in ("characters", "locations", "vars"):
                for name, value in (child.data.get(section) or {}).items():
                    first = defined_in.get((section, name))
                    if first is not None:
                        errors.append(
                            LoadError(
                                f"{section[:-1] if section != 'vars' else 'var'} '{name}' is defined twice: "
                                f"in {first.name} and in {child.name}",
                                where=child.mark((section, name), key=True),
                            )
                        )
                        continue
                    defined_in[(section, name)] = child
                    doc[section][name] = value
                    origin[(section, name)] = (child, (section, name))
            merge_library(child, (*stack, child.path))

    merge_library(main, (main.path,))

    scenes: list[Any] = []
    scene_ids: dict[str, Mark] = {}

    def splice(src: Source, items: list, base: Path_, stack: tuple[Path, ...]):
        for i, item in enumerate(items if isinstance(items, list) else []):
            if not isinstance(item, dict):
                continue  # the schema check said what is wrong with it
            if "include" in item:
                if not isinstance(item["include"], str):
                    continue
                child = _include(src, (*base, i, "include"), item["include"], stack, "scenes", errors)
                if child is None:
                    continue
                sources.append(child)
                splice(child, child.data.get("scenes") or [], ("scenes",), (*stack, child.path))
                continue
            index = len(scenes)
            scenes.append(item)
            origin[("scenes", index)] = (src, (*base, i))
            sid = item.get("id")
            mark = src.place((*base, i, "id"))
            if sid in scene_ids:
                errors.append(LoadError(f"scene id '{sid}' is used twice (first at {scene_ids[sid]})", where=mark))
            else:
                scene_ids[sid] = mark

    splice(main, main.data.get("scenes") or [], ("scenes",), (main.path,))
    doc["scenes"] = scenes
    doc.pop("include", None)
    if overrides:
        doc["vars"] = _apply_overrides(doc["vars"], overrides)
    raise_all(errors)
    return Loaded(main=main, sources=sources, document=doc, origin=origin)


def _include(parent: Source, at: Path_, rel: str, stack: tuple[Path, ...], kind: str, errors: list) -> Source | None:
    from . import validate

    where = parent.place(at)
    target = (parent.path.parent / rel).resolve()
    if target in stack:
        chain = " -> ".join(display_path(p) for p in (*stack[stack.index(target):], target))
        errors.append(LoadError(f"include cycle: {chain}", where=where))
        return None
    if not target.is_file():
        hint = None
        if target.parent.is_dir():
            hint = did_you_mean(target.name, [p.name for p in target.parent.iterdir()])
        errors.append(LoadError(f"included file not found: {display_path(target)}", where=where, hint=hint))
        return None
    try:
        child = read_source(target)
    except ShotflowError as exc:
        errors.append(exc)
        return None
    problems = list(validate.check(child, "library" if kind == "library" else "scenes_file"))
    if problems:
        errors.extend(problems)
        return None
    return child


def parse_overrides(pairs: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``--set a.b=3`` pairs to a nested dict; values are read as YAML scalars."""
    import yaml

    from .errors import ConfigError

    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got '{pair}'")
        try:
            value = yaml.load(raw, Loader=_loader_class()) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        if isinstance(value, (dict, list)):
            value = raw
        node = result
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: '{part}' is set twice, as a value and as a group")
        node[parts[-1]] = value
    return result


def _apply_overrides(base: dict, overrides: dict) -> dict:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _apply_overrides(merged[key], value)
        else:
            merged[key] = value
    return merged


__all__ = ["Loaded", "Source", "load", "parse_overrides", "read_source", "ErrorList"]
