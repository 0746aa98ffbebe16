"""What one /metrics scrape costs for 10, 50 and 200 containers.

The containers' cgroups are either real (`--cgroups real`, the default when run as root on a
hybrid host: N cgroups made with the hybrid driver under a `corral-bench-<random>` parent, one
sleeping process with a few threads in each, all removed afterwards even on failure) or a
fixture tree (`--cgroups fixture`: the same layout in a temp dir, with file contents in the
formats this kernel writes, copied from a real corral cgroup). Either way the real
HybridDriver reads them, as the daemon would, and fake probes give ~40 syscalls per container.
It then times, on a private registry, collect() alone, collect() + generate_latest()
(prometheus_client's encoder) and collect() + render() + gzip level 1 (what the /metrics
endpoint does, with the label texts it keeps between scrapes), in the default mode (every
syscall), with `top:10`, with `none`, and with the latency histogram enabled.

The anchor, measured in the same run, is the cost of the file reads alone (the driver's stats()
and the process listing for every container, plus /proc status reads where the collector
still makes them): the "x io" column is the whole served scrape divided by that, so the figure
means the same on a fast or a slow machine. Times are the best of the runs: the machine is
shared and the best run is the one least disturbed; the medians are in the JSON.

    .venv/bin/python bench/scrape_cost.py [--repeat 15] [--sizes 10,50,200] [--cgroups real|fixture]

Prints a table and writes bench/results/scrape_cost.json.
"""
from __future__ import annotations

import argparse
import gzip
import inspect
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402

from agent.cgroups.driver import CgroupPaths, Limits  # noqa: E402
from agent.cgroups.hybrid import HybridDriver  # noqa: E402
from agent.metrics import server  # noqa: E402
from agent.metrics.collector import ContainerCollector  # noqa: E402
from agent.metrics.model import MetricsOptions, WatchedContainer  # noqa: E402
from agent.probes.double import ProbeDouble  # noqa: E402
from agent.probes.interface import NetCounters, ProcessCounters, TcpCounters  # noqa: E402

CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "freezer")
# The syscalls a small service makes, roughly.
COMMON_SYSCALLS = [0, 1, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 20, 21, 23, 28, 35, 39,
                   41, 42, 43, 44, 45, 46, 47, 49, 50, 56, 59, 60, 61, 62, 72, 202, 228, 231, 257]
# memory.stat as kernel 6.18 writes it for a v1 memory cgroup (keys in its order).
MEMORY_STAT_KEYS = (
    "cache rss rss_huge shmem mapped_file dirty writeback workingset_refault_anon "
    "workingset_refault_file swap swapcached pgpgin pgpgout pgfault pgmajfault inactive_anon "
    "active_anon inactive_file active_file unevictable hierarchical_memory_limit "
    "hierarchical_memsw_limit total_cache total_rss total_rss_huge total_shmem "
    "total_mapped_file total_dirty total_writeback total_workingset_refault_anon "
    "total_workingset_refault_file total_swap total_swapcached total_pgpgin total_pgpgout "
    "total_pgfault total_pgmajfault total_inactive_anon total_active_anon total_inactive_file "
    "total_active_file total_unevictable").split()
# What keeps moving in a busy container: read, write, poll, futex-ish (see busy()).
BUSY_SYSCALLS = (0, 1, 7, 202)
PROCESSES_PER_CONTAINER = 2
THREADS_PER_PROCESS = 4
# Two sleeping processes: what each real cgroup holds. The shell waits for a line on stdin so
# that it forks only once it is in the cgroup.
SLEEPER = ["sh", "-c", "read go; sleep 3600 & exec sleep 3600"]


def _psi(some: int, full: int) -> str:
    return (f"some avg10=0.00 avg60=0.00 avg300=0.00 total={some}\n"
            f"full avg10=0.00 avg60=0.00 avg300=0.00 total={full}\n")


def _watched(index: int, cid: str, paths: CgroupPaths, cgroup_id: int) -> WatchedContainer:
    return WatchedContainer(id=cid, name=f"svc-{index}", image="registry.example/app:1.2",
                            cgroup=paths, cgroup_id=cgroup_id, started_at=1.7e9,
                            cgroup_path=f"/corral/{cid}",
                            labels={"com.example.team": f"team-{index % 5}"})


def _container_id(index: int) -> str:
    return f"{index:04d}" + "c0ffee" * 10


def build_tree(root: Path, count: int, rng: random.Random) -> list[WatchedContainer]:
    """cgroup and /proc fixture files for `count` containers, as a hybrid host lays them out:
    <root>/cgroup/<controller>/corral/<id> and <root>/cgroup/unified/corral/<id>."""
    cgroup = root / "cgroup"
    for hierarchy in (*CONTROLLERS, "unified"):
        (cgroup / hierarchy).mkdir(parents=True)
        (cgroup / hierarchy / "cgroup.procs").write_text("1\n")
    containers = []
    for index in range(count):
        cid = _container_id(index)
        unified = cgroup / "unified" / "corral" / cid
        controllers = {c: str(cgroup / c / "corral" / cid) for c in CONTROLLERS}
        pids = [10_000 + index * PROCESSES_PER_CONTAINER + i for i in range(PROCESSES_PER_CONTAINER)]
        procs = "".join(f"{p}\n" for p in pids)
        memory = Path(controllers["memory"])
        cpu, acct = Path(controllers["cpu"]), Path(controllers["cpuacct"])
        usage = rng.randrange(1 << 28)
        files = {
            unified / "cpu.stat": "usage_usec 1234567\nuser_usec 1000000\nsystem_usec 234567\nnice_usec 0\n",
            unified / "cgroup.events": "populated 1\nfrozen 0\n",
            unified / "cgroup.freeze": "0\n",
            unified / "cgroup.procs": procs,
            unified / "cpu.pressure": _psi(rng.randrange(10**7), rng.randrange(10**7)),
            unified / "memory.pressure": _psi(0, 0),
            unified / "io.pressure": _psi(rng.randrange(10**5), rng.randrange(10**5)),
            memory / "memory.stat": "".join(
                f"{k} {9223372036854771712 if k == 'hierarchical_memsw_limit' else 268435456 if k == 'hierarchical_memory_limit' else rng.randrange(1 << 28)}\n"
                for k in MEMORY_STAT_KEYS),
            memory / "memory.usage_in_bytes": f"{usage}\n",
            memory / "memory.max_usage_in_bytes": f"{usage + rng.randrange(1 << 20)}\n",
            memory / "memory.limit_in_bytes": "268435456\n",
            memory / "memory.failcnt": "0\n",
            memory / "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
            cpu / "cpu.stat": "nr_periods 1200\nnr_throttled 35\nthrottled_time 912345678\nnr_bursts 0\nburst_time 0\n",
            cpu / "cpu.cfs_quota_us": "50000\n",
            cpu / "cpu.cfs_period_us": "100000\n",
            acct / "cpuacct.usage": f"{rng.randrange(1 << 40)}\n",
            acct / "cpuacct.stat": "user 1234\nsystem 567\n",
            Path(controllers["pids"]) / "pids.current": f"{PROCESSES_PER_CONTAINER * THREADS_PER_PROCESS}\n",
            Path(controllers["pids"]) / "pids.max": "max\n",
            Path(controllers["freezer"]) / "freezer.state": "THAWED\n",
        }
        for name in CONTROLLERS:
            files[Path(controllers[name]) / "cgroup.procs"] = procs
        for pid in pids:
            files[root / "proc" / str(pid) / "status"] = (
                f"Name:\tapp\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t{pid}\nNgid:\t0\n"
                f"Pid:\t{pid}\nPPid:\t1\nTracerPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n"
                "FDSize:\t64\nGroups:\t\nVmPeak:\t 12345 kB\nVmSize:\t 12345 kB\nVmRSS:\t 4567 kB\n"
                f"Threads:\t{THREADS_PER_PROCESS}\nSigQ:\t0/7823\nSigPnd:\t0000000000000000\n"
                "CapEff:\t00000000a80425fb\nvoluntary_ctxt_switches:\t150\nnonvoluntary_ctxt_switches:\t3\n")
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        paths = CgroupPaths(unified=str(unified), controllers=controllers)
        containers.append(_watched(index, cid, paths, 100_000 + index))
    return containers


def make_driver(root: str, parent: str, *, keep_files_open: bool | None) -> HybridDriver:
    """The hybrid driver; on a fixture tree it keeps files open as it would on cgroupfs (the
    bench never replaces a fixture file). Older drivers without that option are built without."""
    kwargs = {"user_hz": 100}
    if "keep_files_open" in inspect.signature(HybridDriver).parameters:
        kwargs["keep_files_open"] = keep_files_open
    return HybridDriver(root, parent, **kwargs)


@contextmanager
def real_cgroups(count: int):
    """`count` real hybrid cgroups under corral-bench-<random>, two sleeping processes in each;
    all removed on the way out, even on failure."""
    parent = f"corral-bench-{random.randrange(1 << 32):08x}"
    driver = make_driver("/sys/fs/cgroup", parent, keep_files_open=None)
    made: list[CgroupPaths] = []
    sleepers: list[subprocess.Popen] = []
    try:
        containers = []
        for index in range(count):
            cid = _container_id(index)
            paths = driver.create(cid, Limits(memory_bytes=256 << 20, cpu_quota_us=50_000))
            made.append(paths)
            sleeper = subprocess.Popen(SLEEPER, stdin=subprocess.PIPE, start_new_session=True)
            sleepers.append(sleeper)
            driver.add_process(paths, sleeper.pid)
            sleeper.stdin.write(b"go\n")
            sleeper.stdin.close()
            containers.append(_watched(index, cid, paths, driver.cgroup_id(paths)))
        time.sleep(0.2)   # let each shell start its second sleep inside the cgroup
        yield driver, containers
    finally:
        for sleeper in sleepers:
            try:
                os.killpg(sleeper.pid, signal.SIGKILL)   # the shell's background sleep too
            except ProcessLookupError:
                pass
            sleeper.wait()
        for paths in made:
            driver.remove(paths)
        driver.remove_parent()


def can_use_real_cgroups() -> bool:
    from agent.cgroups.detect import cgroup_mode
    return os.geteuid() == 0 and cgroup_mode() == "hybrid"


def fake_probes(containers: list[WatchedContainer], rng: random.Random, latency: bool) -> ProbeDouble:
    """The maintained probe double over prebuilt readings (the map reads themselves are not timed here)."""
    ids = [c.cgroup_id for c in containers]
    probes = ProbeDouble(max_containers=max(len(ids), 1), latency=latency)
    for i in ids:
        probes.watch(i, c_dir(i))
    probes.counts = {i: {nr: (rng.randrange(1, 10**6), rng.randrange(0, 100)) for nr in COMMON_SYSCALLS}
                     for i in ids}
    probes.latency = ({i: {nr: [rng.randrange(0, 1000) if 8 <= b < 20 else 0 for b in range(32)]
                           for nr in COMMON_SYSCALLS} for i in ids} if latency else {})
    probes.net = {i: NetCounters(*(rng.randrange(10**9) for _ in range(4))) for i in ids}
    probes.tcp_counts = {i: TcpCounters(rng.randrange(1000), rng.randrange(10)) for i in ids}
    probes.process_counts = {i: ProcessCounters(5, 6, 4) for i in ids}
    return probes


def busy(probes: ProbeDouble, rng: random.Random) -> None:
    """Move each container's counters as a busy service's move between two scrapes: a few of
    its syscalls (read, write, poll, futex-like ones) count up; the rest stay. The endpoint
    keeps unchanged lines' text, so a bench whose counters never moved would flatter it."""
    for cgroup_id, counts in probes.counts.items():
        moved = dict(counts)
        for nr in BUSY_SYSCALLS:
            calls, errors = moved[nr]
            moved[nr] = (calls + rng.randrange(1, 500), errors + (rng.random() < 0.1))
        probes.counts[cgroup_id] = moved


def c_dir(cgroup_id: int) -> str:
    return f"/sys/fs/cgroup/unified/bench/{cgroup_id}"


def io_anchor(driver, collector: ContainerCollector, containers: list[WatchedContainer],
              proc: str) -> float:
    """Seconds to do only the file reads a scrape makes: stats(), the process listing the
    collector uses and, where the collector still reads them, /proc/<pid>/status."""
    # Collectors before the one-file process listing also read /proc/<pid>/status.
    list_pids = getattr(collector, "_list_pids", None)
    reads_proc = list_pids is None
    list_pids = list_pids or driver.pids
    start = time.perf_counter()
    for c in containers:
        driver.stats(c.cgroup)
        for pid in list_pids(c.cgroup):
            if reads_proc:
                try:
                    with open(f"{proc}/{pid}/status", "rb") as handle:
                        handle.read()
                except FileNotFoundError:
                    pass
    return time.perf_counter() - start


def _best(times: list[float]) -> float:
    return min(times) * 1e3


def measure(containers, driver, proc, options, latency, repeat, rng) -> dict:
    probes = fake_probes(containers, rng, latency)
    collector = ContainerCollector(lambda: containers, driver, probes, options,
                                   syscall_name=lambda nr: f"sys{nr}", proc_root=proc)
    registry = CollectorRegistry()
    registry.register(collector)
    # What the endpoint keeps between scrapes (older servers have none).
    texts = server.LabelTexts() if hasattr(server, "LabelTexts") else None
    if hasattr(server, "scrape_body"):
        def serve() -> bytes:
            return server.scrape_body(registry, texts, True)
    else:   # servers before scrape_body gzipped with zlib's level 1
        def serve() -> bytes:
            body = server.render(registry, texts) if texts is not None else server.render(registry)
            return gzip.compress(body, compresslevel=1)
    times: dict[str, list[float]] = {"io": [], "collect": [], "generate_latest": [], "served": []}
    body = b""
    samples = 0
    for _ in range(repeat):
        times["io"].append(io_anchor(driver, collector, containers, proc))
        start = time.perf_counter()
        families = list(collector.collect())
        times["collect"].append(time.perf_counter() - start)
        start = time.perf_counter()
        body = generate_latest(registry)          # collects again, then formats
        times["generate_latest"].append(time.perf_counter() - start)
        busy(probes, rng)       # every container made a few syscalls since the last scrape
        start = time.perf_counter()
        served = serve()        # what /metrics does
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


def measure_sizes(sizes: list[int], repeat: int, cgroups: str) -> list[dict]:
    """Every size in every syscall-metrics mode (and with the latency histogram up to 50
    containers) on `cgroups` ("real" or "fixture"): one measure() dict each."""
    rng = random.Random(42)
    rows = []
    modes = [("all", False), ("top:10", False), ("none", False), ("all", True)]
    with tempfile.TemporaryDirectory(prefix="corral-scrape-bench-") as tmp:
        if cgroups == "real":
            tree = real_cgroups(max(sizes))
            proc = "/proc"
        else:
            everything = build_tree(Path(tmp), max(sizes), rng)
            tree = _fixture(make_driver(str(Path(tmp) / "cgroup"), "corral", keep_files_open=True),
                            everything)
            proc = str(Path(tmp) / "proc")
        with tree as (driver, everything):
            for size in sizes:
                for mode, latency in modes:
                    if latency and size > 50:
                        continue  # the histogram is opt-in; 200 containers x 40 syscalls x 34 buckets is not a default
                    rows.append(measure(everything[:size], driver, proc,
                                        MetricsOptions(syscall_metrics=mode), latency, repeat, rng))
    return rows


def slopes(measured: list[dict]) -> list[dict]:
    """Per syscall-metrics mode, the served scrape's cost per added container between the
    smallest and the largest size (medians), beside the file reads' own slope: a scrape that
    grows linearly has the same slope whichever pair of sizes is taken."""
    out = []
    modes = sorted({(r["syscall_metrics"], r["latency_histogram"]) for r in measured})
    for mode, latency in modes:
        rows = sorted((r for r in measured if (r["syscall_metrics"], r["latency_histogram"]) == (mode, latency)),
                      key=lambda r: r["containers"])
        if len(rows) < 2:
            continue
        low, high = rows[0], rows[-1]
        added = high["containers"] - low["containers"]
        served = (high["median_ms"]["served"] - low["median_ms"]["served"]) / added
        io = (high["median_ms"]["io"] - low["median_ms"]["io"]) / added
        out.append({"syscall_metrics": mode, "latency_histogram": latency,
                    "from": low["containers"], "to": high["containers"],
                    "served_ms_per_container": round(served, 4), "io_ms_per_container": round(io, 4),
                    "per_io": round(served / io, 2) if io > 0 else None})
    return out


def run(sizes: tuple[int, ...] = (10, 50, 200), repeat: int = 15, cgroups: str | None = None) -> dict:
    """`python -m bench`'s entry point: measure_sizes() as result rows (bench.common.Row dicts),
    one per size and mode: the served scrape, best and median of `repeat`, and its ratio to
    the file reads alone (the io anchor), measured in the same runs."""
    from bench.common import Row
    cgroups = cgroups or ("real" if can_use_real_cgroups() else "fixture")
    measured = measure_sizes(list(sizes), repeat, cgroups)
    rows = []
    for r in measured:
        mode = r["syscall_metrics"] + (" + latency" if r["latency_histogram"] else "")
        median = r["median_ms"]["served"]
        row = Row("scrape", f"served /metrics, {r['containers']} ctrs, syscalls {mode}", "ms", median,
                  note=f"best {r['served_ms']} ms; {r['samples']} samples, {r['bytes'] // 1024} KiB, "
                       f"{r['gzip_bytes'] // 1024} KiB gzip; {cgroups} cgroups")
        row.anchor = "io"
        row.ratio = round(median / r["median_ms"]["io"], 2) if r["median_ms"]["io"] else None
        if r["containers"] == 200 and mode == "all":
            row.target, row.met = "<= 50 ms", median <= 50
        rows.append(row.to_dict())
    for slope in slopes(measured):
        mode = slope["syscall_metrics"] + (" + latency" if slope["latency_histogram"] else "")
        row = Row("scrape", f"served /metrics per added container, syscalls {mode}", "ms",
                  slope["served_ms_per_container"],
                  note=f"slope between {slope['from']} and {slope['to']} containers (medians)")
        row.anchor, row.ratio = "io slope", slope["per_io"]
        rows.append(row.to_dict())
    return {"cgroups": cgroups, "repeat": repeat, "statistic": "median of repeat, ms (best in note)",
            "measured": measured, "rows": rows}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--sizes", default="10,50,200")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "scrape_cost.json"))
    parser.add_argument("--cgroups", choices=("real", "fixture"),
                        default="real" if can_use_real_cgroups() else "fixture",
                        help="real cgroups (root on a hybrid host) or a fixture tree in a temp dir")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = measure_sizes(sizes, args.repeat, args.cgroups)
    print(f"cgroups: {args.cgroups}; best of {args.repeat} runs (medians in the JSON)")
    print("io: the file reads alone (anchor); collect: collect(); generate_latest: collect + "
          "prometheus_client's text encoder; served: collect + render() + gzip -1, what /metrics costs")
    print(f"{'containers':>10} {'syscalls':>8} {'latency':>7} {'samples':>8} {'KiB':>6} {'gz KiB':>6} "
          f"{'io ms':>7} {'collect':>8} {'gen_latest':>10} {'served':>7} {'x io':>5}")
    for r in rows:
        print(f"{r['containers']:>10} {r['syscall_metrics']:>8} {'on' if r['latency_histogram'] else 'off':>7} "
              f"{r['samples']:>8} {r['bytes'] / 1024:>6.0f} {r['gzip_bytes'] / 1024:>6.0f} "
              f"{r['io_anchor_ms']:>7.2f} {r['collect_ms']:>8.2f} {r['generate_latest_ms']:>10.2f} "
              f"{r['served_ms']:>7.2f} {r['served_per_io']:>5.1f}")
    print("per added container (medians, smallest to largest size): served ms, io ms, x io")
    for slope in slopes(rows):
        print(f"{slope['syscall_metrics']:>8} {'on' if slope['latency_histogram'] else 'off':>7} "
              f"{slope['from']:>4}->{slope['to']:<4} {slope['served_ms_per_container']:>8.3f} "
              f"{slope['io_ms_per_container']:>8.3f} {slope['per_io'] or 0:>5.1f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"python": platform.python_version(), "machine": platform.machine(),
                               "cpus": os.cpu_count(), "cgroups": args.cgroups,
                               "repeat": args.repeat, "statistic": "best of repeat, ms", "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


@contextmanager
def _fixture(driver, containers):
    yield driver, containers


if __name__ == "__main__":
    sys.exit(main())
