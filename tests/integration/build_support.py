"""A Debian root with the host's C toolchain, for builds that compile in a stage of their own.

Made from this host's own Debian packages (`dpkg -L` of gcc, binutils, libc6-dev and the
libraries they load), hard-linked where the file system allows, plus busybox as /bin/sh: what
`mmdebstrap` would install, without a download.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

PACKAGES = ("gcc-12", "cpp-12", "libgcc-12-dev", "binutils", "binutils-x86-64-linux-gnu", "libbinutils",
            "libctf0", "libctf-nobfd0", "libgprofng0", "libc6", "libc6-dev", "linux-libc-dev", "libcrypt-dev",
            "libcrypt1", "libisl23", "libmpc3", "libmpfr6", "libgmp10", "zlib1g", "libzstd1", "libjansson4",
            "libstdc++6", "libgcc-s1", "gcc")
# The multi-stage build the tests and `make bench build` run: a toolchain stage from the context's
# rootfs/ (toolchain_rootfs), a builder stage compiling hello.c statically, a scratch stage.
MULTI_STAGE = """\
FROM scratch AS toolchain
COPY rootfs/ /

FROM toolchain AS builder
COPY hello.c /src/
RUN gcc -static -O2 -o /hello /src/hello.c

FROM scratch
COPY --from=builder /hello /hello
CMD ["/hello"]
"""
SKIPPED = ("/usr/share/doc", "/usr/share/man", "/usr/share/locale", "/usr/share/info", "/usr/share/lintian")


def _installed(package: str) -> bool:
    return subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True,
                          text=True).stdout.endswith("installed")


def toolchain_rootfs(dest: Path) -> Path:
    """`dest` filled with the toolchain's files; the packages missing here are left out."""
    # usrmerge: /bin, /lib, ... are links into /usr on the host; the same in the image, made first.
    for name in ("bin", "sbin", "lib", "lib64", "lib32", "libx32"):
        host = Path("/") / name
        if host.is_symlink():
            (dest / "usr" / name).mkdir(parents=True, exist_ok=True)
            os.symlink(os.readlink(host), dest / name)
    listed: list[str] = []
    for package in PACKAGES:
        if _installed(package):
            listed += subprocess.run(["dpkg", "-L", package], capture_output=True, text=True,
                                     check=True).stdout.split("\n")
    for path in sorted(set(p for p in listed if p.startswith("/") and not p.startswith(SKIPPED))):
        _copy(Path(path), dest / path.lstrip("/"))
    for name in ("bin", "tmp", "etc"):
        (dest / name).mkdir(exist_ok=True)
    shutil.copy2("/bin/busybox", dest / "bin" / "busybox")
    for applet in ("sh", "ls", "cat", "rm", "mkdir"):
        if not os.path.lexists(dest / "bin" / applet):
            os.symlink("busybox", dest / "bin" / applet)
    # The linker and compiler driver live under /usr/bin; with usrmerge /bin is the same place.
    for tool in ("gcc", "cc", "as", "ld"):
        host = shutil.which(tool)
        if host and not os.path.lexists(dest / "usr" / "bin" / tool):
            _copy(Path(host), dest / "usr" / "bin" / tool)
    return dest


def _copy(source: Path, target: Path) -> None:
    if os.path.lexists(target):
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_symlink():
        os.symlink(os.readlink(source), target)
    elif source.is_dir():
        target.mkdir(exist_ok=True)
    elif source.is_file():
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)
