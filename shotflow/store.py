"""The store: content-addressed objects, action records, the lock file, and the
small durable stores backends use (journal, memo).

    .shotflow/                       (the cache: --cache DIR or SHOTFLOW_CACHE moves it)
    ├── objects/ab/cdef…             image bytes, named by their sha256, read-only
    ├── actions/ab/<key>.json        one Record per request key: outputs, ids, seed, cost
    ├── journal/<key>.json           tasks sent to a paid backend and not yet recorded
    ├── memo.json                    e.g. content hash → Runware upload UUID, with expiry
    └── urls.json                    URL → sha256 of its bytes, pinned at first fetch
    <project>/.shotflow/             (always beside the storyboard)
    ├── stat.json                    path → (size, mtime_ns, inode, sha256): files not re-hashed
    ├── run.lock                     one render at a time per project
    └── last-run.json                what the last complete render saw (the no-op fast path)
    <project>/NAME.lock              node id → key, picked output, ids, seed, cost (commit it)

Every write is atomic (temp file + rename). An object is verified by its hash before
its bytes are used; a corrupt one is removed and reported, never used.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import BusyError, LockedError

LOCK_FORMAT = 1


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no insignificant whitespace, UTF-8: the form keys are hashed in."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


_tmp_counter = itertools.count()


def atomic_write(path: Path | str, data: bytes | Iterable[bytes], *, durable: bool = False,
                 mode: int | None = None) -> None:
    """Write ``data`` (bytes, or chunks of them) to ``path`` so that readers see the old or
    the new file, never half of one.

    The temporary file is created exclusively beside the target (same file system, so
    the rename is atomic); ``durable`` also flushes the file and its folder to disk.
    """
    path = os.fspath(path)
    folder = os.path.dirname(path)
    tmp = f"{folder}/.tmp-{os.getpid()}-{threading.get_ident()}-{next(_tmp_counter)}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        fd = os.open(tmp, flags, 0o644 if mode is None else mode)
    except FileNotFoundError:
        os.makedirs(folder, exist_ok=True)
        fd = os.open(tmp, flags, 0o644 if mode is None else mode)
    try:
        with os.fdopen(fd, "wb") as f:
            if isinstance(data, (bytes, bytearray, memoryview)):
                f.write(data)
            else:
                f.writelines(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if durable:
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def json_object_chunks(items: Iterable[tuple[str, Any]], *, indent: int, depth: int = 0) -> Iterator[bytes]:
    """The entries and closing brace of a JSON object (the caller writes the opening one),
    an entry at a time, byte for byte as ``json.dumps(dict(items), indent=indent,
    sort_keys=True, ensure_ascii=False)`` writes it nested ``depth`` levels deep. Items
    come sorted by key. A big file is then never one string in memory."""
    inner = "\n" + " " * (indent * (depth + 1))
    separator = inner
    for key, value in items:
        body = json.dumps(value, indent=indent, sort_keys=True, ensure_ascii=False).replace("\n", inner)
        yield f"{separator}{json.dumps(key, ensure_ascii=False)}: {body}".encode()
        separator = "," + inner
    yield b"}" if separator == inner else ("\n" + " " * (indent * depth) + "}").encode()


def _stat_key(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_size, st.st_mtime_ns, st.st_ino)


# -- records -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Output:
    """One generated image of a node, as stored."""

    sha256: str
    ext: str
    seed: int | None = None
    remote_id: str | None = None  # the backend's id (Runware imageUUID)
    url: str | None = None
    cost: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Output:
        return cls(**{k: data.get(k) for k in ("sha256", "ext", "seed", "remote_id", "url", "cost")})


@dataclass(frozen=True, slots=True)
class Record:
    """The result of one request key: the action record (and, with a pick, a lock entry)."""

    key: str
    backend: str
    model: str
    outputs: tuple[Output, ...]
    task_id: str | None = None
    cost: float | None = None
    roll: int = 0  # how many times --force re-rolled this key
    created: str | None = None
    request: dict[str, Any] = field(default_factory=dict, compare=False)  # what the key was made of

    def picked(self, pick: int) -> Output:
        return self.outputs[min(pick, len(self.outputs)) - 1]

    def to_json(self, *, full: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {"key": self.key, "backend": self.backend, "model": self.model,
                                "outputs": [o.to_json() for o in self.outputs], "roll": self.roll}
        if self.task_id is not None:
            data["task_id"] = self.task_id
        if self.cost is not None:
            data["cost"] = round(self.cost, 6)
        if full:
            data["created"] = self.created
            data["request"] = self.request
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Record:
        return cls(key=data["key"], backend=data["backend"], model=data.get("model", ""),
                   outputs=tuple(Output.from_json(o) for o in data["outputs"]), task_id=data.get("task_id"),
                   cost=data.get("cost"), roll=data.get("roll", 0), created=data.get("created"),
                   request=data.get("request") or {})


class CorruptObject(Exception):
    """An object whose bytes no longer match its name (internal: the run re-renders)."""


# -- the stat index ------------------------------------------------------------------


class StatIndex:
    """path → (size, mtime_ns, inode, sha256), so unchanged files are not hashed again."""

    def __init__(self, path: Path):
        self.path = path
        self._data: dict[str, list] | None = None
        self._dirty = False

    @property
    def data(self) -> dict[str, list]:
        if self._data is None:
            try:
                self._data = json.loads(self.path.read_bytes())
            except (FileNotFoundError, ValueError):
                self._data = {}
        return self._data

    def known(self, path: Path | str, st: os.stat_result) -> str | None:
        entry = self.data.get(str(path))
        if entry and tuple(entry[:3]) == _stat_key(st):
            return entry[3]
        return None

    def remember(self, path: Path | str, st: os.stat_result, digest: str) -> None:
        self.data[str(path)] = [*_stat_key(st), digest]
        self._dirty = True

    def forget(self, path: Path | str) -> None:
        if self.data.pop(str(path), None) is not None:
            self._dirty = True

    def save(self) -> None:
        if self._dirty:
            atomic_write(self.path, json.dumps(self.data, separators=(",", ":")).encode())
            self._dirty = False


# -- the store -----------------------------------------------------------------------


class Store:
    """Objects, action records, the stat index and the small durable stores of one cache."""

    def __init__(self, cache_dir: Path, state_dir: Path, *, durable: bool = False):
        self.cache_dir = cache_dir
        self.state_dir = state_dir
        self.objects_dir = cache_dir / "objects"
        self._objects = str(self.objects_dir)
        self.actions_dir = cache_dir / "actions"
        self.durable = durable
        self.index = StatIndex(state_dir / "stat.json")
        self.journal = Journal(cache_dir / "journal")
        self.memo = Memo(cache_dir / "memo.json")
        self._verified: set[str] = set()
        # verified bytes a render still needs, by hash: [bytes, holders] (see hold/release).
        # A frame stays while shots that reference it have not finished, so memory follows
        # the DAG's frontier, not the number of shots, and nothing is read twice
        self._held: dict[str, list] = {}

    # objects

    def object_path(self, digest: str) -> Path:
        return Path(self._object_file(digest))

    def _object_file(self, digest: str) -> str:
        return f"{self._objects}/{digest[:2]}/{digest[2:]}"

    def put(self, data: bytes) -> str:
        digest = sha256_bytes(data)
        path = self.object_path(digest)
        if not self.has(digest):
            atomic_write(path, data, durable=self.durable, mode=0o444)
            self.index.remember(path, os.stat(path), digest)
            self._verified.add(digest)
        return digest

    def hold(self, digest: str, data: bytes) -> None:
        """Keep ``data``, the verified bytes of object ``digest``, in memory for ``read``
        until a ``release`` matches this call (holds are counted per digest)."""
        entry = self._held.get(digest)
        if entry is None:
            self._held[digest] = [data, 1]
        else:
            entry[1] += 1

    def release(self, digest: str) -> None:
        entry = self._held.get(digest)
        if entry is not None:
            entry[1] -= 1
            if entry[1] <= 0:
                del self._held[digest]

    def held_bytes(self) -> int:
        """How many object bytes are held in memory (diagnostics and tests)."""
        return sum(len(data) for data, _ in self._held.values())

    def has(self, digest: str) -> bool:
        """True when the object exists and its bytes match its name (cheap when unchanged)."""
        if digest in self._verified:
            return True
        path = self._object_file(digest)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return False
        if self.index.known(path, st) == digest:
            self._verified.add(digest)
            return True
        actual = _hash_file(path)
        if actual != digest:
            self._discard(Path(path))
            return False
        self.index.remember(path, st, digest)
        self._verified.add(digest)
        return True

    def read(self, digest: str) -> bytes:
        """The object's bytes, verified by hash; CorruptObject when missing or damaged."""
        held = self._held.get(digest)
        if held is not None:
            return held[0]
        path = self.object_path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise CorruptObject(f"object {digest[:12]} is missing from the cache") from None
        if sha256_bytes(data) != digest:
            self._discard(path)
            raise CorruptObject(f"object {digest[:12]} is corrupt (its bytes no longer match its hash)")
        return data

    def _discard(self, path: Path) -> None:
        digest = path.parent.name + path.name
        self._verified.discard(digest)
        self._held.pop(digest, None)
        self.index.forget(path)
        try:
            path.unlink()
        except FileNotFoundError:
            pass

    # files outside the store

    def file_hash(self, path: Path | str) -> str:
        """sha256 of a file, through the stat index."""
        path = Path(path)
        st = os.stat(path)
        known = self.index.known(path, st)
        if known:
            return known
        digest = _hash_file(path)
        self.index.remember(path, st, digest)
        return digest

    def export(self, digest: str, dest: Path, data: bytes | None = None) -> None:
        """Copy an object to a human-named file (renders/...), unless it is already there.

        ``data``, when given, are the object's bytes the caller just stored (not read again)."""
        try:
            st = os.stat(dest)
        except FileNotFoundError:
            st = None
        if st is not None and self.index.known(dest, st) == digest:
            return
        if data is None:
            data = self.read(digest)
        atomic_write(dest, data, mode=0o644)
        self.index.remember(dest, os.stat(dest), digest)

    # action records

    def action_path(self, key: str) -> Path:
        return self.actions_dir / key[:2] / f"{key}.json"

    def get_action(self, key: str) -> Record | None:
        try:
            data = json.loads(self.action_path(key).read_bytes())
        except FileNotFoundError:
            return None
        except ValueError:
            return None  # a damaged record is a cache miss
        return Record.from_json(data)

    def put_action(self, record: Record) -> None:
        atomic_write(self.action_path(record.key), json.dumps(record.to_json(), indent=1, sort_keys=True).encode(),
                     durable=self.durable)

    def complete(self, record: Record | None) -> bool:
        """True when every output object of the record is present and verifies."""
        return record is not None and bool(record.outputs) and all(self.has(o.sha256) for o in record.outputs)

    def save(self) -> None:
        self.index.save()


def _hash_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def open_store(project_root: Path, cache_dir: Path | None = None, *, durable: bool = False) -> Store:
    state = project_root / ".shotflow"
    env = os.environ.get("SHOTFLOW_CACHE")
    cache = cache_dir or (Path(env) if env else state)
    return Store(Path(cache).resolve(), state, durable=durable)


# -- small durable stores for backends -----------------------------------------------------


class Journal:
    """Tasks sent to a paid backend, one durable file per request key (see backends.Journal).

    The folder is listed once; asking about a key with no entry costs no system call.
    """

    def __init__(self, root: Path):
        self.root = root
        self._keys: set[str] | None = None

    def _path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def _known(self) -> set[str]:
        if self._keys is None:
            try:
                self._keys = {name[:-5] for name in os.listdir(self.root) if name.endswith(".json")}
            except FileNotFoundError:
                self._keys = set()
        return self._keys

    def pending(self, key: str) -> dict[str, Any] | None:
        if key not in self._known():
            return None
        try:
            return json.loads(self._path(key).read_bytes())
        except (FileNotFoundError, ValueError):
            return None

    def begin(self, key: str, record: dict[str, Any]) -> None:
        atomic_write(self._path(key), json.dumps({**record, "key": key}, sort_keys=True).encode(), durable=True)
        self._known().add(key)

    def finish(self, key: str) -> None:
        if key not in self._known():
            return
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            pass
        self._known().discard(key)

    def entries(self) -> list[dict[str, Any]]:
        if not self.root.is_dir():
            return []
        result = []
        for path in sorted(self.root.glob("*.json")):
            try:
                result.append(json.loads(path.read_bytes()))
            except ValueError:
                continue
        return result


class Memo:
    """A JSON key-value file with expiry (see backends.Memo)."""

    def __init__(self, path: Path):
        self.path = path
        self._data: dict[str, list] | None = None

    def _load(self) -> dict[str, list]:
        if self._data is None:
            try:
                self._data = json.loads(self.path.read_bytes())
            except (FileNotFoundError, ValueError):
                self._data = {}
        return self._data

    def get(self, name: str) -> Any | None:
        entry = self._load().get(name)
        if entry is None:
            return None
        value, expires = entry
        if expires is not None and expires < time.time():
            self.drop(name)
            return None
        return value

    def put(self, name: str, value: Any, ttl_seconds: float | None = None) -> None:
        self._load()[name] = [value, None if ttl_seconds is None else time.time() + ttl_seconds]
        self._save()

    def drop(self, name: str) -> None:
        if self._load().pop(name, None) is not None:
            self._save()

    def _save(self) -> None:
        atomic_write(self.path, json.dumps(self._data, sort_keys=True).encode(), durable=True)


# -- the lock file --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LockEntry:
    """What the lock file pins for one node."""

    record: Record
    pick: int

    @property
    def picked(self) -> Output:
        return self.record.picked(self.pick)


class LockFile:
    """``NAME.lock``: node id → key, outputs, picked hash, ids, seed, cost; URL pins.

    Written sorted with one key per line, so it diffs well and a run that changes
    nothing leaves it byte-identical.
    """

    def __init__(self, path: Path):
        self.path = path
        self.entries: dict[str, LockEntry] = {}
        self.urls: dict[str, str] = {}
        self._original: str | None = None  # sha256 of the file as read (a no-op leaves it as it is)

    @classmethod
    def read(cls, path: Path) -> LockFile:
        lock = cls(path)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return lock
        lock._original = hashlib.sha256(raw).hexdigest()
        try:
            data = json.loads(raw)
            for node_id, entry in (data.get("nodes") or {}).items():
                lock.entries[node_id] = LockEntry(Record.from_json(entry), int(entry.get("pick", 1)))
            lock.urls = dict(data.get("urls") or {})
        except (ValueError, KeyError, TypeError) as exc:
            raise LockedError(f"{path.name} is not a valid shotflow lock file ({exc})",
                              hint="restore it from git, or delete it to let the next render write a new one") from None
        return lock

    def set(self, node_id: str, record: Record, pick: int) -> None:
        self.entries[node_id] = LockEntry(record, pick)

    def prune(self, keep: Iterable[str]) -> None:
        keep = set(keep)
        for node_id in [n for n in self.entries if n not in keep]:
            del self.entries[node_id]

    def render(self) -> Iterator[bytes]:
        """The file's bytes, a node at a time (10 000 nodes are 5 MB of JSON: never all in
        memory at once), exactly those of ``json.dumps(doc, indent=2, sort_keys=True,
        ensure_ascii=False)`` of the whole document (a test checks it)."""

        def entries():
            for node_id in sorted(self.entries):
                entry = self.entries[node_id]
                data = entry.record.to_json(full=False)
                data["pick"] = entry.pick
                data["picked"] = entry.picked.sha256
                yield node_id, data

        yield b'{\n  "nodes": {'
        yield from json_object_chunks(entries(), indent=2, depth=1)
        yield f',\n  "shotflow_lock": {LOCK_FORMAT}'.encode()
        if self.urls:
            yield b',\n  "urls": {'
            yield from json_object_chunks(sorted(self.urls.items()), indent=2, depth=1)
        yield b"\n}\n"

    def write(self) -> bool:
        """Write the lock if its content changed; True when it did."""
        digest = hashlib.sha256()
        for chunk in self.render():
            digest.update(chunk)
        if digest.hexdigest() == self._original:
            return False
        atomic_write(self.path, self.render())
        self._original = digest.hexdigest()
        return True


# -- one render at a time ---------------------------------------------------------------------


class ProjectLock:
    """Keeps two renders of one project apart (a file lock released when the process dies)."""

    def __init__(self, state_dir: Path, timeout: float):
        from filelock import FileLock

        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / "run.lock"
        self.timeout = timeout
        self._lock = FileLock(str(self.path), timeout=timeout)

    def __enter__(self) -> ProjectLock:
        from filelock import Timeout

        try:
            self._lock.acquire()
        except Timeout:
            raise BusyError(f"another shotflow render of this project is running (it holds {self.path}); "
                            f"waited {self.timeout:g} s", hint="wait for it to finish, or pass --wait SECONDS") from None
        return self

    def __exit__(self, *exc) -> None:
        self._lock.release()
