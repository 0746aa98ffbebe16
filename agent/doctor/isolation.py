"""Checks of process isolation: each namespace type really unshares, and seccomp filters load."""
from __future__ import annotations

import ctypes
import errno
import importlib
import os
from typing import Callable

from agent.doctor.kernel import describe_errno
from agent.doctor.result import CheckResult, HostPaths, passed, problem, read_text

# name -> (clone flag, CONFIG option, required). The launcher clones pid, mnt, ipc, uts, net
# and unshares cgroup; user namespaces are not used yet, so missing them only warns.
NAMESPACES = {
    "pid": (0x20000000, "CONFIG_PID_NS", True),
    "mnt": (0x00020000, "CONFIG_NAMESPACES", True),
    "net": (0x40000000, "CONFIG_NET_NS", True),
    "ipc": (0x08000000, "CONFIG_IPC_NS", True),
    "uts": (0x04000000, "CONFIG_UTS_NS", True),
    "user": (0x10000000, "CONFIG_USER_NS", False),
    "cgroup": (0x02000000, "CONFIG_CGROUPS", True),
}


def unshare_in_child(flag: int) -> int:
    """unshare(flag) in a short-lived forked child, so this process keeps its namespaces.

    Returns 0 or the errno the child reports in its exit status.
    """
    unshare = ctypes.CDLL(None, use_errno=True).unshare   # looked up before fork
    pid = os.fork()
    if pid == 0:
        try:
            code = 0 if unshare(flag) == 0 else ctypes.get_errno()
        except BaseException:
            code = 255
        os._exit(min(code, 255))
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 255


def check_namespace(name: str, try_unshare: Callable[[int], int] = unshare_in_child) -> CheckResult:
    flag, config, required = NAMESPACES[name]
    check = f"namespace {name}"
    code = try_unshare(flag)
    if code == 0:
        return passed(check, "unshare works", required=required)
    if code == errno.EPERM:
        fix = "sudo corral doctor  # unshare needs CAP_SYS_ADMIN"
    elif code == errno.ENOSPC:
        fix = f"sysctl -w user.max_{name}_namespaces=10000"
    elif code == errno.EINVAL:
        fix = f"boot a kernel built with {config}=y"
    else:
        fix = f"boot a kernel built with {config}=y and check dmesg"
    reason = describe_errno(code) if code != 255 else "the test child crashed"
    return problem(check, f"unshare failed: {reason}", fix, required=required)


def check_namespaces() -> list[CheckResult]:
    return [check_namespace(name) for name in NAMESPACES]


def check_seccomp(paths: HostPaths,
                  importer: Callable[[str], object] = importlib.import_module) -> CheckResult:
    """Every container runs under the default seccomp profile (docs/security.md), compiled by
    libseccomp through its Python binding: without either, containers cannot start."""
    status = read_text(paths.proc / "self" / "status") or ""
    if not any(line.startswith("Seccomp:") for line in status.splitlines()):
        return problem("seccomp", "the kernel has no seccomp (no Seccomp: line in /proc/self/status): "
                       "containers cannot get the default profile",
                       "boot a kernel built with CONFIG_SECCOMP_FILTER=y")
    try:
        importer("seccomp")
    except Exception as exc:      # noqa: BLE001 - a broken binding can raise anything
        return problem("seccomp", f"kernel has seccomp, but `import seccomp` failed: {exc}; "
                       "the default profile cannot be compiled, so containers cannot start",
                       "apt-get install python3-seccomp")
    return passed("seccomp", "kernel seccomp and the python3-seccomp binding: every container gets "
                  "the default profile (docs/security.md)")
