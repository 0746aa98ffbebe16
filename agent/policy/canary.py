"""The canary: end-to-end proof that a container's egress and syscall `kill` rules act.

Reading the kernel back (agent/policy/prove.py) shows the rule is in place; the canary shows
it works. `corral-launch canary` (launcher/canary.c) joins the container's cgroup v2 directory
and network namespace and tries what the rule forbids:

- an egress part: a TCP connect to a destination the effective policy denies (a denied rule's
  own address and port, or 192.0.2.1:9, TEST-NET-1's discard port, under `default: deny`),
  which the egress program must refuse with EPERM;
- a `kill` rule: the syscall with every argument 0, which the probe must end with the rule's
  signal. Syscalls that would do something with zero arguments (create a process, exit,
  reboot, unload a kexec image, ...) are never tried (`UNSAFE`), nor syscalls an alert rule
  watches (the call is counted in the container's cgroup, and would raise that alert).

It runs only where the user enables it (`--canary-interval`, or `corral policy prove
--canary`), being a process of the daemon's inside the container's cgroup for a moment: it
counts in the container's syscall and process figures. Its own reports (a kill, a refused
connect) are not violations: the Enforcer skips the pids in `Canaries.pids`, never a name a
container could take.
"""
from __future__ import annotations

import ipaddress
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.policy.merge import EffectivePolicy

DENIED_BY_DEFAULT = ("192.0.2.1", 9)        # TEST-NET-1, discard: nothing answers there
UNSAFE = frozenset({
    "fork", "vfork", "clone", "clone3", "exit", "exit_group", "execve", "execveat", "reboot",
    "kexec_load", "kexec_file_load", "rt_sigreturn", "pause", "rt_sigsuspend", "vhangup",
    "seccomp", "prctl", "kill", "tkill", "tgkill", "setsid", "setpgid", "close", "close_range",
    "munmap", "mremap", "brk", "shutdown", "sync", "syncfs", "sched_yield", "acct", "sethostname",
    "setdomainname", "settimeofday", "clock_settime", "adjtimex", "swapon", "swapoff",
})
REPORT_GRACE = 5.0          # seconds a finished canary's pid is still known (its events lag)
EXIT_ENFORCED, EXIT_SETUP, EXIT_NOT_ENFORCED = 0, 2, 3


@dataclass(frozen=True)
class Trial:
    """One thing a canary tries for one rule."""

    kind: str                   # egress | syscall_kill
    policy: str
    rule: str
    connect: str = ""           # "IP:PORT" for egress
    nr: int = -1                # syscall number for syscall_kill
    signal: int = 0             # the signal the kill rule sends


def trials(effective: EffectivePolicy, number: Callable[[str], int | None]) -> list[Trial]:
    """What to try for each enforcing egress part and kill rule of `effective`."""
    found: list[Trial] = []
    for part in effective.egress:
        if part.source.mode != "enforce":
            continue
        target = _denied_destination(effective, part)
        if target is not None:
            found.append(Trial("egress", part.source.policy, "network.egress", connect=f"{target[0]}:{target[1]}"))
    alerted = effective.alerted_syscalls()      # counted from the cgroup: a trial would raise them
    for entry in effective.syscalls:
        if entry.action != "kill" or entry.source.mode != "enforce" or entry.syscall in UNSAFE \
                or entry.syscall in alerted:
            continue
        nr = number(entry.syscall)
        if nr is not None:
            found.append(Trial("syscall_kill", entry.source.policy, entry.source.rule, nr=nr, signal=entry.signal))
    return found


def _denied_destination(effective: EffectivePolicy, part) -> tuple[str, int] | None:
    """An IPv4 TCP destination the part's deny rules (or its default) refuse and the effective
    policy refuses as a whole."""
    candidates = []
    for rule in part.rules:
        network = rule.network()
        if rule.action != "deny" or network.version != 4 or rule.protocol == "udp":
            continue
        host = network.network_address if network.prefixlen == 32 else network.network_address + 1
        candidates.append((str(host), rule.ports[0] if rule.ports else 9))
    if part.default == "deny":
        candidates.append(DENIED_BY_DEFAULT)
    for address, port in candidates:
        if isinstance(ipaddress.ip_address(address), ipaddress.IPv4Address) \
                and not effective.egress_verdict(address, port, "tcp")[0]:
            return address, port
    return None


class Canaries:
    """Runs trials through the launcher; remembers the pids of canaries (running or just
    finished) so their probe reports are not taken for the container's."""

    def __init__(self, launcher: Path, timeout: float = 3.0) -> None:
        self.launcher = launcher
        self.timeout = timeout
        self._pids: dict[int, float] = {}       # pid -> when it finished (inf while running)
        self._lock = threading.Lock()

    def is_canary(self, pid: int) -> bool:
        now = time.monotonic()
        with self._lock:
            for old in [p for p, ended in self._pids.items() if now - ended > REPORT_GRACE]:
                self._pids.pop(old)
            return pid in self._pids

    def run(self, trial: Trial, cgroup_dir: str, netns: str | None) -> tuple[bool, str]:
        """(enforced, what happened) for one trial."""
        argv = [str(self.launcher), "canary", "--cgroup", cgroup_dir]
        if netns:
            argv += ["--netns", netns]
        argv += ["--connect", trial.connect] if trial.kind == "egress" else ["--syscall", str(trial.nr)]
        # The canary waits for a byte on stdin before it tries anything, so its pid is known
        # here before the probe's report of it can reach the Enforcer.
        process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
        with self._lock:
            self._pids[process.pid] = float("inf")
        try:
            out, err = process.communicate(b"go", timeout=self.timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate()
            return False, f"canary did not finish within {self.timeout:.0f} s (is the container frozen?)"
        finally:
            with self._lock:
                self._pids[process.pid] = time.monotonic()
        said = (out + err).decode(errors="replace").strip()
        code = process.returncode
        if trial.kind == "syscall_kill":
            if code == -trial.signal:
                return True, f"killed by signal {trial.signal} as the rule says"
            if code < 0:
                return False, f"canary killed by signal {-code}, the rule sends {trial.signal}"
        elif code == EXIT_ENFORCED:
            return True, f"connect to {trial.connect} refused"
        if code == EXIT_NOT_ENFORCED:
            what = f"connect to {trial.connect}" if trial.kind == "egress" else f"syscall {trial.nr}"
            return False, f"canary: {what} was not stopped ({said})"
        return False, f"canary failed (exit {code}): {said}"
