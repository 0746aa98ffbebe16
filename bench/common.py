"""What every bench shares: statistics, interleaved timing, the result row, a real daemon.

The machine is a shared 2-vCPU VM, so absolute times move by tens of percent between runs: each
bench times its subject and its anchor in the same rounds, in a shuffled order, and reports the
median with the 25th-75th percentiles, and ratios against the anchor of the same run.
"""
from __future__ import annotations

import os
import platform
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
CORRAL = str(VENV_BIN / "corral")
CGROUP_ROOT = Path("/sys/fs/cgroup")
BENCH_PREFIX = "corral-bench-"


# --- statistics -------------------------------------------------------------------------------

def quantile(values: list[float], q: float) -> float:
    """Linear-interpolated quantile (q in 0..1) of a non-empty list."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(values: list[float]) -> dict:
    """Median, quartiles, extremes and count; the raw values stay in the JSON."""
    return {"median": statistics.median(values), "p25": quantile(values, 0.25),
            "p75": quantile(values, 0.75), "min": min(values), "max": max(values), "n": len(values)}


def paired_ratios(subject: list[float], anchor: list[float]) -> list[float]:
    """Per-round ratios: each round's subject over the same round's anchor, so a burst of load
    from the other engineers on this machine moves both sides of a ratio together."""
    return [s / a for s, a in zip(subject, anchor) if a > 0]


@dataclass
class Row:
    """One line of the results table."""

    bench: str
    figure: str
    unit: str
    median: float
    p25: float | None = None
    p75: float | None = None
    anchor: str | None = None          # what the ratio divides by
    ratio: float | None = None         # median of per-round ratios (or of medians)
    ratio_p25: float | None = None
    ratio_p75: float | None = None
    target: str | None = None          # e.g. "<= 1.0x crun"
    met: bool | None = None
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def row_from(bench: str, figure: str, unit: str, values: list[float], *, scale: float = 1.0,
             anchor_name: str | None = None, anchor_values: list[float] | None = None,
             target: str | None = None, limit: float | None = None, note: str = "") -> Row:
    """A row of `values` (scaled into `unit`) with, given an anchor, the paired ratio; `limit`
    is the target ratio (or, without an anchor, the target value in `unit`)."""
    s = summary([v * scale for v in values])
    row = Row(bench, figure, unit, s["median"], s["p25"], s["p75"], target=target, note=note)
    if anchor_values:
        ratios = paired_ratios(values, anchor_values)
        r = summary(ratios)
        row.anchor, row.ratio, row.ratio_p25, row.ratio_p75 = anchor_name, r["median"], r["p25"], r["p75"]
        if limit is not None:
            row.met = r["median"] <= limit
    elif limit is not None:
        row.met = s["median"] <= limit
    return row


# --- timing ----------------------------------------------------------------------------------

def interleave(subjects: dict[str, Callable[[], float]], rounds: int, *, warmup: int = 1,
               progress: str = "") -> dict[str, list[float]]:
    """Run every subject once per round in a fresh shuffled order; each returns seconds.
    Warm-up rounds (page cache, first compile of a path) are run and dropped."""
    samples: dict[str, list[float]] = {name: [] for name in subjects}
    for number in range(warmup + rounds):
        order = list(subjects)
        random.shuffle(order)
        measured = {name: subjects[name]() for name in order}
        if number >= warmup:
            for name, seconds in measured.items():
                samples[name].append(seconds)
        if progress:
            print(f"{progress}: round {number + 1}/{warmup + rounds}", file=sys.stderr)
    return samples


def timed_command(argv: list[str], *, env: dict | None = None, check: bool = True) -> float:
    """Wall seconds of one command, start to exit; its output is discarded but kept on error."""
    start = time.perf_counter()
    result = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {result.returncode}: "
                           f"{result.stderr.decode(errors='replace').strip()[-500:]}")
    return elapsed


def machine() -> dict:
    """What the figures were measured on, and how busy it was (other engineers share it)."""
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "kernel": platform.release(),
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "loadavg": [round(x, 2) for x in os.getloadavg()],
            "description": "2 vCPU Firecracker VM, kernel 6.18, Debian 12, hybrid cgroups"}


# --- /proc ----------------------------------------------------------------------------------

def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/{pid}/status has no VmRSS")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()   # the comm may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- cgroups the benches make themselves -----------------------------------------------------

def bench_cgroup_name() -> str:
    return f"{BENCH_PREFIX}{secrets.token_hex(4)}"


def remove_cgroup_tree(name: str) -> list[str]:
    """rmdir /sys/fs/cgroup/<every hierarchy>/<name> depth-first; only for the bench's own
    corral-bench-* parents. Returns what could not be removed (still populated)."""
    if not name.startswith(BENCH_PREFIX) or "/" in name:
        raise ValueError(f"refusing to remove cgroup {name!r}: not a bench parent")
    left = []
    for top in CGROUP_ROOT.glob(f"*/{name}"):
        for directory in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            try:
                directory.rmdir()
            except OSError:
                left.append(str(directory))
        try:
            top.rmdir()
        except OSError:
            left.append(str(top))
    return left


# --- a real daemon ---------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class BenchDaemon:
    """`corral daemon` as production runs it (probes, metrics, bridge networking), with its own
    --root under /var/tmp, its own socket and metrics port. A context manager: on the way out
    every container it has is removed, it is stopped and its root deleted, even on failure."""

    def __init__(self, *extra: str, name: str = "daemon", parent: str = "/var/tmp") -> None:
        # `parent`: where its --root goes; /var/tmp is on the root filesystem, as /var/lib/corral is.
        self.root = Path(tempfile.mkdtemp(prefix=f"{BENCH_PREFIX}{name}-", dir=parent))
        self.socket = self.root / "corral.sock"
        self.metrics_port = free_port()
        # CORRAL_BENCH_DAEMON_ARGS adds daemon flags to every bench's daemon, e.g. "--netns-pool 0"
        # to measure a bench before and after a feature in alternate runs.
        self.extra = [*extra, *os.environ.get("CORRAL_BENCH_DAEMON_ARGS", "").split()]
        self.log = self.root / "daemon.log"
        self.process: subprocess.Popen | None = None
        self.created: set[str] = set()    # every container id the bench made here

    @property
    def env(self) -> dict:
        return {**os.environ, "CORRAL_HOST": f"unix://{self.socket}"}

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def client(self):
        from agent.api.client import ApiClient
        return ApiClient(f"unix://{self.socket}")

    def __enter__(self) -> BenchDaemon:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def start(self, timeout: float = 90.0) -> None:
        args = [CORRAL, "daemon", "--config", "none", "--root", str(self.root), "--socket", str(self.socket),
                "--metrics-addr", f"127.0.0.1:{self.metrics_port}", *self.extra]
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        from agent.errors import CorralError
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            if self.socket.exists():
                try:
                    self.client().version()
                    return
                except CorralError:
                    pass
            time.sleep(0.1)
        raise RuntimeError(f"daemon did not come up in {timeout:.0f}s:\n{self.log.read_text()[-3000:]}")

    def run(self, spec: dict) -> str:
        """Create and start a container; its id is remembered for clean-up and leak counts."""
        container = self.client().create_container(spec, start=True)
        self.created.add(container["id"])
        return container["id"]

    def metrics(self) -> tuple[float, int, str]:
        """One /metrics scrape as Prometheus makes it (gzip): seconds, bytes on the wire, text."""
        import gzip
        request = urllib.request.Request(f"http://127.0.0.1:{self.metrics_port}/metrics",
                                         headers={"Accept-Encoding": "gzip"})
        start = time.perf_counter()
        with urllib.request.urlopen(request, timeout=30) as response:
            body = response.read()
            encoded = response.headers.get("Content-Encoding") == "gzip"
        elapsed = time.perf_counter() - start
        text = (gzip.decompress(body) if encoded else body).decode()
        return elapsed, len(body), text

    def remove_all(self) -> None:
        from agent.errors import CorralError
        if self.process is None or self.process.poll() is not None:
            return
        client = self.client()
        try:
            containers = client.list_containers(all=True)
        except CorralError:
            return
        for container in containers:
            try:
                client.remove_container(container["id"], force=True)
            except CorralError:
                pass

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def close(self) -> None:
        try:
            self.remove_all()
        finally:
            self.stop()
            _unmount_below(self.root)
            shutil.rmtree(self.root, ignore_errors=True)


def mounts_below(path: Path) -> list[str]:
    """Mount points whose path contains `path` (what a container may leave behind)."""
    with open("/proc/self/mountinfo") as handle:
        return [line.split()[4] for line in handle if str(path) in line.split()[4]]


def _unmount_below(path: Path) -> None:
    for target in sorted(mounts_below(path), key=len, reverse=True):
        subprocess.run(["umount", "-l", target], stderr=subprocess.DEVNULL)
