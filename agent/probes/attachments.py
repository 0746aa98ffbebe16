"""Cgroup program attachments per container: one named set of loaded cgroup programs (the
cgroup_skb counters, or the sock_addr egress programs) put on a container's v2 directory and
taken off again. Both sets go through here, so attaching, replacing a crashed daemon's
leftovers and detaching are written once.

Attachments outlive the process that made them (until detached or the cgroup is removed), so
attaching then detaches programs of the same name that are not ours (an earlier daemon's:
ours go on first, so pinned enforcement has no gap), and detaching also removes such leftovers. A directory whose inode is no longer the container's cgroup id was
removed and its name reused: it is left alone.
"""
from __future__ import annotations

import logging
import os
from typing import Callable, Mapping

from agent.errors import KernelError
from agent.probes import cgroup_programs

log = logging.getLogger("corral.probes")


class CgroupAttachments:
    """`programs`: function name -> attach type; `fds` are filled at load (empty: not loaded).
    `on_error` counts a failure in the probes' error figures."""

    def __init__(self, what: str, programs: Mapping[str, int], on_error: Callable[[], None]) -> None:
        self.what = what
        self.programs = dict(programs)
        self.fds: dict[str, int] = {}
        self.dirs: dict[int, str] = {}          # cgroup id -> directory our programs are on
        self._on_error = on_error

    @property
    def loaded(self) -> bool:
        return bool(self.fds)

    def attach(self, cgroup_id: int, directory: str) -> None:
        """Put every program on `directory` that the kernel does not list there (so a program
        detached behind our back is put back); all or none (KernelError, nothing left attached)."""
        try:
            for name, attach_type in self.programs.items():
                own = cgroup_programs.program_id(self.fds[name])
                # Ours first, then the leftovers off: a rule an earlier daemon left in force
                # never has a gap.
                if own not in cgroup_programs.attached_programs(directory, attach_type):
                    cgroup_programs.attach(directory, self.fds[name], attach_type)
                cgroup_programs.detach_stale(directory, attach_type, {name}, own)
        except (KernelError, OSError) as error:
            self._on_error()
            self.dirs[cgroup_id] = directory
            self.detach(cgroup_id, directory)
            raise KernelError(f"attaching the {self.what} programs to {directory}: {error}",
                              hint="the directory must be the container's cgroup v2 directory") from None
        self.dirs[cgroup_id] = directory

    def detach(self, cgroup_id: int, directory: str | None) -> None:
        """Take our programs (and a crashed daemon's) off the container's directory."""
        directory = self.dirs.pop(cgroup_id, None) or directory
        if not directory or not self.fds:
            return
        try:
            if os.stat(directory).st_ino != cgroup_id:
                return                              # removed, and the name reused: not ours
        except OSError:
            return                                  # removed: the attachments went with it
        for name, attach_type in self.programs.items():
            try:
                cgroup_programs.detach(directory, self.fds[name], attach_type)
                cgroup_programs.detach_stale(directory, attach_type, {name}, -1)
            except KernelError as error:
                self._on_error()
                log.warning("%s: cannot detach %s from %s: %s", self.what, name, directory, error)

    def missing(self, directory: str) -> tuple[str, ...]:
        """The names of our programs that the kernel does not list on `directory` (asked with
        BPF_PROG_QUERY, so a program detached behind our back shows here)."""
        gone = []
        for name, attach_type in self.programs.items():
            fd = self.fds.get(name)
            if fd is None or cgroup_programs.program_id(fd) not in cgroup_programs.attached_programs(directory, attach_type):
                gone.append(name)
        return tuple(gone)

    def detach_leftovers(self, directory: str) -> int:
        """Detach programs of our names that are not ours (an earlier daemon's) from a directory
        we have not attached to; how many."""
        count = 0
        for name, attach_type in self.programs.items():
            try:
                count += cgroup_programs.detach_stale(directory, attach_type, {name}, -1)
            except KernelError as error:
                log.warning("%s: cannot detach leftovers from %s: %s", self.what, directory, error)
        return count

    def detach_all(self) -> None:
        for cgroup_id in list(self.dirs):
            self.detach(cgroup_id, None)

    def unload(self) -> None:
        self.dirs.clear()
        self.fds.clear()
