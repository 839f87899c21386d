"""The live board's edit loop: from a prompt saved to the board's update event.

    python bench/live.py [--quick] [--sizes 1000] [--runs 5]

For each N, on a storyboard from ``generate.py`` (depth 8), rendered once and kept in
``bench/_work/live-sbN-d8/``::

    shotflow watch storyboard.yaml --port 0 --no-open        (a process, as a user runs it)
    a client reads its server-sent events (GET /events), as an open board does
    edited frame      the file's write → the event that carries the edited shot's new panel
                      (pushed as soon as its frame is rendered, while its downstream renders)
    round's update    the file's write → the round's "update" event (the shot and its
                      downstream re-rendered, their panels redrawn)
    edit reverted     the prompt put back → the update event (nothing renders: all cached)

The time runs from just before the write to the arrival of the event in the client: the
watcher's notice, the round (load, plan, render, redraw) and the event's trip, what a
person waits for. The server's own figure for the round (``elapsed`` of the update) is in
the notes. The edit is the one ``commands.py`` times for ``render`` (``edited``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import WORK, Result, check, child_env, median, run, shotflow_cmd, table  # noqa: E402
from commands import DEPTH, edited  # noqa: E402
from generate import generate  # noqa: E402

SIZES = (1000,)
QUICK_SIZES = (20,)
TARGET = (0.5, "well under 1 s (≤ 0.5)")
TIMEOUT = 120.0


def board_dir(n: int) -> Path:
    return WORK / f"live-sb{n}-d{DEPTH}"


def prepare(n: int, fresh: bool = False) -> Path:
    """The storyboard, rendered once (kept for later runs)."""
    folder = board_dir(n)
    story = folder / "storyboard.yaml"
    if fresh and folder.exists():
        shutil.rmtree(folder)
    if not (folder / "storyboard.lock").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        generate(n, depth=DEPTH, out=folder)
        check(run([*shotflow_cmd(), "render", str(story)], cwd=folder, keep_output=False), f"cold render at N={n}")
    return story


class Board:
    """``shotflow watch`` as a process, and a client of its event stream (a board in a browser)."""

    def __init__(self, story: Path):
        self.events: queue.Queue = queue.Queue()
        self.proc = subprocess.Popen(
            [*shotflow_cmd(), "watch", str(story), "--port", "0", "--no-open"],
            cwd=story.parent,
            env=child_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()
        if not line.startswith("serving "):
            self.proc.kill()
            raise RuntimeError(f"shotflow watch did not start: {line}{self.proc.stderr.read()[-2000:]}")
        self.url = line.split()[1]
        self.cpu_at_events: dict[float, float] = {}
        threading.Thread(target=self._drain, daemon=True).start()
        threading.Thread(target=self._listen, daemon=True).start()

    def cpu(self) -> float:
        """CPU seconds the server process has used so far (Linux /proc), NaN elsewhere."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return float("nan")

    def _drain(self) -> None:
        for _ in self.proc.stdout:  # round lines: read so the pipe never fills
            pass

    def _listen(self) -> None:
        import httpx

        try:
            with httpx.stream("GET", self.url + "events", timeout=None) as response:
                event = None
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: ") and event:
                        arrived = time.perf_counter()
                        self.cpu_at_events[arrived] = self.cpu()
                        self.events.put((arrived, event, json.loads(line[6:])))
                        event = None
        except httpx.HTTPError:
            pass  # the server stopped

    def hello(self, timeout: float = TIMEOUT) -> int:
        """The board's version when the client connected."""
        while True:
            _, event, data = self.events.get(timeout=timeout)
            if event == "hello":
                return data["version"]

    def next_update(self, *, since: int, panel: str = "", timeout: float = TIMEOUT) -> tuple[float, dict, float]:
        """The next "update" event of a round after ``since``: (its arrival time, its data, and
        when ``panel`` first arrived: in a "panels" event while the round rendered, or in it)."""
        deadline = time.monotonic() + timeout
        first = None
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"no update from shotflow watch within {timeout:g} s")
            arrived, event, data = self.events.get(timeout=left)
            if event == "panels" and panel in data["panels"] and first is None:
                first = arrived
            if event == "update" and data["version"] > since:
                if data["errors"]:
                    raise RuntimeError("the board reported errors: " + "; ".join(data["errors"]))
                if first is None and (panel in data["panels"] or data.get("sections")):
                    first = arrived
                return arrived, data, first if first is not None else float("nan")

    def close(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def bench_one(n: int, runs: int, quick: bool) -> list[Result]:
    story = prepare(n)
    target = json.loads((story.parent / "bench-meta.json").read_text()).get("edit_target", "")
    board = Board(story)
    edits, reverts, rounds = [], [], []
    try:
        version = board.hello()
        if version < 2:  # round 1 read the board; round 2 renders what changed since the last render
            version = board.next_update(since=1)[1]["version"]
        complete, cpus = [], []
        for i in range(runs + (0 if quick else 1)):  # one untimed warm-up round
            with edited(story, 1000 + i):
                cpu0 = board.cpu()
                wrote = time.perf_counter()
                arrived, update, first = board.next_update(since=version, panel=target)
                version = update["version"]
                if math.isnan(first):  # the edited shot's panel never came
                    raise RuntimeError(f"the update after editing {target} did not redraw its panel")
                edit_time, edit_round = first - wrote, update["elapsed"]
                edit_cpu = board.cpu_at_events.get(first, float("nan")) - cpu0
                done_time = arrived - wrote
                time.sleep(0.2)
                reverted = time.perf_counter()
            arrived, update, _ = board.next_update(since=version)
            version = update["version"]
            if i or quick:
                edits.append(edit_time)
                cpus.append(edit_cpu)
                complete.append(done_time)
                rounds.append(edit_round)
                reverts.append(arrived - reverted)
            time.sleep(0.2)
    finally:
        board.close()
    command = f"python bench/live.py --sizes {n}"
    note = (
        f"the server's CPU from the write to that event: median {median(cpus) * 1000:.0f} ms; the edited "
        f"shot's frame is pushed as soon as it is rendered, its downstream follows in the round's update; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    results = []
    for case, values in (
        (f"watch: write → edited frame on the board, N={n}", edits),
        (f"watch: write → round's update (shot + downstream), N={n}", complete),
        (f"watch: write → board update, edit reverted, N={n}", reverts),
    ):
        value = median(values)
        judged = "edited frame" in case and n == 1000 and not quick
        extra = f"the server's round: median {median(rounds) * 1000:.0f} ms" if "round's" in case else ""
        results.append(
            Result(
                "live",
                case,
                value,
                "s",
                values,
                target=TARGET[1] if judged else "",
                ok=(value <= TARGET[0]) if judged else None,
                command=command,
                note=note if "edited frame" in case else extra,
            )
        )
    return results


def bench(quick: bool = False, sizes: tuple[int, ...] | None = None, runs: int | None = None) -> list[Result]:
    results = []
    for n in sizes or (QUICK_SIZES if quick else SIZES):
        results.extend(bench_one(n, runs or (1 if quick else 5), quick))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/live.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sizes", default="", help="comma-separated N (default 1000)")
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--fresh", action="store_true", help="generate and render the storyboard again")
    args = parser.parse_args(argv)
    sizes = tuple(int(s) for s in args.sizes.split(",") if s) or None
    if args.fresh:
        for n in sizes or SIZES:
            prepare(n, fresh=True)
    print(table(bench(args.quick, sizes, args.runs)))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
