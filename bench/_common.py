"""What every benchmark shares: running shotflow as a user would, timing it, and the result rows.

    Result(bench, case, value, unit, runs, rss_mb, target, ok, command)
      │        │      └─ the median of ``runs``
      │        └─ e.g. "N=1000" or "1080p, 3 refs"
      └─ e.g. "noop", "validate", "preview"

A process is timed from spawn to exit (wall clock), so the figures are what a user
waits for, not what an in-process timer would flatter. Its peak RSS comes from GNU
``/usr/bin/time -f %M`` wrapped around it: ``ru_maxrss`` of a child read directly with
``os.wait4`` also counts what the *parent* held when it forked (Linux keeps the
high-water mark across fork and exec), so a benchmark process that grew would inflate
every figure after it. Without GNU time, wait4 is used and the table says so.
"""

from __future__ import annotations

import functools
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / "_work"  # generated storyboards and their renders (git-ignored)
PY = sys.executable


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a measured process: a user's, with a warm bytecode cache.

    Bytecode goes to ``bench/_work/pycache`` (PYTHONPYCACHEPREFIX) so nothing is
    written into the package, and PYTHONDONTWRITEBYTECODE (set in some sandboxes and
    CI images) is dropped: without it every run would compile shotflow from source.
    SHOTFLOW_CACHE is dropped so each storyboard's cache sits beside it.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("SHOTFLOW_CACHE", "PYTHONDONTWRITEBYTECODE")}
    env["PYTHONPYCACHEPREFIX"] = str(WORK / "pycache")
    env.update(extra or {})
    return env


def shotflow_cmd() -> list[str]:
    """The installed console script beside this interpreter (what a user runs), else ``python -m shotflow``."""
    script = Path(PY).parent / "shotflow"
    return [str(script)] if script.is_file() else [PY, "-m", "shotflow"]


@dataclass
class Result:
    bench: str
    case: str
    value: float | None  # the median; None when the case could not run
    unit: str
    runs: list[float] = field(default_factory=list)
    rss_mb: float | None = None  # peak RSS of the process (largest over the runs)
    target: str = ""
    ok: bool | None = None  # None: no target, or not judged (quick mode)
    command: str = ""
    note: str = ""

    def to_json(self) -> dict:
        return asdict(self)


@functools.cache
def gnu_time() -> str | None:
    """GNU time, if this machine has it (``-f`` and ``-o``): the clean way to read a child's peak RSS."""
    path = shutil.which("time", path="/usr/bin:/bin:/usr/local/bin")
    if not path:
        return None
    try:
        probe = subprocess.run([path, "-f", "%M", "-o", os.devnull, "true"], capture_output=True, timeout=10)
        ok = probe.returncode == 0
    except (OSError, subprocess.SubprocessError):
        return None
    return path if ok else None


def measured(cmd: list[str], rss_file: str) -> list[str]:
    """``cmd`` wrapped so that its own peak RSS (KiB) ends up in ``rss_file``."""
    wrapper = gnu_time()
    return [wrapper, "-f", "%M", "-o", rss_file, *cmd] if wrapper else cmd


def read_rss(rss_file: str, fallback_kib: int) -> float:
    """MB from GNU time's file (its last line), else the wait4 figure."""
    try:
        lines = Path(rss_file).read_text().split()
        return int(lines[-1]) / 1024
    except (OSError, ValueError, IndexError):
        return fallback_kib / 1024


@dataclass
class Proc:
    wall: float  # seconds, spawn to exit
    rss_mb: float  # peak resident set of the child
    cpu: float  # user + system CPU seconds of the child (less sensitive than wall to a busy machine)
    code: int
    out: str
    err: str


def run(
    cmd: list[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    keep_output: bool = True,
    timeout: float = 1800,
) -> Proc:
    """Run one process to completion; wall clock, the child's own peak RSS (GNU time) and CPU."""
    full_env = child_env(env)
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile(suffix=".rss") as rss_file,
    ):
        start = time.perf_counter()
        proc = subprocess.Popen(
            measured(cmd, rss_file.name),
            cwd=cwd,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=out if keep_output else subprocess.DEVNULL,
            stderr=err,
        )
        killer = threading.Timer(timeout, proc.kill)
        killer.start()
        try:
            status, usage = reap(proc)
        finally:
            killer.cancel()
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        text_out = out.read().decode(errors="replace") if keep_output else ""
        text_err = err.read().decode(errors="replace")
        rss = read_rss(rss_file.name, usage.ru_maxrss)
    # wait4's rusage includes the children the wrapper waited for: the CPU is the command's
    return Proc(
        wall=wall, rss_mb=rss, cpu=usage.ru_utime + usage.ru_stime, code=proc.returncode, out=text_out, err=text_err
    )


def reap(proc: subprocess.Popen) -> tuple[int, object]:
    """Wait for ``proc``; (exit status, its rusage). Should something else have reaped it
    (``Popen.poll`` inside ``kill``), the status is Popen's and the rusage all zeros."""
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except ChildProcessError:
        proc.wait()
        return proc.returncode, _ZERO_USAGE
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage


class _ZeroUsage:
    ru_maxrss = 0
    ru_utime = 0.0
    ru_stime = 0.0


_ZERO_USAGE = _ZeroUsage()


def check(proc: Proc, what: str) -> Proc:
    if proc.code != 0:
        tail = (proc.err or proc.out).strip().splitlines()[-15:]
        raise RuntimeError(f"{what} exited {proc.code}:\n  " + "\n  ".join(tail))
    return proc


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def quote(cmd: list[str]) -> str:
    """A command as one would type it, relative to the repository when possible."""
    parts = []
    for part in cmd:
        if part == PY:
            part = "python"
        elif part.startswith(str(ROOT) + os.sep):
            part = os.path.relpath(part, ROOT)
        elif part == str(Path(PY).parent / "shotflow"):
            part = "shotflow"
        parts.append(part)
    return shlex.join(parts)


def machine() -> dict[str, str]:
    """CPU model, cores, RAM, Python and the date: the row under every table of figures."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                ram = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    try:
        git = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "shotflow"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        git += " + uncommitted changes in shotflow/" if dirty else ""
    except OSError:
        git = ""
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "ram": ram,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "rss": (
            "GNU time %M of each process" if gnu_time() else "os.wait4 ru_maxrss (includes the parent's RSS at fork)"
        ),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git,
    }


def fmt_value(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    if unit == "ms":
        return f"{value:.1f} ms"
    if unit == "us":
        return f"{value:.1f} µs"
    if unit == "x":
        return f"{value:.3f}×"
    if unit == "fps":
        return f"{value:.1f} fps"
    return f"{value:g} {unit}"


def table(results: list[Result]) -> str:
    """A plain-text table: one row per result."""
    rows = [("BENCH", "CASE", "MEDIAN", "RUNS", "PEAK RSS", "TARGET", "", "NOTE")]
    for r in results:
        runs = ", ".join(fmt_value(v, r.unit) for v in r.runs) if len(r.runs) > 1 else ""
        status = {True: "ok", False: "MISS", None: ""}[r.ok]
        rss = f"{r.rss_mb:.0f} MB" if r.rss_mb is not None else ""
        rows.append((r.bench, r.case, fmt_value(r.value, r.unit), runs, rss, r.target, status, r.note))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)
