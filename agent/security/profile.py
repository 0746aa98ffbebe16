"""Seccomp profiles: one model for our default profile and for Docker-format JSON files.

A profile is a default action plus rules; a rule may apply only when the container holds
certain capabilities (`includes.caps`) or lacks them (`excludes.caps`), or only on some
architectures, exactly as in Docker's format (moby `profiles/seccomp`). `for_container`
resolves those conditions for one capability set and architecture, and merges the policies'
deny rules, giving the `Resolved` rule list that `filters` compiles.
"""
from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import dataclass, field
from typing import Any, Iterable

from agent.errors import InvalidArgument

ACTIONS = {"SCMP_ACT_ALLOW": "allow", "SCMP_ACT_ERRNO": "errno", "SCMP_ACT_KILL": "kill_thread",
           "SCMP_ACT_KILL_THREAD": "kill_thread", "SCMP_ACT_KILL_PROCESS": "kill_process",
           "SCMP_ACT_TRAP": "trap", "SCMP_ACT_LOG": "log", "SCMP_ACT_TRACE": "trace"}
OPERATORS = {"SCMP_CMP_EQ": "EQ", "SCMP_CMP_NE": "NE", "SCMP_CMP_LT": "LT", "SCMP_CMP_LE": "LE",
             "SCMP_CMP_GT": "GT", "SCMP_CMP_GE": "GE", "SCMP_CMP_MASKED_EQ": "MASKED_EQ"}
ARCHES = {"SCMP_ARCH_X86_64": "X86_64", "SCMP_ARCH_X86": "X86", "SCMP_ARCH_X32": "X32",
          "SCMP_ARCH_AARCH64": "AARCH64", "SCMP_ARCH_ARM": "ARM", "SCMP_ARCH_RISCV64": "RISCV64",
          "SCMP_ARCH_PPC64LE": "PPC64LE", "SCMP_ARCH_S390X": "S390X", "SCMP_ARCH_S390": "S390",
          "SCMP_ARCH_MIPS": "MIPS", "SCMP_ARCH_MIPS64": "MIPS64", "SCMP_ARCH_MIPS64N32": "MIPS64N32",
          "SCMP_ARCH_MIPSEL": "MIPSEL", "SCMP_ARCH_MIPSEL64": "MIPSEL64",
          "SCMP_ARCH_MIPSEL64N32": "MIPSEL64N32", "SCMP_ARCH_PPC": "PPC", "SCMP_ARCH_PPC64": "PPC64"}
# `includes.arches` in Docker's format uses Go's names; uname's machine -> that name.
GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "riscv64": "riscv64", "ppc64le": "ppc64le",
           "s390x": "s390x", "i686": "x86", "armv7l": "arm"}
# Docker's archMap key for this machine.
NATIVE_ARCH = {"x86_64": "SCMP_ARCH_X86_64", "aarch64": "SCMP_ARCH_AARCH64",
               "riscv64": "SCMP_ARCH_RISCV64", "ppc64le": "SCMP_ARCH_PPC64LE", "s390x": "SCMP_ARCH_S390X"}
EPERM = 1
# Bounds that keep a hostile profile file from costing the daemon much.
MAX_PROFILE_BYTES = 1 << 20
MAX_RULES = 4096


@dataclass(frozen=True)
class Arg:
    """One argument condition: `args[index] OP value` (MASKED_EQ: `args[index] & value == value_two`)."""

    index: int
    op: str
    value: int
    value_two: int = 0


@dataclass(frozen=True)
class Rule:
    names: tuple[str, ...]
    action: str                                   # allow | errno | kill_thread | kill_process | trap | log | trace
    errno: int | None = None                      # for errno and trace
    args: tuple[Arg, ...] = ()
    caps: tuple[str, ...] = ()                    # applies only if the container has all of them
    not_caps: tuple[str, ...] = ()                # applies only if it has none of them
    arches: tuple[str, ...] = ()                  # Go names; applies only on these
    not_arches: tuple[str, ...] = ()
    min_kernel: tuple[int, int] | None = None


@dataclass(frozen=True)
class Profile:
    name: str                                     # "default", or "custom" for a file
    default_action: str
    default_errno: int | None
    architectures: tuple[str, ...]                # libseccomp names: X86_64, X86, X32, ...
    rules: tuple[Rule, ...] = field(default=())


@dataclass(frozen=True)
class Resolved:
    """A profile made concrete for one container: what `filters.compile_filter` takes."""

    default_action: str
    default_errno: int | None
    architectures: tuple[str, ...]
    rules: tuple[Rule, ...]                       # without capability/arch conditions


def for_container(profile: Profile, caps: Iterable[str], denied: Iterable[str] = (), *,
                  machine: str | None = None, kernel: tuple[int, int] | None = None) -> Resolved:
    """The rules that apply to a container holding `caps`; each `denied` syscall (the
    policies' deny rules) fails with EPERM whatever the profile said about it."""
    held = {f"CAP_{name}" for name in caps}
    machine = machine or platform.machine()
    go_arch = GO_ARCH.get(machine, machine)
    kernel = kernel or _kernel_version()
    blocked = sorted(set(denied))
    rules = []
    for rule in profile.rules:
        if rule.caps and not all(cap in held for cap in rule.caps):
            continue
        if rule.not_caps and any(cap in held for cap in rule.not_caps):
            continue
        if rule.arches and go_arch not in rule.arches:
            continue
        if rule.not_arches and go_arch in rule.not_arches:
            continue
        if rule.min_kernel and kernel < rule.min_kernel:
            continue
        names = tuple(n for n in rule.names if n not in blocked)
        if names:
            rules.append(Rule(names=names, action=rule.action, errno=rule.errno, args=rule.args))
    if blocked:
        rules.append(Rule(names=tuple(blocked), action="errno", errno=EPERM))
    return Resolved(profile.default_action, profile.default_errno, profile.architectures, tuple(rules))


def digest(text: str) -> str:
    """Names a profile file's content (cache keys, `inspect`)."""
    return hashlib.sha256(text.encode()).hexdigest()


def _kernel_version() -> tuple[int, int]:
    parts = platform.release().split(".")
    try:
        return int(parts[0]), int(parts[1].split("-")[0])
    except (IndexError, ValueError):
        return (0, 0)


# ---- Docker's JSON format ---------------------------------------------------------------

def from_docker_json(text: str, *, machine: str | None = None) -> Profile:
    """A profile in Docker's format (`docker run --security-opt seccomp=FILE`); a bad field is
    reported by its path, like `syscalls[3].args[0].op`."""
    if len(text.encode()) > MAX_PROFILE_BYTES:
        raise InvalidArgument(f"seccomp profile: larger than {MAX_PROFILE_BYTES} bytes")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidArgument(f"seccomp profile: not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InvalidArgument("seccomp profile: expected a JSON object")
    default_action = _action(data.get("defaultAction"), "defaultAction")
    default_errno = _int(data.get("defaultErrnoRet", EPERM if default_action == "errno" else None),
                         "defaultErrnoRet", optional=True)
    syscalls = data.get("syscalls") or []
    if not isinstance(syscalls, list) or len(syscalls) > MAX_RULES:
        raise InvalidArgument(f"seccomp profile: syscalls: expected a list of at most {MAX_RULES} rules")
    rules = tuple(_rule(item, f"syscalls[{i}]") for i, item in enumerate(syscalls))
    return Profile(name="custom", default_action=default_action, default_errno=default_errno,
                   architectures=_architectures(data, machine or platform.machine()), rules=rules)


def _architectures(data: dict, machine: str) -> tuple[str, ...]:
    """Docker's `archMap` (native entry and its sub-architectures) or `architectures`; none
    given means the native one only."""
    native = NATIVE_ARCH.get(machine)
    chosen: list[str] = []
    arch_map = data.get("archMap")
    if arch_map:
        if not isinstance(arch_map, list):
            raise InvalidArgument("seccomp profile: archMap: expected a list")
        for i, entry in enumerate(arch_map):
            if not isinstance(entry, dict):
                raise InvalidArgument(f"seccomp profile: archMap[{i}]: expected an object")
            if native and entry.get("architecture") == native:
                chosen = [native, *(entry.get("subArchitectures") or [])]
    elif data.get("architectures"):
        chosen = list(data["architectures"])
    if not chosen and native:
        chosen = [native]
    result = []
    for name in chosen:
        if name not in ARCHES:
            raise InvalidArgument(f"seccomp profile: architecture {name!r} is not known",
                                  hint=f"one of {', '.join(sorted(ARCHES))}")
        result.append(ARCHES[name])
    return tuple(dict.fromkeys(result))


def _rule(item: Any, where: str) -> Rule:
    if not isinstance(item, dict):
        raise InvalidArgument(f"seccomp profile: {where}: expected an object")
    names = item.get("names") or ([item["name"]] if item.get("name") else [])
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise InvalidArgument(f"seccomp profile: {where}.names: expected a non-empty list of syscall names")
    action = _action(item.get("action"), f"{where}.action")
    errno = _int(item.get("errnoRet"), f"{where}.errnoRet", optional=True)
    if action == "errno" and errno is None:
        errno = EPERM
    args = item.get("args") or []
    if not isinstance(args, list) or len(args) > 6:
        raise InvalidArgument(f"seccomp profile: {where}.args: expected a list of at most 6 conditions")
    includes = _object(item.get("includes"), f"{where}.includes")
    excludes = _object(item.get("excludes"), f"{where}.excludes")
    min_kernel = None
    if includes.get("minKernel"):
        try:
            major, minor = str(includes["minKernel"]).split(".")[:2]
            min_kernel = (int(major), int(minor))
        except ValueError:
            raise InvalidArgument(f"seccomp profile: {where}.includes.minKernel: expected like 4.8") from None
    return Rule(names=tuple(names), action=action, errno=errno,
                args=tuple(_arg(a, f"{where}.args[{j}]") for j, a in enumerate(args)),
                caps=_strings(includes.get("caps"), f"{where}.includes.caps"),
                not_caps=_strings(excludes.get("caps"), f"{where}.excludes.caps"),
                arches=_strings(includes.get("arches"), f"{where}.includes.arches"),
                not_arches=_strings(excludes.get("arches"), f"{where}.excludes.arches"),
                min_kernel=min_kernel)


def _arg(item: Any, where: str) -> Arg:
    if not isinstance(item, dict):
        raise InvalidArgument(f"seccomp profile: {where}: expected an object")
    index = _int(item.get("index"), f"{where}.index")
    if not 0 <= index <= 5:
        raise InvalidArgument(f"seccomp profile: {where}.index: must be 0 to 5, got {index}")
    op = item.get("op")
    if op not in OPERATORS:
        raise InvalidArgument(f"seccomp profile: {where}.op: {op!r} is not one of {', '.join(OPERATORS)}")
    return Arg(index=index, op=OPERATORS[op], value=_int(item.get("value", 0), f"{where}.value"),
               value_two=_int(item.get("valueTwo", 0), f"{where}.valueTwo"))


def _action(value: Any, where: str) -> str:
    if value not in ACTIONS:
        raise InvalidArgument(f"seccomp profile: {where}: {value!r} is not one of {', '.join(ACTIONS)}",
                              hint="SCMP_ACT_NOTIFY needs a listener Corral does not run")
    return ACTIONS[value]


def _int(value: Any, where: str, *, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 64:
        raise InvalidArgument(f"seccomp profile: {where}: expected an unsigned integer, got {value!r}")
    return value


def _object(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument(f"seccomp profile: {where}: expected an object")
    return value


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"seccomp profile: {where}: expected a list of strings")
    return tuple(value)
