"""The cgroup v2 device guard: probes/devices.c, compiled once, attached per container.

Compiled with BCC on first use only (0.2-0.5 s and ~60 MiB, which hybrid hosts using the v1
controller never pay). Order matters for safety: a container's table is written before the
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
from typing import Any, Sequence

from agent.cgroups.devices import DeviceRule, encode
from agent.errors import KernelError
from agent.probes import cgroup_programs

CGROUP_DEVICE = 6                # enum bpf_attach_type BPF_CGROUP_DEVICE
PROGRAM = "corral_device"
_SOURCE = Path(__file__).resolve().parents[2] / "probes" / "devices.c"


class DeviceProgram:
    """A DeviceGuard backed by the kernel: one BPF program, one table entry per container."""

    def __init__(self, source: Path = _SOURCE) -> None:
        self.source = Path(source)
        self._bpf: Any = None
        self._fd = -1
        self._id = 0
        self._ids: dict[str, int] = {}          # directory -> cgroup id of its table entry
        self._lock = threading.Lock()

    def _load(self) -> None:
        if self._bpf is not None:
            return
        try:
            from bcc import BPF
        except ImportError:
            raise KernelError("device control on cgroup v2 needs BCC, which is not importable",
                              hint="install Debian's python3-bpfcc") from None
        try:
            text = self.source.read_text()
        except OSError as error:
            raise KernelError(f"device program {self.source}: {error.strerror}") from None
        try:
            bpf = BPF(text=text.encode())
            self._fd = bpf.load_func(PROGRAM.encode(), BPF.CGROUP_DEVICE).fd
        except Exception as error:  # BCC raises bare Exception for compile and load errors
            raise KernelError(f"loading the device program {self.source}: {error}") from None
        self._bpf = bpf
        self._id = cgroup_programs.program_id(self._fd)

    def apply(self, unified_dir: str, rules: Sequence[DeviceRule]) -> None:
        with self._lock:
            self._load()
            cgroup_id = _cgroup_id(unified_dir)
            self._bpf[b"device_tables"][ct.c_uint64(cgroup_id)] = encode(rules)
            self._ids[unified_dir] = cgroup_id
            cgroup_programs.detach_stale(unified_dir, CGROUP_DEVICE, {PROGRAM}, self._id)
            if self._id not in cgroup_programs.attached_programs(unified_dir, CGROUP_DEVICE):
                cgroup_programs.attach(unified_dir, self._fd, CGROUP_DEVICE)

    def release(self, unified_dir: str) -> None:
        """Detach from a directory and forget its table; a removed directory is not an error."""
        with self._lock:
            if self._bpf is None:
                return
            cgroup_id = self._ids.pop(unified_dir, None)
            try:
                if _cgroup_id(unified_dir) == cgroup_id:
                    cgroup_programs.detach(unified_dir, self._fd, CGROUP_DEVICE)
            except KernelError:
                pass                # removed: the attachment went with it
            if cgroup_id is not None:
                self._bpf[b"device_tables"].pop(ct.c_uint64(cgroup_id), None)

    def tables(self) -> int:
        """Entries in the table map, for leak checks."""
        with self._lock:
            return 0 if self._bpf is None else len(self._bpf[b"device_tables"])

    def close(self) -> None:
        """Free the program (attachments stay until detached or their cgroup is removed)."""
        with self._lock:
            if self._bpf is not None:
                self._bpf.cleanup()
                self._bpf = None


def _cgroup_id(unified_dir: str) -> int:
    try:
        return os.stat(unified_dir).st_ino
    except OSError as error:
        raise KernelError(f"cgroup directory {unified_dir}: {error.strerror}") from None
