"""Telling the probes which program is the launcher (probes/launcher.c), so the syscalls it
makes while setting a container up are neither counted nor killed as the container's.

The kernel side decides per task; this module only writes `launcher_config` once after load:
the launcher's path exactly as the daemon passes it to execve (the exec tracepoint's filename)
and the daemon's pid namespace (a launcher exec'd in any other one is a look-alike).
"""
from __future__ import annotations

import ctypes as ct
import os
from typing import Any

from agent.errors import InvalidArgument

LAUNCHER_PATH_LEN = 256             # LAUNCHER_PATH_LEN in probes/launcher.c


class LauncherConfig(ct.Structure):
    """Mirrors struct launcher_config in probes/launcher.c."""

    _fields_ = [("pidns_dev", ct.c_uint64), ("pidns_ino", ct.c_uint64), ("armed", ct.c_uint32),
                ("length", ct.c_uint32), ("path", ct.c_char * LAUNCHER_PATH_LEN)]


def launcher_config(launcher: str, pid_namespace: str = "/proc/self/ns/pid") -> LauncherConfig:
    """The config for a launcher at `launcher` (absolute, as spawned) run from this pid namespace."""
    encoded = launcher.encode()
    if not launcher.startswith("/") or len(encoded) >= LAUNCHER_PATH_LEN or b"\0" in encoded:
        raise InvalidArgument(f"launcher path {launcher!r}: must be absolute and shorter than "
                              f"{LAUNCHER_PATH_LEN} bytes")
    ns = os.stat(pid_namespace)
    return LauncherConfig(pidns_dev=ns.st_dev, pidns_ino=ns.st_ino, armed=1,
                          length=len(encoded) + 1, path=encoded)


def arm(table: Any, launcher: str) -> None:
    """Write the config into the loaded `launcher_config` map (BCC table)."""
    table[ct.c_uint32(0)] = launcher_config(launcher)


def entries(launcher_tasks: Any, setup_tasks: Any) -> dict[str, int]:
    """Tasks held in each map: running launchers (shims included), and tasks in set-up."""
    return {"launcher_tasks": len(launcher_tasks), "setup_tasks": len(setup_tasks)}
