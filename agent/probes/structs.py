"""ctypes mirrors of the structs in probes/common.h, and the probe names of its error enum.

Each class names the C struct it mirrors; tests/unit/test_probe_structs.py compiles
probes/common.h with gcc and checks every size and field offset here against it.
"""
from __future__ import annotations

import ctypes as ct

# Defaults of the -D parameters in probes/common.h that shape these structs.
LATENCY_BUCKETS = 32
EXEC_FILENAME_LEN = 256
NR_SYSCALLS = 512
EGRESS_MAX_RULES = 64
EGRESS_MAX_POLICIES = 16
EGRESS_ALLOW = 0
EGRESS_DENY = 1
EGRESS_DEFAULT_RULE = 0xFFFF

# enum probe_error in probes/common.h, in order: index -> probe name.
PROBE_ERRORS = (
    "syscalls",
    "syscall_latency",
    "oom",
    "network",
    "tcp_connect",
    "tcp_retransmit",
    "process_exec",
    "process_fork",
    "process_exit",
    "syscall_kill",
    "egress",
    "rate_limits",
)

# enum lost_reason in probes/common.h, in order: index -> the reason label of
# corral_events_lost_total.
LOST_REASONS = ("ring_full", "daemon_down")

# enum event_type in probes/common.h.
EVENT_OOM = 1
EVENT_EXEC = 2
EVENT_KILL = 3
EVENT_EGRESS = 4
EVENT_RATE = 5

# enum rate_signal in probes/common.h, in order: index -> the signal name rate limits use.
# RATE_LEVELS in probes/common.h: limits per container and signal (one per distinct threshold).
RATE_LEVELS = 8
RATE_SIGNALS = ("syscalls", "syscall_errors", "tcp_connects", "net_tx_bytes", "net_rx_bytes")
# RATE_SYSCALL_LIMITS: (syscall, calls or errors) limits per container; RATE_PER_SYSCALL: the bit
# of rate_table.armed saying it has some; RATE_ALL_SYSCALLS: rate_event.nr of a container-wide one.
RATE_SYSCALL_LIMITS = 16
RATE_PER_SYSCALL = 1 << len(RATE_SIGNALS)
RATE_ALL_SYSCALLS = 0xFFFFFFFF


class WatchEntry(ct.Structure):
    """struct watch_entry (probes/common.h)."""

    _fields_ = [("cgroup_id", ct.c_uint64), ("slot", ct.c_uint32), ("pad", ct.c_uint32)]


class SyscallCount(ct.Structure):
    """struct syscall_count (probes/common.h)."""

    _fields_ = [("calls", ct.c_uint64), ("errors", ct.c_uint64)]


class LatencyKey(ct.Structure):
    """struct latency_key (probes/common.h)."""

    _fields_ = [("cgroup_id", ct.c_uint64), ("nr", ct.c_uint32), ("pad", ct.c_uint32)]


class LatencyHist(ct.Structure):
    """struct latency_hist (probes/common.h)."""

    _fields_ = [("buckets", ct.c_uint64 * LATENCY_BUCKETS)]


class NetCountersC(ct.Structure):
    """struct net_counters (probes/common.h)."""

    _fields_ = [("rx_bytes", ct.c_uint64), ("rx_packets", ct.c_uint64),
                ("tx_bytes", ct.c_uint64), ("tx_packets", ct.c_uint64)]


class TcpCountersC(ct.Structure):
    """struct tcp_counters (probes/common.h)."""

    _fields_ = [("connects", ct.c_uint64), ("retransmits", ct.c_uint64)]


class TcpDestinationC(ct.Structure):
    """struct tcp_destination (probes/common.h): the key of tcp_destinations."""

    _fields_ = [("cgroup_id", ct.c_uint64), ("family", ct.c_uint16), ("port", ct.c_uint16),
                ("pad", ct.c_uint32), ("addr", ct.c_uint8 * 16)]


class ProcessCountersC(ct.Structure):
    """struct process_counters (probes/common.h)."""

    _fields_ = [("execs", ct.c_uint64), ("forks", ct.c_uint64), ("exits", ct.c_uint64)]


class OomEventC(ct.Structure):
    """struct oom_event (probes/common.h)."""

    _fields_ = [("type", ct.c_uint32), ("pid", ct.c_uint32), ("cgroup_id", ct.c_uint64),
                ("time_ns", ct.c_uint64), ("comm", ct.c_char * 16)]


class ExecEventC(ct.Structure):
    """struct exec_event (probes/common.h)."""

    _fields_ = [("type", ct.c_uint32), ("pid", ct.c_uint32), ("cgroup_id", ct.c_uint64),
                ("time_ns", ct.c_uint64), ("filename", ct.c_char * EXEC_FILENAME_LEN)]


class KillTable(ct.Structure):
    """struct kill_table (probes/common.h)."""

    _fields_ = [("armed", ct.c_uint32), ("pad", ct.c_uint32), ("signal", ct.c_uint8 * NR_SYSCALLS)]


class KillEventC(ct.Structure):
    """struct kill_event (probes/common.h)."""

    _fields_ = [("type", ct.c_uint32), ("pid", ct.c_uint32), ("cgroup_id", ct.c_uint64),
                ("time_ns", ct.c_uint64), ("nr", ct.c_uint32), ("signal", ct.c_uint32),
                ("result", ct.c_int32), ("pad", ct.c_uint32), ("comm", ct.c_char * 16)]


class RateLimitC(ct.Structure):
    """struct rate_limit (probes/common.h)."""

    _fields_ = [("window_end", ct.c_uint64), ("count", ct.c_uint64), ("levels", ct.c_uint64 * RATE_LEVELS),
                ("reported", ct.c_uint64 * RATE_LEVELS)]


class RateTable(ct.Structure):
    """struct rate_table (probes/common.h)."""

    _fields_ = [("armed", ct.c_uint32), ("generation", ct.c_uint32),
                ("limits", RateLimitC * len(RATE_SIGNALS))]


class SyscallRateTable(ct.Structure):
    """struct syscall_rate_table (probes/common.h)."""

    _fields_ = [("calls", ct.c_uint8 * NR_SYSCALLS), ("errors", ct.c_uint8 * NR_SYSCALLS),
                ("limits", RateLimitC * RATE_SYSCALL_LIMITS)]


class RateEventC(ct.Structure):
    """struct rate_event (probes/common.h)."""

    _fields_ = [("type", ct.c_uint32), ("pid", ct.c_uint32), ("cgroup_id", ct.c_uint64),
                ("time_ns", ct.c_uint64), ("count", ct.c_uint64), ("limit", ct.c_uint64),
                ("signal", ct.c_uint32), ("generation", ct.c_uint32), ("nr", ct.c_uint32),
                ("pad", ct.c_uint32), ("comm", ct.c_char * 16)]


class EgressRuleC(ct.Structure):
    """struct egress_rule (probes/common.h)."""

    _fields_ = [("addr", ct.c_uint32 * 4), ("mask", ct.c_uint32 * 4), ("port", ct.c_uint16),
                ("protocol", ct.c_uint8), ("family", ct.c_uint8), ("action", ct.c_uint8),
                ("policy", ct.c_uint8), ("rule", ct.c_uint16)]


class EgressTable(ct.Structure):
    """struct egress_table (probes/common.h)."""

    _fields_ = [("count", ct.c_uint32), ("deny_default", ct.c_uint32), ("audit", ct.c_uint32),
                ("generation", ct.c_uint32), ("rules", EgressRuleC * EGRESS_MAX_RULES)]


class EgressEventC(ct.Structure):
    """struct egress_event (probes/common.h)."""

    _fields_ = [("type", ct.c_uint32), ("pid", ct.c_uint32), ("cgroup_id", ct.c_uint64),
                ("time_ns", ct.c_uint64), ("addr", ct.c_uint32 * 4), ("port", ct.c_uint16),
                ("protocol", ct.c_uint8), ("family", ct.c_uint8), ("blocked", ct.c_uint8),
                ("policy", ct.c_uint8), ("rule", ct.c_uint16), ("generation", ct.c_uint32),
                ("pad", ct.c_uint32), ("comm", ct.c_char * 16)]


# Every mirror with its C name, for the size test.
MIRRORS = {
    "watch_entry": WatchEntry,
    "syscall_count": SyscallCount,
    "latency_key": LatencyKey,
    "latency_hist": LatencyHist,
    "net_counters": NetCountersC,
    "tcp_counters": TcpCountersC,
    "tcp_destination": TcpDestinationC,
    "process_counters": ProcessCountersC,
    "oom_event": OomEventC,
    "exec_event": ExecEventC,
    "kill_table": KillTable,
    "kill_event": KillEventC,
    "egress_rule": EgressRuleC,
    "egress_table": EgressTable,
    "egress_event": EgressEventC,
    "rate_limit": RateLimitC,
    "rate_table": RateTable,
    "syscall_rate_table": SyscallRateTable,
    "rate_event": RateEventC,
}
