"""A filter of a policy's deny rules alone, in the raw form the launcher installs.

Containers get their deny rules merged into their seccomp profile (agent/security); this is
the same compiler with an allow-everything profile, for tools and tests that want only the
deny list (`corral-launch --seccomp FILE` installs either).
"""
from __future__ import annotations

import errno
import os
import tempfile
from typing import Iterable

from agent.errors import KernelError


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
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".seccomp-", dir=directory)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
    except OSError as exc:
        raise KernelError(f"cannot write the seccomp filter {path}: {exc.strerror}") from None
    return path
