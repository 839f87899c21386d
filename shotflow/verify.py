"""``shotflow verify``: check the bytes of the whole cache and of what the lock file names.

    NAME.lock ─► every take of every node: its object is present and hashes to its name
    cache     ─► every object hashes to its name; every action record reads and its objects are there;
                 journal entries (paid tasks not recorded yet) and leases of dead processes are reported
    renders/  ─► each frame the lock names, where present, holds the lock's bytes

Nothing is trusted from the stat index: every byte is hashed. A corrupt object is removed (no
run may use it; the next render makes or fetches it again, ``--locked`` fails naming it), a
damaged file in renders/ is left for the next render to replace. Exit code 1 when anything is
corrupt or missing, 0 when all is well.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from .model import EXTENSIONS, frame_paths


@dataclass
class Findings:
    """What ``verify`` found: problems (corrupt or missing), and notes (worth knowing, not wrong)."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    objects: int = 0  # objects hashed
    nodes: int = 0  # lock entries checked

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        head = f"checked {self.nodes} nodes of the lock and {self.objects} objects in the cache: " + (
            "all bytes verify" if self.ok else f"{len(self.problems)} problem(s)"
        )
        return [head, *(f"  {p}" for p in self.problems), *(f"note: {n}" for n in self.notes)]


def verify(storyboard: Path | str, *, cache_dir: Path | None = None) -> Findings:
    """Hash everything ``storyboard``'s lock and cache hold; see the module docstring."""
    from .expand import load_project
    from .load import display_path
    from .state import check_renders_folders
    from .store import LockFile, open_store

    project = load_project(storyboard)
    check_renders_folders(project)  # frames are hashed there: not through a link out of the project
    store = open_store(project.root, cache_dir, verify=True)
    lock = LockFile.read(project.lock_path)
    found = Findings()
    state: dict[str, str] = {}  # digest → ok | missing | corrupt, each object hashed once

    def check(digest: str) -> str:
        if digest not in state:
            state[digest] = store.check(digest)
        return state[digest]

    formats = {ext: name for name, ext in EXTENSIONS.items()}
    for node_id in sorted(lock.entries):
        entry = lock.entries[node_id]
        found.nodes += 1
        outputs = entry.record.outputs
        spec = project.nodes.get(node_id)
        names = (
            frame_paths(
                project,
                replace(spec, takes=len(outputs), output_format=formats.get(outputs[0].ext, spec.output_format)),
            )
            if spec is not None and outputs
            else []
        )
        for take, output in enumerate(outputs, 1):
            what = f"{node_id} take {take}" if len(outputs) > 1 else node_id
            status = check(output.sha256)
            if status != "ok":
                found.problems.append(
                    f"{what}: object {output.sha256[:12]} is {status} in the cache "
                    f"({display_path(store.object_path(output.sha256))})"
                )
            if take <= len(names) and names[take - 1].is_file() and store.file_hash(names[take - 1]) != output.sha256:
                where = display_path(names[take - 1])
                fix = "the next render copies it from the cache" if status == "ok" else "it cannot be restored"
                found.problems.append(f"{what}: {where} does not hold the lock's bytes; {fix}")
    for url, digest in sorted(lock.urls.items()):
        status = check(digest)
        if status != "ok":
            found.problems.append(
                f"reference URL {url}: its pinned bytes ({digest[:12]}) are {status} in the cache; "
                "the next render fetches it again"
            )
    for digest in store.objects():
        status = check(digest)
        if status == "corrupt":
            found.problems.append(f"object {digest[:12]} is corrupt (its bytes no longer match their hash); removed")
    found.objects = sum(1 for status in state.values() if status != "missing")
    for path, record in store.actions():
        if record is None:
            found.problems.append(f"action record {display_path(path)} cannot be read")
            continue
        gone = [o.sha256[:12] for o in record.outputs if check(o.sha256) != "ok"]
        if gone and not any(
            o.sha256 in (x.sha256 for e in lock.entries.values() for x in e.record.outputs) for o in record.outputs
        ):
            found.notes.append(
                f"the action record of key {record.key[:12]} names objects the cache lacks "
                f"({', '.join(gone)}): that request renders again when asked for"
            )
    pending = store.journal.entries()
    if pending:
        found.notes.append(
            f"{len(pending)} task(s) sent to Runware are not recorded yet: the next render of "
            "their shots collects them (nothing is paid again)"
        )
    dead = store.leases.break_dead()
    if dead:
        found.notes.append(f"{dead} lease(s) of processes that died were broken")
    return found
