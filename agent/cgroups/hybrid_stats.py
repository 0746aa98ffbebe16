"""A hybrid host's container figures in one pass: the v1 controllers' files for memory, cpu,
pids and block I/O, the cgroup2 directory for PSI and freeze state (`read_hybrid_stats`).
Used by HybridDriver.stats and, with a v1-only reader, for observed containers
(agent/discovery/foreign_cgroups.py).
"""
from __future__ import annotations

from agent.cgroups import files
from agent.cgroups.driver import CgroupPaths, CgroupStats
from agent.cgroups.v2 import PRESSURE, working_set


def read_hybrid_stats(paths: CgroupPaths, user_hz: int, read=files.read_bytes) -> CgroupStats:
    """Every figure of a hybrid container; absent files leave their fields None.

    `read(path) -> bytes` raises OSError for a file it cannot read (files.read_bytes, or a
    driver's OpenFiles.read). Each file is read once and only the figures wanted are parsed;
    files only a fallback needs (the unified cpu.stat, freezer.state) are read only then.
    """
    ctl = paths.controllers
    # An absent hierarchy reads as "" (no file), so its fields stay None.
    memory_dir = ctl.get("memory")
    cpu_dir = ctl.get("cpu")
    acct_dir = ctl.get("cpuacct")
    pids_dir = ctl.get("pids")
    unified = paths.unified

    def get(directory: str | None, name: str) -> bytes | None:
        if directory is None:
            return None
        try:
            return read(f"{directory}/{name}")
        except OSError:
            return None

    as_int, keyed, v1_limit = files.as_int, files.keyed_value, files.as_v1_limit
    memory = get(memory_dir, "memory.stat")
    cpu = get(cpu_dir, "cpu.stat")
    acct = get(acct_dir, "cpuacct.stat")
    usage_ns = as_int(get(acct_dir, "cpuacct.usage"))
    usage = as_int(get(memory_dir, "memory.usage_in_bytes"))
    user_ticks = keyed(acct, b"user")
    system_ticks = keyed(acct, b"system")
    # cpuacct first; the unified cpu.stat (core accounting, no controller needed) when the
    # host has no cpuacct hierarchy.
    unified_cpu = (get(unified, "cpu.stat")
                   if usage_ns is None or user_ticks is None or system_ticks is None else None)
    events = get(unified, "cgroup.events")
    frozen_flag = keyed(events, b"frozen")
    frozen = None if frozen_flag is None else frozen_flag == 1
    if frozen is None and "freezer" in ctl:
        state = get(ctl["freezer"], "freezer.state")
        frozen = None if state is None else state.strip() == b"FROZEN"
    pressure = {}
    for resource in PRESSURE:
        reading = files.pressure_of(get(unified, f"{resource}.pressure"))
        if reading is not None:
            pressure[resource] = reading
    return CgroupStats(
        cpu_usage_seconds=(usage_ns / 1e9 if usage_ns is not None
                           else _div(keyed(unified_cpu, b"usage_usec"), 1e6)),
        cpu_user_seconds=(user_ticks / user_hz if user_ticks is not None
                          else _div(keyed(unified_cpu, b"user_usec"), 1e6)),
        cpu_system_seconds=(system_ticks / user_hz if system_ticks is not None
                            else _div(keyed(unified_cpu, b"system_usec"), 1e6)),
        cpu_periods=keyed(cpu, b"nr_periods"),
        cpu_throttled_periods=keyed(cpu, b"nr_throttled"),
        cpu_throttled_seconds=_div(keyed(cpu, b"throttled_time"), 1e9),
        cpu_quota_us=v1_limit(get(cpu_dir, "cpu.cfs_quota_us")),
        cpu_period_us=as_int(get(cpu_dir, "cpu.cfs_period_us")),
        memory_usage_bytes=usage,
        memory_max_usage_bytes=as_int(get(memory_dir, "memory.max_usage_in_bytes")),
        memory_working_set_bytes=working_set(usage, _first(memory, b"total_inactive_file", b"inactive_file")),
        memory_rss_bytes=_first(memory, b"total_rss", b"rss"),
        memory_cache_bytes=_first(memory, b"total_cache", b"cache"),
        memory_failcnt=as_int(get(memory_dir, "memory.failcnt")),
        memory_limit_bytes=v1_limit(get(memory_dir, "memory.limit_in_bytes")),
        oom_kills=keyed(get(memory_dir, "memory.oom_control"), b"oom_kill"),
        oom_events=None,   # v1 counts kills (oom_control), not OOM events
        pids_current=as_int(get(pids_dir, "pids.current")),
        pids_limit=v1_limit(get(pids_dir, "pids.max")),
        frozen=frozen,
        pressure=pressure,
    )


def _first(data: bytes | None, *keys: bytes) -> int | None:
    """The hierarchical figure (total_*) where v1 has it, else the cgroup's own."""
    for key in keys:
        value = files.keyed_value(data, key)
        if value is not None:
            return value
    return None


def _div(value: int | None, per: float) -> float | None:
    return None if value is None else value / per
