"""The team cache (shotflow/remote.py) at N = 1000: pull, push, a clone's --locked render, and
what a remote costs a render that the local cache answers.

    python bench/teamcache.py [--quick] [--n 1000] [--runs 3]

A local S3 server (moto's ``ThreadedMotoServer`` on 127.0.0.1) is started in this process;
every request it serves is counted (its werkzeug log). On a storyboard from ``generate.py``
rendered once on preview (kept in ``bench/_work/``):

    push (-j 16)                      every frame and record of the lock, to an empty bucket
    pull -j 1 / pull (default -j 16)  a fresh clone (lock, no cache) downloads every frame; on
                                      loopback as is, and with --rtt MS of simulated network
                                      round trip per request (a WSGI middleware in the server)
    render --locked, fresh clone      the same through render: planned fresh "from the remote"
    render (no-op) ± remote           nothing changed: the fast path
    render, no fast path ± remote     the storyboard touched: every node planned, all fresh
                                      in the local cache (as after a git checkout)

The last two must cost the same with a remote as without, and send it no request.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import WORK, Result, check, median, quote, run, shotflow_cmd, table  # noqa: E402
from generate import generate  # noqa: E402


def latent_server(rtt: float):
    """A moto server whose every answer is delayed by ``rtt`` seconds (a network round trip);
    requests still overlap (one thread each), as on a real network."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from moto.server import ThreadedMotoServer
    from werkzeug.serving import make_server

    class Latent(ThreadedMotoServer):
        def _server_entry(self) -> None:
            app = DomainDispatcherApplication(create_backend_app)

            def delayed(environ, start_response):
                time.sleep(rtt)
                return app(environ, start_response)

            self._server = make_server(self._ip_address, self._port, delayed, True, request_handler=MotoRequestHandler)
            self._server_ready_event.set()
            self._server.serve_forever()

    return Latent(ip_address="127.0.0.1", port=0, verbose=False)


class Counter(logging.Handler):
    """Counts the requests the in-process moto server answers."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if '"' in record.getMessage():
            self.count += 1


def _clone(src: Path, dst: Path) -> Path:
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".shotflow", "renders"))
    return dst / "storyboard.yaml"


def bench(quick: bool = False, n: int = 1000, runs: int = 3, rtt_ms: float = 20.0) -> list[Result]:
    import boto3
    from moto.server import ThreadedMotoServer

    if quick:
        n, runs = 20, 1
    folder = WORK / f"team{n}"
    generate(n, folder, depth=8)
    sf = shotflow_cmd()
    if not (folder / ".shotflow" / "last-run.json").is_file():
        check(run([*sf, "render", "storyboard.yaml", "--remote", "off"], cwd=folder, keep_output=False), "cold render")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    counter = Counter()
    werkzeug = logging.getLogger("werkzeug")
    werkzeug.setLevel(logging.INFO)
    werkzeug.addHandler(counter)
    werkzeug.propagate = False
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": "us-east-1",
        "SHOTFLOW_CONFIG": os.devnull,
    }
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench", aws_secret_access_key="bench"
    ).create_bucket(Bucket=bucket)
    url = f"s3://{bucket}/team"
    results: list[Result] = []
    frames = sum(1 for _ in (folder / ".shotflow" / "objects").glob("*/*"))
    size_mb = sum(p.stat().st_size for p in (folder / ".shotflow" / "objects").glob("*/*")) / 1e6
    note = f"{frames} frames, {size_mb:.0f} MB; moto on 127.0.0.1"

    def timed(
        case: str,
        cmd: list[str],
        cwd: Path,
        *,
        setup=None,
        extra_env=None,
        expect: str | None = None,
        count_requests: bool = True,
        times: int | None = None,
    ) -> Result:
        walls, rss, requests, cpus = [], 0.0, [], []
        for _ in range(times or runs):
            if setup:
                setup()
            before = counter.count
            proc = check(run(cmd, cwd=cwd, env={**env, **(extra_env or {})}), case)
            requests.append(counter.count - before)
            if expect and expect not in proc.out + proc.err:
                raise RuntimeError(f"{case}: expected {expect!r} in its output:\n{proc.out[-800:]}{proc.err[-800:]}")
            walls.append(proc.wall)
            cpus.append(proc.cpu)
            rss = max(rss, proc.rss_mb)
        extra = f"; {max(requests)} requests to the remote" if count_requests else ""
        extra += f"; shotflow's CPU {median(cpus):.1f} s"
        return Result(
            "teamcache",
            f"{case}, N={n}",
            median(walls),
            "s",
            runs=walls,
            rss_mb=rss,
            command=quote(cmd),
            note=note + extra,
        )

    try:
        push = [*sf, "push", "storyboard.yaml", "--remote", url]
        results.append(
            timed("push (default -j 16), empty bucket", push, folder, times=1, expect=f"pushed {frames} objects")
        )
        results.append(timed("push, everything there already", push, folder, expect="0 objects"))
        clone_dir = WORK / f"team{n}-clone"
        story = clone_dir / "storyboard.yaml"

        def fresh_clone() -> None:
            _clone(folder, clone_dir)

        results.append(
            timed(
                "pull -j 1, fresh clone",
                [*sf, "pull", str(story), "--remote", url, "-j", "1"],
                WORK,
                setup=fresh_clone,
                expect=f"pulled {frames} objects",
            )
        )
        results.append(
            timed(
                "pull (default -j 16), fresh clone",
                [*sf, "pull", str(story), "--remote", url],
                WORK,
                setup=fresh_clone,
                expect=f"pulled {frames} objects",
            )
        )
        results.append(
            timed(
                "render --locked, fresh clone, from the remote",
                [*sf, "render", str(story), "--locked", "--remote", url],
                WORK,
                setup=fresh_clone,
                expect="0 rendered",
            )
        )
        for label, extra in (("no remote", {"SHOTFLOW_REMOTE": "off"}), ("remote set", {"SHOTFLOW_REMOTE": url})):
            results.append(
                timed(
                    f"render (no-op), {label}",
                    [*sf, "render", "storyboard.yaml"],
                    folder,
                    extra_env=extra,
                    expect="nothing to do",
                    count_requests=True,
                )
            )
        story_path = folder / "storyboard.yaml"

        def touch() -> None:  # the fast path no longer answers; the content is the same
            os.utime(story_path)

        for label, extra in (("no remote", {"SHOTFLOW_REMOTE": "off"}), ("remote set", {"SHOTFLOW_REMOTE": url})):
            results.append(
                timed(
                    f"render, no fast path (all fresh locally), {label}",
                    [*sf, "render", "storyboard.yaml"],
                    folder,
                    setup=touch,
                    extra_env=extra,
                    expect="0 rendered",
                    count_requests=True,
                )
            )
    finally:
        server.stop()
    # the same pulls over a simulated network: every answer ``rtt_ms`` late
    if rtt_ms:
        slow = latent_server(rtt_ms / 1000)
        slow.start()
        try:
            host, port = slow.get_host_and_port()
            env["AWS_ENDPOINT_URL"] = f"http://{host}:{port}"
            boto3.client(
                "s3",
                endpoint_url=env["AWS_ENDPOINT_URL"],
                region_name="us-east-1",
                aws_access_key_id="bench",
                aws_secret_access_key="bench",
            ).create_bucket(Bucket=bucket)
            check(
                run([*sf, "push", "storyboard.yaml", "--remote", url], cwd=folder, env=env, keep_output=False),
                "push to the slow server",
            )
            for jobs in ("1", "16"):
                results.append(
                    timed(
                        f"pull -j {jobs}, fresh clone, {rtt_ms:g} ms round trip",
                        [*sf, "pull", str(story), "--remote", url, "-j", jobs],
                        WORK,
                        setup=fresh_clone,
                        expect=f"pulled {frames} objects",
                    )
                )
        finally:
            slow.stop()
    werkzeug.removeHandler(counter)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/teamcache.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--rtt", type=float, default=20.0, help="simulated round trip, ms, for the second pulls (0: skip)"
    )
    args = parser.parse_args(argv)
    print(table(bench(args.quick, args.n, args.runs, args.rtt)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
