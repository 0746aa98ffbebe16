"""Which cgroup layout the host has, and the driver for it.

A cgroup2 mount is recognised by its cgroup.controllers file, which v1 hierarchies and the
tmpfs that hybrid hosts mount at /sys/fs/cgroup do not have.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from agent.cgroups.device_program import DeviceProgram
from agent.cgroups.driver import CgroupDriver
from agent.cgroups.hybrid import HybridDriver, find_hierarchy
from agent.cgroups.v2 import V2Driver
from agent.errors import KernelError

V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "freezer")


def _is_cgroup2(path: str) -> bool:
    return os.path.isfile(os.path.join(path, "cgroup.controllers"))


def _v1_mounted(root: str) -> list[str]:
    return [c for c in V1_CONTROLLERS if find_hierarchy(root, c) is not None]


def cgroup_mode(root: str = "/sys/fs/cgroup") -> str:
    """The host's layout, for `corral doctor`.

    One of: "v2" (one cgroup2 tree), "hybrid" (v1 controllers and a cgroup2 tree at
    <root>/unified), "v1" (v1 controllers only) or "none" (no cgroup filesystem at all).
    """
    if _is_cgroup2(root):
        return "v2"
    v1 = _v1_mounted(root)
    if v1 and _is_cgroup2(os.path.join(root, "unified")):
        return "hybrid"
    return "v1" if v1 else "none"


def detect_driver(root: str = "/sys/fs/cgroup", parent: str = "corral", *,
                  io_paths: Sequence[str] = (), device_cache: Path | None = None) -> CgroupDriver:
    """The driver for this host's layout; KernelError saying how to fix a layout Corral cannot use.
    `io_paths`: where containers write, whose disks' block I/O v1 is to count (agent/cgroups/io.py).
    `device_cache`: where the v2 device program is kept compiled between starts (device_program.py)."""
    mode = cgroup_mode(root)
    # Made now, loaded at the first container that needs it (never where v1 controls devices).
    devices = DeviceProgram(cache_dir=device_cache) if device_cache is not None else None
    if mode == "v2":
        return V2Driver(root, parent, devices=devices)
    if mode == "hybrid":
        return HybridDriver(root, parent, io_paths=io_paths, devices=devices)
    if mode == "v1":
        unified = os.path.join(root, "unified")
        raise KernelError(
            f"{root} has only cgroup v1 hierarchies ({', '.join(_v1_mounted(root))}); Corral needs "
            f"a cgroup2 tree for container ids, freezing, PSI and BPF",
            hint=f"mount one: mkdir -p {unified} && mount -t cgroup2 none {unified} "
                 "(or boot with systemd.unified_cgroup_hierarchy=1)")
    raise KernelError(f"no cgroup filesystem is mounted at {root}",
                      hint=f"mount one: mount -t cgroup2 none {root}")
