"""The one syscall table: numbers and names of the running architecture, for the probes
(naming counted syscalls), the policies (checking and enforcing syscall rules) and bench/.

The table comes from `asm/unistd_64.h` (x86_64) or `asm-generic/unistd.h` (arm64 and the
other generic-table architectures), which Debian's linux-libc-dev installs; failing that from
libseccomp, which knows every architecture. Without either the table is empty and degrades
gracefully: numbers are named `syscall_<nr>`, only such names can be looked up, and policy
checks accept every name (refusing every policy on a host we cannot read would be worse than
not checking names). Number -1 is the probes' "other" bucket (32-bit compat calls and numbers
beyond the table).
"""
from __future__ import annotations

import difflib
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping

from agent.errors import InvalidArgument

OTHER = -1
_DEFINE = re.compile(r"^\s*#\s*define\s+__NR(3264)?_(\w+)\s+(\S+)", re.MULTILINE)
_HEADERS = {
    "x86_64": ("x86_64-linux-gnu/asm/unistd_64.h", "asm/unistd_64.h"),
    "aarch64": ("asm-generic/unistd.h",),
    "riscv64": ("asm-generic/unistd.h",),
    "loongarch64": ("asm-generic/unistd.h",),
}
DEFAULT_INCLUDE = (Path("/usr/include"),)


def parse_unistd(text: str) -> dict[int, str]:
    """number -> name from the `#define __NR_name N` lines of a unistd header.

    Aliases such as `#define __NR_fcntl __NR3264_fcntl` (asm-generic) resolve to the number;
    bookkeeping macros (`__NR_syscalls`, `__NR_arch_specific_syscall`) are skipped.
    """
    raw: dict[str, str] = {}
    generic: dict[str, str] = {}
    for match in _DEFINE.finditer(text):
        is_generic, name, value = match.groups()
        (generic if is_generic else raw).setdefault(name, value)
    numbers: dict[int, str] = {}
    for name, value in raw.items():
        if name in ("syscalls", "arch_specific_syscall"):
            continue
        alias = re.fullmatch(r"__NR3264_(\w+)", value)
        if alias:
            value = generic.get(alias.group(1), "")
        if value.isdigit():
            numbers.setdefault(int(value), name)
    return numbers


@dataclass(frozen=True)
class SyscallTable:
    """Both directions of the syscall table of one architecture."""

    arch: str
    names: Mapping[int, str] = field(default_factory=dict)   # number -> name
    source: str | None = None                                 # header it came from

    def __post_init__(self) -> None:
        object.__setattr__(self, "_numbers", {name: nr for nr, name in self.names.items()})

    def __len__(self) -> int:
        return len(self.names)

    def name(self, nr: int) -> str:
        """"getppid" for 110 on x86_64; "other" for -1; "syscall_<nr>" when unknown."""
        if nr == OTHER:
            return "other"
        return self.names.get(nr, f"syscall_{nr}")

    def number(self, name: str) -> int | None:
        """The number of a syscall name (`sys_` optional, `syscall_<nr>` accepted), or None."""
        bare = name.strip().lower().removeprefix("sys_")
        numbers: dict[str, int] = self._numbers  # type: ignore[attr-defined]
        if bare in numbers:
            return numbers[bare]
        generic = re.fullmatch(r"syscall_(\d+)", bare)
        return int(generic.group(1)) if generic else None

    def require(self, name: str) -> int:
        """The number of a syscall name (a policy's `syscalls: [ptrace]`); InvalidArgument with
        the closest name when there is none."""
        number = self.number(name)
        if number is not None:
            return number
        numbers: dict[str, int] = self._numbers  # type: ignore[attr-defined]
        if not numbers:
            raise InvalidArgument(
                f"syscall {name!r}: no syscall table for {self.arch}",
                hint="install linux-libc-dev (asm/unistd headers) or use syscall_<number>")
        bare = name.strip().lower().removeprefix("sys_")
        close = difflib.get_close_matches(bare, numbers, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"see {self.source}"
        raise InvalidArgument(f"syscall {name!r}: no such syscall on {self.arch}", hint=hint)


def load_syscall_table(machine: str | None = None, include_dirs: Iterable[Path] = DEFAULT_INCLUDE, *,
                       libseccomp: bool = True) -> SyscallTable:
    """The table of `machine` (default: this host's), from the first header found, else (for
    this host's architecture) from libseccomp, else empty."""
    arch = machine or platform.machine()
    for include in include_dirs:
        for relative in _HEADERS.get(arch, ()):
            path = Path(include) / relative
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            names = parse_unistd(text)
            if names:
                return SyscallTable(arch, names, str(path))
    if libseccomp and arch == platform.machine():
        names = _from_libseccomp()
        if names:
            return SyscallTable(arch, names, f"libseccomp ({arch})")
    return SyscallTable(arch, {}, None)


def _from_libseccomp() -> dict[int, str]:
    try:
        import seccomp
    except ImportError:
        return {}
    names = {}
    for nr in range(0, 1024):
        try:
            name = seccomp.resolve_syscall(seccomp.Arch.NATIVE, nr)
        except Exception:  # noqa: BLE001 - an unnamed number
            continue
        if isinstance(name, bytes):
            name = name.decode()
        if name and not name.startswith("UNKNOWN"):
            names[nr] = name
    return names


@dataclass(frozen=True)
class SyscallNames:
    """The policies' check of a syscall name: exactly as libseccomp and the tracepoints name it
    (no `sys_` or `syscall_<nr>` conveniences); `names` lists them all for "did you mean"."""

    names: frozenset[str]

    def __call__(self, name: str) -> bool:
        return name in self.names


def known_syscall(table: SyscallTable) -> Callable[[str], bool]:
    """A checker of policy syscall names; with an empty table every name passes."""
    if not table.names:
        return lambda name: True
    return SyscallNames(frozenset(table.names.values()))


def syscall_name(nr: int) -> str | None:
    """The host's name of syscall `nr` ("other" for -1), None when the table does not know it.

    Reads the header on every call (about a millisecond): callers such as the metrics
    collector keep the names they have asked for.
    """
    if nr == OTHER:
        return "other"
    return load_syscall_table().names.get(nr)
