"""tracefs and bpffs, which the probes need mounted: tracepoint ids live in tracefs, pinned
maps in bpffs. Mounted here where missing, through mount(2) (no `mount` command needed)."""
from __future__ import annotations

import ctypes as ct
import os
from pathlib import Path

from agent.errors import KernelError
from agent.mount_table import mounted_at, read_mount_table


def _is_mounted(path: Path) -> bool:
    try:
        return mounted_at(read_mount_table(), str(path))
    except OSError:
        return os.path.ismount(path)


def ensure_mounts(tracefs: Path = Path("/sys/kernel/tracing"),
                  bpffs: Path = Path("/sys/fs/bpf")) -> None:
    """Mount tracefs and bpffs where they are missing (tracepoint ids; pinning)."""
    libc = ct.CDLL(None, use_errno=True)
    for path, fstype in ((tracefs, "tracefs"), (bpffs, "bpf")):
        if _is_mounted(path):
            continue
        if libc.mount(fstype.encode(), str(path).encode(), fstype.encode(), 0, None) != 0:
            code = ct.get_errno()
            raise KernelError(f"mounting {fstype} on {path}: {os.strerror(code)}",
                              hint=f"run as root, or mount it: mount -t {fstype} {fstype} {path}")
