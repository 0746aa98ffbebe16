"""The kernel headers check: BCC compiles probes against /lib/modules/$(uname -r)/build.

Debian has no headers for some kernels (this project's VMs run 6.18); `make setup` then
links the nearest Debian headers. That is enough for tracepoint arguments, which BCC
generates from the running kernel's format files, but kernel struct layouts come from
the headers and are wrong.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from agent.doctor.kernel import kernel_release
from agent.doctor.result import CheckResult, HostPaths, passed, problem, read_text, warning

_UTS_RELEASE = re.compile(r'#define\s+UTS_RELEASE\s+"([^"]+)"')
_HEADERS_DIR = re.compile(r"^linux-headers-(.+)$")


def headers_version(build: Path) -> str | None:
    """The kernel release a header tree was made for, or None when it does not say."""
    text = read_text(build / "include" / "generated" / "utsrelease.h")
    match = _UTS_RELEASE.search(text or "")
    if match:
        return match.group(1)
    if build.is_symlink():
        named = _HEADERS_DIR.match(Path(os.readlink(build)).name)
        if named:
            return named.group(1)
    return None


def check_headers(paths: HostPaths) -> CheckResult:
    release = kernel_release(paths)
    build = paths.lib_modules / release / "build"
    if not build.is_dir():
        dangling = f" (a link to missing {os.readlink(build)})" if build.is_symlink() else ""
        return problem("headers", f"no kernel headers at {build}{dangling}: BCC cannot compile probes",
                       "make setup  # or: apt-get install linux-headers-amd64")
    version = headers_version(build)
    where = build.resolve()
    if version == release:
        return passed("headers", f"headers for {release} at {where}")
    if version is None:
        return warning("headers", f"headers at {where} do not say which kernel they are for",
                       f"apt-get install linux-headers-{release}")
    return warning(
        "headers",
        f"nearest headers: {version} at {where} linked for kernel {release}; tracepoint args "
        "are still right but kernel struct layouts are not",
        f"apt-get install linux-headers-{release}  # when your distribution has them")
