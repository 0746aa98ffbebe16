"""`corral policy suggest`: a least-privilege policy from what containers were seen doing.

Pure logic over the daemon's history (agent/policy/history.py): `observe` folds the history
of the selected containers over a time window into an `Observed` (syscalls made, TCP
destinations reached, peaks of memory, CPU, pids and rates); `suggest` turns it into a
`Suggestion`: the syscalls to allow (what was seen plus BASELINE), the dangerous syscalls
never used to deny (DANGEROUS), egress allow rules, limits with headroom over the peaks, and
alert thresholds over the observed rates. agent/policy/suggest_text.py writes it as a
commented policy and a Docker seccomp profile; agent/policy/suggest_holdout.py replays it over
a held-out window. docs/policies.md ("Suggesting a policy") documents every number here.
"""
from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from agent.policy.history import Behaviour, parse_destination
from agent.policy.model import Selector

MiB = 1024 * 1024

# Syscalls a container's command may need although the probes cannot have seen them: they are
# counted from the exec of the command on, so that exec itself, and the calls that end a
# process or return from a signal handler at any time, are allowed whatever was seen.
BASELINE = ("execve", "exit", "exit_group", "rt_sigreturn", "restart_syscall")

# Denied when never used: each is a usual step of a container escape, of tampering with the
# host or of spying on other processes, and ordinary workloads never call them.
DANGEROUS = (
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",                # other processes
    "mount", "umount2", "pivot_root", "chroot", "fsopen", "fsmount", "fsconfig", "move_mount",
    "open_tree", "mount_setattr",                                           # the file system tree
    "unshare", "setns",                                                     # namespaces
    "bpf", "perf_event_open", "userfaultfd",                                # kernel attack surface
    "keyctl", "add_key", "request_key",                                     # kernel keyrings
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "open_by_handle_at", "name_to_handle_at", "iopl", "ioperm", "reboot", "swapon", "swapoff",
    "syslog", "acct", "settimeofday", "clock_settime", "adjtimex", "quotactl",  # the host
)

# Headroom and floors (docs/policies.md): samples are taken once per policy tick, so a peak
# between two samples is not seen; the floors keep a quiet workload's limits usable.
MEMORY_HEADROOM = 1.5
MEMORY_FLOOR = 16 * MiB
CPU_HEADROOM = 1.5
CPU_FLOOR = 0.25
PIDS_HEADROOM = 2.0
PIDS_FLOOR = 16
RATE_HEADROOM = 2.0
RATE_THRESHOLDS = (     # signal, floor of `above`, what the comment calls it
    ("syscalls_per_second", 1000.0, "syscalls per second"),
    ("tcp_connects_per_second", 10.0, "TCP connects per second"),
    ("network_tx_bytes_per_second", float(MiB), "bytes sent per second"),
)
THRESHOLD_FOR = 10.0     # seconds a rate must stay above its threshold before the alert


@dataclass(frozen=True)
class Observed:
    """What the selected containers did between `start` and `end`."""

    containers: tuple[str, ...]
    start: float
    end: float
    samples: int
    syscalls: dict[str, int] = field(default_factory=dict)                     # name -> calls seen
    destinations: dict[tuple[str, str, int], int] = field(default_factory=dict)  # (proto, addr, port) -> connects
    peaks: dict[str, float] = field(default_factory=dict)                      # signal -> highest sample


def window(behaviours: Iterable[Behaviour], since: float = 0.0) -> tuple[float, float] | None:
    """The first and last sample time at or after `since`, over all the containers."""
    times = [s.time for b in behaviours for s in b.samples if s.time >= since]
    return (min(times), max(times)) if times else None


def observe(behaviours: Iterable[Behaviour], start: float, end: float) -> Observed:
    """Fold each container's history between `start` and `end` (inclusive)."""
    behaviours = list(behaviours)
    syscalls: dict[str, int] = {}
    destinations: dict[tuple[str, str, int], int] = {}
    peaks: dict[str, float] = {}
    count = 0
    for behaviour in behaviours:
        # What was seen: anything first seen by the end of the window and still seen at its start.
        for name, seen in behaviour.syscalls.items():
            if seen.first <= end and seen.last >= start:
                syscalls[name] = syscalls.get(name, 0) + seen.count
        for key, seen in behaviour.destinations.items():
            if seen.first <= end and seen.last >= start:
                destination = parse_destination(key)
                destinations[destination] = destinations.get(destination, 0) + seen.count
        for sample in behaviour.samples:
            if not start <= sample.time <= end:
                continue
            count += 1
            for name, (calls, _errors) in sample.syscalls.items():
                if calls > 0 and name not in syscalls:
                    syscalls[name] = 0           # a rate without a total (a restored history)
            for signal, value in sample.values.items():
                if value is not None and value > peaks.get(signal, -math.inf):
                    peaks[signal] = value
    return Observed(tuple(sorted({b.container.name for b in behaviours})), start, end, count,
                    syscalls, destinations, peaks)


@dataclass(frozen=True)
class EgressAllow:
    cidr: str
    protocol: str
    ports: tuple[int, ...]
    connects: int


@dataclass(frozen=True)
class Limit:
    resource: str          # memory | cpus | pids
    value: float | int
    peak: float
    headroom: float
    floor: float


@dataclass(frozen=True)
class RateThreshold:
    signal: str
    above: float
    peak: float
    what: str
    floor: float


@dataclass(frozen=True)
class Suggestion:
    name: str
    mode: str
    selector: Selector
    observed: Observed
    allowed: tuple[str, ...]                  # the seccomp allow-list
    unnamed: tuple[str, ...]                  # seen syscalls without a name (numbers): not in the profile
    denied: tuple[str, ...]                   # DANGEROUS syscalls never used
    dangerous_used: tuple[tuple[str, int], ...]
    egress: tuple[EgressAllow, ...] | None    # None: destinations were not recorded
    limits: tuple[Limit, ...]
    thresholds: tuple[RateThreshold, ...]


def policy_name(container: str) -> str:
    """`suggested-<container>` in the characters policy names allow."""
    cleaned = re.sub(r"[^a-z0-9.-]+", "-", container.lower()).strip("-.") or "container"
    return ("suggested-" + cleaned)[:63].rstrip("-.")


def suggest(observed: Observed, selector: Selector, *, name: str, mode: str = "enforce",
            egress_recorded: bool = True,
            syscall_known: Callable[[str], bool] | None = None) -> Suggestion:
    known = syscall_known or (lambda _name: True)
    seen = {s for s in observed.syscalls if re.fullmatch(r"[a-z0-9_]+", s) and not s.isdigit() and s != "other"}
    unnamed = tuple(sorted(set(observed.syscalls) - seen))
    allowed = tuple(sorted(n for n in seen | set(BASELINE) if known(n)))
    denied = tuple(n for n in DANGEROUS if n not in observed.syscalls and known(n))
    used = tuple((n, observed.syscalls[n]) for n in DANGEROUS if n in observed.syscalls)
    return Suggestion(name, mode, selector, observed, allowed, unnamed, denied, used,
                      egress_rules(observed.destinations) if egress_recorded else None,
                      limits(observed.peaks), thresholds(observed.peaks))


def egress_rules(destinations: dict[tuple[str, str, int], int]) -> tuple[EgressAllow, ...]:
    """One allow rule per address and protocol (a /32 or /128), with the ports reached."""
    grouped: dict[tuple[str, str], dict[int, int]] = {}
    for (protocol, address, port), connects in destinations.items():
        ip = ipaddress.ip_address(address)
        if ip.version == 6 and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped              # the probes match a v4-mapped address as IPv4
        cidr = str(ipaddress.ip_network(ip))
        ports = grouped.setdefault((cidr, protocol), {})
        ports[port] = ports.get(port, 0) + connects
    rules = [EgressAllow(cidr, protocol, tuple(sorted(ports)), sum(ports.values()))
             for (cidr, protocol), ports in grouped.items()]
    return tuple(sorted(rules, key=lambda r: (ipaddress.ip_network(r.cidr).version,
                                              ipaddress.ip_network(r.cidr), r.protocol)))


def limits(peaks: dict[str, float]) -> tuple[Limit, ...]:
    out: list[Limit] = []
    memory = peaks.get("memory_bytes")
    if memory is not None:
        value = max(MEMORY_FLOOR, math.ceil(memory * MEMORY_HEADROOM / MiB) * MiB)
        out.append(Limit("memory", int(value), memory, MEMORY_HEADROOM, MEMORY_FLOOR))
    cpu = peaks.get("cpu_percent")
    if cpu is not None:
        cpus = max(CPU_FLOOR, math.ceil(cpu / 100.0 * CPU_HEADROOM * 100) / 100)
        out.append(Limit("cpus", round(cpus, 2), cpu / 100.0, CPU_HEADROOM, CPU_FLOOR))
    pids = peaks.get("pids")
    if pids is not None:
        out.append(Limit("pids", int(max(PIDS_FLOOR, math.ceil(pids * PIDS_HEADROOM))), pids,
                         PIDS_HEADROOM, PIDS_FLOOR))
    return tuple(out)


def thresholds(peaks: dict[str, float]) -> tuple[RateThreshold, ...]:
    out = []
    for signal, floor, what in RATE_THRESHOLDS:
        peak = peaks.get(signal)
        if peak is None:
            continue
        above = max(floor, math.ceil(peak * RATE_HEADROOM))
        out.append(RateThreshold(signal, float(above), peak, what, floor))
    return tuple(out)
