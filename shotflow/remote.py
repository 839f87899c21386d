"""The team cache: the local cache's layout on object storage, shared by every clone.

    s3://bucket/prefix  gs://bucket/prefix  az://container/prefix  file:///a/folder
    ├── objects/ab/cdef…                 image bytes by sha256: immutable, verified after download
    ├── actions/ab/<key>.json            one Record per request key, uploaded after its objects
    └── leases/<key>/<generation>.json   who generates that key now: {owner, host, pid, expires}

Where the URL comes from (the first found wins): ``--remote URL``, ``$SHOTFLOW_REMOTE``,
``remote`` in the user's config file (shotflow.userconfig), ``remote:`` in the
storyboard; ``off`` turns it off. A URL never holds credentials: they come from each
provider's own environment and files (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_ENDPOINT_URL``, ``AWS_PROFILE``; ``GOOGLE_APPLICATION_CREDENTIALS``;
``AZURE_STORAGE_ACCOUNT_NAME`` …). Storage is obstore (BENCHMARKS.md: "The team cache").

How a render uses it (``TeamCache``, a layer behind the planner's cache)::

    lookup(key) ─► local store ─► remote (the lock's objects, else the remote's record)
                                     │ hit: fresh "from the remote"; downloaded, verified, kept
    render ─► lease(key) ─► generate ─► record locally ─► upload (background) ─► release
                 │ held by another machine: wait for its record, or take over when it expired

Invariant: a record is uploaded only after all its objects, so a record on the remote
means its objects are there (a download still verifies every byte). An unreachable
remote warns once and the command goes on from the local cache.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._text import redacted_url
from .errors import ConfigError, ShotflowError
from .store import Record, pid_alive, sha256_bytes

SCHEMES = ("s3", "gs", "az", "file")
OFF = ("off", "none", "no", "0", "")
LEASE_TTL = 60.0  # seconds a lease lives without renewal; renewed every third of it
DEFAULT_JOBS = 16  # transfers in flight for push and pull


class RemoteError(ShotflowError):
    """push or pull cannot use the remote (exit 2): unreachable, denied, misconfigured."""


class Offline(Exception):
    """Internal: the remote cannot be reached (already reported once); treat as a miss."""


class CorruptRemote(Exception):
    """Internal: an object on the remote whose bytes do not match its name."""


class TooLarge(Exception):
    """Internal: a file on the remote larger than its bound (MAX_REMOTE_BYTES, RECORD_BYTES; not read past it)."""


MAX_REMOTE_BYTES = 256 * 1024 * 1024  # as a local object (store.MAX_OBJECT_BYTES): no frame is larger
# a record or a lease: JSON, as the local ones (statefile.STATE_FILE_BYTES): tiny JSON values take
# ~25 times their bytes in memory, so a 256 MB one could take ~6 GB to parse
RECORD_BYTES = 16 * 1024 * 1024


def _read_bounded(result, limit: int) -> bytes:
    """The bytes of an obstore GetResult, never more than ``limit``: a remote a storyboard names
    may serve anything. A size it announces within the limit is read whole (HTTP's framing holds
    a body to its Content-Length; a stream costs ~0.2 ms more an object); without one, a stream
    abandoned past the limit."""
    size = result.meta.get("size")
    if isinstance(size, int) and size > limit:
        raise TooLarge(result.meta.get("path"))
    if isinstance(size, int) and size > 0:
        data = bytes(result.bytes())
        if len(data) > limit:
            raise TooLarge(result.meta.get("path"))
        return data
    chunks, total = [], 0
    for chunk in result.stream():
        total += len(chunk)
        if total > limit:
            raise TooLarge(result.meta.get("path"))
        chunks.append(bytes(chunk))
    return b"".join(chunks)


# -- where the remote is ---------------------------------------------------------------------


def check_url(url: str, where: str) -> str:
    """A remote URL as given, or a ConfigError naming ``where`` it came from. A storyboard may
    write any URL: one that holds a character no URL holds (a control character, spelled or
    %-encoded: a NUL no path takes, an escape sequence that would rewrite the terminal's lines
    where the URL is shown) or that cannot be parsed is refused here, never a crash later."""
    from urllib.parse import unquote, urlsplit

    if not (url.isprintable() and unquote(url).isprintable()):
        raise ConfigError(
            f"{where}: the remote URL {ascii(redacted_url(url))} holds a control character",
            hint="write s3://bucket/prefix, gs://bucket/prefix, az://container/prefix or file:///folder",
        )
    try:
        parts = urlsplit(url)
    except ValueError:  # an unclosed [ (an IPv6 host)
        parts = urlsplit("")
    if parts.scheme not in SCHEMES or not (parts.netloc or parts.path.strip("/")):
        raise ConfigError(
            f"{where}: '{redacted_url(url)}' is not a remote shotflow can use",
            hint="write s3://bucket/prefix, gs://bucket/prefix, az://container/prefix or file:///folder",
        )
    if "@" in parts.netloc or parts.query or parts.fragment or parts.password:
        raise ConfigError(
            f"{where}: a remote URL never holds credentials or options ('{redacted_url(url)}')",
            hint="credentials come from the provider's environment, e.g. AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, AWS_ENDPOINT_URL",
        )
    if parts.scheme == "file" and parts.netloc not in ("", "localhost"):
        raise ConfigError(f"{where}: '{url}' names a host; a folder is file:///absolute/path")
    return url.rstrip("/")


class UntrustedRemote(ConfigError):
    """A storyboard names a network store its user has not trusted (``trusted_remotes``)."""


def resolve_url(cli: str | None, storyboard: str | None = None, project_root: Path | None = None) -> str | None:
    """The remote to use: ``--remote``, then $SHOTFLOW_REMOTE, the user config, the storyboard.

    A storyboard is shared data (see trust): its own ``remote:`` may name a ``file://`` folder
    inside its project, never any other folder of the machine (not even one allowed with
    --allow-path, which is for reading): rendering it would write there. Nor may a link
    beneath that folder lead elsewhere (walked once here, when the remote is chosen, at most
    MAX_CHECKED_ENTRIES entries: ``_link_out``). A network store (s3, gs, az) is read and
    written with the user's own credentials, so a storyboard may name one only under a prefix
    the user trusts (``trusted_remotes`` in their config), else UntrustedRemote: a stranger's
    storyboard must not make a render write into whatever bucket those credentials reach.
    Like a folder it may not name, that stops the command (exit 2) before anything is spent:
    going on without the team's cache would pay again for frames the team already has.
    A trusted prefix lets a storyboard name a folder outside its project too."""
    for value, where in ((cli, "--remote"), (os.environ.get("SHOTFLOW_REMOTE"), "SHOTFLOW_REMOTE")):
        if value is not None:
            return None if value.strip().lower() in OFF else check_url(value.strip(), where)
    from . import userconfig

    configured = userconfig.get("remote", str)
    if configured is not None:
        return (
            None if configured.strip().lower() in OFF else check_url(configured.strip(), str(userconfig.config_path()))
        )
    if storyboard:
        url = check_url(storyboard, "the storyboard's remote")
        if url is None or _trusted(url):
            return url
        if not url.startswith("file:"):
            import shlex

            raise UntrustedRemote(
                f"the storyboard's remote: {url} would be read and written with your own cloud "
                "credentials, and a storyboard is data from anyone: shotflow uses it once you trust it",
                # the URL quoted as TOML and as shell words: a line to paste is one entry, one argument
                hint=f"add trusted_remotes = [{json.dumps(url)}] to {userconfig.config_path()}, "
                f"or pass --remote {shlex.quote(url)}; --remote off works without it",
            )
        if project_root is not None:
            _check_storyboard_folder(url, project_root)
        return url
    return None


def _trusted(url: str) -> bool:
    """Whether the user's ``trusted_remotes`` holds ``url`` or a prefix of it, by whole path parts
    (``s3://team`` trusts ``s3://team/shotflow``, not ``s3://team-other``). A URL with a ``.`` or
    ``..`` part (spelled or %-encoded) is never trusted, and a ``file://`` one is compared by real
    path: ``file:///share/team/../../home/you`` is not under ``file:///share/team``."""
    from . import userconfig
    from .trust import inside

    where = f"{userconfig.config_path()}: trusted_remotes"
    trusted = userconfig.get("trusted_remotes", list) or []
    scheme, host, parts = _url_parts(url)
    if parts is None:
        return False
    for entry in trusted:
        if not isinstance(entry, str):
            raise ConfigError(f"{where} holds {entry!r}; it is a list of remote URLs")
        prefix = _url_parts(check_url(entry.strip(), where))
        if prefix[:2] != (scheme, host) or prefix[2] is None:
            continue
        if scheme == "file":
            real = os.path.realpath("/" + "/".join(parts))
            if inside(real, os.path.realpath("/" + "/".join(prefix[2]))):
                return True
        elif parts[: len(prefix[2])] == prefix[2]:
            return True
    return False


def _url_parts(url: str) -> tuple[str, str, list[str] | None]:
    """(scheme, host, the path's decoded parts) of a remote URL; parts None when one is . or .."""
    from urllib.parse import unquote, urlsplit

    split = urlsplit(url)
    parts = [unquote(part) for part in split.path.split("/") if part]
    return split.scheme, split.netloc, None if any(p in (".", "..") for p in parts) else parts


MAX_CHECKED_ENTRIES = 100_000  # a storyboard's folder remote is walked for links: at most this many entries


def _check_storyboard_folder(url: str, project_root: Path) -> None:
    """Refuse a storyboard's ``file://`` remote that would make a render read or write outside
    the project: its folder must be inside, and so must every link beneath it
    (``teamcache/objects -> /elsewhere``: obstore writes through it). A folder allowed with
    --allow-path is allowed to be read, not written: a remote there is the user's to name."""
    from urllib.parse import unquote, urlsplit

    from .trust import inside, project_folder

    parts = urlsplit(url)
    if parts.scheme != "file":
        return
    real = os.path.realpath(unquote(parts.path))
    allowed = (os.fspath(project_folder(project_root)),)
    if not inside(real, allowed[0]):
        raise ConfigError(
            f"the storyboard's remote: {url} is a folder outside the project, which a storyboard cannot "
            "name (rendering it would write there)",
            hint="pass --remote URL or add the folder to trusted_remotes in your user config (a folder you "
            "name is yours), or --remote off to work without it",
        )
    link = _link_out(real, allowed)
    if link is not None:
        raise ConfigError(
            f"the storyboard's remote: {url} holds {link[0]}, a symbolic link to {link[1]}, outside the "
            "project; shotflow would read and write there through it",
            hint="remove the link, pass --remote URL or add the folder to trusted_remotes in your user "
            "config, or --remote off to work without it",
        )


def _link_out(root: str, allowed: tuple[str, ...]) -> tuple[str, str] | None:
    """The first link under the real folder ``root`` whose real path is outside ``allowed``,
    as (link, real path); None when there is none. Links to folders inside are walked too
    (what they hold is written through them); each real folder once. Raises ConfigError
    past MAX_CHECKED_ENTRIES entries rather than walk a huge tree."""
    from .trust import inside

    todo, seen, count = [root], {root}, 0
    while todo:
        try:
            entries = list(os.scandir(todo.pop()))
        except (FileNotFoundError, NotADirectoryError):
            continue  # not made yet (the remote's folders appear as it is used), or gone
        except OSError:
            continue  # unreadable: obstore cannot use it either, and says so
        count += len(entries)
        if count > MAX_CHECKED_ENTRIES:
            raise ConfigError(
                f"the storyboard's remote: folder {root} holds more than {MAX_CHECKED_ENTRIES:,} entries; "
                "shotflow checks a remote a storyboard names for links out of the project, and stops there",
                hint="name it yourself: pass --remote URL or set remote in your user config (then it is not walked)",
            )
        for entry in entries:
            if entry.is_symlink():
                target = os.path.realpath(entry.path)
                if not any(inside(target, folder) for folder in allowed):
                    return entry.path, target
                if os.path.isdir(target) and target not in seen:
                    seen.add(target)
                    todo.append(target)
            elif entry.is_dir(follow_symlinks=False) and entry.path not in seen:
                seen.add(entry.path)
                todo.append(entry.path)
    return None


def _open_store(url: str):
    """An obstore store for ``url``; endpoints and credentials from the provider's environment."""
    from datetime import timedelta
    from urllib.parse import unquote, urlsplit

    from obstore.store import AzureStore, GCSStore, LocalStore, S3Store

    parts = urlsplit(url)
    client: Any = {"connect_timeout": "5s", "timeout": "120s"}  # obstore's ClientConfig (a TypedDict)
    retry: Any = {
        "max_retries": 3,
        "retry_timeout": timedelta(seconds=20),
        "backoff": {"init_backoff": timedelta(milliseconds=100), "max_backoff": timedelta(seconds=5), "base": 2},
    }
    if parts.scheme == "file":
        folder = unquote(parts.path)
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"the folder {folder} does not exist (create or mount it)")
        return LocalStore(folder)
    if parts.scheme == "s3":
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or ""
        if endpoint.startswith("http://"):
            client["allow_http"] = True  # a local MinIO or test server
        extra: dict[str, Any] = {}
        if os.environ.get("AWS_PROFILE") and not os.environ.get("AWS_ACCESS_KEY_ID"):
            from obstore.auth.boto3 import Boto3CredentialProvider  # profiles, SSO: boto3 reads ~/.aws

            extra["credential_provider"] = Boto3CredentialProvider()
        return S3Store.from_url(url, client_options=client, retry_config=retry, **extra)
    if parts.scheme == "gs":
        return GCSStore.from_url(url, client_options=client, retry_config=retry)
    return AzureStore.from_url(url, client_options=client, retry_config=retry)


def _first_line(exc: BaseException) -> str:
    """A store's error in a few words (obstore's messages carry whole URLs and XML bodies)."""
    text = str(exc)
    for needle, reason in (
        ("NoSuchBucket", "the bucket does not exist"),
        ("ContainerNotFound", "the container does not exist"),
        ("InvalidAccessKeyId", "the access key is not valid (check the credentials)"),
        ("SignatureDoesNotMatch", "the secret key does not match (check the credentials)"),
        ("AccessDenied", "access denied (check the credentials and permissions)"),
        ("403 Forbidden", "access denied (check the credentials and permissions)"),
        ("error sending request", "cannot connect"),
        ("dns error", "the host name does not resolve"),
        ("timed out", "timed out"),
    ):
        if needle in text:
            return reason
    text = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return text if len(text) < 200 else text[:197] + "…"


# -- the store on the remote -----------------------------------------------------------------


@dataclass(frozen=True)
class LeaseInfo:
    """What a lease object says: who generates the key, until when (wall clock, seconds)."""

    key: str
    generation: int
    owner: str
    host: str
    pid: int
    expires: float

    def live(self, now: float | None = None) -> bool:
        if (now or time.time()) >= self.expires:
            return False
        # dead if its owner died on this very machine: no need to wait for the expiry
        return not (self.host == socket.gethostname() and self.pid and not pid_alive(self.pid))


@dataclass
class Lease:
    """A lease this process holds."""

    key: str
    generation: int
    lost: bool = False


class Remote:
    """One remote: the cache layout on an obstore store, with reads that verify.

    Every call goes through ``_call``: a missing object is a miss (None); anything else
    the store raises (no network, denied, no such bucket) marks the remote offline,
    is reported once through ``warn``, and raises Offline; later calls raise Offline at
    once. With ``strict`` (push, pull) it raises RemoteError instead.
    """

    def __init__(
        self,
        url: str,
        *,
        warn: Callable[[str], None] = lambda text: None,
        strict: bool = False,
        lease_ttl: float = LEASE_TTL,
    ):
        self.url = url
        self.warn = warn
        self.strict = strict
        self.lease_ttl = lease_ttl
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.offline: str | None = None  # why, once it is
        self.conditional = True  # the store honours create-only writes (If-None-Match: *)
        self.corrupt: set[str] = set()  # digests found damaged here: the next upload overwrites them
        self._store = None
        self._opening = threading.Lock()

    # -- plumbing ----------------------------------------------------------------------------

    @property
    def store(self):
        if self._store is None:
            with self._opening:
                if self._store is None:
                    try:
                        self._store = _open_store(self.url)
                    except Exception as exc:  # noqa: BLE001 - obstore's own errors, imported lazily
                        if not isinstance(exc, (ValueError, OSError, ImportError)) and not type(
                            exc
                        ).__module__.startswith("obstore"):
                            raise
                        self._fail(exc)
        return self._store

    def _fail(self, exc: BaseException) -> None:
        reason = _first_line(exc)
        if isinstance(exc, ImportError):
            reason = "the remote needs obstore: pip install 'shotflow[remote]'"
        if self.strict:
            raise RemoteError(
                f"cannot use the remote {self.url}: {reason}",
                hint="check the URL, the network and the provider's credentials",
            ) from None
        if self.offline is None:
            self.offline = reason
            self.warn(f"warning: the remote {self.url} cannot be used ({reason}); working from the local cache only")
        raise Offline(reason)

    def _call(self, name: str, *args, read_limit: int | None = None, **kwargs):
        if self.offline is not None:
            raise Offline(self.offline)
        import obstore
        from obstore.exceptions import AlreadyExistsError, NotFoundError, NotSupportedError, PreconditionError

        store = self.store
        try:
            result = getattr(obstore, name)(store, *args, **kwargs)
            if name == "list":  # a lazy stream: its network errors come while it is read, so read it here
                result = list(result)
            if name == "get":  # the same, and bounded
                result = _read_bounded(result, read_limit or MAX_REMOTE_BYTES)
            return result
        except (FileNotFoundError, NotFoundError) as exc:
            if name == "put":  # nowhere to write: no such bucket or container
                self._fail(exc)
            raise
        except (AlreadyExistsError, PreconditionError, NotImplementedError, NotSupportedError, TooLarge):
            raise
        except Exception as exc:  # noqa: BLE001 - any store failure: the remote is unusable for this run
            if kwargs.get("mode") == "create" and ("501" in str(exc) or "NotImplemented" in str(exc)):
                raise NotImplementedError(_first_line(exc)) from exc  # a server without conditional writes
            if type(exc).__module__.startswith("obstore") or isinstance(exc, (OSError, TimeoutError)):
                self._fail(exc)
            raise

    def _get(self, path: str, limit: int | None = None) -> bytes | None:
        """The file's bytes; None when absent; TooLarge past ``limit`` (default MAX_REMOTE_BYTES)."""
        from obstore.exceptions import NotFoundError

        try:
            return self._call("get", path, read_limit=limit)
        except (FileNotFoundError, NotFoundError):
            return None

    def _exists(self, path: str) -> bool:
        from obstore.exceptions import NotFoundError

        try:
            self._call("head", path)
            return True
        except (FileNotFoundError, NotFoundError):
            return False

    def _create(self, path: str, data: bytes) -> bool:
        """Write ``path`` only if nothing is there (a conditional write); False when something was."""
        from obstore.exceptions import AlreadyExistsError, NotSupportedError, PreconditionError

        if self.conditional:
            try:
                self._call("put", path, data, mode="create")
                return True
            except (AlreadyExistsError, PreconditionError):
                return False
            except (NotImplementedError, NotSupportedError):
                self.conditional = False
                self.warn(
                    f"warning: the remote {self.url} does not support conditional writes: "
                    f"two machines may generate the same frame at the same moment (see README)"
                )
        if self._exists(path):  # check, then write: a race remains (README: without conditional writes)
            return False
        self._call("put", path, data)
        return True

    # -- objects and records -----------------------------------------------------------------

    @staticmethod
    def object_path(digest: str) -> str:
        return f"objects/{digest[:2]}/{digest[2:]}"

    @staticmethod
    def action_path(key: str) -> str:
        return f"actions/{key[:2]}/{key}.json"

    def get_object(self, digest: str) -> bytes | None:
        """The object's bytes, verified; None when absent; CorruptRemote when damaged."""
        try:
            data = self._get(self.object_path(digest))
        except TooLarge:
            data = b""  # no frame is that large: damaged (and replaced by the next push)
        if data is not None and sha256_bytes(data) != digest:
            self.corrupt.add(digest)
            raise CorruptRemote(f"object {digest[:12]} on the remote is corrupt (its bytes do not match its hash)")
        return data

    def has_object(self, digest: str) -> bool:
        return self._exists(self.object_path(digest))

    def put_object(self, digest: str, data: bytes) -> bool:
        """Upload an object unless it is there; True when bytes were sent. A damaged copy is replaced."""
        if digest in self.corrupt:
            self._call("put", self.object_path(digest), data)
            self.corrupt.discard(digest)
            return True
        return self._create(self.object_path(digest), data)

    def get_action(self, key: str) -> Record | None:
        try:
            data = self._get(self.action_path(key), RECORD_BYTES)
        except TooLarge:
            return None  # no record is that large: damaged, a miss
        if data is None:
            return None
        try:
            record = Record.from_json(json.loads(data))
        except (ValueError, RecursionError):
            return None  # a damaged record is a miss
        return record if record.key == key and record.outputs else None

    def put_action(self, record: Record) -> None:
        self._call("put", self.action_path(record.key), json.dumps(record.to_json(), indent=1, sort_keys=True).encode())

    # -- leases --------------------------------------------------------------------------------

    def _lease_path(self, key: str, generation: int) -> str:
        return f"leases/{key}/{generation:08d}.json"

    def _generations(self, key: str) -> list[int]:
        found = []
        for batch in self._call("list", f"leases/{key}/"):
            for meta in batch:
                name = meta["path"].rsplit("/", 1)[-1]
                if name.endswith(".json") and name[:-5].isdigit():
                    found.append(int(name[:-5]))
        return found

    def read_lease(self, key: str, generation: int) -> LeaseInfo | None:
        try:
            data = self._get(self._lease_path(key, generation), RECORD_BYTES)
        except TooLarge:
            data = b"?"  # no lease is that large: unreadable, below
        if data is None:
            return None
        try:
            raw = json.loads(data)
            return LeaseInfo(
                key,
                generation,
                str(raw["owner"]),
                str(raw.get("host", "")),
                int(raw.get("pid", 0)),
                float(raw["expires"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            return LeaseInfo(key, generation, "?", "", 0, 0.0)  # unreadable: treated as expired

    def _lease_body(self, key: str) -> bytes:
        return json.dumps(
            {
                "key": key,
                "owner": self.owner,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "expires": time.time() + self.lease_ttl,
            }
        ).encode()

    def take_lease(self, key: str) -> Lease | LeaseInfo:
        """Take the lease of ``key``, or say who holds it.

        Generations make every take a create-only write: the first lease is generation 0;
        taking over an expired generation N creates N+1, which only one machine can do.
        """
        holder: LeaseInfo | None = None
        for _ in range(8):
            generations = self._generations(key)
            nxt = 0
            if generations:
                top = max(generations)
                holder = self.read_lease(key, top)
                if holder is None:
                    continue  # released meanwhile: look again
                if holder.owner == self.owner:
                    return Lease(key, top)
                if holder.live():
                    return holder
                nxt = top + 1
            if self._create(self._lease_path(key, nxt), self._lease_body(key)):
                if not self.conditional:  # "look, then write": read it back to narrow the race
                    mine = self.read_lease(key, nxt)
                    if mine is None or mine.owner != self.owner:
                        continue
                for old in generations:  # expired ones: tidy up
                    self._delete_quietly(self._lease_path(key, old))
                return Lease(key, nxt)
        if holder is not None:
            return holder
        raise Offline("could not take a lease after 8 tries")

    def renew(self, lease: Lease) -> None:
        """Push the expiry of a lease we hold; marks it lost when another machine took over."""
        if max(self._generations(lease.key), default=lease.generation) > lease.generation:
            lease.lost = True
            return
        self._call("put", self._lease_path(lease.key, lease.generation), self._lease_body(lease.key))

    def release(self, lease: Lease) -> None:
        self._delete_quietly(self._lease_path(lease.key, lease.generation))

    def _delete_quietly(self, path: str) -> None:
        from obstore.exceptions import NotFoundError

        with contextlib.suppress(FileNotFoundError, NotFoundError):
            self._call("delete", path)


class LeaseKeeper:
    """Renews the leases this process holds, every third of their lifetime, in one thread."""

    def __init__(self, remote: Remote):
        self.remote = remote
        self.held: dict[str, Lease] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self, lease: Lease) -> None:
        with self._lock:
            self.held[lease.key] = lease
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="shotflow-leases", daemon=True)
                self._thread.start()

    def drop(self, key: str) -> Lease | None:
        with self._lock:
            return self.held.pop(key, None)

    def _loop(self) -> None:
        while not self._stop.wait(self.remote.lease_ttl / 3):
            with self._lock:
                leases = list(self.held.values())
            for lease in leases:
                try:
                    self.remote.renew(lease)
                except Offline:
                    return

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            leases, self.held = list(self.held.values()), {}
        for lease in leases:
            try:
                self.remote.release(lease)
            except Offline:
                break


# -- the layer behind the planner's cache ------------------------------------------------------------


@dataclass
class TransferReport:
    """What a render, push or pull moved, and what it could not."""

    downloaded: int = 0  # objects
    uploaded: int = 0  # objects
    records: int = 0  # action records uploaded
    present: int = 0  # already where they had to go
    failures: list[tuple[str, str]] = field(default_factory=list)  # (node id or object, why)


class TeamCache:
    """The remote behind the local store, for plan and render.

    ``find`` answers the planner after a local miss (no download: a record whose objects
    are on the remote); ``fetch`` downloads a hit's objects, verifies and keeps them;
    ``claim`` takes a key's lease before generating (or waits for another machine's
    record); ``share`` uploads a recorded frame in the background and releases its lease.
    Nothing touches the network until a local miss needs it (obstore is not even imported).
    """

    def __init__(self, url: str, store, *, warn: Callable[[str], None], jobs: int = 4, lease_ttl: float = LEASE_TTL):
        self.url = url
        self.local = store
        self.remote = Remote(url, warn=warn, lease_ttl=lease_ttl)
        self.hits: dict[str, Record] = {}  # key → a record found on the remote, not yet downloaded
        self.misses: set[str] = set()
        self.report = TransferReport()
        self.fetched_nodes = 0
        self._jobs = jobs
        self._uploads: ThreadPoolExecutor | None = None
        self._pending: list = []
        self._keeper: LeaseKeeper | None = None
        self._lock = threading.Lock()

    # -- reads ---------------------------------------------------------------------------------

    def prefetch(self, entries: Iterable[tuple[str, Record]]) -> None:
        """Look up, in parallel, the locked records the local store cannot answer (a fresh clone)."""
        wanted = [
            (node_id, record)
            for node_id, record in entries
            if record.key not in self.hits and record.key not in self.misses and not self.local.complete(record)
        ]
        if not wanted:
            return
        with ThreadPoolExecutor(DEFAULT_JOBS, thread_name_prefix="shotflow-remote") as pool:
            list(pool.map(lambda item: self.find(item[0], item[1].key, item[1]), wanted))

    def find(self, node_id: str, key: str, locked: Record | None) -> Record | None:
        """A record of ``key`` whose objects are on the remote (``locked``: the lock's, tried first)."""
        if key in self.hits:
            return self.hits[key]
        if key in self.misses:
            return None
        try:
            record = None
            if (
                locked is not None
                and locked.key == key
                and all(self.remote.has_object(o.sha256) for o in locked.outputs)
            ):
                record = locked
            if record is None:
                record = self.remote.get_action(key)
        except Offline:
            return None
        with self._lock:
            if record is None:
                self.misses.add(key)
            else:
                self.hits[key] = record
        return record

    def remote_hit(self, key: str) -> bool:
        return key in self.hits

    def fetch(self, record: Record) -> bool:
        """Download a hit's missing objects (each verified) into the local store; False if it cannot."""
        try:
            for output in record.outputs:
                if self.local.has(output.sha256):
                    continue
                data = self.remote.get_object(output.sha256)
                if data is None:
                    raise CorruptRemote(f"object {output.sha256[:12]} is missing from the remote")
                self.local.put(data)
                with self._lock:
                    self.report.downloaded += 1
        except (Offline, CorruptRemote) as exc:
            with self._lock:
                self.hits.pop(record.key, None)
                self.misses.add(record.key)
            if isinstance(exc, CorruptRemote):
                self.remote.warn(f"warning: {exc}; not used (the frame is rendered or fetched again)")
            return False
        if self.local.get_action(record.key) is None:
            self.local.put_action(record)
        with self._lock:
            self.hits.pop(record.key, None)
            self.fetched_nodes += 1
        return True

    def fetch_many(self, records: list[Record], jobs: int = DEFAULT_JOBS) -> None:
        if records:
            with ThreadPoolExecutor(jobs, thread_name_prefix="shotflow-remote") as pool:
                list(pool.map(self.fetch, records))

    # -- paying once across machines ----------------------------------------------------------

    async def claim(self, key: str, *, resuming: bool = False) -> Lease | Record | None:
        """Before generating ``key``: its lease (ours now), or the record another machine
        finished meanwhile (downloaded), or None when the remote cannot help (offline)."""
        import asyncio

        delay = 0.25
        while True:
            try:
                got = await asyncio.to_thread(self.remote.take_lease, key)
            except Offline:
                return None
            if isinstance(got, Lease):
                # another machine may have finished and released it since we last looked
                try:
                    record = await asyncio.to_thread(self.remote.get_action, key)
                except Offline:
                    record = None
                if record is not None and await asyncio.to_thread(self.fetch, record):
                    await asyncio.to_thread(self._release, got)
                    return record
                self._keeper_for().hold(got)
                return got
            if resuming:
                return None  # our task was already sent (the journal says so): finish it, pay nothing more
            try:
                record = await asyncio.to_thread(self.remote.get_action, key)
            except Offline:
                return None
            if record is not None and await asyncio.to_thread(self.fetch, record):
                return record
            await asyncio.sleep(max(0.05, min(delay, got.expires - time.time() + 0.05)))
            delay = min(delay * 1.5, 3.0)

    def _keeper_for(self) -> LeaseKeeper:
        with self._lock:
            if self._keeper is None:
                self._keeper = LeaseKeeper(self.remote)
            return self._keeper

    def abandon(self, key: str) -> None:
        """The generation of ``key`` failed: let another machine try."""
        lease = self._keeper.drop(key) if self._keeper else None
        if lease is not None:
            self._submit(self._release, lease)

    def _release(self, lease: Lease) -> None:
        with contextlib.suppress(Offline):
            self.remote.release(lease)

    # -- writes --------------------------------------------------------------------------------

    def share(self, node_id: str, record: Record) -> None:
        """Upload a frame just recorded locally (objects, then its record), in the background;
        then release the key's lease. A failure is reported, never raised."""
        self._submit(self._upload, node_id, record)

    def _submit(self, fn, *args) -> None:
        with self._lock:
            if self._uploads is None:
                self._uploads = ThreadPoolExecutor(self._jobs, thread_name_prefix="shotflow-upload")
            self._pending.append(self._uploads.submit(fn, *args))

    def _upload(self, node_id: str, record: Record) -> None:
        lease = self._keeper.drop(record.key) if self._keeper else None
        try:
            sent = upload_record(self.remote, self.local, record)
            with self._lock:
                self.report.uploaded += sent
                self.report.records += 1
        except Offline as exc:
            with self._lock:
                self.report.failures.append((node_id, str(exc)))
        except (OSError, ValueError) as exc:  # the local object vanished or is damaged
            with self._lock:
                self.report.failures.append((node_id, _first_line(exc)))
        finally:
            if lease is not None:
                self._release(lease)

    def uploading(self) -> int:
        """Background uploads not finished yet."""
        with self._lock:
            return sum(1 for future in self._pending if not future.done())

    def drain(self) -> TransferReport:
        """Wait for the background uploads; release what is still leased."""
        while True:
            with self._lock:
                pending, self._pending = self._pending, []
            if not pending:
                break
            for future in pending:
                future.result()
        if self._uploads is not None:
            self._uploads.shutdown(wait=True)
            self._uploads = None
        if self._keeper is not None:
            self._keeper.close()
        return self.report


def upload_record(remote: Remote, store, record: Record) -> int:
    """Objects first, then the record: a record on the remote means its objects are there.
    Returns how many objects were sent."""
    from .store import CorruptObject

    sent = 0
    for output in record.outputs:
        try:
            data = store.read(output.sha256)
        except CorruptObject as exc:
            raise ValueError(str(exc)) from None
        sent += remote.put_object(output.sha256, data)
    remote.put_action(record)
    return sent


# -- push and pull ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Transfer:
    """One node's share of a push or pull: its record and the objects it needs."""

    node_id: str
    record: Record


def _lock_transfers(lock) -> tuple[list[Transfer], list[str]]:
    """What the lock pins: every node's record, and the objects of its pinned URL references."""
    transfers = [Transfer(node_id, entry.record) for node_id, entry in sorted(lock.entries.items())]
    return transfers, sorted(set(lock.urls.values()))


def push(
    store,
    lock,
    url: str,
    *,
    jobs: int = DEFAULT_JOBS,
    progress: Callable[[int, int], None] | None = None,
    warn: Callable[[str], None] = lambda text: None,
) -> TransferReport:
    """Upload what the lock needs (objects, then records); skip what the remote has."""
    remote = Remote(url, warn=warn, strict=True)
    transfers, url_objects = _lock_transfers(lock)
    report = TransferReport()
    guard = threading.Lock()
    total = len(transfers) + len(url_objects)
    done = [0]

    def tick() -> None:
        with guard:
            done[0] += 1
            if progress:
                progress(done[0], total)

    def one(item: Transfer) -> None:
        try:
            record = item.record
            local = store.get_action(record.key)
            if local is not None and [o.sha256 for o in local.outputs] == [o.sha256 for o in record.outputs]:
                record = local  # the full record (what the key was made of), not the lock's summary
            there = remote.get_action(record.key)
            if there is not None and [o.sha256 for o in there.outputs] == [o.sha256 for o in record.outputs]:
                with guard:
                    report.present += 1
                return
            missing = [o.sha256[:12] for o in record.outputs if not store.has(o.sha256)]  # has() verifies
            if missing:
                with guard:
                    report.failures.append((item.node_id, f"not in the local cache: {', '.join(missing)}"))
                return
            sent = sum(
                remote.put_object(o.sha256, store.read(o.sha256))
                for o in record.outputs
                if not remote.has_object(o.sha256)
            )
            remote.put_action(record)
            with guard:
                report.uploaded += sent
                report.records += 1
        finally:
            tick()

    def blob(digest: str) -> None:
        try:
            if not store.has(digest):
                with guard:
                    report.failures.append((f"reference {digest[:12]}", "not in the local cache"))
            elif remote.has_object(digest):
                with guard:
                    report.present += 1
            else:
                remote.put_object(digest, store.read(digest))
                with guard:
                    report.uploaded += 1
        finally:
            tick()

    _parallel(jobs, [(one, t) for t in transfers] + [(blob, d) for d in url_objects])
    return report


def pull(
    store,
    lock,
    url: str,
    *,
    jobs: int = DEFAULT_JOBS,
    progress: Callable[[int, int], None] | None = None,
    warn: Callable[[str], None] = lambda text: None,
) -> TransferReport:
    """Download what the lock needs into the local cache, every object verified by its hash."""
    remote = Remote(url, warn=warn, strict=True)
    transfers, url_objects = _lock_transfers(lock)
    digests = list(dict.fromkeys([o.sha256 for t in transfers for o in t.record.outputs] + url_objects))
    report = TransferReport()
    guard = threading.Lock()
    done = [0]

    def one(digest: str) -> None:
        try:
            if store.has(digest):
                with guard:
                    report.present += 1
                return
            try:
                data = remote.get_object(digest)
            except CorruptRemote as exc:
                with guard:
                    report.failures.append((digest[:12], str(exc)))
                return
            if data is None:
                with guard:
                    report.failures.append((digest[:12], "not on the remote"))
                return
            store.put(data)
            with guard:
                report.downloaded += 1
        finally:
            with guard:
                done[0] += 1
                if progress:
                    progress(done[0], len(digests))

    _parallel(jobs, [(one, d) for d in digests])
    for t in transfers:  # the records, so that a later lookup by key finds them too
        if store.complete(t.record) and store.get_action(t.record.key) is None:
            store.put_action(t.record)
    store.save()
    return report


def _parallel(jobs: int, calls: list[tuple[Callable, Any]]) -> None:
    """Run every call with ``jobs`` in flight; the first RemoteError stops the rest and is raised."""
    if jobs <= 1:
        for fn, arg in calls:
            fn(arg)
        return
    with ThreadPoolExecutor(jobs, thread_name_prefix="shotflow-transfer") as pool:
        futures = [pool.submit(fn, arg) for fn, arg in calls]
        try:
            for future in futures:
                future.result()
        except BaseException:
            for future in futures:
                future.cancel()
            raise


# -- the commands' wiring -----------------------------------------------------------------------------


def transfer(
    direction: str,
    storyboard,
    cli_url: str | None,
    *,
    cache_dir=None,
    jobs: int = DEFAULT_JOBS,
    progress: Callable[[int, int], None] | None = None,
    warn: Callable[[str], None] = lambda text: None,
) -> tuple[str, TransferReport]:
    """``shotflow push`` / ``pull``: (the remote's URL, what moved) for the lock of ``storyboard``."""
    from .expand import load_project
    from .store import LockFile, ProjectLock, open_store
    from .trust import storyboard_file

    project = load_project(storyboard_file(storyboard))
    url = resolve_url(cli_url, project.remote, project.root)
    if url is None:
        raise ConfigError(
            "no remote to " + direction + " " + ("to" if direction == "push" else "from"),
            hint='pass --remote URL, set SHOTFLOW_REMOTE, put remote = "URL" in your shotflow '
            "config, or remote: URL in the storyboard",
        )
    lock = LockFile.read(project.lock_path)
    if not lock.entries:
        raise ConfigError(
            f"{project.lock_path.name} pins no frames yet: nothing to {direction}",
            hint="render the storyboard first"
            if direction == "push"
            else "commit the lock file of a render, or render here",
        )
    store = open_store(project.root, cache_dir)
    if direction == "push":
        return url, push(store, lock, url, jobs=jobs, progress=progress, warn=warn)
    with ProjectLock(store.state_dir, 10.0):  # a render must not read half-pulled state
        report = pull(store, lock, url, jobs=jobs, progress=progress, warn=warn)
    owners = {o.sha256[:12]: node_id for node_id, entry in lock.entries.items() for o in entry.record.outputs}
    report.failures = [(owners.get(name, name), why) for name, why in report.failures]
    return url, report


def open_team(cli_url: str | None, project, store, warn):
    """The team cache (a TeamCache) of this run, or None when no remote is set."""
    url = resolve_url(cli_url, project.remote, project.root)
    if url is None:
        return None
    return TeamCache(url, store, warn=warn)  # its own upload threads, not the render's --jobs
