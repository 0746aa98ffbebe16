"""The hybrid driver: v1 controllers for limits and stats, a v2 directory for everything else.

On hybrid hosts the memory, cpu, cpuacct, pids and freezer controllers are bound to v1
hierarchies (<root>/<controller>, or a joint mount such as <root>/cpu,cpuacct), and the
cgroup2 tree at <root>/unified has no controllers. A container therefore gets one directory
per v1 hierarchy, <root>/<controller>/<parent>/<name>, for its limits and figures, and one at
<root>/unified/<parent>/<name> whose inode is its cgroup id and which carries freeze
(cgroup.freeze), kill (cgroup.kill), PSI (*.pressure), cgroup.events and BPF attachments.
"""
from __future__ import annotations

import logging
import os
import signal
from typing import Sequence

from agent.cgroups import files, io, kept_files
from agent.cgroups.devices import DeviceGuard, DeviceRule, v1_lines
from agent.cgroups.driver import CgroupDriver, CgroupPaths, CgroupStats, Limits
from agent.cgroups.hybrid_stats import read_hybrid_stats
from agent.cgroups.io import BlockIo
from agent.cgroups.v2 import freeze_unified, kill_unified
from agent.errors import Conflict, InvalidArgument, KernelError, NotFound

log = logging.getLogger(__name__)
CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "freezer", "devices", "blkio")
LIMIT_CONTROLLER = {"memory_bytes": "memory", "cpu_quota_us": "cpu", "pids_max": "pids"}


def find_hierarchy(root: str, controller: str) -> str | None:
    """The mount point of a v1 controller: <root>/<controller> or a joint "a,b" mount."""
    direct = os.path.join(root, controller)
    if os.path.isfile(os.path.join(direct, "cgroup.procs")):
        return direct
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return None
    for entry in entries:
        if controller in entry.name.split(",") and os.path.isfile(os.path.join(entry.path, "cgroup.procs")):
            return entry.path
    return None


class HybridDriver(CgroupDriver):
    """Cgroups of containers on a host with v1 controllers and a cgroup2 tree at <root>/unified."""

    mode = "hybrid"

    def __init__(self, root: str = "/sys/fs/cgroup", parent: str = "corral", *,
                 unified_root: str | None = None, remove_timeout: float = 5.0,
                 freeze_timeout: float = 2.0, user_hz: int | None = None,
                 keep_files_open: bool | None = None, devices: DeviceGuard | None = None,
                 io_paths: Sequence[str] = ()) -> None:
        self.root = root
        # Where containers write (Corral's state: layers, volumes): the disks whose block I/O
        # v1 is to count (agent/cgroups/io.py), set up once, at the first create.
        self._io_paths: Sequence[str] | None = io_paths
        # Devices: the v1 controller where it is mounted, else the v2 BPF program (made on use).
        self._devices = devices
        self.parent = files.check_name(parent, "cgroup parent")
        self.unified_root = unified_root or os.path.join(root, "unified")
        self.remove_timeout = remove_timeout
        self.freeze_timeout = freeze_timeout
        # cpuacct.stat counts USER_HZ ticks.
        self.user_hz = user_hz or os.sysconf("SC_CLK_TCK")
        # controller -> the parent dir in its hierarchy; controllers sharing a joint mount
        # share a directory.
        self.hierarchies: dict[str, str] = {}
        mounts: dict[str, str] = {}   # real path -> the first name it was found under
        for controller in CONTROLLERS:
            mount = find_hierarchy(root, controller)
            if mount is not None:
                # cpu and cpuacct are often one mount reached through two symlinks.
                mount = mounts.setdefault(os.path.realpath(mount), mount)
                self.hierarchies[controller] = os.path.join(mount, self.parent)
        self.unified_parent = os.path.join(self.unified_root, self.parent)
        # Stats re-read the same files every scrape: keep them open where that is safe
        # (cgroupfs; see kept_files.OpenFiles). None: decide from the mounts.
        if keep_files_open is None:
            keep_files_open = kept_files.all_on_cgroupfs(os.path.dirname(d)
                                                         for d in [*self.hierarchies.values(), self.unified_parent])
        self._open_files = kept_files.OpenFiles() if keep_files_open else None
        self._read = self._open_files.read if self._open_files is not None else files.read_bytes

    # --- naming -------------------------------------------------------------------------------

    def paths_for(self, name: str) -> CgroupPaths:
        """Where container `name`'s cgroups are (whether or not they exist)."""
        files.check_name(name)
        return CgroupPaths(unified=os.path.join(self.unified_parent, name),
                           controllers={c: os.path.join(d, name) for c, d in self.hierarchies.items()})

    def parent_dirs(self) -> list[str]:
        """The parent directory in every hierarchy, the unified one last."""
        return _unique(list(self.hierarchies.values())) + [self.unified_parent]

    def list_names(self) -> list[str]:
        """Names of the cgroups below the parent in any hierarchy (for reconciling)."""
        names: set[str] = set()
        for parent in self.parent_dirs():
            try:
                names.update(e.name for e in os.scandir(parent) if e.is_dir(follow_symlinks=False))
            except FileNotFoundError:
                continue
        return sorted(names)

    def remove_parent(self) -> None:
        """Remove the (empty) parent directories; for tests and uninstall."""
        for parent in self.parent_dirs():
            files.remove_tree(parent, timeout=self.remove_timeout)

    def _dirs(self, paths: CgroupPaths) -> list[str]:
        """Every directory of the container, checked to be ours; v1 first, unified last."""
        parents = {os.path.normpath(p) for p in self.parent_dirs()}
        dirs = _unique(list(paths.controllers.values())) + [paths.unified]
        for path in dirs:
            if os.path.dirname(os.path.normpath(path)) not in parents:
                raise InvalidArgument(f"cgroup {path}: not below any of {sorted(parents)}; "
                                      "Corral only touches cgroups it created")
        return dirs

    # --- lifecycle ------------------------------------------------------------------------------

    def create(self, name: str, limits: Limits) -> CgroupPaths:
        paths = self.paths_for(name)
        for field_name, controller in LIMIT_CONTROLLER.items():
            value = getattr(limits, field_name)
            if value is not None and controller not in self.hierarchies:
                raise KernelError(f"cannot limit {controller} to {value}: no v1 {controller} "
                                  f"hierarchy is mounted under {self.root}",
                                  hint=f"mount it: mkdir -p {self.root}/{controller} && "
                                       f"mount -t cgroup -o {controller} cgroup {self.root}/{controller}")
        made: list[str] = []
        try:
            for path in self._dirs(paths):
                try:
                    files.make_dir(path, exist_ok=False, parent=True)
                except FileExistsError:
                    raise Conflict(f"cgroup {path} already exists",
                                   hint="a container of that name was not cleaned up; remove it first") from None
                made.append(path)
            self.set_limits(paths, limits)
            self._enable_io_accounting()
        except BaseException:
            for path in reversed(made):
                files.remove_tree(path, timeout=self.remove_timeout)
            raise
        return paths

    def _enable_io_accounting(self) -> None:
        if not self._io_paths or "blkio" not in self.hierarchies:
            return
        disks = io.disks_under(self._io_paths)
        self._io_paths = None                      # once: what it sets up is the disk's, for good
        try:
            io.enable_v1_accounting(self.hierarchies["blkio"], disks)
        except KernelError as error:
            log.warning("block I/O figures stay 0: %s", error)

    def block_io(self, paths: CgroupPaths) -> BlockIo:
        blkio = paths.controllers.get("blkio")
        if blkio is None:                          # a container made before Corral joined blkio
            return BlockIo()
        return io.read_v1(files.read_bytes, blkio)

    def procs_files(self, paths: CgroupPaths) -> list[str]:
        return [os.path.join(d, "cgroup.procs") for d in _unique(list(paths.controllers.values()))
                + [paths.unified]]

    def oom_kills(self, paths: CgroupPaths) -> int | None:
        memory = paths.controllers.get("memory")
        if memory is None:
            return None
        try:
            return files.keyed_value(files.read_bytes(os.path.join(memory, "memory.oom_control")), b"oom_kill")
        except OSError:
            return None

    def placement(self, paths: CgroupPaths) -> list[str]:
        self._dirs(paths)
        return self.procs_files(paths)

    def add_process(self, paths: CgroupPaths, pid: int) -> None:
        self._dirs(paths)
        for procs in self.procs_files(paths):
            files.write_value(procs, pid, hint=f"is process {pid} still alive?")

    def set_limits(self, paths: CgroupPaths, limits: Limits) -> None:
        self._dirs(paths)
        ctl = paths.controllers
        if "memory" in ctl:
            files.write_value(os.path.join(ctl["memory"], "memory.limit_in_bytes"),
                              -1 if limits.memory_bytes is None else limits.memory_bytes)
        elif limits.memory_bytes is not None:
            raise KernelError(f"cannot limit memory to {limits.memory_bytes}: the cgroup has no memory hierarchy")
        if "cpu" in ctl:
            # The period first: a quota is checked against the period in force.
            files.write_value(os.path.join(ctl["cpu"], "cpu.cfs_period_us"), limits.cpu_period_us)
            files.write_value(os.path.join(ctl["cpu"], "cpu.cfs_quota_us"),
                              -1 if limits.cpu_quota_us is None else limits.cpu_quota_us)
        elif limits.cpu_quota_us is not None:
            raise KernelError(f"cannot set a cpu quota of {limits.cpu_quota_us}us: the cgroup has no cpu hierarchy")
        if "pids" in ctl:
            files.write_value(os.path.join(ctl["pids"], "pids.max"),
                              "max" if limits.pids_max is None else limits.pids_max)
        elif limits.pids_max is not None:
            raise KernelError(f"cannot limit pids to {limits.pids_max}: the cgroup has no pids hierarchy")

    def set_devices(self, paths: CgroupPaths, rules: Sequence[DeviceRule]) -> None:
        self._dirs(paths)
        directory = paths.controllers.get("devices")
        if directory is None:
            if self._devices is None:
                from agent.cgroups.device_program import DeviceProgram
                self._devices = DeviceProgram()
            self._devices.apply(paths.unified, rules)
            return
        # Deny everything first (this also empties the inherited allow list), then allow.
        files.write_value(os.path.join(directory, "devices.deny"), "a")
        for line in v1_lines(rules):
            files.write_value(os.path.join(directory, "devices.allow"), line)

    def read_limits(self, paths: CgroupPaths) -> Limits:
        if not self.exists(paths):
            raise NotFound(f"cgroup {paths.unified} does not exist")
        ctl = paths.controllers
        memory = cpu = pids = ""
        if "memory" in ctl:
            memory = os.path.join(ctl["memory"], "memory.limit_in_bytes")
        if "cpu" in ctl:
            cpu = ctl["cpu"]
        if "pids" in ctl:
            pids = os.path.join(ctl["pids"], "pids.max")
        period = files.optional_int(os.path.join(cpu, "cpu.cfs_period_us")) if cpu else None
        return Limits(
            memory_bytes=files.optional(files.parse_v1_limit, memory) if memory else None,
            cpu_quota_us=files.optional(files.parse_v1_limit, os.path.join(cpu, "cpu.cfs_quota_us")) if cpu else None,
            cpu_period_us=period or 100_000,
            pids_max=files.optional(files.parse_v1_limit, pids) if pids else None)

    def stats(self, paths: CgroupPaths) -> CgroupStats:
        return read_hybrid_stats(paths, self.user_hz, self._read)

    def pids(self, paths: CgroupPaths) -> list[int]:
        found: set[int] = set()
        for procs in self.procs_files(paths):
            # Opened afresh each time: a v1 cgroup.procs kept open goes on answering the pid
            # list the kernel cached at its first read (cgroup1_pidlist_start reuses it).
            found.update(files.pids_of(files.optional_bytes(files.read_bytes, procs)) or [])
        return sorted(found)

    def procs(self, paths: CgroupPaths) -> list[int]:
        """Pids listed in the unified cgroup.procs, in one read: for observers (metrics).

        Every process of a container is in its unified directory too (its init is born there or
        has it written last, and children inherit every hierarchy), so this is the container's processes;
        `pids()` also reads the v1 lists, to find a process that joined only some of them.
        The unified cgroup.procs is a v2 file, which kernfs lists afresh on every read from
        offset 0, so it may be kept open.
        """
        return files.pids_of(files.optional_bytes(self._read, os.path.join(paths.unified, "cgroup.procs"))) or []

    def freeze(self, paths: CgroupPaths) -> None:
        self._freeze(paths, True)

    def thaw(self, paths: CgroupPaths) -> None:
        self._freeze(paths, False)

    def _freeze(self, paths: CgroupPaths, frozen: bool) -> None:
        """The v2 cgroup.freeze where the kernel has it (5.2+), else the v1 freezer."""
        self._dirs(paths)
        if os.path.exists(os.path.join(paths.unified, "cgroup.freeze")):
            freeze_unified(paths.unified, frozen, self.freeze_timeout)
            return
        freezer = paths.controllers.get("freezer")
        if freezer is None:
            raise KernelError(f"cannot {'freeze' if frozen else 'thaw'} {paths.unified}: neither "
                              "cgroup.freeze nor a v1 freezer hierarchy is available",
                              hint="use a kernel of 5.2 or later, or mount the v1 freezer")
        state = os.path.join(freezer, "freezer.state")
        files.write_value(state, "FROZEN" if frozen else "THAWED")
        files.wait_for(lambda: (files.optional(str.strip, state) == "FROZEN") == frozen,
                       self.freeze_timeout)

    def kill(self, paths: CgroupPaths) -> None:
        self._dirs(paths)
        # (An observed v1-only container has no unified directory: only the v1 loop applies.)
        if paths.unified and os.path.exists(os.path.join(paths.unified, "cgroup.kill")):
            kill_unified(paths.unified, [])
        # A process that joined only some hierarchies (add_process failed half-way) is not in
        # the unified cgroup.procs; it must not keep a v1 directory busy.
        for pid in self.pids(paths):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
        # Tasks frozen by the v1 freezer die only once thawed (v2-frozen ones die at once).
        freezer = paths.controllers.get("freezer")
        if freezer and files.optional(str.strip, os.path.join(freezer, "freezer.state")) not in (None, "THAWED"):
            files.write_value(os.path.join(freezer, "freezer.state"), "THAWED")

    def remove(self, paths: CgroupPaths) -> None:
        dirs = self._dirs(paths)
        if self._devices is not None and paths.unified:
            self._devices.release(paths.unified)
        if files.remove_empty_cgroups(dirs, self._open_files):
            return
        if self.pids(paths):
            self.kill(paths)
        files.remove_cgroups(dirs, self._open_files, timeout=self.remove_timeout)

    def close(self) -> None:
        """Close the cgroup files kept open for stats (the driver stays usable)."""
        if self._open_files is not None:
            self._open_files.close()
        close = getattr(self._devices, "close", None)
        if close is not None:
            close()

    def exists(self, paths: CgroupPaths) -> bool:
        return any(os.path.isdir(p) for p in [paths.unified, *paths.controllers.values()])


def _unique(items: list[str]) -> list[str]:
    """Order-preserving de-duplication (controllers of a joint mount share a directory)."""
    return list(dict.fromkeys(items))
