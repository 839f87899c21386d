"""The store: objects by hash, action records, the lock file, the stat index."""

from __future__ import annotations

import json
import os

import pytest

from shotflow.store import CorruptObject, LockFile, Output, Record, Store, atomic_write, canonical_json, sha256_bytes


@pytest.fixture
def store(tmp_path):
    return Store(tmp_path / "cache", tmp_path / "state")


def test_objects_are_content_addressed_and_read_only(store):
    digest = store.put(b"frame bytes")
    assert digest == sha256_bytes(b"frame bytes")
    path = store.object_path(digest)
    assert path.read_bytes() == b"frame bytes" and not os.access(path, os.W_OK) or os.geteuid() == 0
    assert oct(path.stat().st_mode & 0o777) == "0o444"
    assert store.read(digest) == b"frame bytes" and store.has(digest)


def test_a_corrupt_object_is_detected_and_removed(store, tmp_path):
    digest = store.put(b"good bytes")
    path = store.object_path(digest)
    path.chmod(0o644)
    path.write_bytes(b"evil bytes")
    fresh = Store(store.cache_dir, store.state_dir)  # a new run: nothing verified in memory
    assert not fresh.has(digest)
    assert not path.exists()
    with pytest.raises(CorruptObject):
        fresh.read(digest)


def test_read_verifies_even_when_stat_looks_unchanged(store):
    digest = store.put(b"0123456789")
    path = store.object_path(digest)
    st = path.stat()
    path.chmod(0o644)
    path.write_bytes(b"9876543210")  # same size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime
    with pytest.raises(CorruptObject):
        Store(store.cache_dir, store.state_dir).read(digest)


def test_file_hashes_are_remembered_by_stat(store, tmp_path):
    f = tmp_path / "ref.png"
    f.write_bytes(b"abc")
    assert store.file_hash(f) == sha256_bytes(b"abc")
    store.save()
    again = Store(store.cache_dir, store.state_dir)
    assert again.index.known(f, os.stat(f)) == sha256_bytes(b"abc")
    f.write_bytes(b"abcd")
    assert again.file_hash(f) == sha256_bytes(b"abcd")


def test_a_file_rewritten_with_its_mtime_put_back_is_hashed_again(store, tmp_path):
    f = tmp_path / "ref.png"
    f.write_bytes(b"abc")
    assert store.file_hash(f) == sha256_bytes(b"abc")
    store.save()
    st = f.stat()
    f.write_bytes(b"xyz")  # in place: the same inode and size
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the mtime put back
    now = f.stat()
    assert (now.st_size, now.st_mtime_ns, now.st_ino) == (st.st_size, st.st_mtime_ns, st.st_ino)
    assert Store(store.cache_dir, store.state_dir).file_hash(f) == sha256_bytes(b"xyz")  # its ctime moved


def test_a_stat_index_entry_is_believed_only_as_shotflow_writes_it(store, tmp_path):
    f = tmp_path / "ref.png"
    f.write_bytes(b"abc")
    st, digest = f.stat(), sha256_bytes(b"abc")
    store.index.remember(f, st, digest)
    entry = store.index.data[str(f)]
    assert store.index.known(f, st) == digest and entry.startswith(digest + " ")
    tail = entry[64:]
    for crafted in ("../../etc/passwd".ljust(64) + tail, "A" * 64 + tail, digest + " 1 2 3 4", [3, 0, 0, digest]):
        store.index.data[str(f)] = crafted  # a path, not hex, another stat, an older shotflow's list
        assert store.index.known(f, st) is None


def test_action_records_round_trip(store):
    record = Record(
        key="d" * 64,
        backend="runware",
        model="runway:4@1",
        outputs=(Output("a" * 64, "png", seed=7, remote_id="uuid-1", url="https://x/y.png", cost=0.08),),
        task_id="task-1",
        cost=0.08,
        roll=2,
        created="2026-01-01T00:00:00+00:00",
        request={"prompt": "p"},
    )
    store.put_action(record)
    assert store.get_action(record.key) == record
    assert store.get_action("missing") is None
    store.action_path(record.key).write_text("{not json")
    from shotflow.statefile import DamagedState

    with pytest.warns(DamagedState, match="is damaged \\(not JSON\\)"):
        assert store.get_action(record.key) is None  # a miss, and the user is told


def test_the_lock_file_is_sorted_stable_and_only_rewritten_on_change(tmp_path):
    path = tmp_path / "storyboard.lock"
    lock = LockFile(path)
    out = (Output("b" * 64, "png", seed=1),)
    lock.set("z/last", Record("2" * 64, "preview", "runway:4@1", out, cost=0.0), 1)
    lock.set(
        "a/first", Record("1" * 64, "preview", "runway:4@1", out + (Output("c" * 64, "png", seed=2),), cost=0.0), 2
    )
    assert lock.write()
    text = path.read_text()
    data = json.loads(text)
    assert list(data["nodes"]) == ["a/first", "z/last"]
    assert data["nodes"]["a/first"]["picked"] == "c" * 64
    assert text.endswith("\n") and "  " in text  # one key a line: diff-friendly
    again = LockFile.read(path)
    assert again.entries["a/first"].pick == 2
    mtime = path.stat().st_mtime_ns
    assert not again.write() and path.stat().st_mtime_ns == mtime


@pytest.mark.parametrize("urls", [{}, {"https://example.com/ä.png": "d" * 64, "https://a.example/x.jpg": "e" * 64}])
@pytest.mark.parametrize("count", [0, 1, 3])
def test_the_lock_is_written_in_pieces_exactly_as_one_json_dump(tmp_path, count, urls):
    from shotflow.store import LOCK_FORMAT

    lock = LockFile(tmp_path / "storyboard.lock")
    for i in range(count):
        outputs = tuple(
            Output(
                f"{i}{t}".ljust(64, "f"),
                "png",
                seed=i,
                remote_id=f"uuid-ü-{t}" if t else None,
                cost=0.0123 if t else None,
            )
            for t in range(2)
        )
        lock.set(
            f'scene {i}/shot "{i}"', Record(f"{i:064x}", "runware", "runway:4@1", outputs, task_id="t", cost=0.5), 2
        )
    lock.urls = dict(urls)
    nodes = {}
    for node_id, entry in lock.entries.items():
        nodes[node_id] = {**entry.record.to_json(full=False), "pick": entry.pick, "picked": entry.picked.sha256}
    doc = {"shotflow_lock": LOCK_FORMAT, "nodes": nodes, **({"urls": urls} if urls else {})}
    expected = (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()
    assert b"".join(lock.render()) == expected
    assert lock.write() and lock.path.read_bytes() == expected


def test_entries_encoded_ahead_write_the_same_bytes_and_a_stale_one_is_not_used(tmp_path):
    def record(i, cost=0.5):
        return Record(f"{i:064x}", "runware", "runway:4@1", (Output(f"{i}".ljust(64, "a"), "png", seed=i),), cost=cost)

    plain, ahead = LockFile(tmp_path / "a.lock"), LockFile(tmp_path / "b.lock")
    records = [record(i) for i in range(5)]
    for i, r in enumerate(records):
        ahead.prepare(f"n{i}", r, 1)  # while the run goes on
    newer = record(3, cost=0.75)  # node 3 got another record after it was encoded
    for i, r in enumerate(records):
        plain.set(f"n{i}", newer if i == 3 else r, 1)
        ahead.set(f"n{i}", newer if i == 3 else r, 2 if i == 4 else 1)  # and node 4 another pick
    plain.set("n4", records[4], 2)
    assert b"".join(ahead.render()) == b"".join(plain.render())
    assert b'"cost": 0.75' in b"".join(ahead.render())


def test_a_broken_lock_file_is_a_clear_error(tmp_path):
    from shotflow.errors import LockedError

    path = tmp_path / "storyboard.lock"
    path.write_text("{broken")
    with pytest.raises(LockedError, match="not a valid shotflow lock file"):
        LockFile.read(path)


def test_atomic_write_leaves_no_temp_files(tmp_path):
    target = tmp_path / "d" / "file.json"
    atomic_write(target, b"1", durable=True)
    atomic_write(target, b"2")
    assert target.read_bytes() == b"2"
    assert [p.name for p in target.parent.iterdir()] == ["file.json"]


def test_canonical_json_is_stable():
    assert canonical_json({"b": 1, "a": [1, {"d": "é", "c": None}]}) == '{"a":[1,{"c":null,"d":"é"}],"b":1}'.encode()


def test_journal_and_memo(store):
    store.journal.begin("key1", {"task_uuid": "t1"})
    assert store.journal.pending("key1") == {"task_uuid": "t1", "key": "key1"}
    assert [e["key"] for e in store.journal.entries()] == ["key1"]
    store.journal.finish("key1")
    assert store.journal.pending("key1") is None
    store.memo.put("upload:abc", "uuid-9", ttl_seconds=60)
    store.memo.put("old", "x", ttl_seconds=-1)
    again = Store(store.cache_dir, store.state_dir)
    assert again.memo.get("upload:abc") == "uuid-9" and again.memo.get("old") is None


def test_held_bytes_are_served_from_memory_until_the_last_release(store):
    digest = store.put(b"frame bytes")
    assert store.held_bytes() == 0  # storing keeps nothing in memory
    store.hold(digest, b"frame bytes")
    store.hold(digest, b"frame bytes")  # two holders of the same object
    path = store.object_path(digest)
    path.chmod(0o644)
    path.unlink()
    assert store.read(digest) == b"frame bytes"
    store.release(digest)
    assert store.read(digest) == b"frame bytes" and store.held_bytes() == len(b"frame bytes")
    store.release(digest)
    assert store.held_bytes() == 0
    with pytest.raises(CorruptObject):
        store.read(digest)


@pytest.mark.parametrize("count", [0, 1, 999, 1000, 1001, 2500])
def test_the_manifest_is_written_in_pieces_as_one_json_document(count):
    from shotflow.state import manifest_chunks

    head = {"version": 1, "storyboard": "/p/ü storyboard.yaml", "signature": [1, "x"], "inputs": {"/p/a": [1, 2, 3]}}
    outputs = {f"/p/renders/s/{i}.png": [i, i * 7, None] for i in range(count)}
    nodes = [[f"s/{i}", [f"renders/s/{i}.png"]] for i in range(count)]
    members = [f"{json.dumps(path)}:{json.dumps(stat)}" for path, stat in outputs.items()]
    data = b"".join(manifest_chunks(head, members, map(json.dumps, nodes)))
    assert json.loads(data) == {**head, "outputs": outputs, "nodes": nodes}


# -- paying once across processes: leases, the journal ------------------------------------


def _holder_process(root, key):
    """A child process that takes a lease and waits to be killed."""
    import subprocess
    import sys

    code = (
        "import sys, time; from pathlib import Path; from shotflow.store import Leases; "
        f"Leases(Path({str(root)!r})).take({key!r}); print('held', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_lease_is_held_by_one_live_process_and_broken_when_it_dies(tmp_path):
    from shotflow.store import Leases

    leases = Leases(tmp_path / "leases")
    proc = _holder_process(tmp_path / "leases", "k1")
    try:
        holder = leases.take("k1")
        assert holder is not None and holder["pid"] == proc.pid  # alive: not ours
        assert leases.holder("k1")["pid"] == proc.pid
    finally:
        proc.kill()
        proc.wait()
    assert leases.holder("k1") is None  # its owner is dead
    assert leases.take("k1") is None  # broken and taken
    assert json.loads((tmp_path / "leases" / "k1.lease").read_text())["pid"] == os.getpid()
    leases.release("k1")
    assert not (tmp_path / "leases" / "k1.lease").exists()


def test_a_lease_from_another_machine_lives_while_it_is_refreshed(tmp_path):
    from shotflow.store import Leases

    root = tmp_path / "leases"
    root.mkdir()
    lease = root / "k.lease"
    lease.write_text(json.dumps({"id": "elsewhere:1", "pid": 1, "host": "another-machine", "boot": "x"}))
    leases = Leases(root)
    assert leases.take("k")["host"] == "another-machine"
    old = lease.stat().st_mtime - Leases.STALE - 1
    os.utime(lease, (old, old))
    assert leases.take("k") is None


def test_reconcile_clears_journal_entries_whose_task_was_recorded(store):
    K1, K2, K3 = ("1" * 64, "2" * 64, "3" * 64)
    store.journal.begin(K1, {"task_uuid": "t1"})  # recorded, then the run was killed
    store.journal.begin(K2, {"task_uuid": "t2"})  # sent, never recorded: paid work to collect
    store.journal.begin(K3, {"task_uuid": "t3"})  # recorded by an earlier task; this one is newer
    digest = store.put(b"img")
    store.put_action(Record(K1, "runware", "m", (Output(digest, "png"),), task_id="t1"))
    store.put_action(Record(K3, "runware", "m", (Output(digest, "png"),), task_id="t-old"))
    fresh = Store(store.cache_dir, store.state_dir)
    assert fresh.reconcile() == 1
    assert fresh.journal.pending(K1) is None
    assert fresh.journal.pending(K2)["task_uuid"] == "t2" and fresh.journal.pending(K3)["task_uuid"] == "t3"


def test_the_journal_sees_entries_other_processes_wrote_after_it_listed(store):
    assert store.journal.pending("k") is None  # listed: empty
    Store(store.cache_dir, store.state_dir).journal.begin("k", {"task_uuid": "t"})  # another process
    assert store.journal.pending("k")["task_uuid"] == "t"
    store.journal.finish("k")
    assert store.journal.pending("k") is None


def test_a_verifying_store_trusts_no_stat_index(store):
    digest = store.put(b"0123456789")
    store.save()
    path = store.object_path(digest)
    st = path.stat()
    path.chmod(0o644)
    path.write_bytes(b"0123456780")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    _as_if_unseen(store, path, digest)  # rot under the file system: every stat field as the index has it
    assert Store(store.cache_dir, store.state_dir).has(digest)  # the index believes the stat
    assert not Store(store.cache_dir, store.state_dir, verify=True).has(digest)
    assert not path.exists()  # a corrupt object is removed, never used


def test_state_files_are_named_per_storyboard(tmp_path):
    from shotflow.state import ProjectState

    a, b = ProjectState(tmp_path / "a.yaml"), ProjectState(tmp_path / "b.yaml")
    assert a.status_path == tmp_path / ".shotflow" / "a.status.json"
    assert a.manifest_path == tmp_path / ".shotflow" / "a.last-run.json"
    assert b.status_path != a.status_path and b.manifest_path != a.manifest_path


def _as_if_unseen(store, path, digest):
    """Give the stat index the file's stat as it is now, with its old digest: what a change no
    stat field shows (bit rot under the file system) looks like to shotflow."""
    index = Store(store.cache_dir, store.state_dir).index
    index.remember(path, os.stat(path), digest)
    index.save()
