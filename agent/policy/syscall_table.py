"""Which syscall names exist on this host's architecture, for checking policies.

The probes package owns the syscall table (`agent.probes.syscall_names`); if it is missing or
cannot answer, the table is read here from the kernel UAPI header (`asm/unistd_64.h`), and
failing that from libseccomp, which knows every architecture.
"""
from __future__ import annotations

import platform
import re
from typing import Callable, Iterable

UNISTD_HEADERS = (
    "/usr/include/x86_64-linux-gnu/asm/unistd_64.h",
    "/usr/include/asm/unistd_64.h",
    "/usr/include/aarch64-linux-gnu/asm/unistd.h",
    "/usr/include/asm-generic/unistd.h",
)
_DEFINE = re.compile(r"^#define\s+__NR3?2?_([a-z0-9_]+)\s+(\d+)\s*$", re.MULTILINE)


class SyscallTable:
    """A callable `known(name) -> bool` that also lists its names (for "did you mean")."""

    def __init__(self, numbers: dict[str, int], source: str) -> None:
        self.numbers = dict(numbers)
        self.names = sorted(numbers)
        self.source = source

    def __call__(self, name: str) -> bool:
        return name in self.numbers

    def number(self, name: str) -> int | None:
        return self.numbers.get(name)


def parse_unistd(text: str) -> dict[str, int]:
    """`#define __NR_openat 257` lines -> {"openat": 257}."""
    return {name: int(number) for name, number in _DEFINE.findall(text)}


def load_syscall_table(headers: Iterable[str] = UNISTD_HEADERS) -> SyscallTable:
    """The host's table: from agent.probes when it is there, else a UAPI header, else libseccomp."""
    probes = _from_probes()
    if probes is not None:
        return probes
    for header in headers:
        try:
            with open(header, encoding="utf-8") as handle:
                numbers = parse_unistd(handle.read())
        except OSError:
            continue
        if numbers:
            return SyscallTable(numbers, header)
    return _from_libseccomp()


def _from_probes() -> SyscallTable | None:
    """The probes' table (agent.probes.syscall_names: `load_syscall_table().names` maps
    number -> name). Names are matched exactly: policies must name syscalls as libseccomp
    and the tracepoints do, so its `sys_` and `syscall_<nr>` conveniences are not used here."""
    try:
        from agent.probes.syscall_names import load_syscall_table as load_probes_table
        table = load_probes_table()
        names = dict(getattr(table, "names", {}) or {})
    except Exception:  # noqa: BLE001 - absent or unreadable: fall back to our own reading
        return None
    if not names:
        return None
    return SyscallTable({str(name): int(nr) for nr, name in names.items()},
                        f"agent.probes.syscall_names ({getattr(table, 'source', None)})")


def _from_libseccomp() -> SyscallTable:
    try:
        import seccomp
    except ImportError:
        return SyscallTable({}, "none")
    numbers = {}
    for nr in range(0, 1024):
        try:
            name = seccomp.resolve_syscall(seccomp.Arch.NATIVE, nr)
        except Exception:  # noqa: BLE001 - an unnamed number
            continue
        if isinstance(name, bytes):
            name = name.decode()
        if name and not name.startswith("UNKNOWN"):
            numbers[name] = nr
    return SyscallTable(numbers, f"libseccomp ({platform.machine()})")


def known_syscall(table: SyscallTable) -> Callable[[str], bool]:
    """A checker; with an empty table (no source at all) every name passes, since refusing
    every policy on a host we cannot read would be worse than not checking names."""
    if not table.names:
        return lambda name: True
    return table
