"""Linux capabilities by name, Docker's default set, and `--cap-add`/`--cap-drop` resolution.

Names follow Docker: case-insensitive, with or without the `CAP_` prefix, and `ALL`. The
launcher receives the resolved set as one bit mask (`--caps 0x...`).
"""
from __future__ import annotations

from typing import Iterable

from agent.errors import InvalidArgument

# Index = capability number (include/uapi/linux/capability.h).
NAMES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)
NUMBER = {name: number for number, name in enumerate(NAMES)}

# What Docker grants a container by default (and the launcher granted before these flags).
DEFAULT = frozenset({
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
    "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
})
ALL = frozenset(NAMES)


def canonical(name: str, *, flag: str) -> str:
    """`net_admin`, `CAP_NET_ADMIN` -> `NET_ADMIN`; `all` -> `ALL`; anything else is an error."""
    text = name.strip().upper()
    if text.startswith("CAP_"):
        text = text[4:]
    if text == "ALL" or text in NUMBER:
        return text
    raise InvalidArgument(f"{flag} {name!r}: unknown capability",
                          hint="names as Docker spells them, like NET_ADMIN or CAP_SYS_TIME, or ALL")


def resolve(add: Iterable[str] = (), drop: Iterable[str] = (), *, privileged: bool = False) -> frozenset[str]:
    """The container's capability set, as Docker computes it: ALL in add grants every
    capability but the dropped ones; ALL in drop leaves only the added ones; otherwise the
    default set plus add minus drop (a capability both added and dropped is dropped)."""
    if privileged:
        return ALL
    added = {canonical(name, flag="--cap-add") for name in add}
    dropped = {canonical(name, flag="--cap-drop") for name in drop}
    if "ALL" in added:
        return frozenset(ALL - (dropped - {"ALL"}))
    if "ALL" in dropped:
        return frozenset(added)
    return frozenset((DEFAULT | added) - dropped)


def mask(caps: Iterable[str]) -> int:
    result = 0
    for name in caps:
        result |= 1 << NUMBER[name]
    return result


def names(bits: int) -> list[str]:
    """Capability names of a mask, in number order (for inspect and tests)."""
    return [name for number, name in enumerate(NAMES) if bits >> number & 1]
