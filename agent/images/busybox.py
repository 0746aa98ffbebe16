"""The embedded default image: a small root filesystem around a static busybox binary.

This module checks the binary and writes the root as a deterministic tar; the store imports
that tar as an ordinary layer and remembers which layer each binary (by content) became.
"""
from __future__ import annotations

import io
import struct
import subprocess
import tarfile
from pathlib import Path
from typing import Any

from agent.errors import InvalidArgument, NotFound
from agent.images.model import DEFAULT_PATH, ImageConfig

_PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
_GROUP = "root:x:0:\nnobody:x:65534:\n"
_HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
_DIRECTORIES = {"bin": 0o755, "dev": 0o755, "etc": 0o755, "home": 0o755, "proc": 0o555, "root": 0o700,
                "sys": 0o555, "tmp": 0o1777, "var": 0o755}


def image_config() -> ImageConfig:
    """What a container from the busybox image runs when given no command."""
    return ImageConfig(cmd=["sh"], env=[DEFAULT_PATH])


def read_static_binary(binary: Path) -> tuple[bytes, int]:
    """The content and mtime of a static busybox at `binary`."""
    try:
        content = binary.read_bytes()
        mtime = int(binary.stat().st_mtime)
    except OSError as exc:
        raise NotFound(f"busybox binary {str(binary)!r}: {exc.strerror}",
                       hint="install it with `apt-get install busybox-static`, or give its path") from None
    _require_static(content, binary)
    return content, mtime


def _require_static(content: bytes, path: Path) -> None:
    """A dynamically linked busybox would not run inside a root with no libc."""
    if content[:4] != b"\x7fELF":
        raise InvalidArgument(f"busybox binary {str(path)!r} is not an ELF executable",
                              hint="install busybox-static, or give the path of a static busybox")
    wide, endian = content[4] == 2, "<" if content[5] == 1 else ">"
    if wide:
        phoff, = struct.unpack_from(endian + "Q", content, 0x20)
        entsize, count = struct.unpack_from(endian + "HH", content, 0x36)
    else:
        phoff, = struct.unpack_from(endian + "I", content, 0x1C)
        entsize, count = struct.unpack_from(endian + "HH", content, 0x2A)
    for index in range(count):
        p_type, = struct.unpack_from(endian + "I", content, phoff + index * entsize)
        if p_type == 3:  # PT_INTERP: needs a dynamic loader
            raise InvalidArgument(f"busybox binary {str(path)!r} is dynamically linked",
                                  hint="install busybox-static (`apt-get install busybox-static`)")


def list_applets(binary: Path) -> list[str]:
    """The applets the binary says it has; each becomes a symbolic link in /bin."""
    try:
        result = subprocess.run([str(binary), "--list"], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        raise InvalidArgument(f"busybox binary {str(binary)!r}: `--list` failed: {exc}") from None
    return sorted({line.strip() for line in result.stdout.splitlines()
                   if line.strip() and "/" not in line and line.strip() not in ("busybox", ".", "..")})


def write_rootfs_tar(path: Path, busybox: bytes, mtime: int, applets: list[str]) -> None:
    """A deterministic tar of the busybox root (same binary, same bytes, same layer digest)."""
    def entry(name: str, kind: bytes, mode: int, **extra: Any) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = kind, mode, mtime
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        for key, value in extra.items():
            setattr(info, key, value)
        return info

    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as archive:
        for name, mode in sorted(_DIRECTORIES.items()):
            archive.addfile(entry(name, tarfile.DIRTYPE, mode))
        archive.addfile(entry("bin/busybox", tarfile.REGTYPE, 0o755, size=len(busybox)), io.BytesIO(busybox))
        for applet in applets:
            archive.addfile(entry(f"bin/{applet}", tarfile.SYMTYPE, 0o777, linkname="busybox"))
        for name, text in (("etc/passwd", _PASSWD), ("etc/group", _GROUP), ("etc/hostname", "corral\n"),
                           ("etc/hosts", _HOSTS), ("etc/resolv.conf", "")):
            data = text.encode()
            archive.addfile(entry(name, tarfile.REGTYPE, 0o644, size=len(data)), io.BytesIO(data))
