"""Footprint: a real daemon's RSS with and without probes, at 0 and 20 `sleep` containers, split
by mapping (libLLVM, libclang, libbcc, the heap, anonymous mmaps, Python), and its time from exec
to an answering API with the probes' share from its own log line: cold (a new root, the probes
compiled in a child) and warm (restarted on that root, the probes loaded from its cache,
agent/probes/cache.py). RSS is the warm daemon's.

Each daemon runs from its own root with `--no-network --docker-socket ""` (containers use
`--net none`), so the figures are the core daemon's. The anchor is the probes-only process of
bench/daemon_cost.py, measured in the same run.
"""
from __future__ import annotations

import collections
import datetime
import re
import statistics
import sys
import time
from pathlib import Path

from bench.common import BenchDaemon, Row
from bench.daemon_cost import MIB, probes_only_rss

SLEEPER = {"image": "busybox:latest", "command": ["sleep", "3600"], "network": "none"}
CONTAINERS = 20
_PROBES = re.compile(r"probes (compiled|loaded from the cache) and attached in ([0-9.]+)s")
_READY = re.compile(r"^(\S+ \S+) INFO corral.daemon: corral \S+ ready on", re.MULTILINE)
WARM_RESTARTS = 3


def _group(name: str) -> str:
    """Which part of the process a mapping (its path or [name]) belongs to."""
    for key, group in (("LLVM", "libLLVM"), ("clang", "libclang"), ("libbcc", "libbcc"), ("python", "python")):
        if key in name:
            return group
    return "other files" if name.startswith("/") else name or "[anon]"


def breakdown(pid: int) -> dict[str, float]:
    """Resident MiB per mapping group, from /proc/PID/smaps (status gives the anon/file split)."""
    resident: collections.Counter[str] = collections.Counter()
    group = "[anon]"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if fields and "-" in fields[0] and not fields[0].endswith(":"):
            group = _group(fields[5] if len(fields) > 5 else "")
        elif fields and fields[0] == "Rss:":
            resident[group] += int(fields[1])
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "RssAnon:", "RssFile:")):
            resident[line.split(":")[0]] = int(line.split()[1])
    return {name: round(kib / 1024, 1) for name, kib in resident.most_common()}


def _probe_seconds(log: str) -> list[tuple[str, float]]:
    """(compiled | loaded from the cache, seconds) of each start in a daemon log."""
    return [(match.group(1), float(match.group(2))) for match in _PROBES.finditer(log)]


def measure(*extra: str) -> dict:
    start = time.monotonic()
    with BenchDaemon("--docker-socket", "", "--no-network", *extra, name="footprint") as daemon:
        result: dict = {"ready_seconds": time.monotonic() - start, "warm_ready_seconds": []}
        result["warm_logged_seconds"] = []
        for _ in range(WARM_RESTARTS):      # the same root: the probes come from its cache
            daemon.stop()
            start, wall = time.monotonic(), time.time()
            daemon.start()
            result["warm_ready_seconds"].append(time.monotonic() - start)
            # The daemon's own "ready" line: without the 0.1 s granularity of the start poll.
            logged = _READY.findall(daemon.log.read_text())[-1]
            result["warm_logged_seconds"].append(
                datetime.datetime.strptime(logged, "%Y-%m-%d %H:%M:%S,%f").timestamp() - wall)
        time.sleep(4)       # the first policy pass and metrics collection settle
        result["0"] = breakdown(daemon.pid)
        for index in range(CONTAINERS):
            daemon.run({**SLEEPER, "name": f"bench-footprint-{index}"})
        time.sleep(4)
        for _ in range(5):
            daemon.metrics()
        result[str(CONTAINERS)] = breakdown(daemon.pid)
        result["probe_seconds"] = _probe_seconds(daemon.log.read_text())
    return result


def run() -> dict:
    anchor = probes_only_rss()
    measured = {"probes": measure(), "no probes": measure("--no-probes")}
    rows = []
    for mode, figures in measured.items():
        for count in ("0", str(CONTAINERS)):
            parts = figures[count]
            rss = parts["VmRSS"]
            rows.append(Row("footprint", f"RSS, {mode}, {count} containers", "MiB", rss, anchor="probes-only process",
                            ratio=rss * MIB / anchor, target="<= 140 MiB", met=rss <= 140,
                            note=", ".join(f"{name} {mib:g}" for name, mib in parts.items()
                                           if name != "VmRSS" and mib >= 1)).to_dict())
        probes = figures["probe_seconds"] or [("no probes", 0.0)] * (1 + WARM_RESTARTS)
        warm = statistics.median(figures["warm_ready_seconds"])
        logged = statistics.median(figures["warm_logged_seconds"])
        for start, seconds, (how, share) in (("cold", figures["ready_seconds"], probes[0]),
                                             ("warm, median", warm, probes[-1])):
            rows.append(Row("footprint", f"exec to API ready, {mode}, {start}", "s", seconds, target="<= 0.5 s",
                            met=seconds <= 0.5, note=f"probes {how} {share:.2f} s").to_dict())
        rows.append(Row("footprint", f"exec to 'ready' logged, {mode}, warm, median", "s", logged,
                        target="<= 0.5 s", met=logged <= 0.5, note="the daemon log's timestamp").to_dict())
    return {"daemons": measured, "probes_only_rss_bytes": anchor, "rows": rows}


if __name__ == "__main__":
    from bench.__main__ import main
    sys.exit(main(["footprint", *sys.argv[1:]]))
