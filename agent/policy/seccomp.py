"""A filter of a policy's deny rules alone, in the raw form the launcher installs.

Containers get their deny rules merged into their seccomp profile (agent/security); this is
the same compiler with an allow-everything profile, for tools and tests that want only the
deny list (`corral-launch --seccomp FILE` installs either).
"""
from __future__ import annotations

import errno
from typing import Iterable

from agent.atomic_file import write_atomically


def filter_bytes(denied: Iterable[str], *, error: int = errno.EPERM) -> bytes:
    """Allow everything except the denied syscalls, which fail with `error`."""
    from agent.security.container_filter import ALLOW_ALL
    from agent.security.filters import compile_filter
    from agent.security.profile import Resolved, Rule

    names = tuple(sorted(set(denied)))
    resolved = Resolved(ALLOW_ALL.default_action, None, ALLOW_ALL.architectures,
                        (Rule(names=names, action="errno", errno=error),) if names else ())
    return compile_filter(resolved, strict_names=names)


def export_filter(denied: Iterable[str], path: str, *, error: int = errno.EPERM) -> str:
    """Write the raw filter for the launcher to `path` atomically; returns `path`."""
    data = filter_bytes(denied, error=error)
    write_atomically(path, data, durable=False)     # written again at every start
    return path
