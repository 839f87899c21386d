"""A node's references as bytes, at the moment it renders: upstream frames, files, URLs.

    ref.kind   NODE ─► the upstream node's picked frame (held in memory while users are to come)
               FILE ─► the file's bytes (read off the event loop)
               URL  ─► the cache's bytes when the lock pins the URL, else fetched once
                       (``shotflow.fetch``: public addresses, a deadline) and pinned
                       through ``LockFile.pin_url``

``Frames`` keeps the picked frame of a node in memory (``Store.hold``) exactly while nodes
that reference it are still to finish, so a 10 000-shot chain never holds every frame.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class Frames:
    """Upstream frames held in memory for the nodes that reference them."""

    def __init__(self, store, nodes: Mapping[str, Any], order):
        self.store = store
        self.held: dict[str, str] = {}  # node id → digest of its frame held for its users
        self.replan(nodes, order)

    def replan(self, nodes: Mapping[str, Any], order) -> None:
        """Count the users of each frame in a plan (again, when the whole plan follows its roots':
        a root references nothing, so no count of the first plan is lost)."""
        self.nodes = nodes  # node id → PlannedNode (its spec's references)
        # node id → how many planned nodes that reference its frame have not finished: its
        # picked frame's bytes stay in memory (Store.hold) only while this is above 0
        self.users: dict[str, int] = {}
        for node_id in order:
            for target in self.upstream(node_id):
                self.users[target] = self.users.get(target, 0) + 1

    def upstream(self, node_id: str) -> list[str]:
        """The nodes whose frames ``node_id`` references (one per reference)."""
        from .model import RefKind

        return [ref.target for ref in self.nodes[node_id].spec.refs if ref.kind is RefKind.NODE]

    def hold(self, node_id: str, digest: str, data: bytes) -> None:
        """Keep a node's picked frame in memory while nodes that reference it are still to come."""
        if node_id not in self.held and self.users.get(node_id, 0) > 0:
            self.store.hold(digest, data)
            self.held[node_id] = digest

    def done(self, node_id: str) -> None:
        """``node_id`` has read its references (or never will): its upstream frames have one user less."""
        for target in self.upstream(node_id):
            left = self.users.get(target, 0) - 1
            if left > 0:
                self.users[target] = left
                continue
            self.users.pop(target, None)
            digest = self.held.pop(target, None)
            if digest is not None:
                self.store.release(digest)


class References:
    """Resolve a node's references to ``backends.Reference`` values (see the module docstring)."""

    def __init__(self, project, store, lock, results: Mapping[str, Any], frames: Frames, *, refresh_urls: bool):
        self.project = project
        self.store = store
        self.lock = lock
        self.results = results  # node id → Record of every node that ended well
        self.frames = frames
        self.refresh_urls = refresh_urls

    async def of(self, spec) -> list:
        """The references of ``spec``, in its order. Raises CorruptObject, OSError or a ShotflowError."""
        import asyncio

        from .backends import Reference
        from .model import RefKind

        refs = []
        for ref in spec.refs:
            if ref.kind is RefKind.NODE:
                record = self.results[ref.target]
                picked = record.picked(self.project.nodes[ref.target].pick)
                data = self.store.read(picked.sha256)  # held in memory, else read and verified
                if self.frames.users.get(ref.target, 0) > 1:  # others will read it too: keep it meanwhile
                    self.frames.hold(ref.target, picked.sha256, data)
                remote = {record.backend: picked.remote_id} if picked.remote_id else {}
                refs.append(
                    Reference(data=data, sha256=picked.sha256, tag=ref.tag, source=ref.label, remote_ids=remote)
                )
            elif ref.kind is RefKind.FILE:
                data = await asyncio.to_thread(Path(ref.target).read_bytes)
                digest = hashlib.sha256(data).hexdigest()
                refs.append(Reference(data=data, sha256=digest, tag=ref.tag, source=ref.label))
            else:
                data, digest = await self.url(ref.target)
                refs.append(Reference(data=data, sha256=digest, tag=ref.tag, source=ref.label))
        return refs

    async def url(self, url: str) -> tuple[bytes, str]:
        """A reference URL's bytes: from the store when pinned, else fetched once and pinned."""
        from .store import CorruptObject

        pinned = None if self.refresh_urls else self.lock.urls.get(url)
        if pinned:
            try:
                return self.store.read(pinned), pinned
            except CorruptObject:
                pass
        data = await fetch_url(url)
        digest = self.store.put(data)
        self.lock.pin_url(url, digest)
        return data, digest


def used_urls(project) -> set[str]:
    """Every reference URL the project's nodes use (the lock keeps only their pins)."""
    from .model import RefKind

    return {ref.target for spec in project.nodes.values() for ref in spec.refs if ref.kind is RefKind.URL}


async def fetch_url(url: str) -> bytes:
    """Download a reference image under the fetching policy (see ``shotflow.fetch``)."""
    from .fetch import fetch

    return await fetch(url)
