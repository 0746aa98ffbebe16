"""What one /metrics scrape costs for 10, 50 and 200 containers.

Builds a fixture tree of hybrid-host cgroup files (v1 memory/cpu/cpuacct/pids/freezer plus the
unified directory with PSI) and a /proc tree with two processes per container, a driver that
reads those files the way the real hybrid driver does, and fake probes with ~40 syscalls per
container. It then times, on a private registry, collect() alone, collect() + generate_latest()
(prometheus_client's encoder) and collect() + render() + gzip level 1 (what the /metrics
endpoint does), in the default mode (every syscall), with `top:10`, with `none`, and with the
latency histogram enabled.

The anchor, measured in the same run, is the cost of the file reads alone (the driver's stats()
and pids() plus the /proc status reads for every container): the "x io" column is the whole
served scrape divided by that, so the figure means the same on a fast or a slow machine.
Times are the best of the runs: the machine is shared and the best run is the one least
disturbed; the medians are in the JSON.

    .venv/bin/python bench/scrape_cost.py [--repeat 15] [--sizes 10,50,200]

Prints a table and writes bench/results/scrape_cost.json.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections import namedtuple
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402

from agent.cgroups.driver import CgroupPaths, CgroupStats, Pressure  # noqa: E402
from agent.metrics.collector import ContainerCollector  # noqa: E402
from agent.metrics.model import MetricsOptions, WatchedContainer  # noqa: E402
from agent.metrics.server import render  # noqa: E402

NetCounters = namedtuple("NetCounters", "rx_bytes rx_packets tx_bytes tx_packets")
TcpCounters = namedtuple("TcpCounters", "connects retransmits")
ProcessCounters = namedtuple("ProcessCounters", "execs forks exits")
CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "freezer")
# The syscalls a small service makes, roughly.
COMMON_SYSCALLS = [0, 1, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 20, 21, 23, 28, 35, 39,
                   41, 42, 43, 44, 45, 46, 47, 49, 50, 56, 59, 60, 61, 62, 72, 202, 228, 231, 257]
MEMORY_STAT_KEYS = (
    "cache rss rss_huge shmem mapped_file dirty writeback pgpgin pgpgout pgfault pgmajfault "
    "inactive_anon active_anon inactive_file active_file unevictable hierarchical_memory_limit "
    "total_cache total_rss total_rss_huge total_shmem total_mapped_file total_dirty "
    "total_writeback total_pgpgin total_pgpgout total_pgfault total_pgmajfault "
    "total_inactive_anon total_active_anon total_inactive_file total_active_file "
    "total_unevictable").split()


def build_tree(root: Path, count: int, rng: random.Random) -> list[WatchedContainer]:
    """cgroup and /proc fixture files for `count` containers, as a hybrid host lays them out."""
    containers = []
    for index in range(count):
        cid = f"{index:04d}" + "c0ffee" * 10
        unified = root / "cgroup" / "unified" / "corral" / cid
        controllers = {c: str(root / "cgroup" / c / "corral" / cid) for c in CONTROLLERS}
        pids = [10_000 + index * 2, 10_001 + index * 2]
        files = {
            unified / "cpu.stat": "usage_usec 1234567\nuser_usec 1000000\nsystem_usec 234567\n",
            unified / "cgroup.events": "populated 1\nfrozen 0\n",
            unified / "cgroup.freeze": "0\n",
            unified / "cgroup.procs": "".join(f"{p}\n" for p in pids),
            Path(controllers["memory"]) / "memory.stat":
                "".join(f"{k} {rng.randrange(1 << 30)}\n" for k in MEMORY_STAT_KEYS),
            Path(controllers["memory"]) / "memory.usage_in_bytes": f"{rng.randrange(1 << 28)}\n",
            Path(controllers["memory"]) / "memory.max_usage_in_bytes": f"{rng.randrange(1 << 29)}\n",
            Path(controllers["memory"]) / "memory.limit_in_bytes": "268435456\n",
            Path(controllers["memory"]) / "memory.failcnt": "0\n",
            Path(controllers["memory"]) / "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
            Path(controllers["cpu"]) / "cpu.stat": "nr_periods 1200\nnr_throttled 35\nthrottled_time 912345678\n",
            Path(controllers["cpu"]) / "cpu.cfs_quota_us": "50000\n",
            Path(controllers["cpu"]) / "cpu.cfs_period_us": "100000\n",
            Path(controllers["cpuacct"]) / "cpuacct.usage": f"{rng.randrange(1 << 40)}\n",
            Path(controllers["cpuacct"]) / "cpuacct.stat": "user 1234\nsystem 567\n",
            Path(controllers["pids"]) / "pids.current": "2\n",
            Path(controllers["pids"]) / "pids.max": "max\n",
            Path(controllers["freezer"]) / "freezer.state": "THAWED\n",
        }
        for resource in ("cpu", "memory", "io"):
            files[unified / f"{resource}.pressure"] = (
                "some avg10=0.00 avg60=0.00 avg300=0.00 total=123456\n"
                "full avg10=0.00 avg60=0.00 avg300=0.00 total=23456\n")
        for name in CONTROLLERS:
            files[Path(controllers[name]) / "cgroup.procs"] = "".join(f"{p}\n" for p in pids)
        for pid in pids:
            files[root / "proc" / str(pid) / "status"] = (
                f"Name:\tapp\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t{pid}\nNgid:\t0\n"
                f"Pid:\t{pid}\nPPid:\t1\nTracerPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n"
                "FDSize:\t64\nGroups:\t\nVmPeak:\t 12345 kB\nVmSize:\t 12345 kB\nVmRSS:\t 4567 kB\n"
                "Threads:\t4\nSigQ:\t0/7823\nSigPnd:\t0000000000000000\nCapEff:\t00000000a80425fb\n"
                "voluntary_ctxt_switches:\t150\nnonvoluntary_ctxt_switches:\t3\n")
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        containers.append(WatchedContainer(
            id=cid, name=f"svc-{index}", image="registry.example/app:1.2",
            cgroup=CgroupPaths(unified=str(unified), controllers=controllers),
            cgroup_id=100_000 + index, started_at=1.7e9, cgroup_path=f"/corral/{cid}",
            labels={"com.example.team": f"team-{index % 5}"}))
    return containers


class FixtureDriver:
    """stats() and pids() over the fixture tree: the real hybrid reader when it is importable
    (agent.cgroups.hybrid), else a reader of the same files written here."""

    def __init__(self) -> None:
        try:
            from agent.cgroups.hybrid import read_hybrid_stats
            self.reader = "agent.cgroups.hybrid.read_hybrid_stats"
            self._stats = lambda paths: read_hybrid_stats(paths, 100)
        except ImportError:
            self.reader = "bench reader"
            self._stats = _read_stats

    def stats(self, paths: CgroupPaths) -> CgroupStats:
        return self._stats(paths)

    def pids(self, paths: CgroupPaths) -> list[int]:
        found: set[int] = set()
        for directory in {*paths.controllers.values()}:
            with open(os.path.join(directory, "cgroup.procs")) as handle:
                found.update(int(line) for line in handle if line.strip())
        return sorted(found)


def _keyed(path: str) -> dict[str, int]:
    with open(path) as handle:
        return {k: int(v) for k, v in (line.split() for line in handle if line.strip())}


def _int(path: str) -> int:
    with open(path) as handle:
        return int(handle.read())


def _read_stats(paths: CgroupPaths) -> CgroupStats:
    c = paths.controllers
    memory = _keyed(f"{c['memory']}/memory.stat")
    cpu = _keyed(f"{c['cpu']}/cpu.stat")
    acct = _keyed(f"{c['cpuacct']}/cpuacct.stat")
    usage = _int(f"{c['memory']}/memory.usage_in_bytes")
    pressure = {}
    for resource in ("cpu", "memory", "io"):
        with open(f"{paths.unified}/{resource}.pressure") as handle:
            totals = [int(line.rsplit("total=", 1)[1]) / 1e6 for line in handle]
        pressure[resource] = Pressure(totals[0], totals[1])
    return CgroupStats(
        cpu_usage_seconds=_int(f"{c['cpuacct']}/cpuacct.usage") / 1e9,
        cpu_user_seconds=acct["user"] / 100, cpu_system_seconds=acct["system"] / 100,
        cpu_periods=cpu["nr_periods"], cpu_throttled_periods=cpu["nr_throttled"],
        cpu_throttled_seconds=cpu["throttled_time"] / 1e9,
        cpu_quota_us=_int(f"{c['cpu']}/cpu.cfs_quota_us"), cpu_period_us=_int(f"{c['cpu']}/cpu.cfs_period_us"),
        memory_usage_bytes=usage, memory_max_usage_bytes=_int(f"{c['memory']}/memory.max_usage_in_bytes"),
        memory_working_set_bytes=max(0, usage - memory["total_inactive_file"]),
        memory_rss_bytes=memory["total_rss"], memory_cache_bytes=memory["total_cache"],
        memory_failcnt=_int(f"{c['memory']}/memory.failcnt"),
        memory_limit_bytes=_int(f"{c['memory']}/memory.limit_in_bytes"),
        oom_kills=_keyed(f"{c['memory']}/memory.oom_control")["oom_kill"],
        pids_limit=None, pressure=pressure)


class FakeProbes:
    """The ProbeSet interface over prebuilt dicts (the map reads themselves are not timed here)."""

    def __init__(self, containers: list[WatchedContainer], rng: random.Random, latency: bool) -> None:
        ids = [c.cgroup_id for c in containers]
        self._counts = {i: {nr: (rng.randrange(1, 10**6), rng.randrange(0, 100)) for nr in COMMON_SYSCALLS}
                        for i in ids}
        self._latency = ({i: {nr: [rng.randrange(0, 1000) if 8 <= b < 20 else 0 for b in range(32)]
                              for nr in COMMON_SYSCALLS} for i in ids} if latency else {})
        self._network = {i: NetCounters(*(rng.randrange(10**9) for _ in range(4))) for i in ids}
        self._tcp = {i: TcpCounters(rng.randrange(1000), rng.randrange(10)) for i in ids}
        self._processes = {i: ProcessCounters(5, 6, 4) for i in ids}

    def syscall_counts(self): return self._counts
    def syscall_latency(self): return self._latency
    def network(self): return self._network
    def tcp(self): return self._tcp
    def processes(self): return self._processes
    def oom_kills(self): return {}
    def status(self): return {"syscalls": True, "network": True, "tcp": True, "processes": True, "oom": True}
    def errors(self): return {"syscalls": 0, "network": 0, "tcp": 0, "processes": 0, "oom": 0}


def io_anchor(driver: FixtureDriver, containers: list[WatchedContainer], proc: str) -> float:
    """Seconds to do only the file reads a scrape needs."""
    start = time.perf_counter()
    for c in containers:
        driver.stats(c.cgroup)
        for pid in driver.pids(c.cgroup):
            with open(f"{proc}/{pid}/status", "rb") as handle:
                handle.read()
    return time.perf_counter() - start


def _best(times: list[float]) -> float:
    return min(times) * 1e3


def measure(containers, driver, proc, options, latency, repeat, rng) -> dict:
    probes = FakeProbes(containers, rng, latency)
    collector = ContainerCollector(lambda: containers, driver, probes, options,
                                   syscall_name=lambda nr: f"sys{nr}", proc_root=proc)
    registry = CollectorRegistry()
    registry.register(collector)
    times: dict[str, list[float]] = {"io": [], "collect": [], "generate_latest": [], "served": []}
    body = b""
    samples = 0
    for _ in range(repeat):
        times["io"].append(io_anchor(driver, containers, proc))
        start = time.perf_counter()
        families = list(collector.collect())
        times["collect"].append(time.perf_counter() - start)
        start = time.perf_counter()
        body = generate_latest(registry)          # collects again, then formats
        times["generate_latest"].append(time.perf_counter() - start)
        start = time.perf_counter()
        served = gzip.compress(render(registry), compresslevel=1)   # what /metrics does
        times["served"].append(time.perf_counter() - start)
        samples = sum(len(f.samples) for f in families)
    best = {key: _best(value) for key, value in times.items()}
    return {"containers": len(containers), "syscall_metrics": options.syscall_metrics,
            "latency_histogram": latency, "samples": samples, "bytes": len(body),
            "gzip_bytes": len(served),
            "io_anchor_ms": round(best["io"], 2), "collect_ms": round(best["collect"], 2),
            "generate_latest_ms": round(best["generate_latest"], 2),
            "served_ms": round(best["served"], 2),
            "served_per_io": round(best["served"] / best["io"], 2) if best["io"] else None,
            "median_ms": {key: round(statistics.median(value) * 1e3, 2) for key, value in times.items()}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--sizes", default="10,50,200")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "scrape_cost.json"))
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    rng = random.Random(42)
    driver = FixtureDriver()
    rows = []
    with tempfile.TemporaryDirectory(prefix="corral-scrape-bench-") as tmp:
        everything = build_tree(Path(tmp), max(sizes), rng)
        proc = str(Path(tmp) / "proc")
        modes = [("all", False), ("top:10", False), ("none", False), ("all", True)]
        for size in sizes:
            for mode, latency in modes:
                if latency and size > 50:
                    continue  # the histogram is opt-in; 200 containers x 40 syscalls x 34 buckets is not a default
                rows.append(measure(everything[:size], driver, proc, MetricsOptions(syscall_metrics=mode),
                                    latency, args.repeat, rng))
    print(f"stats reader: {driver.reader}; best of {args.repeat} runs (medians in the JSON)")
    print("io: the file reads alone (anchor); collect: collect(); generate_latest: collect + "
          "prometheus_client's text encoder; served: collect + render() + gzip -1, what /metrics costs")
    print(f"{'containers':>10} {'syscalls':>8} {'latency':>7} {'samples':>8} {'KiB':>6} {'gz KiB':>6} "
          f"{'io ms':>7} {'collect':>8} {'gen_latest':>10} {'served':>7} {'x io':>5}")
    for r in rows:
        print(f"{r['containers']:>10} {r['syscall_metrics']:>8} {'on' if r['latency_histogram'] else 'off':>7} "
              f"{r['samples']:>8} {r['bytes'] / 1024:>6.0f} {r['gzip_bytes'] / 1024:>6.0f} "
              f"{r['io_anchor_ms']:>7.2f} {r['collect_ms']:>8.2f} {r['generate_latest_ms']:>10.2f} "
              f"{r['served_ms']:>7.2f} {r['served_per_io']:>5.1f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"python": platform.python_version(), "machine": platform.machine(),
                               "cpus": os.cpu_count(), "stats_reader": driver.reader,
                               "repeat": args.repeat, "statistic": "best of repeat, ms", "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
