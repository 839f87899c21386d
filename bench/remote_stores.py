"""obstore vs fsspec + s3fs for the team cache (issue 15): which library shotflow builds on.

    python bench/remote_stores.py [--objects 1000] [--size 65536] [--runs 3] [--concurrency 16]

A local S3 server (moto's ``ThreadedMotoServer`` on 127.0.0.1, the one the tests use) is
started here; each library then runs in a fresh process that

- imports what a remote needs (``obstore.store`` / ``s3fs``): the time a command pays for it,
- uploads ``--objects`` objects of ``--size`` incompressible bytes under a fresh prefix,
  ``--concurrency`` requests in flight (obstore: its blocking calls in a thread pool, as
  shotflow makes them; s3fs: its own batched ``pipe``),
- downloads them all again and checks each one's sha256,
- and reports its own peak RSS (GNU time, as every shotflow benchmark).

Both clients talk to the same server with the same parallelism, so the server's own
cost (moto is a Python Flask app) is the same for both; the differences are the clients'.
Figures go to BENCHMARKS.md ("The team cache: which storage library").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import PY, Result, check, median, run, table  # noqa: E402

CHILD = textwrap.dedent("""
    import asyncio, hashlib, json, os, sys, time
    lib, url, n, size, conc = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    payloads = [os.urandom(size) for _ in range(n)]
    digests = [hashlib.sha256(p).hexdigest() for p in payloads]
    t0 = time.perf_counter()
    if lib == "obstore":
        import obstore
        from obstore.store import from_url
    else:
        import s3fs
    t_import = time.perf_counter() - t0
    if lib == "obstore":
        # as shotflow uses it (remote.py): the blocking calls, `conc` of them in a thread pool
        from concurrent.futures import ThreadPoolExecutor
        store = from_url(url, client_options={"allow_http": True})
        def put(item):
            d, p = item
            obstore.put(store, f"objects/{d[:2]}/{d[2:]}", p)
        def get(d):
            data = bytes(obstore.get(store, f"objects/{d[:2]}/{d[2:]}").bytes())
            assert hashlib.sha256(data).hexdigest() == d
        with ThreadPoolExecutor(conc) as pool:
            t1 = time.perf_counter(); list(pool.map(put, zip(digests, payloads))); t_up = time.perf_counter() - t1
            t1 = time.perf_counter(); list(pool.map(get, digests)); t_down = time.perf_counter() - t1
    else:
        fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": os.environ["AWS_ENDPOINT_URL"]}, skip_instance_cache=True)
        root = url[len("s3://"):]
        paths = [f"{root}/objects/{d[:2]}/{d[2:]}" for d in digests]
        t1 = time.perf_counter(); fs.pipe(dict(zip(paths, payloads)), batch_size=conc); t_up = time.perf_counter() - t1
        t1 = time.perf_counter(); got = fs.cat(paths, batch_size=conc); t_down = time.perf_counter() - t1
        assert all(hashlib.sha256(got[p]).hexdigest() == d for p, d in zip(paths, digests))
    print(json.dumps({"import": t_import, "upload": t_up, "download": t_down}))
""")


def start_server():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    return server, f"http://{host}:{port}"


def bench(
    quick: bool = False, objects: int = 1000, size: int = 65536, runs: int = 3, concurrency: int = 16
) -> list[Result]:
    if quick:
        objects, runs = 50, 1
    server, endpoint = start_server()
    env = {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    import boto3

    boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="bench", aws_secret_access_key="bench"
    ).create_bucket(Bucket="bench")
    results: list[Result] = []
    import importlib.util

    # the comparison needs s3fs, which shotflow itself never uses (not in any extra): without it
    # only obstore is measured, and the table says why the other row is missing
    libs = ["obstore"] + (["fsspec+s3fs"] if importlib.util.find_spec("s3fs") else [])
    if len(libs) == 1:
        results.append(
            Result(
                "remote-store",
                "fsspec+s3fs: not measured",
                None,
                "s",
                command="pip install s3fs && python bench/remote_stores.py",
                note="s3fs is not installed (shotflow does not use it; install it to compare)",
            )
        )
    try:
        for lib in libs:
            figures: dict[str, list[float]] = {"import": [], "upload": [], "download": []}
            rss: list[float] = []
            for i in range(runs):
                url = f"s3://bench/{lib}-{i}-{os.getpid()}"
                proc = check(
                    run([PY, "-c", CHILD, lib, url, str(objects), str(size), str(concurrency)], env=env),
                    f"{lib} run {i}",
                )
                data = json.loads(proc.out.strip().splitlines()[-1])
                for name in figures:
                    figures[name].append(data[name])
                rss.append(proc.rss_mb)
            command = f"python bench/remote_stores.py --objects {objects} --size {size} --concurrency {concurrency}"
            for name, unit_case in (
                ("import", "import"),
                ("upload", f"upload {objects} × {size // 1024} KiB"),
                ("download", f"download {objects} × {size // 1024} KiB + sha256"),
            ):
                results.append(
                    Result(
                        "remote-store",
                        f"{lib}: {unit_case}",
                        median(figures[name]),
                        "s",
                        runs=figures[name],
                        rss_mb=max(rss),
                        command=command,
                        note=f"{concurrency} in flight; moto on 127.0.0.1",
                    )
                )
    finally:
        server.stop()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/remote_stores.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--size", type=int, default=65536, help="bytes per object (a preview frame is ~64 KB)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    print(table(bench(args.quick, args.objects, args.size, args.runs, args.concurrency)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
