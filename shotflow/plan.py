"""Stage 5: request keys, freshness and cost — pure, cheap, and shared by plan and render.

The request key of a node (DESIGN.md §3)::

    sha256( canonical JSON of {
        "v": KEY_VERSION, "backend", "model", "prompt", "width", "height",
        "format", "quality", "takes", "safety", "provider",
        "refs": [{"sha256": <bytes of the reference>, "tag": <tag or null>}, ...],
        "staging": {cast, blocking, location, camera, drawing version}   (preview only) } )

Names are not in it (renaming a shot costs nothing), nor task ids, delivery or time.
A preview frame also draws its staging (``staging.Staging``: the cast with their
colours, sides and facings, the location, the camera notes), so that is in its key;
a Runware frame's key holds only what is sent to Runware.
A node is FRESH when its key has a complete record in the cache; it RENDERs
otherwise, and every node downstream of a rendering node renders too (its key is
only known once the upstream bytes are), each with the reason why. A node the
caller holds (an approved shot, see ``approved_holds``) that would render is
HELD instead: it keeps the frames it was approved with, and its users are keyed on them.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import catalog
from .errors import ConfigError, did_you_mean
from .model import NodeSpec, Project, RefKind
from .staging import Staging
from .status import Status
from .store import Record, canonical_json, sha256_bytes

KEY_VERSION = 1


class Cache(Protocol):
    """What the planner needs to know of the cache and the lock."""

    def lookup(self, node_id: str, key: str) -> Record | None:
        """A complete, verified record of ``key`` (the lock's for this node first), or None."""

    def previous(self, node_id: str) -> Record | None:
        """What the lock file pinned for this node (for reasons), or None."""

    def file_hash(self, path: str) -> str:
        """sha256 of a local file's bytes."""

    def url_hash(self, url: str) -> str | None:
        """sha256 of a URL's bytes if they were fetched and pinned before, else None."""

    def remote_hit(self, key: str) -> bool:
        """True when ``lookup`` found ``key`` on the team's remote, not in the local cache."""


class EmptyCache:
    """A cache that holds nothing: every node renders. Hashes files directly."""

    def lookup(self, node_id: str, key: str) -> Record | None:
        return None

    def previous(self, node_id: str) -> Record | None:
        return None

    def file_hash(self, path: str) -> str:
        import hashlib

        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()

    def url_hash(self, url: str) -> str | None:
        return None

    def remote_hit(self, key: str) -> bool:
        return False


@dataclass(frozen=True)
class PlannedNode:
    spec: NodeSpec
    status: Status
    reason: str | None  # why it renders (or what a held node's change was); None when fresh
    key: str | None  # None while an upstream node still renders
    record: Record | None = None  # the cached result of a fresh node
    request: dict[str, Any] | None = None  # the key payload, when known
    cost: float = 0.0  # estimated cost if it renders on the plan's backend
    from_remote: bool = False  # fresh because the team's remote has it (downloaded when rendered)

    @property
    def id(self) -> str:
        return self.spec.id


@dataclass(frozen=True)
class Plan:
    project: Project
    graph: Any = field(repr=False)  # networkx.DiGraph
    backend: str
    nodes: dict[str, PlannedNode]  # story order
    order: list[str]  # execution order
    critical_path: list[str]
    cost: float  # estimated USD on this backend
    runware_cost: float  # what the same renders would cost on Runware

    def to_render(self) -> list[PlannedNode]:
        return [n for n in self.nodes.values() if n.status is Status.RENDER]

    def to_json(self) -> dict[str, Any]:
        """The contract of ``plan --json`` (DESIGN.md §6)."""
        nodes = []
        for node in self.nodes.values():
            spec = node.spec
            nodes.append(
                {
                    "id": spec.id,
                    "status": node.status.value,
                    "model": spec.model,
                    "width": spec.width,
                    "height": spec.height,
                    "refs": [r.target if r.kind is not RefKind.FILE else r.label for r in spec.refs],
                    "prompt": spec.prompt,
                    "key": node.key,
                }
            )
            if node.from_remote:
                nodes[-1]["from_remote"] = True
        return {"nodes": nodes, "order": self.order, "cost": round(self.cost, 6)}


def key_payload(spec: NodeSpec, backend: str, ref_hashes: list[str]) -> dict[str, Any]:
    """Everything that decides a node's pixels, given the hashes of its references' bytes."""
    payload = {
        "v": KEY_VERSION,
        "backend": backend,
        "model": spec.model,
        "prompt": spec.prompt,
        "width": spec.width,
        "height": spec.height,
        "format": spec.output_format,
        "quality": spec.output_quality,
        "takes": spec.takes,
        "safety": spec.safety,
        "provider": spec.provider_settings,
        "refs": [
            {"sha256": h, "tag": ref.tag if spec.tagged else None} for ref, h in zip(spec.refs, ref_hashes, strict=True)
        ],
    }
    if backend == "preview":  # what the panel draws besides the prompt
        payload["staging"] = (spec.staging or Staging("shot")).as_key()
    return payload


def request_key(payload: dict[str, Any]) -> str:
    return sha256_bytes(canonical_json(payload))


def estimate(spec: NodeSpec, backend: str) -> tuple[float, float]:
    """(cost on ``backend``, cost on Runware) of rendering a node once."""
    price = catalog.get(spec.model).price_per_image * spec.takes
    return (0.0 if backend == "preview" else price), price


def make_plan(
    project: Project,
    graph,
    cache: Cache,
    *,
    backend: str | None = None,
    force: Iterable[str] = (),
    only: Iterable[str] | None = None,
    hold: Mapping[str, Record] | None = None,
    known: Mapping[str, PlannedNode] | None = None,
) -> Plan:
    """Plan a run: each node's key, status and reason; the order; the cost.

    ``force`` re-renders nodes even when fresh (their dependents follow); ``only``
    restricts the plan to those nodes and everything upstream of them; ``hold`` maps
    nodes that must not render (unless forced) to the record whose frames they keep;
    ``known`` holds nodes planned already (``plan_roots``: a render sent them meanwhile).
    """
    from . import graph as graphs

    backend = backend or project.backend
    forced = set(force)
    full_order = graphs.order(graph)
    selected = graphs.upstream(graph, only) if only else None
    order = [n for n in full_order if selected is None or n in selected]
    planned: dict[str, PlannedNode] = {}
    for node_id in order:
        if known and node_id in known:
            planned[node_id] = known[node_id]
            continue
        spec = project.nodes[node_id]
        planned[node_id] = _plan_node(
            spec,
            backend,
            cache,
            planned,
            node_id in forced,
            None if hold is None or node_id in forced else hold.get(node_id),
        )
    weight = {n: (1.0 if planned[n].status is Status.RENDER else 0.0) for n in order}
    sub = graph.subgraph(order) if selected is not None else graph
    crit = [n for n in graphs.critical_path(sub, order, weight) if weight[n]]
    story = {n: planned[n] for n in project.nodes if n in planned}
    cost = sum(n.cost for n in story.values() if n.status is Status.RENDER)
    runware_cost = sum(estimate(n.spec, "runware")[1] for n in story.values() if n.status is Status.RENDER)
    return Plan(
        project=project,
        graph=graph,
        backend=backend,
        nodes=story,
        order=order,
        critical_path=crit,
        cost=cost,
        runware_cost=runware_cost,
    )


def plan_roots(
    project: Project, cache: Cache, *, backend: str | None = None, hold: Mapping[str, Record] | None = None
) -> dict[str, PlannedNode]:
    """The nodes that reference no other node, planned before the graph is built (story order).
    Their keys need nothing upstream, so a render can send them while the rest is planned;
    ``make_plan(known=...)`` takes them over unchanged."""
    backend = backend or project.backend
    return {
        node_id: _plan_node(spec, backend, cache, {}, False, None if hold is None else hold.get(node_id))
        for node_id, spec in project.nodes.items()
        if not any(ref.kind is RefKind.NODE for ref in spec.refs)
    }


def _plan_node(
    spec: NodeSpec,
    backend: str,
    cache: Cache,
    planned: dict[str, PlannedNode],
    forced: bool,
    held: Record | None = None,
) -> PlannedNode:
    cost = estimate(spec, backend)[0]
    hashes: list[str] = []
    waiting: str | None = None
    for ref in spec.refs:
        if ref.kind is RefKind.NODE:
            up = planned.get(ref.target)
            if up is None or up.status is Status.RENDER or up.record is None:  # a HELD one has its record
                waiting = waiting or f"upstream {ref.target} renders"
                continue
            hashes.append(up.record.picked(up.spec.pick).sha256)
        elif ref.kind is RefKind.FILE:
            hashes.append(cache.file_hash(ref.target))
        else:
            digest = cache.url_hash(ref.target)
            if digest is None:
                waiting = waiting or f"reference URL not fetched yet: {ref.target}"
                continue
            hashes.append(digest)
    if waiting:
        if held is not None:
            return PlannedNode(
                spec, Status.HELD, waiting, held.key, record=held, from_remote=cache.remote_hit(held.key)
            )
        return PlannedNode(spec, Status.RENDER, "forced (--force)" if forced else waiting, None, cost=cost)
    payload = key_payload(spec, backend, hashes)
    key = request_key(payload)
    if forced:
        return PlannedNode(spec, Status.RENDER, "forced (--force)", key, request=payload, cost=cost)
    if held is not None and held.key != key:  # before the cache: a frame it holds for the new request
        # (an earlier version of the prompt, a preview panel) must not replace the approved one either
        why = _why(spec, payload, cache.previous(spec.id), key, planned)
        return PlannedNode(spec, Status.HELD, why, held.key, record=held, from_remote=cache.remote_hit(held.key))
    record = cache.lookup(spec.id, key)
    if record is not None:
        return PlannedNode(spec, Status.FRESH, None, key, record=record, from_remote=cache.remote_hit(key))
    return PlannedNode(
        spec, Status.RENDER, _why(spec, payload, cache.previous(spec.id), key, planned), key, request=payload, cost=cost
    )


def _why(
    spec: NodeSpec, payload: dict[str, Any], previous: Record | None, key: str, planned: dict[str, PlannedNode]
) -> str:
    """The reason a node with a known key renders, from what the lock pinned before."""
    if previous is None:
        return "new: never rendered"
    if previous.key == key:
        return "output missing or corrupt in the cache"
    before = previous.request
    if not before:
        return "request changed"
    names = {
        "prompt": "prompt",
        "model": "model",
        "width": "size",
        "height": "size",
        "format": "output format",
        "quality": "output quality",
        "takes": "takes",
        "safety": "safety settings",
        "provider": "provider settings",
        "backend": "backend",
        "v": "shotflow key version",
    }
    changed = list(dict.fromkeys(f"{names[k]} changed" for k in names if before.get(k) != payload.get(k)))
    old_staging, new_staging = before.get("staging"), payload.get("staging")
    if old_staging != new_staging and new_staging is not None and before.get("backend") == payload["backend"]:
        if old_staging is None or old_staging.get("v") != new_staging.get("v"):
            changed.append("the preview drawing changed (a newer shotflow)")
        else:
            staged = [
                f"{what} changed"
                for key, what in (("cast", "cast or blocking"), ("location", "location"), ("camera", "camera notes"))
                if old_staging.get(key) != new_staging.get(key)
            ]
            changed.extend(staged or ["staging changed"])
    old_refs, new_refs = before.get("refs") or [], payload["refs"]
    if len(old_refs) != len(new_refs):
        changed.append("references changed")
    else:
        for ref, a, b in zip(spec.refs, old_refs, new_refs, strict=True):
            if a == b:
                continue
            if ref.kind is not RefKind.NODE:
                changed.append(f"reference {ref.label} changed")
                continue
            # the upstream node is fresh (else this one would wait for it): nothing of it
            # re-renders now; its picked frame is another than when this node was rendered
            up = planned.get(ref.target)
            takes = {o.sha256 for o in up.record.outputs} if up is not None and up.record is not None else set()
            changed.append(
                f"another take of {ref.label} is picked"
                if a.get("sha256") in takes
                else f"reference {ref.label} has a new frame"
            )
    return ", ".join(changed) or "request changed"


def changed_since(plan: Plan, node_id: str, previous: Record) -> str:
    """What the plan's request of a node changed since ``previous`` (the record of the frame
    the lock pins): why an export calls that frame stale although the plan finds the node
    fresh (the storyboard went back to a request still in the cache, or the lock pins another
    backend's frame)."""
    node = plan.nodes[node_id]
    payload = node.request or (node.record.request if node.record is not None else None)
    if node.key is None or not payload:
        return "request changed"
    return _why(node.spec, payload, previous, node.key, plan.nodes)


def select(patterns: tuple[str, ...], ids: list[str], option: str) -> set[str]:
    """Node ids matching ids or glob patterns (``arrival/*``); an unknown one is an error."""
    chosen: set[str] = set()
    for pattern in patterns:
        hits = (
            [i for i in ids if fnmatch.fnmatchcase(i, pattern)]
            if any(c in pattern for c in "*?[")
            else [pattern]
            if pattern in ids
            else []
        )
        if not hits:
            raise ConfigError(
                f"{option} {pattern}: no such shot or sheet",
                hint=did_you_mean(pattern, ids) or "ids look like scene/shot or character:NAME",
            )
        chosen.update(hits)
    return chosen


def approved_holds(project, cache, include_approved: bool = False, *, backend: str) -> dict[str, Record]:
    """Approved shots a render on ``backend`` holds (DESIGN.md §8): node id → the lock's record
    of the frames it was approved with, found in the project's cache or on its team remote
    (``cache``: a ProjectCache; a clone that has not pulled holds them too, and downloads them).
    A shot approved before it had a frame in the lock and
    the cache has nothing to keep, and renders as any other; so does one approved as a preview
    panel when the run is on another backend: a panel is a sketch, and keeping it would make the
    paid shots downstream take a sketch as their reference (an approved Runware frame is kept by
    a preview run: it is better than any panel, and costs nothing). ``--include-approved``
    holds nothing, ``--force SHOT`` renders that one shot (make_plan sees to it)."""
    if include_approved:
        return {}
    held = {}
    for node_id, spec in project.nodes.items():
        if spec.review.approved:
            entry = cache.lock.entries.get(node_id)
            if entry is None or (entry.record.backend == "preview" and backend != "preview"):
                continue
            record = entry.record
            if cache.store.complete(record) or (
                cache.team is not None and cache.team.find(node_id, record.key, record)
            ):
                held[node_id] = record
    return held


def prepare(
    project: Project,
    *,
    backend: str | None = None,
    force=(),
    only=(),
    cache_dir=None,
    store=None,
    include_approved: bool = False,
    remote: str | None = None,
    warn=None,
    team=None,
) -> Plan:
    """The one way from a loaded project to its plan against its cache (``shotflow plan``,
    ``api.plan``, the exports, the live board): each node's key, status and reason, the
    order and the cost. ``store``: the cache to look in (default: the project's, or
    ``cache_dir``). ``remote`` is a team cache URL ("off": none; None: $SHOTFLOW_REMOTE,
    the user config, the storyboard's): a node it holds is fresh "from the remote".
    ``warn`` gets its one warning. ``team``: the remote already opened (then ``remote`` and
    ``warn`` are not used)."""
    from . import graph as graphs
    from .remote import open_team
    from .store import LockFile, ProjectCache, open_store

    g = graphs.build(project)
    ids = list(project.nodes)
    store = store or open_store(project.root, cache_dir)
    lock = LockFile.read(project.lock_path)
    if team is None:
        team = open_team(remote, project, store, warn or (lambda text: None))
    cache = ProjectCache(store, lock, team=team)
    hold = approved_holds(project, cache, include_approved, backend=backend or project.backend)
    return make_plan(
        project,
        g,
        cache,
        backend=backend,
        force=select(tuple(force), ids, "--force"),
        only=select(tuple(only), ids, "--only") if only else None,
        hold=hold,
    )


def check_locked(plan: Plan, lock, backend_name: str) -> None:
    """``--locked``: every node of the plan is in the lock with the same key, and its frame can
    be had to the byte. Raises LockedError listing what does not hold (nothing is spent)."""
    problems = []
    made_on: list[str] = []  # the other backend each node's locked frame was made on, when that is why
    for node in plan.nodes.values():
        entry = lock.entries.get(node.id)
        if entry is None:
            problems.append(f"{node.id}: not in {lock.path.name}")
        elif node.key != entry.record.key and entry.record.backend != backend_name:
            made_on.append(entry.record.backend)
            problems.append(f"{node.id}: its locked frame was made on {entry.record.backend}, not {backend_name}")
        elif node.key is not None and node.key != entry.record.key:
            problems.append(f"{node.id}: changed since the lock ({node.reason or 'its request changed'})")
        elif node.status is Status.RENDER and backend_name != "preview":
            # only the preview backend can redraw a frame to the byte: a paid one is lost
            problems.append(
                f"{node.id}: its frame is missing or corrupt in the cache (`shotflow verify` says which objects)"
                if node.key is not None
                else f"{node.id}: cannot be checked, {node.reason} (its frame is missing or corrupt)"
            )
    if problems:
        from .errors import LockedError

        more = f"\n  … and {len(problems) - 15} more" if len(problems) > 15 else ""
        shown = "\n  ".join(problems[:15]) + more
        hint = "run without --locked to render and update the lock"
        if len(made_on) == len(problems) and len(set(made_on)) == 1:  # only the backend differs
            hint = f"the lock's frames were made on {made_on[0]}: pass --backend {made_on[0]}"
        raise LockedError(f"--locked: the storyboard does not match {lock.path.name}:\n  {shown}", hint=hint)


def panels_replacing(plan: Plan, lock) -> str | None:
    """A note for a preview run that puts its panels where the lock has frames made on another
    backend (paid ones): renders/ and the lock get the panels, quietly otherwise — a lock then
    committed pins sketches. Those frames stay in the cache: rendering there again costs nothing.
    None when the run replaces none."""
    if plan.backend != "preview":
        return None
    replaced: dict[str, list[str]] = {}
    for node in plan.nodes.values():
        entry = lock.entries.get(node.id)
        if node.status is not Status.HELD and entry is not None and entry.record.backend != "preview":
            replaced.setdefault(entry.record.backend, []).append(node.id)
    from ._text import counted, shortlist

    return (
        "; ".join(
            f"preview panels replace {counted(len(ids), 'frame')} made on {made_on} ({shortlist(ids, 3)}) in renders/ "
            f"and {lock.path.name}; they stay in the cache: render --backend {made_on} puts them back at no cost"
            for made_on, ids in replaced.items()
        )
        or None
    )


def check_budget(plan: Plan, max_cost: float) -> None:
    """``--max-cost``: raises BudgetError when the plan would cost more (nothing is spent)."""
    if plan.cost > max_cost + 1e-9:
        from ._text import counted
        from .errors import BudgetError

        raise BudgetError(
            f"this render would cost about ${plan.cost:.2f} ({counted(len(plan.to_render()), 'node')}) "
            f"and --max-cost is ${max_cost:.2f}; nothing was spent",
            hint="raise --max-cost, render fewer shots with --only, or use fewer takes",
        )
