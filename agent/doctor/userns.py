"""Whether this host can run `--userns auto` containers (docs/security.md, User namespaces):
subordinate ids for user corral, user namespace creation, idmapped layers under overlayfs
(else the slower chown fallback). Never required: without it only --userns auto is lost."""
from __future__ import annotations

import errno
from typing import Callable

from agent.doctor.isolation import NAMESPACES, unshare_in_child
from agent.doctor.kernel import describe_errno
from agent.doctor.result import CheckResult, HostPaths, passed, problem, warning
from agent.errors import CorralError
from agent.userns.allocator import SETUP_HINT, UsernsAllocator

CHECK = "user namespaces (--userns auto)"


def check_userns(paths: HostPaths, allocator: UsernsAllocator | None = None,
                 try_unshare: Callable[[int], int] = unshare_in_child,
                 try_idmap: Callable[[HostPaths], str | None] | None = None) -> CheckResult:
    allocator = allocator or UsernsAllocator()
    try:
        uids, _ = allocator.spans()
    except CorralError as exc:
        return problem(CHECK, exc.message, SETUP_HINT, required=False)
    code = try_unshare(NAMESPACES["user"][0])
    if code != 0:
        fix = "sysctl -w user.max_user_namespaces=10000" if code == errno.ENOSPC else \
            "boot a kernel built with CONFIG_USER_NS=y"
        return problem(CHECK, f"cannot create a user namespace: {describe_errno(code)}", fix, required=False)
    containers = sum(span.count for span in uids) // allocator.size
    why_not = (try_idmap or _idmapped_overlay)(paths)
    if why_not:
        return warning(CHECK, f"{containers} ranges of {allocator.size} ids for {allocator.user!r}; idmapped "
                       f"layers refused ({why_not}): each container's files are chowned instead (slower)",
                       "a kernel >= 6.13 with overlayfs and an image store on a filesystem that supports "
                       "idmapped mounts (ext4, xfs, btrfs, tmpfs)", required=False)
    return passed(CHECK, f"{containers} ranges of {allocator.size} ids for {allocator.user!r} in "
                  f"{allocator.subuid}; user namespaces and idmapped overlay layers work", required=False)


def _idmapped_overlay(paths: HostPaths) -> str | None:
    from agent.userns.ownership import try_idmapped_overlay
    return try_idmapped_overlay()
