"""Syscall kill rules and counters apply to the container's own program, from the exec of its
command on (and of each `corral exec` command): the launcher's set-up is never killed nor
counted as the container's (probes/launcher.c).

SETUP_SYSCALLS are the calls corral-launch makes in a container's init from its clone (it is
born in the container's cgroup2 directory, CLONE_INTO_CGROUP, and sets up its root while the
shim writes the v1 ones) until the command's execve returns (from `strace -f` of the launcher
running busybox `true`; `launcher_syscalls()` re-derives them when strace is there, so a
launcher change cannot leave this list behind). Deny rules are seccomp filters the
launcher installs right before execve, so they never applied to set-up.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.launcher_support import build_rootfs
from tests.integration.test_policies import (  # noqa: F401
    containers,
    metric,
    pdaemon,
    policies_dir,
    policy_events,
    policy_files,
    wait_until,
)

pytestmark = pytest.mark.privileged

SETUP_SYSCALLS = ("rt_sigaction", "rt_sigprocmask", "setsid", "dup2", "read", "unshare", "mount", "socket",
                  "ioctl", "close", "openat", "openat2", "mkdirat", "symlinkat", "fchdir", "pivot_root",
                  "umount2", "chdir", "newfstatat", "sethostname", "mkdir", "prctl", "capget", "capset",
                  "statfs", "execve")
# `corral exec`: the child writes itself into cgroup.procs, then this before its execve.
EXEC_SETUP_SYSCALLS = ("write", "close", "chdir", "prctl", "capget", "capset", "execve")
# busybox `true` itself calls prctl: a kill rule on it must kill the command, not the set-up.
COMMAND_SYSCALLS = ("prctl",)


def launcher_syscalls(tmp: Path) -> set[str]:
    """The launcher's set-up calls in the init, as strace sees them (from its clone to the
    execve of the command)."""
    launcher = shutil.which("corral-launch") or str(Path(__file__).resolve().parents[2] / ".venv/bin/corral-launch")
    rootfs = build_rootfs(tmp / "rootfs")
    trace = tmp / "trace"
    process = subprocess.Popen(
        ["strace", "-f", "-qq", "-o", str(trace), launcher, "run", "--rootfs", str(rootfs), "--hostname", "h",
         "--net", "none", "--workdir", "/w", "--log", str(tmp / "log"), "--exit-file", str(tmp / "exit"),
         "--", "/bin/true"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0)
    pid = int(process.stdout.readline().split()[1])
    process.stdin.write(b"go\n")
    assert process.stdout.readline() == b"started\n"
    process.wait(timeout=30)
    process.stdin.close()
    process.stdout.close()
    calls = [m.group(2) for m in (re.match(r"(\d+)\s+(\w+)\(", line) for line in trace.read_text().splitlines())
             if m and int(m.group(1)) == pid]
    return set(calls[:calls.index("execve") + 1])


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace to list the launcher's calls")
def test_the_list_of_set_up_calls_is_the_launchers(tmp_path):
    assert launcher_syscalls(tmp_path) == set(SETUP_SYSCALLS)


def kill_policy(policy_files, name: str, prefix: str, syscalls) -> None:
    policy_files.write(f"{name}.yaml", name, f"""
selector: {{names: ["{prefix}-*"]}}
syscalls:
  - {{name: setup-calls, names: [{", ".join(syscalls)}], action: kill}}
""")


def test_kill_rules_on_every_set_up_call_let_the_container_start_and_run(pdaemon, policy_files, containers):
    rules = [s for s in SETUP_SYSCALLS if s not in COMMAND_SYSCALLS]
    kill_policy(policy_files, "setup-kill", "setup", rules)
    containers.append("setup-1")
    pdaemon.cli("run", "-d", "--name", "setup-1", "busybox", "true")
    assert pdaemon.out("wait", "setup-1") == "0"
    # Each `corral exec` gets the same: its own set-up calls are not the command's.
    exec_rules = [s for s in EXEC_SETUP_SYSCALLS if s not in COMMAND_SYSCALLS]
    kill_policy(policy_files, "exec-kill", "execd", exec_rules)
    containers.append("execd-1")
    pdaemon.cli("run", "-d", "--name", "execd-1", "busybox", "sleep", "600")
    assert pdaemon.cli("exec", "execd-1", "true", check=False).returncode == 0
    assert pdaemon.cli("exec", "execd-1", "true", check=False).returncode == 0


def test_a_command_that_makes_a_set_up_call_itself_is_killed_by_its_own_call(pdaemon, policy_files,
                                                                             containers):
    started = time.time()
    kill_policy(policy_files, "cmd-kill", "cmdcall", COMMAND_SYSCALLS)
    containers.append("cmdcall-1")
    pdaemon.cli("run", "-d", "--name", "cmdcall-1", "busybox", "true")
    assert pdaemon.out("wait", "cmdcall-1") == "137"
    violation = wait_until(lambda: policy_events(pdaemon, started, "cmdcall-1", "violation"),
                           what="the kill to be recorded")[0]["attributes"]
    # Killed as the command (busybox's applet), never as the launcher setting it up.
    assert violation["syscall"] == "prctl" and violation["comm"] != "corral-launch", violation


@pytest.mark.parametrize("syscall, attempt", [
    ("sethostname", "exec hostname intruder"),
    ("mount", "exec mount -t tmpfs none /mnt"),
    ("unshare", "exec unshare -n true"),
    ("pivot_root", "exec pivot_root /mnt /mnt"),
])
def test_a_workload_making_a_set_up_call_is_still_killed(pdaemon, policy_files, containers, syscall, attempt):
    kill_policy(policy_files, f"wl-{syscall}".replace("_", "-"), f"wl{syscall}".replace("_", ""), [syscall])
    name = f"wl{syscall}".replace("_", "") + "-1"
    containers.append(name)
    result = pdaemon.cli("run", "--name", name, "busybox", "sh", "-c",
                         f"echo started; {attempt}; echo survived", check=False)
    assert result.returncode == 137, result
    assert result.stdout.decode().split() == ["started"]


def test_counters_of_a_fresh_container_hold_none_of_the_launchers_calls(pdaemon, containers):
    containers.append("fresh-1")
    # The path makes ash fork and exec the applet: one execve of the workload's own.
    pdaemon.cli("run", "-d", "--name", "fresh-1", "busybox", "sh", "-c", "/bin/sleep 600")
    wait_until(lambda: metric(pdaemon, "corral_syscalls_total", name="fresh-1", syscall="execve") > 0,
               what="the container's syscalls to be counted")
    for syscall in ("sethostname", "pivot_root", "umount2", "unshare", "capset", "mount", "symlinkat"):
        assert metric(pdaemon, "corral_syscalls_total", name="fresh-1", syscall=syscall) == 0, syscall
    # The execve that starts the command is the launcher's last call: sh's own exec of sleep
    # is the one counted. A `corral exec` session adds none of its joining calls either.
    assert metric(pdaemon, "corral_syscalls_total", name="fresh-1", syscall="execve") == 1
    pdaemon.cli("exec", "fresh-1", "true")
    for syscall in ("capset", "execve"):
        assert metric(pdaemon, "corral_syscalls_total", name="fresh-1", syscall=syscall) == \
            (1 if syscall == "execve" else 0), syscall
