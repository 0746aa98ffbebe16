"""The cgroup v2 device guard: probes/devices.c, compiled once, attached per container.

Compiled by BCC in a child process on first use (agent/probes/cache.py, as the probes are),
kept in `cache_dir` across starts when one is given, and loaded through bpf() here: the daemon
never maps libbcc's LLVM and clang (~85 MiB) for it, and hybrid hosts using the v1 controller
never compile it at all. Order matters for safety: a container's table is written before the
program is attached, and the program detached before the table is removed, so an attached
program never runs without rules (and one without rules refuses everything).

Attachments outlive the daemon: after a crash the old program keeps enforcing the old rules
with its own map; `apply` replaces a leftover `corral_device` program by ours.
"""
from __future__ import annotations

import ctypes as ct
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from agent.cgroups.devices import DeviceRule, encode
from agent.errors import KernelError
from agent.probes import cgroup_programs

if TYPE_CHECKING:
    from agent.probes.compiled import CompiledProbes

CGROUP_DEVICE = 6                # enum bpf_attach_type BPF_CGROUP_DEVICE
PROG_CGROUP_DEVICE = 15          # enum bpf_prog_type BPF_PROG_TYPE_CGROUP_DEVICE
PROGRAM = "corral_device"
TABLES = "device_tables"
_SOURCE = Path(__file__).resolve().parents[2] / "probes" / "devices.c"


class DeviceProgram:
    """A DeviceGuard backed by the kernel: one BPF program, one table entry per container."""

    def __init__(self, source: Path = _SOURCE, cache_dir: Path | None = None) -> None:
        """`cache_dir`: where the compiled program is kept between starts (its own directory:
        a cache holds one object); None compiles it at each daemon's first use."""
        self.source = Path(source)
        self.cache_dir = cache_dir
        self._compiled: CompiledProbes | None = None
        self._fd = -1
        self._id = 0
        self._ids: dict[str, int] = {}          # directory -> cgroup id of its table entry
        self.from_cache: bool | None = None     # once loaded: whether the cache had it compiled
        self._lock = threading.Lock()

    def _load(self) -> CompiledProbes:
        if self._compiled is not None:
            return self._compiled
        from agent.probes import tracing
        from agent.probes.cache import ProbeCache
        from agent.probes.compiled import CompiledProbes
        try:
            text = self.source.read_text()
        except OSError as error:
            raise KernelError(f"device program {self.source}: {error.strerror}") from None
        cache = ProbeCache(self.cache_dir)
        try:
            built = cache.obtain(text, [])
        except KernelError as error:
            raise KernelError(f"the device program {self.source}: {error.message}", hint=error.hint) from None
        compiled = CompiledProbes(built, len(tracing.possible_cpus()))
        compiled.create_maps()
        try:
            self._fd = compiled.load(PROGRAM, PROG_CGROUP_DEVICE)
            self._id = cgroup_programs.program_id(self._fd)
        except BaseException:
            compiled.cleanup()
            raise
        self._compiled = compiled
        self.from_cache = not cache.compiled
        return compiled

    def apply(self, unified_dir: str, rules: Sequence[DeviceRule]) -> None:
        with self._lock:
            tables = self._load().table(TABLES)
            cgroup_id = _cgroup_id(unified_dir)
            tables[ct.c_uint64(cgroup_id)] = encode(rules)
            self._ids[unified_dir] = cgroup_id
            cgroup_programs.detach_stale(unified_dir, CGROUP_DEVICE, {PROGRAM}, self._id)
            if self._id not in cgroup_programs.attached_programs(unified_dir, CGROUP_DEVICE):
                cgroup_programs.attach(unified_dir, self._fd, CGROUP_DEVICE)

    def release(self, unified_dir: str) -> None:
        """Detach from a directory and forget its table; a removed directory is not an error."""
        with self._lock:
            if self._compiled is None:
                return
            cgroup_id = self._ids.pop(unified_dir, None)
            try:
                if _cgroup_id(unified_dir) == cgroup_id:
                    cgroup_programs.detach(unified_dir, self._fd, CGROUP_DEVICE)
            except KernelError:
                pass                # removed: the attachment went with it
            if cgroup_id is not None:
                self._compiled.table(TABLES).pop(ct.c_uint64(cgroup_id), None)

    def tables(self) -> int:
        """Entries in the table map, for leak checks."""
        with self._lock:
            return 0 if self._compiled is None else len(self._compiled.table(TABLES))

    def close(self) -> None:
        """Free the program (attachments stay until detached or their cgroup is removed)."""
        with self._lock:
            if self._compiled is not None:
                self._compiled.cleanup()
                self._compiled = None


def _cgroup_id(unified_dir: str) -> int:
    try:
        return os.stat(unified_dir).st_ino
    except OSError as error:
        raise KernelError(f"cgroup directory {unified_dir}: {error.strerror}") from None
