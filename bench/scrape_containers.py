"""The containers bench/scrape_cost.py scrapes: N real cgroups (hybrid driver, a sleeping
process with threads in each, removed afterwards) or a fixture tree in the formats this kernel
writes, and the probe double's readings for them, moved between scrapes as a busy service's."""
from __future__ import annotations

import inspect
import os
import random
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.cgroups.driver import CgroupPaths, Limits  # noqa: E402
from agent.cgroups.hybrid import HybridDriver  # noqa: E402
from agent.metrics.model import WatchedContainer  # noqa: E402
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
