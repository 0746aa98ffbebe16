"""The hybrid driver: v1 controllers for limits and stats, a v2 directory for everything else.

On hybrid hosts the memory, cpu, cpuacct, pids and freezer controllers are bound to v1
hierarchies (<root>/<controller>, or a joint mount such as <root>/cpu,cpuacct), and the
cgroup2 tree at <root>/unified has no controllers. A container therefore gets one directory
per v1 hierarchy, <root>/<controller>/<parent>/<name>, for its limits and figures, and one at
<root>/unified/<parent>/<name> whose inode is its cgroup id and which carries freeze
(cgroup.freeze), kill (cgroup.kill), PSI (*.pressure), cgroup.events and BPF attachments.
"""
from __future__ import annotations

import os
import signal

from agent.cgroups import files
from agent.cgroups.driver import CgroupDriver, CgroupPaths, CgroupStats, Limits
from agent.cgroups.v2 import (freeze_unified, kill_unified, read_frozen, read_pressure,
                              working_set)
from agent.errors import Conflict, InvalidArgument, KernelError, NotFound

CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "freezer")
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
                 freeze_timeout: float = 2.0, user_hz: int | None = None) -> None:
        self.root = root
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
            for parent in self.parent_dirs():
                files.make_dir(parent, exist_ok=True)
            for path in self._dirs(paths):
                try:
                    files.make_dir(path, exist_ok=False)
                except FileExistsError:
                    raise Conflict(f"cgroup {path} already exists",
                                   hint="a container of that name was not cleaned up; remove it first") from None
                made.append(path)
            self.set_limits(paths, limits)
        except BaseException:
            for path in reversed(made):
                files.remove_tree(path, timeout=self.remove_timeout)
            raise
        return paths

    def procs_files(self, paths: CgroupPaths) -> list[str]:
        return [os.path.join(d, "cgroup.procs") for d in _unique(list(paths.controllers.values()))
                + [paths.unified]]

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
        return read_hybrid_stats(paths, self.user_hz)

    def pids(self, paths: CgroupPaths) -> list[int]:
        found: set[int] = set()
        for procs in self.procs_files(paths):
            found.update(files.optional(files.parse_pids, procs) or [])
        return sorted(found)

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
        if os.path.exists(os.path.join(paths.unified, "cgroup.kill")):
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
        if self.pids(paths):
            self.kill(paths)
        for path in dirs:
            files.remove_tree(path, timeout=self.remove_timeout)

    def exists(self, paths: CgroupPaths) -> bool:
        return any(os.path.isdir(p) for p in [paths.unified, *paths.controllers.values()])


def read_hybrid_stats(paths: CgroupPaths, user_hz: int) -> CgroupStats:
    """Every figure of a hybrid container; absent files leave their fields None."""
    ctl = paths.controllers

    def p(controller: str, name: str) -> str:
        # An absent hierarchy reads as a path that does not exist, so its fields stay None.
        return os.path.join(ctl[controller], name) if controller in ctl else ""

    cpu = files.optional_keyed(p("cpu", "cpu.stat"))
    acct = files.optional_keyed(p("cpuacct", "cpuacct.stat"))
    memory = files.optional_keyed(p("memory", "memory.stat"))
    oom = files.optional_keyed(p("memory", "memory.oom_control"))
    unified_cpu = files.optional_keyed(os.path.join(paths.unified, "cpu.stat"))
    usage_ns = files.optional_int(p("cpuacct", "cpuacct.usage"))
    usage = files.optional_int(p("memory", "memory.usage_in_bytes"))
    frozen = read_frozen(paths.unified)
    if frozen is None and "freezer" in ctl:
        state = files.optional(str.strip, p("freezer", "freezer.state"))
        frozen = None if state is None else state == "FROZEN"
    return CgroupStats(
        # cpuacct first; the unified cpu.stat (core accounting, no controller needed) when
        # the host has no cpuacct hierarchy.
        cpu_usage_seconds=(usage_ns / 1e9 if usage_ns is not None
                           else _div(unified_cpu.get("usage_usec"), 1e6)),
        cpu_user_seconds=(_div(acct.get("user"), user_hz) if "user" in acct
                          else _div(unified_cpu.get("user_usec"), 1e6)),
        cpu_system_seconds=(_div(acct.get("system"), user_hz) if "system" in acct
                            else _div(unified_cpu.get("system_usec"), 1e6)),
        cpu_periods=cpu.get("nr_periods"),
        cpu_throttled_periods=cpu.get("nr_throttled"),
        cpu_throttled_seconds=_div(cpu.get("throttled_time"), 1e9),
        cpu_quota_us=files.optional(files.parse_v1_limit, p("cpu", "cpu.cfs_quota_us")),
        cpu_period_us=files.optional_int(p("cpu", "cpu.cfs_period_us")),
        memory_usage_bytes=usage,
        memory_max_usage_bytes=files.optional_int(p("memory", "memory.max_usage_in_bytes")),
        memory_working_set_bytes=working_set(usage, _first(memory, "total_inactive_file", "inactive_file")),
        memory_rss_bytes=_first(memory, "total_rss", "rss"),
        memory_cache_bytes=_first(memory, "total_cache", "cache"),
        memory_failcnt=files.optional_int(p("memory", "memory.failcnt")),
        memory_limit_bytes=files.optional(files.parse_v1_limit, p("memory", "memory.limit_in_bytes")),
        oom_kills=oom.get("oom_kill"),
        oom_events=None,   # v1 counts kills (oom_control), not OOM events
        pids_current=files.optional_int(p("pids", "pids.current")),
        pids_limit=files.optional(files.parse_v1_limit, p("pids", "pids.max")),
        frozen=frozen,
        pressure=read_pressure(paths.unified),
    )


def _first(values: dict[str, int], *keys: str) -> int | None:
    """The hierarchical figure (total_*) where v1 has it, else the cgroup's own."""
    for key in keys:
        if key in values:
            return values[key]
    return None


def _div(value: int | None, per: float) -> float | None:
    return None if value is None else value / per


def _unique(items: list[str]) -> list[str]:
    """Order-preserving de-duplication (controllers of a joint mount share a directory)."""
    seen: set[str] = set()
    return [i for i in items if not (i in seen or seen.add(i))]
