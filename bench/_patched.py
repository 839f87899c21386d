"""shotflow's CLI with measurement patches applied: what-if experiments, nothing is edited.

    SHOTFLOW_BENCH_PATCH=nofsync,novalidate python bench/_patched.py render FILE ...

    nofsync      os.fsync does nothing (what moving durable writes off the event loop,
                 or batching them, could buy at most)
    novalidate   catalog.task_errors returns [] (the cost of validating every Runware
                 task with jsonschema before it is sent)
    nogc         gc.disable() for the whole run (what a gc.freeze()/threshold change around
                 loading a big storyboard could buy; a short-lived CLI can afford it)
    looplag      not a fix, a probe: measures how busy the render's event loop is (a 1 ms
                 ticker's lateness) and prints it to stderr at the end
    poststamp    not a fix, a probe: every POST to the API (its start, its answer, its
                 tasks' types and UUIDs) written as JSON to $SHOTFLOW_BENCH_POSTS at exit
                 (``makespan.py --handoffs`` matches them with the emulator's probe)

A patch tells what a fix could buy before anyone writes it; the figure to publish is
always the one measured on the fixed code, without patches.
"""

import os
import sys

PATCHES = {p for p in os.environ.get("SHOTFLOW_BENCH_PATCH", "").split(",") if p}
unknown = PATCHES - {"nofsync", "novalidate", "nogc", "looplag", "poststamp"}
if unknown:
    sys.exit(f"unknown patch: {', '.join(sorted(unknown))}")
if "nogc" in PATCHES:
    import gc

    gc.disable()
if "nofsync" in PATCHES:
    os.fsync = lambda fd: None
if "novalidate" in PATCHES:
    import shotflow.catalog

    shotflow.catalog.task_errors = lambda task: []

if "looplag" in PATCHES:
    import asyncio
    import time

    _run = asyncio.run

    def _measured(coro, **kwargs):
        async def wrapper():
            lags: list[float] = []

            async def ticker():
                while True:
                    before = time.perf_counter()
                    await asyncio.sleep(0.001)
                    lags.append(time.perf_counter() - before - 0.001)

            tick = asyncio.ensure_future(ticker())
            start = time.perf_counter()
            try:
                return await coro
            finally:
                tick.cancel()
                total = time.perf_counter() - start
                lags.sort()
                busy = sum(x for x in lags if x > 0.0005)
                if lags:
                    print(
                        f"looplag: {total:.2f} s in the loop; blocked {busy:.2f} s ({busy / total:.0%}); "
                        f"lateness p50 {lags[len(lags) // 2] * 1000:.1f} ms, "
                        f"p90 {lags[int(len(lags) * 0.9)] * 1000:.1f} ms, "
                        f"max {lags[-1] * 1000:.1f} ms",
                        file=sys.stderr,
                    )

        return _run(wrapper(), **kwargs)

    asyncio.run = _measured

if "poststamp" in PATCHES:
    import atexit
    import json as _json
    import time

    sys.modules.setdefault("httpx._main", None)  # as shotflow's CLI does: httpx's own CLI is not imported
    import httpx

    _stamps: list[tuple[float, float, list[tuple[str, str]]]] = []
    _client_post = httpx.AsyncClient.post

    async def _stamped_post(self, url, *args, json=None, **kwargs):
        start = time.monotonic()
        try:
            return await _client_post(self, url, *args, json=json, **kwargs)
        finally:
            tasks = [(t.get("taskType"), t.get("taskUUID")) for t in json or [] if isinstance(t, dict)]
            _stamps.append((start, time.monotonic(), tasks))

    httpx.AsyncClient.post = _stamped_post

    @atexit.register
    def _write_stamps() -> None:
        with open(os.environ["SHOTFLOW_BENCH_POSTS"], "w") as f:
            _json.dump(_stamps, f)


from shotflow.cli import main  # noqa: E402

sys.exit(main())
