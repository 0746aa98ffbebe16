"""Seccomp filters from a policy's deny rules, in the raw form the launcher installs.

`corral-launch --seccomp FILE` reads an array of `struct sock_filter` (what libseccomp's
`export_bpf` writes) and installs it right before exec. The filter allows everything except
the denied syscalls, which fail with EPERM, as Docker's profile does for what it blocks.
"""
from __future__ import annotations

import errno
import tempfile
from typing import Iterable

from agent.atomic_file import replacing
from agent.errors import InvalidArgument


def build_filter(denied: Iterable[str], *, error: int = errno.EPERM):
    """A libseccomp SyscallFilter: ALLOW by default, ERRNO(error) for each denied name."""
    import seccomp  # python3-seccomp; imported here so modules that only check need not have it

    rules = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for name in sorted(set(denied)):
        try:
            rules.add_rule(seccomp.ERRNO(error), name)
        except (RuntimeError, ValueError, OSError) as exc:
            raise InvalidArgument(f"syscall {name!r}: libseccomp cannot deny it on this architecture ({exc})",
                                  hint="check the policy with `corral policy check`") from None
    return rules


def export_filter(denied: Iterable[str], path: str, *, error: int = errno.EPERM) -> str:
    """Write the raw filter for the launcher to `path` atomically; returns `path`."""
    rules = build_filter(denied, error=error)
    # Not durable: the filter is written again at every start, so a power loss cannot lose it.
    with replacing(path, durable=False) as out:
        rules.export_bpf(out)
    return path


def filter_bytes(denied: Iterable[str], *, error: int = errno.EPERM) -> bytes:
    """The raw filter as bytes (for tests and for `policy explain --dump-seccomp`)."""
    rules = build_filter(denied, error=error)
    with tempfile.TemporaryFile() as handle:
        rules.export_bpf(handle)
        handle.seek(0)
        return handle.read()
