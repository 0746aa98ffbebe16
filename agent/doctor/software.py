"""Checks of the software Corral runs with: BCC, the launcher binary and the busybox image source."""
from __future__ import annotations

import importlib
import os
import struct
from pathlib import Path
from typing import Callable

from agent.doctor.result import CheckResult, HostPaths, passed, problem

PT_INTERP = 3


def check_bcc(importer: Callable[[str], object] = importlib.import_module) -> CheckResult:
    try:
        bcc = importer("bcc")
    except Exception as exc:      # noqa: BLE001 - a missing libbcc raises plain Exception
        return problem("bcc", f"`import bcc` failed: {exc}", "apt-get install python3-bpfcc")
    version = getattr(bcc, "__version__", "unknown version")
    return passed("bcc", f"bcc {version} importable")


def check_launcher(paths: HostPaths) -> CheckResult:
    launcher = paths.launcher
    if launcher.is_file() and os.access(launcher, os.X_OK):
        return passed("launcher", f"{launcher} installed")
    state = "not executable" if launcher.exists() else "missing"
    return problem("launcher", f"{launcher} {state}: containers cannot be started", "make setup")


def is_static_elf(path: Path) -> bool | None:
    """True for an ELF without a program interpreter, False with one, None if not ELF64."""
    try:
        with open(path, "rb") as f:
            header = f.read(64)
            if len(header) < 64 or header[:4] != b"\x7fELF" or header[4] != 2:
                return None
            order = "<" if header[5] == 1 else ">"
            phoff, = struct.unpack_from(order + "Q", header, 32)
            phentsize, phnum = struct.unpack_from(order + "HH", header, 54)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return None
    types = [struct.unpack_from(order + "I", table, i * phentsize)[0]
             for i in range(len(table) // phentsize)] if phentsize else []
    return PT_INTERP not in types


def check_busybox(paths: HostPaths) -> CheckResult:
    busybox = paths.busybox
    fix = "apt-get install busybox-static"
    if not busybox.is_file():
        return problem("busybox", f"{busybox} missing: no embedded busybox image", fix, required=False)
    static = is_static_elf(busybox)
    if static is False:
        return problem("busybox", f"{busybox} is dynamically linked: the embedded image needs "
                       "the static build", fix, required=False)
    if static is None:
        return problem("busybox", f"{busybox} is not a 64-bit ELF binary", fix, required=False)
    return passed("busybox", f"{busybox} is statically linked", required=False)
