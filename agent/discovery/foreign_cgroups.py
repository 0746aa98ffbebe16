"""Acting on the cgroups of observed (foreign) containers, and on Corral's own, through one driver.

Corral's drivers refuse any path outside their own parent. Policy actions (limits, throttle,
freeze, thaw, kill) must also work on containers docker, containerd, podman or systemd started,
so `ForeignCgroups` is a CgroupDriver whose ownership check asks the observed registry instead:
it reads and writes only directories of a container the registry currently lists. It reuses the
v2 and hybrid drivers' readers and writers (subclasses whose one ownership hook is replaced) and
never creates, joins or removes a cgroup: `create`, `add_process`, `remove` and `remove_parent`
raise (`_Refusals`, shared by both).

`HostCgroups(own, foreign)` routes each call to the foreign driver when the registry owns the
paths and to Corral's own driver otherwise; the daemon gives it to the metrics collector and
the policy actions, and keeps handing its own driver to the runtime.
"""
from __future__ import annotations

import os
from typing import Any, Callable

from agent.cgroups import files
from agent.cgroups.driver import CgroupDriver, CgroupPaths, CgroupStats, Limits
from agent.cgroups.hybrid import HybridDriver
from agent.cgroups.hybrid_stats import read_hybrid_stats
from agent.cgroups.v2 import V2Driver
from agent.errors import InvalidArgument, KernelError

_REFUSED = "Corral never creates, joins or removes a cgroup it did not create"


def _not_observed(paths: CgroupPaths) -> InvalidArgument:
    return InvalidArgument(f"cgroup {paths.unified or paths.controllers}: not the cgroup of an "
                           "observed container", hint="see `corral ps --all-cgroups`")


class _Refusals:
    """What a foreign driver never does: make, join or remove a cgroup, or name one of its own."""

    def create(self, name: str, limits: Limits) -> CgroupPaths:
        raise InvalidArgument(f"cannot create cgroup {name!r} for an observed container: {_REFUSED}")

    def add_process(self, paths: CgroupPaths, pid: int) -> None:
        raise InvalidArgument(f"cannot move process {pid} into an observed container's cgroup: {_REFUSED}")

    def remove(self, paths: CgroupPaths) -> None:
        raise InvalidArgument(f"cannot remove cgroup {paths.unified or paths.controllers}: {_REFUSED}")

    def paths_for(self, name: str) -> CgroupPaths:
        raise InvalidArgument(f"cannot locate cgroup {name!r}: observed containers are not named by Corral")

    def list_names(self) -> list[str]:
        return []                   # no cgroup below a parent of Corral's is foreign

    def parent_dirs(self) -> list[str]:
        return []

    def remove_parent(self) -> None:
        raise InvalidArgument(f"cannot remove a parent cgroup of observed containers: {_REFUSED}")


class _ForeignHybrid(_Refusals, HybridDriver):
    """The hybrid driver over observed containers' directories."""

    def __init__(self, owns: Callable[[CgroupPaths], bool], root: str, **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        self._owns = owns

    def _dirs(self, paths: CgroupPaths) -> list[str]:
        if not self._owns(paths):
            raise _not_observed(paths)
        return [d for d in [*dict.fromkeys(paths.controllers.values()), paths.unified] if d]

    def procs_files(self, paths: CgroupPaths) -> list[str]:
        # A v1-only foreign container has no unified directory ("").
        return [p for p in super().procs_files(paths) if os.path.dirname(p)]

    def procs(self, paths: CgroupPaths) -> list[int]:
        if paths.unified:
            return super().procs(paths)
        return self.pids(paths)

    def stats(self, paths: CgroupPaths) -> CgroupStats:
        if paths.unified:
            return super().stats(paths)
        read = self._read

        def v1_only(path: str) -> bytes:
            if path.startswith("/") and os.path.dirname(path) == "/":
                raise FileNotFoundError(path)      # a file of the absent unified directory
            return read(path)
        return read_hybrid_stats(paths, self.user_hz, v1_only)

    def _freeze(self, paths: CgroupPaths, frozen: bool) -> None:
        if paths.unified:
            super()._freeze(paths, frozen)
            return
        # No unified directory: only the v1 freezer can do it.
        self._dirs(paths)
        freezer = paths.controllers.get("freezer")
        if freezer is None:
            raise KernelError(f"cannot {'freeze' if frozen else 'thaw'} {paths.controllers}: the "
                              "container has neither a cgroup v2 directory nor a v1 freezer cgroup")
        state = os.path.join(freezer, "freezer.state")
        files.write_value(state, "FROZEN" if frozen else "THAWED")
        files.wait_for(lambda: (files.optional(str.strip, state) == "FROZEN") == frozen, self.freeze_timeout)

    def cgroup_id(self, paths: CgroupPaths) -> int:
        return os.stat(paths.unified).st_ino if paths.unified else 0


class _ForeignV2(_Refusals, V2Driver):
    """The v2 driver over observed containers' directories."""

    def __init__(self, owns: Callable[[CgroupPaths], bool], root: str, **kwargs: Any) -> None:
        super().__init__(root, **kwargs)
        self._owns = owns

    def _owned(self, paths: CgroupPaths) -> str:
        if not self._owns(paths):
            raise _not_observed(paths)
        return os.path.normpath(paths.unified)


def ForeignCgroups(mode: str, owns: Callable[[CgroupPaths], bool], root: str = "/sys/fs/cgroup",
                   **kwargs: Any) -> CgroupDriver:
    """The driver for observed containers on a host of `mode` ("v2" or "hybrid").

    `owns(paths)` is the observed registry's check (ObservedContainers.owns): any other path
    is refused before a file is touched.
    """
    if mode == "v2":
        return _ForeignV2(owns, root, **kwargs)
    if mode == "hybrid":
        return _ForeignHybrid(owns, root, **kwargs)
    raise InvalidArgument(f"cgroup mode {mode!r}: expected v2 or hybrid")


class HostCgroups(CgroupDriver):
    """Corral's own driver for its containers, the foreign one for observed containers.
    Naming (paths_for, list_names, parent_dirs, remove_parent) is Corral's own driver's."""

    def __init__(self, own: CgroupDriver, foreign: CgroupDriver, owns: Callable[[CgroupPaths], bool]) -> None:
        self.own = own
        self.foreign = foreign
        self._owns = owns
        self.mode = own.mode
        self.parent = own.parent

    def _for(self, paths: CgroupPaths) -> CgroupDriver:
        return self.foreign if self._owns(paths) else self.own

    def create(self, name: str, limits: Limits) -> CgroupPaths:
        return self.own.create(name, limits)

    def procs_files(self, paths: CgroupPaths) -> list[str]:
        return self._for(paths).procs_files(paths)

    def add_process(self, paths: CgroupPaths, pid: int) -> None:
        self._for(paths).add_process(paths, pid)

    def set_limits(self, paths: CgroupPaths, limits: Limits) -> None:
        self._for(paths).set_limits(paths, limits)

    def read_limits(self, paths: CgroupPaths) -> Limits:
        return self._for(paths).read_limits(paths)

    def stats(self, paths: CgroupPaths) -> CgroupStats:
        return self._for(paths).stats(paths)

    def pids(self, paths: CgroupPaths) -> list[int]:
        return self._for(paths).pids(paths)

    def procs(self, paths: CgroupPaths) -> list[int]:
        return self._for(paths).procs(paths)

    def freeze(self, paths: CgroupPaths) -> None:
        self._for(paths).freeze(paths)

    def thaw(self, paths: CgroupPaths) -> None:
        self._for(paths).thaw(paths)

    def kill(self, paths: CgroupPaths) -> None:
        self._for(paths).kill(paths)

    def remove(self, paths: CgroupPaths) -> None:
        self._for(paths).remove(paths)

    def exists(self, paths: CgroupPaths) -> bool:
        return self._for(paths).exists(paths)

    def cgroup_id(self, paths: CgroupPaths) -> int:
        return self._for(paths).cgroup_id(paths)

    def paths_for(self, name: str) -> CgroupPaths:
        return self.own.paths_for(name)

    def list_names(self) -> list[str]:
        return self.own.list_names()

    def parent_dirs(self) -> list[str]:
        return self.own.parent_dirs()

    def remove_parent(self) -> None:
        self.own.remove_parent()

    def close(self) -> None:
        """The foreign driver's open files (the daemon closes its own driver itself)."""
        self.foreign.close()
