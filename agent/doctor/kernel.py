"""Checks of the kernel itself: privileges, version, the bpf() syscall, BTF, tracefs, bpffs, PSI."""
from __future__ import annotations

import ctypes
import errno
import os
import platform
import re
from typing import Callable

from agent.doctor.result import CheckResult, HostPaths, passed, problem, read_text
from agent.mount_table import mounted, read_mounts

MIN_KERNEL = (5, 8)          # BPF ring buffers (used by probes/) arrived in 5.8
BPF_SYSCALL = {"x86_64": 321, "aarch64": 280}
BPF_MAP_CREATE = 0
BPF_MAP_TYPE_ARRAY = 2


def describe_errno(code: int) -> str:
    return f"{errno.errorcode.get(code, str(code))} ({os.strerror(code)})"


def kernel_release(paths: HostPaths) -> str:
    """`uname -r`, read from /proc so fixtures can stand in for the running kernel."""
    text = read_text(paths.proc / "sys" / "kernel" / "osrelease")
    return text.strip() if text else platform.release()


def check_root(euid: int) -> CheckResult:
    if euid == 0:
        return passed("root", "running as root (euid 0)")
    return problem("root", f"running as euid {euid}: namespaces, cgroups and BPF need root",
                   "sudo corral doctor")


def parse_version(release: str) -> tuple[int, int] | None:
    match = re.match(r"^(\d+)\.(\d+)", release)
    return (int(match.group(1)), int(match.group(2))) if match else None


def check_kernel(paths: HostPaths) -> CheckResult:
    release = kernel_release(paths)
    version = parse_version(release)
    need = ".".join(map(str, MIN_KERNEL))
    if version is None:
        return problem("kernel", f"cannot read a version from release {release!r}",
                       f"boot Linux {need} or newer (apt-get install linux-image-amd64, reboot)")
    if version < MIN_KERNEL:
        return problem("kernel", f"Linux {release} is older than {need}, which the BPF probes need",
                       f"apt-get install linux-image-amd64 && reboot  # Linux {need} or newer")
    return passed("kernel", f"Linux {release} (>= {need})")


def create_bpf_array_map() -> int:
    """Create and close a one-entry BPF array map with raw bpf(2); 0 or the errno."""
    number = BPF_SYSCALL.get(platform.machine())
    if number is None:
        return errno.ENOSYS
    # union bpf_attr for BPF_MAP_CREATE starts map_type, key_size, value_size,
    # max_entries, map_flags (u32 each); the kernel wants the rest zeroed.
    attr = (ctypes.c_uint32 * 32)(BPF_MAP_TYPE_ARRAY, 4, 4, 1, 0)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    fd = libc.syscall(ctypes.c_long(number), ctypes.c_long(BPF_MAP_CREATE),
                      ctypes.byref(attr), ctypes.c_ulong(ctypes.sizeof(attr)))
    if fd < 0:
        return ctypes.get_errno()
    os.close(fd)
    return 0


def check_bpf(create_map: Callable[[], int] = create_bpf_array_map) -> CheckResult:
    code = create_map()
    if code == 0:
        return passed("bpf", "bpf(BPF_MAP_CREATE) made a BPF array map")
    fix = {
        errno.EPERM: "sudo corral doctor  # bpf() needs root (CAP_BPF + CAP_SYS_ADMIN)",
        errno.ENOSYS: "boot a kernel built with CONFIG_BPF_SYSCALL=y (apt-get install linux-image-amd64)",
    }.get(code, "check dmesg and `ulimit -l` (raise the locked-memory limit: ulimit -l unlimited)")
    return problem("bpf", f"bpf(BPF_MAP_CREATE) failed: {describe_errno(code)}", fix)


def check_btf(paths: HostPaths) -> CheckResult:
    vmlinux = paths.sys / "kernel" / "btf" / "vmlinux"
    if vmlinux.is_file():
        return passed("btf", f"{vmlinux} present", required=False)
    return problem("btf", f"{vmlinux} missing: no CO-RE type information",
                   "boot a kernel built with CONFIG_DEBUG_INFO_BTF=y", required=False)


def check_tracefs(paths: HostPaths) -> CheckResult:
    mounts = read_mounts(paths.mountinfo) or []
    # BCC looks in debugfs's tracing directory first, then /sys/kernel/tracing.
    where = mounted(mounts, "tracefs", "/sys/kernel/tracing", "/sys/kernel/debug/tracing")
    if where:
        return passed("tracefs", f"tracefs mounted at {where}")
    return problem("tracefs", "tracefs is not mounted at /sys/kernel/tracing: tracepoints cannot attach",
                   "mount -t tracefs tracefs /sys/kernel/tracing")


def check_bpffs(paths: HostPaths) -> CheckResult:
    mounts = read_mounts(paths.mountinfo) or []
    if mounted(mounts, "bpf", "/sys/fs/bpf"):
        return passed("bpffs", "bpf filesystem mounted at /sys/fs/bpf", required=False)
    return problem("bpffs", "no bpf filesystem at /sys/fs/bpf: BPF objects cannot be pinned",
                   "mount -t bpf bpf /sys/fs/bpf", required=False)


def check_psi(paths: HostPaths) -> CheckResult:
    cpu = paths.proc / "pressure" / "cpu"
    # With psi=0 on the command line the file exists but reading it fails (EOPNOTSUPP).
    text = read_text(cpu)
    if text and text.startswith("some"):
        return passed("psi", f"{cpu} readable", required=False)
    return problem("psi", f"{cpu} missing or unreadable: no pressure metrics",
                   "add psi=1 to GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub && reboot",
                   required=False)
