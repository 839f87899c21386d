"""The Runware emulator, recording when each inference task arrived and finished.

    SHOTFLOW_BENCH_PROBE=out.json python bench/_emulator_probe.py --port 0 --latency 0.2 ...

Same arguments and behaviour as ``python -m shotflow.testing.emulator``; on exit it
writes ``[[arrived, done], ...]`` (time.monotonic seconds) to the file named by
``SHOTFLOW_BENCH_PROBE``, ``[[arrived, answered], ...]`` of every POST to the same
name + ``.posts``, and to name + ``.tasks`` each task's ``{taskUUID: [arrived, done]}``
with every poll that reported tasks done (``[[arrived, answered, [taskUUID, ...]], ...]``).
``makespan.py --probe`` uses it to tell time lost in the emulator (a task longer than L)
from time lost in shotflow (a slot left idle); ``--handoffs`` to split that idle time.
It wraps a private method of the emulator: a probe for profiling, not an API.
"""

import json
import os
import sys
import time

from shotflow.testing import emulator

_log: list[tuple[float, float]] = []
_posts: list[tuple[float, float]] = []
_tasks: dict[str, tuple[float, float]] = {}
_reports: list[tuple[float, float, list[str]]] = []
_run = emulator.Emulator._run
_post = emulator.Emulator._post
_answer = emulator.Emulator._answer


def _reporting_answer(self, tasks, arrived, *args, **kwargs):
    answer = _answer(self, tasks, arrived, *args, **kwargs)
    done = [item.get("taskUUID") for item in answer.data if item.get("status") == "success"]
    if done:
        _reports.append((arrived, time.monotonic(), done))
    return answer


def _timed_post(self, handler, *args, **kwargs):
    try:
        return _post(self, handler, *args, **kwargs)
    finally:
        _posts.append((handler.arrived, time.monotonic()))


def _timed_run(self, job, references, price, failure, arrived, *args, **kwargs):
    _run(self, job, references, price, failure, arrived, *args, **kwargs)
    _log.append((arrived, time.monotonic()))
    _tasks[job.task["taskUUID"]] = (arrived, _log[-1][1])


emulator.Emulator._run = _timed_run
emulator.Emulator._post = _timed_post
emulator.Emulator._answer = _reporting_answer

if __name__ == "__main__":
    code = emulator.main(sys.argv[1:])
    out = os.environ.get("SHOTFLOW_BENCH_PROBE")
    if out:
        with open(out, "w") as f:
            json.dump(sorted(_log), f)
        with open(out + ".posts", "w") as f:
            json.dump(sorted(_posts), f)
        with open(out + ".tasks", "w") as f:
            json.dump({"tasks": _tasks, "reports": sorted(_reports)}, f)
    sys.exit(code)
