"""Scrape and footprint: /metrics cost at 10, 50, 200 containers, and a real daemon's RSS,
idle CPU and served scrape with 0 and with 20 running containers.

The scrape cost itself is bench/scrape_cost.py (its `run`), timed against the file reads
alone. The real daemon runs as `make run` does (probes, metrics, bridge networking, the repo's
policies/ folder), from its own root; after it settles, its idle CPU is the growth of
utime+stime in /proc/PID/stat over ~10 s windows (% of one core), its RSS is VmRSS, and its
/metrics endpoint is scraped with gzip as Prometheus does. The RSS anchor is a fresh Python
process that only loads and attaches the same probes the way the daemon does (compiled by BCC in
a child, then loaded through bpf(): ~21 MiB since the daemon stopped loading libbcc, against
~137 MiB while it carried LLVM and clang), so the ratio says how much the daemon carries beyond
its probes; ratios from before that change are not comparable.
"""
from __future__ import annotations

import subprocess
import sys
import time

from bench.common import REPO, BenchDaemon, Row, cpu_seconds, rss_bytes, summary

MIB = 1 << 20
SLEEPER = {"image": "busybox:latest", "command": ["sleep", "3600"]}
# RSS of a process that loads the probes and nothing else (the anchor of the daemon's RSS).
_PROBES_ONLY = f"""
import sys; sys.path.insert(0, {str(REPO)!r})
from agent.probes.loader import ProbeOptions, ProbeSet, ensure_mounts
ensure_mounts()
probes = ProbeSet({str(REPO / "probes")!r}, ProbeOptions())
probes.load()
for line in open("/proc/self/status"):
    if line.startswith("VmRSS:"):
        print(int(line.split()[1]) * 1024)
probes.close()
"""


def probes_only_rss() -> int:
    out = subprocess.run([sys.executable, "-c", _PROBES_ONLY], check=True, capture_output=True, text=True).stdout
    return int(out.split()[-1])


def idle_cpu_percent(pid: int, seconds: float) -> float:
    """% of one core the process used over `seconds` of wall time."""
    before, start = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / (time.monotonic() - start) * 100


def footprint(daemon: BenchDaemon, windows: int, window: float, scrapes: int) -> dict:
    cpu = [idle_cpu_percent(daemon.pid, window) for _ in range(windows)]
    rss = rss_bytes(daemon.pid)
    times, sizes = [], []
    for _ in range(scrapes):
        seconds, size, _text = daemon.metrics()
        times.append(seconds)
        sizes.append(size)
    return {"idle_cpu_percent": cpu, "rss_bytes": rss, "scrape_seconds": times, "scrape_gzip_bytes": sizes[-1],
            "rss_after_scrapes": rss_bytes(daemon.pid)}


def real_daemon(containers: int, windows: int, window: float, scrapes: int) -> dict:
    result = {}
    with BenchDaemon("--policies", str(REPO / "policies"), name="footprint") as daemon:
        time.sleep(5)   # let start-up work (probe compile, first policy pass) finish
        result["0"] = footprint(daemon, windows, window, scrapes)
        for index in range(containers):
            daemon.run({**SLEEPER, "name": f"bench-idle-{index}"})
        time.sleep(5)
        result[str(containers)] = footprint(daemon, windows, window, scrapes)
        running = len(daemon.client().list_containers())
        if running != containers:
            raise RuntimeError(f"{running} of {containers} sleeping containers are running")
    return result


def run(quick: bool = False) -> dict:
    from bench import scrape_cost
    scrape = scrape_cost.run(repeat=5 if quick else 15)
    rows = list(scrape["rows"])
    containers = 20
    anchor_rss = probes_only_rss()
    measured = real_daemon(containers, windows=1 if quick else 3, window=10.0, scrapes=5 if quick else 15)
    for count, figures in measured.items():
        cpu = summary(figures["idle_cpu_percent"])
        rows.append(Row("daemon", f"idle CPU, {count} containers", "%core", cpu["median"], cpu["min"], cpu["max"],
                        target="<= 0.5 %", met=cpu["median"] <= 0.5,
                        note="spread is min-max of the ~10 s windows").to_dict())
        rss = figures["rss_after_scrapes"] / MIB
        rows.append(Row("daemon", f"RSS, {count} containers", "MiB", rss, anchor="probes-only process",
                        ratio=figures["rss_after_scrapes"] / anchor_rss, target="<= 140 MiB", met=rss <= 140,
                        note=f"probes-only process {anchor_rss / MIB:.0f} MiB").to_dict())
        s = summary([t * 1e3 for t in figures["scrape_seconds"]])
        rows.append(Row("daemon", f"real /metrics over HTTP, {count} containers", "ms", s["median"], s["p25"], s["p75"],
                        note=f"{figures['scrape_gzip_bytes'] // 1024} KiB gzip").to_dict())
    return {"scrape": {k: v for k, v in scrape.items() if k != "rows"}, "daemon": measured,
            "probes_only_rss_bytes": anchor_rss, "rows": rows}


if __name__ == "__main__":
    from bench.__main__ import main
    sys.exit(main(["scrape", *sys.argv[1:]]))
