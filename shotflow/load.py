"""Stage 1: YAML files to plain data that remembers where every value came from.

    storyboard.yaml ──events (C parser)──► plain data ──► Source(data, marks on demand)
          │ include: [cast.yaml]      merges characters, locations, vars
          └ scenes: [- include: act2.yaml]   splices scenes in place

Only the YAML core types are accepted: a ``!!python/...`` tag (or any other tag) is
an error and is never constructed. Duplicate keys in one mapping are errors too
(PyYAML would silently keep the last one).
"""

from __future__ import annotations

import os
import re
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
    sha256: str = ""  # of the file's bytes
    text: bytes = field(default=b"", repr=False)
    _marks: dict[Path_, Mark] | None = field(default=None, repr=False)
    _key_marks: dict[Path_, Mark] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return display_path(self.path)

    def _index(self) -> tuple[dict[Path_, Mark], dict[Path_, Mark]]:
        import hashlib

        import yaml

        marks: dict[Path_, Mark] = {}
        key_marks: dict[Path_, Mark] = {}
        self._marks, self._key_marks = marks, key_marks
        text = self.text
        if not text and self.sha256:  # a big file is read again (only to report an error)
            try:
                text = self.path.read_bytes()
            except OSError:
                text = b""
            if hashlib.sha256(text).hexdigest() != self.sha256:
                text = b""  # changed since: its marks would point at the wrong lines
        try:
            node = yaml.compose(text, Loader=_loader_class()) if text else None
        except (yaml.YAMLError, RecursionError):
            node = None  # the error being reported says what is wrong; marks fall back to the file
        if node is not None:
            _Builder(self, marks, key_marks).build(node, ())
        return marks, key_marks

    def mark(self, path: Path_, key: bool = False) -> Mark:
        """The mark of ``path``, or of its nearest ancestor that has one."""
        if self._marks is None or self._key_marks is None:
            marks, key_marks = self._index()
        else:
            marks, key_marks = self._marks, self._key_marks
        table = key_marks if key else marks
        p = tuple(path)
        while p:
            if p in table:
                return table[p]
            if not key and p in key_marks:
                return key_marks[p]
            p = p[:-1]
        return marks.get((), Mark(self.name, 1, 1))

    def place(self, path: Path_, key: bool = False) -> Place:
        """A mark that is only looked up when it is printed."""
        return Place(self, tuple(path), key)


class Place:
    """A lazy Mark: where something is, resolved when an error prints it."""

    __slots__ = ("source", "path", "key", "_mark")

    def __init__(self, source: Source, path: Path_, key: bool = False):
        self.source, self.path, self.key = source, path, key
        self._mark: Mark | None = None

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
    """Parse one YAML file into a Source; errors name file:line:column.

    Bounded: a file over the size limit (``max_file_mb`` in the user config raises it) is
    refused before it is read, as are devices and FIFOs; see ``_build`` for the rest."""
    import yaml

    from .trust import Refused, check_path_text, read_limited

    name = display_path(path)
    try:
        check_path_text(str(path))
        text = read_limited(path, name)
    except Refused as exc:
        raise LoadError(exc.message, hint=exc.hint) from None
    except FileNotFoundError:
        raise LoadError(f"file not found: {name}") from None
    except IsADirectoryError:
        raise LoadError(f"{name} is a folder, not a storyboard file") from None
    except OSError as exc:
        raise LoadError(f"cannot read {name}: {exc.strerror or exc}") from None
    import hashlib

    source = Source(
        path=path, data=None, sha256=hashlib.sha256(text).hexdigest(), text=text if len(text) <= _KEEP_TEXT else b""
    )
    errors: list[ShotflowError] = []
    try:
        data = _build(text, source, errors)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Mark(name, mark.line + 1, mark.column + 1) if mark else name
        problem = exc.problem or exc.context or "invalid YAML"
        hint = quote_hint(text, mark.line + 1) if mark else None
        raise LoadError(f"YAML syntax error: {problem}", where=where, hint=hint) from None
    except yaml.YAMLError as exc:
        raise LoadError(f"YAML error: {exc}", where=name) from None
    for error in errors:
        if isinstance(error.where, Mark) and error.message.startswith(("mapping keys must", "unknown alias")):
            fix = quote_hint(text, error.where.line)
            if fix:
                error.hint = f"{error.hint}, or, if it is text, {fix}" if error.hint else fix
    raise_all(errors)
    source.data = {} if data is None else data
    return source


def _build(text: bytes, source: Source, errors: list[ShotflowError]):
    """YAML events to Python data in one pass, with no node tree: a tenth of the time and
    memory of composing nodes first. Same checks as PyYAML's safe loader and more: a tag
    other than YAML's core types is refused, never constructed; a key given twice in one
    mapping is an error (PyYAML keeps the last); merge keys (``<<: *base``) and anchors
    work. Marks are not kept (see ``Source.mark``)."""
    return _EventReader(text, source, errors).document()


class _Frame:
    """A mapping or sequence being read: what ``_EventReader`` keeps for each open container."""

    __slots__ = ("container", "is_map", "key_event", "key", "anchor", "merges", "bad", "start", "size")

    def __init__(self, container: Any, is_map: bool, anchor: str | None, bad: bool, start: Any):
        self.container = container
        self.is_map = is_map
        self.key_event: Any = None  # the pending key's event (a mapping between a key and its value)
        self.key: Any = None  # the pending key
        self.anchor = anchor
        self.merges: list[tuple[Mark, Any]] | None = None  # ``<<`` values, merged when the mapping ends
        self.bad = bad  # a refused tag: the container reads as None
        self.start = start  # the event that opened it (where it is, if it turns out to be a key)
        self.size = 1  # values it holds, itself included (what an alias of it copies)


class _EventReader:
    """The state of ``_build``'s one pass: open containers, anchors, and the alias budget.

    The loop in ``document`` is the YAML reader's hot path: plain text and the common
    ``key: value`` pair stay inline; tags, aliases, merges and errors go to methods."""

    def __init__(self, text: bytes, source: Source, errors: list[ShotflowError]):
        import yaml

        self.loader = _loader_class()(text)
        self.source = source
        self.errors = errors
        self.scalar_node = yaml.nodes.ScalarNode
        self.constructor: Any = None  # yaml's SafeConstructor, made for the first tagged scalar
        self.anchors: dict[str, Any] = {}
        self.sizes: dict[str, int] = {}  # anchor -> how many values its data holds (what an alias copies)
        self.open_anchors: set[str] = set()
        self.copied = 0  # values copied by aliases

    def document(self):
        """The file's one document as plain data (None for an empty file)."""
        from yaml import events

        get = self.loader.get_event
        get()  # StreamStart
        event = get()
        if isinstance(event, events.StreamEndEvent):
            return None
        root = self._values(get)
        event = get()
        if not isinstance(event, events.StreamEndEvent):
            raise LoadError(
                "the file holds more than one YAML document",
                where=self.mark(event),
                hint="remove the '---' line, or split the file and use include:",
            )
        return root

    def _values(self, get):
        """Read events up to the document's end; return its root value."""
        from yaml import events

        Scalar, MapStart, SeqStart = events.ScalarEvent, events.MappingStartEvent, events.SequenceStartEvent
        Alias = events.AliasEvent
        MapEnd, SeqEnd = events.MappingEndEvent, events.SequenceEndEvent
        resolve, scalar_node = self.loader.resolve, self.scalar_node
        stack: list[_Frame] = []
        root = None
        read = 0  # values read from the file
        event = get()  # after DocumentStart
        while True:
            kind = type(event)
            size = 1
            if kind is Scalar:
                tag = event.tag
                if tag is None or tag == "!":
                    # quoted (or '!') scalars are text; only plain ones go through the resolver
                    tag = resolve(scalar_node, event.value, event.implicit) if event.implicit[0] else _STR
                read += 1
                value = event.value if tag == _STR else self.tagged(event, tag)
                if event.anchor is not None:
                    self.anchors[event.anchor] = value
                    self.sizes[event.anchor] = 1
            elif kind is MapStart or kind is SeqStart:
                read += 1
                stack.append(self.open(event, kind is MapStart, len(stack)))
                event = get()
                continue
            elif kind is Alias:
                value, size = self.alias(event, read)
            elif kind is MapEnd or kind is SeqEnd:
                frame = stack.pop()
                value, size, event = self.close(frame), frame.size, frame.start  # event: where it started
            else:  # DocumentEnd
                return root
            if value is _MERGE_KEY and (not stack or not stack[-1].is_map or stack[-1].key_event is not None):
                value = "<<"  # '<<' as a value, not a key: just text
            if not stack:
                root = value
            else:
                top = stack[-1]
                top.size += size
                if not top.is_map:
                    top.container.append(value)
                elif top.key_event is None:
                    top.key_event, top.key = event, value
                elif type(top.key) is str and top.key not in top.container:  # the common pair, inline
                    top.container[top.key] = value
                    top.key_event = top.key = None
                else:
                    self.pair(stack, top, value)
            event = get()

    def mark(self, event) -> Mark:
        return Mark(self.source.name, event.start_mark.line + 1, event.start_mark.column + 1)

    def refuse(self, event, tag: str) -> None:
        tag = tag.replace("tag:yaml.org,2002:", "!!")
        self.errors.append(
            LoadError(
                f"YAML tag {tag} is not allowed: shotflow reads plain YAML only and never runs code from a file",
                where=self.mark(event),
                hint="remove the tag",
            )
        )

    def tagged(self, event, tag: str) -> Any:
        """A scalar that is not text: a core type constructed by PyYAML, a merge key, or a refused tag."""
        import yaml

        if tag == _MERGE:
            return _MERGE_KEY
        if tag not in _SAFE_SCALAR_TAGS:
            self.refuse(event, tag)
            return None
        if self.constructor is None:
            self.constructor = yaml.constructor.SafeConstructor()
        try:
            value = self.constructor.yaml_constructors[tag](self.constructor, self.scalar_node(tag, event.value))
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError, yaml.YAMLError) as exc:
            self.errors.append(_bad_scalar(event, tag, exc, self.mark(event)))
            return None
        if tag == _TIMESTAMP and value is not None:
            return event.value  # dates are text (and the same from --set)
        return value

    def open(self, event, is_map: bool, depth: int) -> _Frame:
        """A mapping or sequence starts: its frame (bounded in depth; a foreign tag is refused)."""
        tag = event.tag
        bad = tag is not None and tag != "!" and tag != (_MAP if is_map else _SEQ)
        if bad:
            self.refuse(event, tag)
        if depth >= MAX_DEPTH:
            raise LoadError(
                f"the data is nested more than {MAX_DEPTH} levels deep",
                where=self.mark(event),
                hint="a storyboard needs a handful of levels; flatten it",
            )
        container: Any = {} if is_map else []
        if event.anchor is not None:
            self.anchors[event.anchor] = container
            self.open_anchors.add(event.anchor)
        return _Frame(container, is_map, event.anchor, bad, event)

    def close(self, frame: _Frame) -> Any:
        """A container ends: its value, with its ``<<`` merges applied."""
        container = frame.container
        if frame.anchor is not None:
            self.open_anchors.discard(frame.anchor)
            self.sizes[frame.anchor] = frame.size
        if frame.merges:
            container = _merged(container, frame.merges, self.errors)
            if frame.anchor is not None:
                self.anchors[frame.anchor] = container
        return None if frame.bad else container

    def alias(self, event, read: int) -> tuple[Any, int]:
        """``*name``: a copy of the anchored value and how many values it holds (bounded: no billion laughs)."""
        anchor = event.anchor
        if anchor in self.open_anchors:
            self.errors.append(
                LoadError(
                    f"alias *{anchor} refers to a value that contains it",
                    where=self.mark(event),
                    hint="YAML data here must not be recursive",
                )
            )
            return None, 1
        if anchor not in self.anchors:
            self.errors.append(
                LoadError(f"unknown alias *{anchor}", where=self.mark(event), hint="define it first with &" + anchor)
            )
            return None, 1
        size = self.sizes[anchor]
        self.copied += size
        if self.copied > ALIAS_LIMIT + 4 * read:  # checked before copying: memory stays flat
            raise LoadError(
                f"aliases expand this file to more than {ALIAS_LIMIT + 4 * read} values "
                f"(*{anchor} alone copies {size})",
                where=self.mark(event),
                hint="a 'billion laughs' file? write the values out, or alias less",
            )
        value = _copy(self.anchors[anchor])
        return value, 1 if value is None else size

    def pair(self, stack: list[_Frame], top: _Frame, value: Any) -> None:
        """A mapping's value after its key, when the key is not plain new text: a merge, a
        key that is not text, a number or boolean key (kept as text), or a duplicate."""
        key_event, key = top.key_event, top.key
        top.key_event = top.key = None
        if key is _MERGE_KEY:
            if top.merges is None:
                top.merges = []
            top.merges.append((self.mark(key_event), value))
        elif isinstance(key, (dict, list)) or key is None:
            self.errors.append(LoadError("mapping keys must be plain text", where=self.mark(key_event)))
        else:
            if not isinstance(key, str):
                key = str(key)
            if key in top.container:
                first = self.source.mark((*_stack_path(stack), key), key=True)
                self.errors.append(
                    LoadError(f"duplicate key '{key}' (first at line {first.line})", where=self.mark(key_event))
                )
            else:
                top.container[key] = value


# ``key: value`` or ``- value`` whose plain value starts with a character YAML reserves
_RESERVED_VALUE = re.compile(r"^\s*(?:-\s+)?(?:(?P<key>[A-Za-z0-9_][\w.-]*):[ \t]+)?(?P<value>[@`%*{].*)$")


def quote_hint(text: bytes, line: int) -> str | None:
    """The fix of the commonest YAML mistake, when the error is on (or just after) such a line:
    a plain value starting with ``@``, ``{``, ``*``, ``%`` or a backquote (YAML reads
    ``{{ x }}`` as a mapping, ``*x`` as an alias, and refuses ``@``, ``%`` and the backquote)::

        prompt: @kenji runs   →   quote the value: prompt: "@kenji runs"
    """
    lines = text.decode("utf-8", "replace").splitlines()
    for number in (line, line - 1):
        if not 1 <= number <= len(lines):
            continue
        match = _RESERVED_VALUE.match(lines[number - 1])
        if match is None:
            continue
        value = re.sub(r"\s+#.*$", "", match["value"]).rstrip()
        if value.startswith("{") and not value.startswith("{{") and value.endswith("}"):
            return None  # a flow mapping ({id: a, prompt: b}): what is wrong is inside it
        quoted = '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
        written = f"{match['key']}: {quoted}" if match["key"] else f"- {quoted}"
        return f"quote the value: {written}"
    return None


_TIMESTAMP = "tag:yaml.org,2002:timestamp"
MAX_DEPTH = 64  # levels of nesting in one YAML file
ALIAS_LIMIT = 100_000  # values aliases may copy, beyond 4 per value read from the file
_KEEP_TEXT = 256 * 1024  # a file's bytes kept for its marks; a bigger one is read again if needed
_MERGE_KEY = object()  # the value of a '<<' key while its mapping is being read


def _bad_scalar(event, tag: str, exc: Exception, where: Mark) -> LoadError:
    """A scalar its tag cannot read (``!!int abc``, a date such as 2024-02-30)."""
    short = tag.replace("tag:yaml.org,2002:", "")
    shown = event.value if len(event.value) <= 40 else event.value[:37] + "..."
    if short == "timestamp" and not event.tag:
        return LoadError(
            f"'{shown}' looks like a date but is not one ({exc})",
            where=where,
            hint=f'quote it to mean the text: "{shown}"',
        )
    wanted = {"int": "an integer", "float": "a number", "bool": "true or false", "null": "null"}.get(short, short)
    return LoadError(f"'{shown}' is not a valid !!{short}", where=where, hint=f"remove the tag, or write {wanted}")


def _copy(value):
    """An alias's value: a copy, so that no two places of the data share one object."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


def _merged(explicit: dict, merges: list, errors: list[ShotflowError]) -> dict:
    """A mapping with its ``<<`` merges: inherited keys first (an earlier source wins), then
    the mapping's own keys, which win over inherited ones (as PyYAML orders them)."""
    inherited: dict = {}
    for where, value in merges:
        for src in value if isinstance(value, list) else [value]:
            if not isinstance(src, dict):
                errors.append(LoadError("'<<' merges only mappings", where=where))
                continue
            for k, v in src.items():
                if k not in explicit and k not in inherited:
                    inherited[k] = v
    return {**inherited, **explicit}


def _stack_path(stack: list[_Frame]) -> Path_:
    """The document path of the innermost open container (for an error's 'first at')."""
    path: list[str | int] = []
    for parent in stack[:-1]:
        if parent.is_map:
            path.append(parent.key if isinstance(parent.key, str) else str(parent.key))
        else:
            path.append(len(parent.container))
    return tuple(path)


class _Builder:
    """Walks composed YAML nodes and records the mark of every value and key (errors only)."""

    def __init__(self, source: Source, marks: dict[Path_, Mark], key_marks: dict[Path_, Mark]):
        self.marks, self.key_marks = marks, key_marks
        self.name = source.name
        self.errors: list[ShotflowError] = []
        self.budget = 4 * ALIAS_LIMIT  # values indexed at most: aliases make a walk longer than the file
        self.open: set[int] = set()  # nodes being walked: an alias back into one is a cycle

    def mark(self, node) -> Mark:
        return Mark(self.name, node.start_mark.line + 1, node.start_mark.column + 1)

    def build(self, node, path: Path_) -> None:

        self.budget -= 1
        if self.budget < 0 or id(node) in self.open or len(path) > MAX_DEPTH:
            return  # bounded: what is left unindexed is reported at its nearest indexed ancestor
        self.marks[path] = self.mark(node)
        self.open.add(id(node))
        try:
            self._children(node, path)
        finally:
            self.open.discard(id(node))

    def _children(self, node, path: Path_) -> None:
        import yaml.nodes

        if isinstance(node, yaml.nodes.MappingNode):
            seen = set()
            for key_node, value_node in self.flatten(node, self):
                if not isinstance(key_node, yaml.nodes.ScalarNode):
                    continue
                key = key_node.value
                if key in seen:
                    continue
                seen.add(key)
                self.key_marks[(*path, key)] = self.mark(key_node)
                self.build(value_node, (*path, key))
        elif isinstance(node, yaml.nodes.SequenceNode):
            for i, item in enumerate(node.value):
                self.build(item, (*path, i))

    @staticmethod
    def flatten(node, checks, depth: int = 0):
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
                    checks.budget -= 1
                    if depth < MAX_DEPTH and src is not node and checks.budget > 0:
                        merged.extend(_Builder.flatten(src, checks, depth + 1))
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

    def release(self) -> None:
        """Drop the parsed data once it is expanded: the nodes keep what they need, and the
        places of later errors need only the files. (At 10 000 shots: 20 MB.)"""
        self.document = {}
        for source in self.sources:
            source.data = None

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
    from .trust import storyboard_file

    main = read_source(storyboard_file(path))
    errors: list[ShotflowError] = list(validate.check(main, "storyboard"))
    if not isinstance(main.data, dict) or "shotflow" not in main.data:
        raise_all(errors)  # not a storyboard at all: nothing more to say
    assembly = _Assembly(main, errors)
    assembly.merge_library(main, (main.path,))
    assembly.splice(main, main.data.get("scenes") or [], ("scenes",), (main.path,))
    doc = assembly.doc
    doc["scenes"] = assembly.scenes
    doc.pop("include", None)
    if overrides:
        doc["vars"] = _apply_overrides(doc["vars"], overrides)
    raise_all(errors)
    return Loaded(main=main, sources=assembly.sources, document=doc, origin=assembly.origin)


_LIBRARY_SECTIONS = ("characters", "locations", "vars")


class _Assembly:
    """The merged document being built from the main file and its includes (``load``'s state).

    Library files (top-level ``include:``) add characters, locations and vars, each name
    defined once across all files; scene files (``- include:`` in ``scenes``) are spliced
    in place, each scene id used once."""

    def __init__(self, main: Source, errors: list[ShotflowError]):
        self.errors = errors
        self.sources = [main]
        self.doc = dict(main.data)
        self.origin: dict[Path_, tuple[Source, Path_]] = {}
        self.defined_in: dict[tuple[str, str], Source] = {}
        for section in _LIBRARY_SECTIONS:
            value = self.doc.get(section)
            self.doc[section] = dict(value) if isinstance(value, dict) else {}
            for name in self.doc[section]:
                self.origin[(section, name)] = (main, (section, name))
                self.defined_in[(section, name)] = main
        self.scenes: list[Any] = []
        self.scene_ids: dict[str, Place] = {}

    def merge_library(self, src: Source, stack: tuple[Path, ...]) -> None:
        """Merge the files ``src`` includes at its top level (and theirs, depth first)."""
        includes = src.data.get("include")
        for i, inc in enumerate(includes if isinstance(includes, list) else []):
            if not isinstance(inc, str):
                continue
            child = _include(src, ("include", i), inc, stack, "library", self.errors)
            if child is None:
                continue
            self.sources.append(child)
            for section in _LIBRARY_SECTIONS:
                for name, value in (child.data.get(section) or {}).items():
                    self._define(child, section, name, value)
            self.merge_library(child, (*stack, child.path))

    def _define(self, child: Source, section: str, name: str, value: Any) -> None:
        first = self.defined_in.get((section, name))
        if first is not None:
            kind = section[:-1] if section != "vars" else "var"
            self.errors.append(
                LoadError(
                    f"{kind} '{name}' is defined twice: in {first.name} and in {child.name}",
                    where=child.mark((section, name), key=True),
                )
            )
            return
        self.defined_in[(section, name)] = child
        self.doc[section][name] = value
        self.origin[(section, name)] = (child, (section, name))

    def splice(self, src: Source, items: list, base: Path_, stack: tuple[Path, ...]) -> None:
        """Append ``src``'s scenes at ``base``, a ``- include:`` item replaced by that file's scenes."""
        for i, item in enumerate(items if isinstance(items, list) else []):
            if not isinstance(item, dict):
                continue  # the schema check said what is wrong with it
            if "include" in item:
                if not isinstance(item["include"], str):
                    continue
                child = _include(src, (*base, i, "include"), item["include"], stack, "scenes", self.errors)
                if child is None:
                    continue
                self.sources.append(child)
                self.splice(child, child.data.get("scenes") or [], ("scenes",), (*stack, child.path))
                continue
            self.origin[("scenes", len(self.scenes))] = (src, (*base, i))
            self.scenes.append(item)
            sid = item.get("id")
            if not isinstance(sid, str):
                continue  # the schema check said what is wrong with it
            mark = src.place((*base, i, "id"))
            if sid in self.scene_ids:
                self.errors.append(
                    LoadError(f"scene id '{sid}' is used twice (first at {self.scene_ids[sid]})", where=mark)
                )
            else:
                self.scene_ids[sid] = mark


def _include(parent: Source, at: Path_, rel: str, stack: tuple[Path, ...], kind: str, errors: list) -> Source | None:
    from . import validate
    from .trust import Refused, check_path_text, project_folder, readable_file

    where = parent.place(at)
    try:
        check_path_text(rel)
        target = (parent.path.parent / rel).resolve()
    except Refused as exc:
        errors.append(LoadError(f"include {rel[:80]!r}: {exc.message}", where=where))
        return None
    except (OSError, RuntimeError) as exc:  # too long a name, a symlink loop
        errors.append(LoadError(f"include {rel[:80]!r}: {exc}", where=where))
        return None
    if target in stack:
        chain = " -> ".join(display_path(p) for p in (*stack[stack.index(target) :], target))
        errors.append(LoadError(f"include cycle: {chain}", where=where))
        return None
    if not os.path.lexists(target):
        hint = None
        if target.parent.is_dir():
            hint = did_you_mean(target.name, [p.name for p in target.parent.iterdir()])
        errors.append(LoadError(f"included file not found: {display_path(target)}", where=where, hint=hint))
        return None
    try:
        readable_file(target, project_folder(stack[0].parent), "included file")
    except Refused as exc:
        errors.append(LoadError(f"include {rel}: {exc.message}", where=where, hint=exc.hint))
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
    """``--set a.b=3`` pairs to a nested dict; values are read as YAML scalars.

    A pair written ``+key=value`` (``--set-new``) may add a var: its first key keeps the
    ``+`` (``{"+mood": "calm"}``), which ``_apply_overrides`` reads."""

    from .errors import ConfigError

    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        new = key.strip().startswith("+")
        key = key.strip().removeprefix("+")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects key=value, got '{pair}'")
        value = _override_value(key.strip(), raw)
        node = result
        parts = key.strip().split(".")
        if new:
            parts[0] = "+" + parts[0]
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: '{part}' is set twice, as a value and as a group")
        node[parts[-1]] = value
    return result


def _override_value(key: str, raw: str) -> Any:
    """A ``--set`` value, read as the same value in the storyboard would be (a date stays
    text); text that is not one YAML scalar is taken as it is; a value its tag refuses
    (``!!int abc``, ``2024-02-30``) is an error."""
    import yaml

    from .errors import ConfigError

    if not raw.strip():
        return ""
    errors: list[ShotflowError] = []
    try:
        value = _build(raw.encode("utf-8", "surrogatepass"), Source(path=Path("--set"), data=None), errors)
    except (yaml.YAMLError, UnicodeError):
        return raw
    except LoadError as exc:
        errors.append(exc)
    if errors:
        raise ConfigError(f"--set {key}={raw[:60]}: {errors[0].message}", hint=errors[0].hint)
    return raw if isinstance(value, (dict, list)) else value


def _apply_overrides(
    base: dict, overrides: dict, *, new: bool = False, path: tuple[str, ...] = (), root: dict | None = None
) -> dict:
    """The vars with ``--set`` overrides applied (a nested dict: ``{"look": {"grade": "teal"}}``
    sets the key ``grade`` of the mapping var ``look``).

    A key must name a var the storyboard defines (or a key of a mapping var): a typo would
    otherwise change nothing, silently. A key marked new (``+key``: ``--set-new``) may add
    one. Only a mapping has keys: ``look.grade=…`` on a text var is an error, never a
    mapping put into every prompt.
    """
    from .errors import ConfigError

    root = base if root is None else root
    merged = dict(base)
    for raw, value in overrides.items():
        adds = new or raw.startswith("+")
        key = raw.removeprefix("+")
        dotted = ".".join((*path, key))
        if key not in merged and not adds:
            known = _dotted_keys(root)
            hint = did_you_mean(dotted, known) or (
                f"its vars: {', '.join(known[:20])}" if known else "the storyboard has no vars"
            )
            raise ConfigError(
                f"--set {dotted}: the storyboard has no var '{dotted}'",
                hint=f"{hint}; to add a var on purpose: --set-new {dotted}=VALUE",
            )
        if isinstance(value, dict):  # a key of a mapping: --set look.grade=teal
            current = merged.get(key, {})
            if not isinstance(current, dict):
                sub = next(iter(value)).removeprefix("+")
                kind = (
                    "a list"
                    if isinstance(current, list)
                    else "empty"
                    if current is None
                    else f"text ({current!r})"
                    if isinstance(current, str)
                    else f"{current!r}"
                )
                raise ConfigError(
                    f"--set {dotted}.{sub}: the var '{dotted}' is {kind}, not a mapping, so it has no key '{sub}'",
                    hint=f"set the whole var: --set {dotted}=VALUE",
                )
            merged[key] = _apply_overrides(current, value, new=adds, path=(*path, key), root=root)
        else:
            merged[key] = value
    return merged


def _dotted_keys(mapping: dict, prefix: str = "", limit: int = 1000) -> list[str]:
    """Every key of a nested mapping as ``a``, ``a.b`` … (for a did-you-mean), at most ``limit``."""
    keys: list[str] = []
    for key, value in mapping.items():
        if len(keys) >= limit:
            break
        name = f"{prefix}{key}"
        keys.append(name)
        if isinstance(value, dict):
            keys.extend(_dotted_keys(value, name + ".", limit - len(keys)))
    return keys


__all__ = ["Loaded", "Source", "load", "parse_overrides", "read_source", "ErrorList"]
