"""One reading of a container in the shape of Docker's stats (cpu_stats, precpu_stats,
memory_stats, pids_stats, networks, blkio_stats), from the cgroup files and the container's
network namespace; `docker stats` computes its CPU % from the difference with the previous
reading, and its BLOCK I/O column from blkio_stats.io_service_bytes_recursive (the read and
write entries; agent/cgroups/io.py says what the kernel counts)."""
from __future__ import annotations

import os
import time

from agent.cgroups.driver import CgroupPaths
from agent.dockerapi.views import timestamp
from agent.runtime.model import Container

_NS = 1_000_000_000
_EMPTY_CPU = {"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
              "system_cpu_usage": 0, "online_cpus": 0,
              "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0}}


def stats_of(container: Container, cgroups, previous: dict | None) -> dict:
    now = time.time()
    figures = None
    block = None
    if container.cgroup:
        paths = CgroupPaths.from_dict(container.cgroup)
        if cgroups.exists(paths):
            figures = cgroups.stats(paths)
            block = cgroups.block_io(paths)
    cpus = os.cpu_count() or 1
    cpu = dict(_EMPTY_CPU)
    memory: dict = {}
    pids: dict = {}
    if figures is not None:
        cpu = {"cpu_usage": {"total_usage": _ns(figures.cpu_usage_seconds),
                             "usage_in_kernelmode": _ns(figures.cpu_system_seconds),
                             "usage_in_usermode": _ns(figures.cpu_user_seconds)},
               "system_cpu_usage": system_cpu_ns(), "online_cpus": cpus,
               "throttling_data": {"periods": figures.cpu_periods or 0,
                                   "throttled_periods": figures.cpu_throttled_periods or 0,
                                   "throttled_time": _ns(figures.cpu_throttled_seconds)}}
        memory = {"usage": figures.memory_usage_bytes or 0, "max_usage": figures.memory_max_usage_bytes or 0,
                  "limit": figures.memory_limit_bytes or _mem_total(), "failcnt": figures.memory_failcnt or 0,
                  "stats": {"rss": figures.memory_rss_bytes or 0, "cache": figures.memory_cache_bytes or 0}}
        pids = {"current": figures.pids_current or 0, **({"limit": figures.pids_limit} if figures.pids_limit else {})}
    return {
        "read": timestamp(now), "preread": previous["read"] if previous else timestamp(None),
        "id": container.id, "name": f"/{container.name}", "num_procs": 0,
        "pids_stats": pids, "cpu_stats": cpu,
        "precpu_stats": previous["cpu_stats"] if previous else dict(_EMPTY_CPU),
        "memory_stats": memory, "networks": network_counters(container.pid) if container.pid else {},
        "blkio_stats": {"io_service_bytes_recursive": _entries(block.service_bytes if block else ()),
                        "io_serviced_recursive": _entries(block.serviced if block else ()),
                        "io_queue_recursive": None, "io_service_time_recursive": None,
                        "io_wait_time_recursive": None, "io_merged_recursive": None,
                        "io_time_recursive": None, "sectors_recursive": None},
        "storage_stats": {},
    }


def _entries(entries) -> list[dict] | None:
    """Docker's list of BlkioStatEntry, null when there is none (as dockerd's nil slice)."""
    return [entry.to_docker() for entry in entries] or None


def _ns(seconds: float | None) -> int:
    return int((seconds or 0) * _NS)


def system_cpu_ns() -> int:
    """The host's CPU time in nanoseconds: the `cpu` line of /proc/stat, as dockerd reads it."""
    try:
        with open("/proc/stat") as handle:
            for line in handle:
                if line.startswith("cpu "):
                    ticks = sum(int(v) for v in line.split()[1:8])
                    return ticks * _NS // os.sysconf("SC_CLK_TCK")
    except OSError:
        pass
    return 0


def network_counters(pid: int) -> dict[str, dict]:
    """Per-interface counters of the container's network namespace (/proc/PID/net/dev), lo left out."""
    counters: dict[str, dict] = {}
    try:
        with open(f"/proc/{pid}/net/dev") as handle:
            lines = handle.readlines()[2:]
    except OSError:
        return counters
    for line in lines:
        name, _, numbers = line.partition(":")
        name = name.strip()
        values = [int(v) for v in numbers.split()]
        if name == "lo" or len(values) < 16:
            continue
        counters[name] = {"rx_bytes": values[0], "rx_packets": values[1], "rx_errors": values[2],
                          "rx_dropped": values[3], "tx_bytes": values[8], "tx_packets": values[9],
                          "tx_errors": values[10], "tx_dropped": values[11]}
    return counters


def _mem_total() -> int:
    from agent.dockerapi.system import _mem_total as total
    return total()
