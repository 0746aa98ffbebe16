"""Which device nodes a container may create and open: one rule list for both cgroup modes.

Docker's default: any character or block node may be created (`mknod`, access `m`), but only
null, zero, full, random, urandom, tty, console, ptmx and the pty slaves may be read or
written. `--device HOST[:CTR[:rwm]]` adds one rule for the host node's type and numbers.

The kernel enforces the list: on hybrid hosts through the v1 `devices` controller
(`v1_lines()`: "a" to devices.deny, then each rule to devices.allow), on cgroup v2 through the
BPF_CGROUP_DEVICE program in probes/devices.c (`encode()` builds its table). Only rules that
allow are written; everything else is refused with EPERM.
"""
from __future__ import annotations

import ctypes as ct
import os
import stat
from dataclasses import dataclass
from typing import Callable, Iterable, Protocol, Sequence

from agent.errors import InvalidArgument

ACCESS = "rwm"
_KIND_BITS = {"b": 1, "c": 2, "a": 3}           # BPF_DEVCG_DEV_BLOCK 1, _CHAR 2
_ACCESS_BITS = {"m": 1, "r": 2, "w": 4}         # BPF_DEVCG_ACC_MKNOD 1, _READ 2, _WRITE 4
ANY = 0xFFFFFFFF                                # DEVICE_ANY in probes/devices.c
MAX_RULES = 64                                  # DEVICE_MAX_RULES in probes/devices.c


def _check_access(access: str, what: str) -> None:
    if not access or not set(access) <= set(ACCESS) or len(set(access)) != len(access):
        raise InvalidArgument(f"{what}: access {access!r} must be letters of rwm, each once")


@dataclass(frozen=True)
class DeviceRule:
    """Allow `access` (a subset of "rwm") on devices of `kind` ("c", "b" or "a" for both)
    numbered major:minor; None stands for every number ("*")."""

    kind: str
    major: int | None
    minor: int | None
    access: str = ACCESS

    def __post_init__(self) -> None:
        if self.kind not in _KIND_BITS:
            raise InvalidArgument(f"device rule type {self.kind!r}: expected c, b or a")
        _check_access(self.access, f"device rule {self.kind} {self.major}:{self.minor}")
        for number in (self.major, self.minor):
            if number is not None and not 0 <= number < ANY:
                raise InvalidArgument(f"device number {number}: out of range")

    def v1_line(self) -> str:
        """The rule as the v1 devices controller reads it: `c 1:3 rwm`."""
        def num(n: int | None) -> str:
            return "*" if n is None else str(n)
        return f"{self.kind} {num(self.major)}:{num(self.minor)} {self.access}"


def _char(major: int, minor: int | None) -> DeviceRule:
    return DeviceRule("c", major, minor, ACCESS)


# runc's and Docker's default allow list (plus /dev/console, which Docker also allows).
DEFAULT_RULES: tuple[DeviceRule, ...] = (
    DeviceRule("c", None, None, "m"),   # mknod of any character device...
    DeviceRule("b", None, None, "m"),   # ...and block device; opening them is refused
    _char(1, 3),                        # /dev/null
    _char(1, 5),                        # /dev/zero
    _char(1, 7),                        # /dev/full
    _char(1, 8),                        # /dev/random
    _char(1, 9),                        # /dev/urandom
    _char(5, 0),                        # /dev/tty
    _char(5, 1),                        # /dev/console
    _char(5, 2),                        # /dev/ptmx
    _char(136, None),                   # /dev/pts/*
)


def rule_for(host: str, access: str = ACCESS,
             stat_path: Callable[[str], os.stat_result] = os.stat) -> DeviceRule:
    """The allow rule for the host device node `host` (`--device`); InvalidArgument when it is
    not a character or block device."""
    try:
        info = stat_path(host)
    except OSError as error:
        raise InvalidArgument(f"device {host}: {error.strerror}") from None
    if stat.S_ISCHR(info.st_mode):
        kind = "c"
    elif stat.S_ISBLK(info.st_mode):
        kind = "b"
    else:
        raise InvalidArgument(f"device {host}: not a character or block device")
    return DeviceRule(kind, os.major(info.st_rdev), os.minor(info.st_rdev), access)


def container_rules(exposed: Iterable[DeviceRule] = ()) -> tuple[DeviceRule, ...]:
    """Docker's defaults plus the rules of the container's --device options."""
    rules = DEFAULT_RULES + tuple(exposed)
    if len(rules) > MAX_RULES:
        raise InvalidArgument(f"devices: at most {MAX_RULES - len(DEFAULT_RULES)} --device options")
    return rules


def v1_lines(rules: Sequence[DeviceRule]) -> list[str]:
    """What the v1 controller is given, in order: deny everything, then allow each rule."""
    return [rule.v1_line() for rule in rules]


# --- the BPF table (mirrors struct device_rule / struct device_table in probes/devices.c) -----

class DeviceRuleC(ct.Structure):
    _fields_ = [("type", ct.c_uint32), ("access", ct.c_uint32),
                ("major", ct.c_uint32), ("minor", ct.c_uint32)]


class DeviceTableC(ct.Structure):
    _fields_ = [("count", ct.c_uint32), ("pad", ct.c_uint32), ("rules", DeviceRuleC * MAX_RULES)]


def encode(rules: Sequence[DeviceRule]) -> DeviceTableC:
    if len(rules) > MAX_RULES:
        raise InvalidArgument(f"devices: {len(rules)} rules, the table holds {MAX_RULES}")
    table = DeviceTableC()
    table.count = len(rules)
    for i, rule in enumerate(rules):
        table.rules[i] = DeviceRuleC(
            _KIND_BITS[rule.kind], sum(_ACCESS_BITS[a] for a in set(rule.access)),
            ANY if rule.major is None else rule.major, ANY if rule.minor is None else rule.minor)
    return table


class DeviceGuard(Protocol):
    """Puts a rule list in force on a v2 directory (the BPF program), and takes it off."""

    def apply(self, unified_dir: str, rules: Sequence[DeviceRule]) -> None: ...

    def release(self, unified_dir: str) -> None: ...
