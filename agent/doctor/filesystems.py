"""Checks of the filesystems containers are built on: the cgroup layout and overlayfs.

The cgroup mode is read from mountinfo here, independently of agent/cgroups/detect.py,
so the doctor can diagnose a host on which the daemon would not start.
"""
from __future__ import annotations

import ctypes
import os
import tempfile
from typing import Callable

from agent.doctor.kernel import describe_errno
from agent.doctor.result import CheckResult, HostPaths, passed, problem, read_text
from agent.mount_table import MountEntry, read_mounts

# Superblock options of a v1 mount that are not controller names.
_NOT_CONTROLLERS = {"rw", "ro", "noprefix", "clone_children", "xattr", "cpuset_v2_mode"}


def v1_controllers(mount: MountEntry) -> list[str]:
    return [o for o in mount.super_options
            if o not in _NOT_CONTROLLERS and "=" not in o]


def check_cgroups(paths: HostPaths) -> CheckResult:
    mounts = read_mounts(paths.mountinfo)
    if mounts is None:
        return problem("cgroups", f"cannot read {paths.mountinfo}", "mount -t proc proc /proc")
    unified = [m.mount_point for m in mounts if m.fstype == "cgroup2"]
    # A v1 hierarchy without controllers (name=systemd) holds no limits: it does not
    # make a host hybrid.
    v1 = sorted({c for m in mounts if m.fstype == "cgroup" for c in v1_controllers(m)})
    if unified and not v1:
        return passed("cgroups", f"v2 (cgroup2 at {unified[0]})")
    if unified:
        return passed("cgroups", f"hybrid: v1 controllers ({', '.join(v1)}) and cgroup2 at "
                      f"{unified[0]}; limits in v1, id/freeze/kill/PSI/BPF in the unified tree")
    if v1:
        return problem("cgroups", f"v1 only ({', '.join(v1)}): cgroup BPF needs a cgroup2 mount",
                       "mkdir -p /sys/fs/cgroup/unified && mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified")
    return problem("cgroups", "no cgroup filesystem mounted",
                   "mount -t cgroup2 cgroup2 /sys/fs/cgroup")


def mount_overlay() -> int:
    """Mount and unmount a one-layer overlay in a temporary directory; 0 or the errno."""
    libc = ctypes.CDLL(None, use_errno=True)
    with tempfile.TemporaryDirectory(prefix="corral-doctor-") as tmp:
        dirs = {name: os.path.join(tmp, name) for name in ("lower", "upper", "work", "merged")}
        for path in dirs.values():
            os.mkdir(path)
        options = f"lowerdir={dirs['lower']},upperdir={dirs['upper']},workdir={dirs['work']}"
        if libc.mount(b"overlay", dirs["merged"].encode(), b"overlay", 0, options.encode()) != 0:
            return ctypes.get_errno()
        libc.umount2(dirs["merged"].encode(), 2)      # MNT_DETACH: never leave it behind
        return 0


def check_overlay(paths: HostPaths, euid: int,
                  try_mount: Callable[[], int] = mount_overlay) -> CheckResult:
    listed = any(line.split()[-1:] == ["overlay"]
                 for line in (read_text(paths.proc / "filesystems") or "").splitlines())
    fix = "modprobe overlay"
    if euid != 0:
        if listed:
            return passed("overlay", "overlay listed in /proc/filesystems (not test-mounted: not root)")
        return problem("overlay", "overlay not in /proc/filesystems", fix)
    # As root a real mount is the truth, and it loads the module when it is not loaded yet.
    code = try_mount()
    if code == 0:
        return passed("overlay", "test overlay mount worked")
    return problem("overlay", f"test overlay mount failed: {describe_errno(code)}", fix)
