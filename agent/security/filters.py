"""Compiling resolved profiles into the raw BPF the launcher installs, once per distinct input.

A container's filter depends only on its profile, its capability set and the policies' deny
list, and most containers share all three: compiling the default profile with libseccomp costs
milliseconds, so `FilterCache` compiles each distinct input once and keeps the result in a
content-addressed file (`<key>.bpf`) the launcher reads. The key covers everything the bytes
depend on, so a cached file is never stale.
"""
from __future__ import annotations

import hashlib
import json
import tempfile
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Iterable

from agent.atomic_file import write_atomically
from agent.errors import InvalidArgument
from agent.security.profile import Profile, Resolved, for_container

# Bump when the way rules become BPF changes: old cache files are then simply not found.
COMPILER_VERSION = 1


def compile_filter(resolved: Resolved, *, strict_names: Iterable[str] = ()) -> bytes:
    """The raw `struct sock_filter[]` for `resolved`. A syscall name this libseccomp does not
    know is skipped, as Docker does for profiles written for other kernels, except the names in
    `strict_names` (the policies' deny list), which must exist."""
    import seccomp  # python3-seccomp; imported here so modules that only describe need not have it

    strict = set(strict_names)
    rules = seccomp.SyscallFilter(defaction=_action(seccomp, resolved.default_action, resolved.default_errno))
    for arch in resolved.architectures:
        if arch == "NATIVE":
            continue
        try:
            rules.add_arch(getattr(seccomp.Arch, arch))
        except RuntimeError as exc:
            if "-17" not in str(exc):      # EEXIST: the native architecture, already there
                raise InvalidArgument(f"seccomp profile: architecture {arch}: {exc}") from None
    # A binary tree of syscalls instead of a linear list: fewer instructions per syscall.
    rules.set_attr(seccomp.Attr.CTL_OPTIMIZE, 2)
    arches = [seccomp.Arch.NATIVE] + [getattr(seccomp.Arch, a) for a in resolved.architectures if a != "NATIVE"]
    for rule in resolved.rules:
        action = _action(seccomp, rule.action, rule.errno)
        for name in rule.names:
            if not any(seccomp.resolve_syscall(arch, name) != -1 for arch in arches):
                if name in strict:
                    raise InvalidArgument(f"syscall {name!r}: libseccomp does not know it on this architecture",
                                          hint="check the policy with `corral policy check`")
                continue    # written for another kernel or architecture: skipped, as Docker does
            for conditions in _condition_sets(seccomp, rule):
                try:
                    rules.add_rule(action, name, *conditions)
                except RuntimeError as exc:
                    if "-17" in str(exc) or "-13" in str(exc):
                        continue    # EEXIST: same as an earlier rule; EACCES: same as the default
                    raise InvalidArgument(f"seccomp profile: syscall {name!r}: {exc}") from None
    with tempfile.TemporaryFile() as handle:
        rules.export_bpf(handle)
        handle.seek(0)
        return handle.read()


def _condition_sets(seccomp, rule) -> list[list]:
    """Conditions on different arguments are ANDed in one rule; several on the same argument
    become one rule each (ORed), as Docker's runtimes do, since libseccomp refuses them together."""
    if not rule.args:
        return [[]]
    indexes = [arg.index for arg in rule.args]
    conditions = [seccomp.Arg(arg.index, getattr(seccomp, arg.op), arg.value, arg.value_two) for arg in rule.args]
    if len(set(indexes)) == len(indexes):
        return [conditions]
    return [[condition] for condition in conditions]


def _action(seccomp, name: str, errno: int | None):
    if name == "allow":
        return seccomp.ALLOW
    if name == "errno":
        return seccomp.ERRNO(errno if errno is not None else 1)
    if name == "trace":
        return seccomp.TRACE(errno or 0)
    return {"kill_thread": seccomp.KILL, "kill_process": seccomp.KILL_PROCESS,
            "trap": seccomp.TRAP, "log": seccomp.LOG}[name]


class FilterCache:
    """Compiled filters by content, in `directory`; safe to share between threads."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._paths: dict[tuple, Path] = {}
        self._lock = threading.Lock()

    def path_for(self, profile: Profile, profile_digest: str, caps: Iterable[str],
                 denied: Iterable[str] = ()) -> Path:
        """The compiled filter of `profile` for a container with `caps` and the policies'
        `denied` syscalls; compiled on first use. `profile_digest` names the profile's content
        (computed once per profile by the caller, so a launch costs no hashing of rules)."""
        memo = (profile_digest, frozenset(caps), tuple(sorted(set(denied))))
        path = self._paths.get(memo)
        if path is not None and path.exists():
            return path
        with self._lock:
            path = self._paths.get(memo)
            if path is not None and path.exists():
                return path
            resolved = for_container(profile, memo[1], memo[2])
            key = hashlib.sha256(json.dumps([COMPILER_VERSION, asdict(resolved)], sort_keys=True)
                                 .encode()).hexdigest()
            path = self.directory / f"{key}.bpf"
            if not path.exists():
                self._write(path, compile_filter(resolved, strict_names=memo[2]))
            self._paths[memo] = path
            return path

    def _write(self, path: Path, data: bytes) -> None:
        # Content-addressed and rebuilt when missing: atomic for readers, no fsync needed.
        write_atomically(path, data, durable=False)
