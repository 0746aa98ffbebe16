"""The pure cgroup v2 driver: one directory per container at <root>/<parent>/<name>.

Limits, stats, freeze, kill, PSI and the cgroup id all live in that one directory. The
memory, cpu and pids controllers are enabled in the parent's cgroup.subtree_control when
the host offers them; a limit whose controller the host lacks is refused by name.
"""
from __future__ import annotations

import os
import signal
from typing import Sequence

from agent.cgroups import files, io, kept_files
from agent.cgroups.devices import DeviceGuard, DeviceRule
from agent.cgroups.driver import CgroupDriver, CgroupPaths, CgroupStats, Limits
from agent.cgroups.io import BlockIo
from agent.errors import Conflict, InvalidArgument, KernelError, NotFound

CONTROLLERS = ("memory", "cpu", "pids")
PRESSURE = ("cpu", "memory", "io")


class V2Driver(CgroupDriver):
    """Cgroups of containers on a host whose /sys/fs/cgroup is one cgroup2 tree."""

    mode = "v2"

    def __init__(self, root: str = "/sys/fs/cgroup", parent: str = "corral", *,
                 remove_timeout: float = 5.0, freeze_timeout: float = 2.0,
                 keep_files_open: bool | None = None, devices: DeviceGuard | None = None) -> None:
        self.root = root
        self.parent = files.check_name(parent, "cgroup parent")
        # v2 has no devices controller: a BPF_CGROUP_DEVICE program (compiled on first use).
        self._devices = devices
        self.parent_dir = os.path.join(root, parent)
        self.remove_timeout = remove_timeout
        self.freeze_timeout = freeze_timeout
        # Stats re-read the same files every scrape: keep them open where that is safe
        # (cgroupfs; see kept_files.OpenFiles). None: decide from the mount.
        if keep_files_open is None:
            keep_files_open = kept_files.on_cgroupfs(root)
        self._open_files = kept_files.OpenFiles() if keep_files_open else None
        self._read = self._open_files.read if self._open_files is not None else files.read_bytes

    # --- naming -------------------------------------------------------------------------------

    def paths_for(self, name: str) -> CgroupPaths:
        """Where container `name`'s cgroup is (whether or not it exists)."""
        path = os.path.join(self.parent_dir, files.check_name(name))
        return CgroupPaths(unified=path, controllers={c: path for c in CONTROLLERS})

    def list_names(self) -> list[str]:
        """Names of the cgroups below the parent (for reconciling after a restart)."""
        try:
            return sorted(e.name for e in os.scandir(self.parent_dir) if e.is_dir(follow_symlinks=False))
        except FileNotFoundError:
            return []

    def parent_dirs(self) -> list[str]:
        return [self.parent_dir]

    def remove_parent(self) -> None:
        """Remove the (empty) parent directory; for tests and uninstall."""
        files.remove_tree(self.parent_dir, timeout=self.remove_timeout)

    def _owned(self, paths: CgroupPaths) -> str:
        """The container's directory, after checking it is one of ours."""
        path = os.path.normpath(paths.unified)
        if os.path.dirname(path) != os.path.normpath(self.parent_dir):
            raise InvalidArgument(f"cgroup {paths.unified}: not below {self.parent_dir}; "
                                  "Corral only touches cgroups it created")
        return path

    # --- lifecycle ------------------------------------------------------------------------------

    def _ensure_parent(self) -> set[str]:
        """Make the parent and enable the controllers it can pass down; answers those enabled."""
        files.make_dir(self.parent_dir, exist_ok=True)
        available = set(files.optional(str.split, os.path.join(self.parent_dir, "cgroup.controllers"))
                         or [])
        enabled = set(files.optional(str.split, os.path.join(self.parent_dir, "cgroup.subtree_control"))
                       or [])
        wanted = [c for c in CONTROLLERS if c in available and c not in enabled]
        if wanted:
            files.write_value(os.path.join(self.parent_dir, "cgroup.subtree_control"),
                              " ".join("+" + c for c in wanted))
        return enabled | set(wanted)

    def create(self, name: str, limits: Limits) -> CgroupPaths:
        paths = self.paths_for(name)
        enabled = self._ensure_parent()
        _check_controllers(limits, enabled, self.parent_dir)
        try:
            files.make_dir(paths.unified, exist_ok=False)
        except FileExistsError:
            raise Conflict(f"cgroup {paths.unified} already exists",
                           hint="a container of that name was not cleaned up; remove it first") from None
        try:
            self.set_limits(paths, limits)
        except BaseException:
            files.remove_tree(paths.unified, timeout=self.remove_timeout)
            raise
        return paths

    def procs_files(self, paths: CgroupPaths) -> list[str]:
        return [os.path.join(paths.unified, "cgroup.procs")]

    def placement(self, paths: CgroupPaths) -> list[str]:
        self._owned(paths)
        return self.procs_files(paths)

    def oom_kills(self, paths: CgroupPaths) -> int | None:
        # One file on the exit path, as HybridDriver reads memory.oom_control: stats() reads ~10.
        try:
            return files.keyed_value(files.read_bytes(os.path.join(paths.unified, "memory.events")), b"oom_kill")
        except OSError:
            return None

    def add_process(self, paths: CgroupPaths, pid: int) -> None:
        self._owned(paths)
        for procs in self.procs_files(paths):
            files.write_value(procs, pid, hint=f"is process {pid} still alive?")

    def set_limits(self, paths: CgroupPaths, limits: Limits) -> None:
        path = self._owned(paths)
        _write_limit(path, "memory.max", limits.memory_bytes)
        if limits.cpu_quota_us is not None or os.path.exists(os.path.join(path, "cpu.max")):
            quota = "max" if limits.cpu_quota_us is None else limits.cpu_quota_us
            files.write_value(os.path.join(path, "cpu.max"), f"{quota} {limits.cpu_period_us}")
        _write_limit(path, "pids.max", limits.pids_max)

    def set_devices(self, paths: CgroupPaths, rules: Sequence[DeviceRule]) -> None:
        self._device_guard().apply(self._owned(paths), rules)

    def _device_guard(self) -> DeviceGuard:
        if self._devices is None:
            from agent.cgroups.device_program import DeviceProgram
            self._devices = DeviceProgram()
        return self._devices

    def read_limits(self, paths: CgroupPaths) -> Limits:
        path = paths.unified
        if not os.path.isdir(path):
            raise NotFound(f"cgroup {path} does not exist")
        quota, period = files.optional(files.parse_cpu_max, os.path.join(path, "cpu.max")) or (None, 100_000)
        return Limits(memory_bytes=files.optional(files.parse_max, os.path.join(path, "memory.max")),
                      cpu_quota_us=quota, cpu_period_us=period,
                      pids_max=files.optional(files.parse_max, os.path.join(path, "pids.max")))

    def stats(self, paths: CgroupPaths) -> CgroupStats:
        return read_v2_stats(paths.unified, self._read)

    def block_io(self, paths: CgroupPaths) -> BlockIo:
        return io.read_v2(files.read_bytes, paths.unified)

    def pids(self, paths: CgroupPaths) -> list[int]:
        return files.pids_of(files.optional_bytes(self._read, os.path.join(paths.unified, "cgroup.procs"))) or []

    def procs(self, paths: CgroupPaths) -> list[int]:
        """Pids of the container's processes, for observers; on v2 the same as pids()."""
        return self.pids(paths)

    def freeze(self, paths: CgroupPaths) -> None:
        freeze_unified(self._owned(paths), True, self.freeze_timeout)

    def thaw(self, paths: CgroupPaths) -> None:
        freeze_unified(self._owned(paths), False, self.freeze_timeout)

    def kill(self, paths: CgroupPaths) -> None:
        kill_unified(self._owned(paths), self.pids(paths))

    def remove(self, paths: CgroupPaths) -> None:
        path = self._owned(paths)
        if self._devices is not None:
            self._devices.release(path)
        if files.remove_empty_cgroups([path], self._open_files):
            return
        if self.pids(paths):
            self.kill(paths)
        files.remove_cgroups([path], self._open_files, timeout=self.remove_timeout)

    def close(self) -> None:
        """Close the cgroup files kept open for stats (the driver stays usable)."""
        if self._open_files is not None:
            self._open_files.close()
        close = getattr(self._devices, "close", None)
        if close is not None:
            close()

    def exists(self, paths: CgroupPaths) -> bool:
        return os.path.isdir(paths.unified)


# --- pieces the hybrid driver shares (its unified directory is a v2 cgroup) --------------------

def _check_controllers(limits: Limits, enabled: set[str], parent_dir: str) -> None:
    needed = {"memory": limits.memory_bytes, "cpu": limits.cpu_quota_us, "pids": limits.pids_max}
    for controller, value in needed.items():
        if value is not None and controller not in enabled:
            raise KernelError(
                f"cannot limit {controller} to {value}: the {controller} controller is not "
                f"available in {parent_dir}",
                hint=f"enable it in the root's cgroup.subtree_control (echo +{controller} > "
                     f"{os.path.dirname(parent_dir)}/cgroup.subtree_control)")


def _write_limit(path: str, filename: str, value: int | None) -> None:
    """Write a v2 limit ("max" for None); skip an absent file when there is nothing to limit."""
    target = os.path.join(path, filename)
    if value is None and not os.path.exists(target):
        return
    files.write_value(target, "max" if value is None else value)


def read_pressure(path: str) -> dict:
    result = {}
    for resource in PRESSURE:
        pressure = files.optional(files.parse_pressure, os.path.join(path, f"{resource}.pressure"))
        if pressure is not None:
            result[resource] = pressure
    return result


def read_frozen(path: str) -> bool | None:
    events = files.optional_keyed(os.path.join(path, "cgroup.events"))
    return None if "frozen" not in events else events["frozen"] == 1


def freeze_unified(path: str, frozen: bool, timeout: float) -> None:
    """Write cgroup.freeze and wait (briefly) until cgroup.events reports the new state.

    Freezing is asynchronous: a task in an uninterruptible sleep freezes when it leaves it.
    Not reaching the state within `timeout` is not an error; `stats().frozen` tells the truth.
    """
    files.write_value(os.path.join(path, "cgroup.freeze"), "1" if frozen else "0")
    files.wait_for(lambda: read_frozen(path) in (frozen, None), timeout)


def kill_unified(path: str, pids: list[int]) -> None:
    """cgroup.kill (5.14+); on older kernels SIGKILL each pid listed in cgroup.procs."""
    kill_file = os.path.join(path, "cgroup.kill")
    if os.path.exists(kill_file):
        files.write_value(kill_file, "1")
        return
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue


def read_v2_stats(path: str, read=files.read_bytes) -> CgroupStats:
    """Every figure of a v2 cgroup directory; absent files leave their fields None.

    `read(path) -> bytes` raises OSError for a file it cannot read (files.read_bytes, or a
    driver's OpenFiles.read); each file is read once and only the figures wanted are parsed.
    """
    def get(name: str) -> bytes | None:
        try:
            return read(f"{path}/{name}")
        except OSError:
            return None

    keyed, as_int, as_max = files.keyed_value, files.as_int, files.as_max
    cpu = get("cpu.stat")
    memory = get("memory.stat")
    events = get("memory.events")
    try:
        cpu_max = get("cpu.max")
        quota, period = files.parse_cpu_max(cpu_max.decode("ascii")) if cpu_max is not None else (None, None)
    except (ValueError, UnicodeDecodeError):
        quota, period = None, None
    usage = as_int(get("memory.current"))
    frozen = keyed(get("cgroup.events"), b"frozen")
    pressure = {}
    for resource in PRESSURE:
        reading = files.pressure_of(get(f"{resource}.pressure"))
        if reading is not None:
            pressure[resource] = reading
    return CgroupStats(
        cpu_usage_seconds=_scaled(keyed(cpu, b"usage_usec"), 1e6),
        cpu_user_seconds=_scaled(keyed(cpu, b"user_usec"), 1e6),
        cpu_system_seconds=_scaled(keyed(cpu, b"system_usec"), 1e6),
        cpu_periods=keyed(cpu, b"nr_periods"),
        cpu_throttled_periods=keyed(cpu, b"nr_throttled"),
        cpu_throttled_seconds=_scaled(keyed(cpu, b"throttled_usec"), 1e6),
        cpu_quota_us=quota,
        cpu_period_us=period,
        memory_usage_bytes=usage,
        memory_max_usage_bytes=as_int(get("memory.peak")),
        memory_working_set_bytes=working_set(usage, keyed(memory, b"inactive_file")),
        memory_rss_bytes=keyed(memory, b"anon"),
        memory_cache_bytes=keyed(memory, b"file"),
        memory_failcnt=keyed(events, b"max"),
        memory_limit_bytes=as_max(get("memory.max")),
        oom_kills=keyed(events, b"oom_kill"),
        oom_events=keyed(events, b"oom"),
        memory_high_events=keyed(events, b"high"),
        pids_current=as_int(get("pids.current")),
        pids_limit=as_max(get("pids.max")),
        frozen=None if frozen is None else frozen == 1,
        pressure=pressure,
    )


def working_set(usage: int | None, inactive_file: int | None) -> int | None:
    """usage - inactive_file, floored at 0, as cAdvisor computes container_memory_working_set_bytes."""
    if usage is None:
        return None
    if inactive_file is None:
        return usage
    return max(0, usage - inactive_file)


def _scaled(value: int | None, per_second: float) -> float | None:
    return None if value is None else value / per_second
