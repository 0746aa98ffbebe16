"""The compiled-probes cache: compile probes/*.c once per kernel, BCC version and source, in a
child process (build.py), and keep the result as a file that later daemons load without
compiling and without libbcc.

The key is the SHA-256 of the kernel release, the BCC version, the object format and the exact
C text and -D flags (source.py); the file is `<directory>/<key>.json`, mode 0600. A file is
used only when its key matches, it belongs to this user and no one else can write it, and
it parses (object_file.read); otherwise the probes are compiled again and the file replaced
(a damaged or foreign file is logged, never loaded). A successful compile removes the other
keys' files, so the directory holds one object. Clearing the cache is deleting the directory.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

from agent.errors import KernelError
from agent.probes import object_file
from agent.probes.object_file import CorruptObject, ProbeObject

log = logging.getLogger("corral.probes")

BUILD_TIMEOUT = 120.0                   # seconds a compile may take on a loaded 2-CPU host


def bcc_version() -> str:
    """BCC's version without importing bcc (which would load libbcc): its version.py."""
    try:
        spec = importlib.util.find_spec("bcc")
    except (ImportError, ValueError):
        spec = None
    for location in (spec.submodule_search_locations or []) if spec is not None else []:
        try:
            text = (Path(location) / "version.py").read_text()
        except OSError:
            continue
        found = re.search(r"__version__\s*=\s*['\"]([^'\"]+)", text)
        if found:
            return found.group(1)
    return "none"


def cache_key(source: str, flags: list[str]) -> str:
    material = json.dumps({"kernel": os.uname().release, "bcc": bcc_version(), "format": object_file.FORMAT,
                           "source": hashlib.sha256(source.encode()).hexdigest(), "flags": flags})
    return hashlib.sha256(material.encode()).hexdigest()[:32]


class ProbeCache:
    """`directory` None: no cache, every load compiles (in the child)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.compiled = False                   # whether the last `obtain` compiled

    def obtain(self, source: str, flags: list[str]) -> ProbeObject:
        key = cache_key(source, flags)
        path = self.directory / f"{key}.json" if self.directory is not None else None
        if path is not None and path.exists():
            try:
                _check_owner(path)
                found = object_file.read(path, key)
                self.compiled = False
                return found
            except CorruptObject as error:
                log.warning("%s; compiling the probes again", error)
        built = compile_in_child(key, source, flags)
        self.compiled = True
        if path is not None:
            self._store(path, built)
        return built

    def _store(self, path: Path, built: ProbeObject) -> None:
        from agent.atomic_file import write_atomically
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomically(path, built.to_json(), 0o600, durable=False)
            for other in path.parent.glob("*.json"):
                if other != path:
                    other.unlink(missing_ok=True)
        except (OSError, KernelError) as error:   # a read-only root: the next start compiles again
            log.warning("cannot keep the compiled probes in %s: %s", path.parent, error)


def _check_owner(path: Path) -> None:
    try:
        info = path.lstat()
    except OSError as error:
        raise CorruptObject(f"compiled probes {path}: {error.strerror}") from None
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise CorruptObject(f"compiled probes {path}: not a regular file of uid {os.geteuid()} "
                            "that only its owner can write; not loading it")


def compile_in_child(key: str, source: str, flags: list[str]) -> ProbeObject:
    """Compile in `python -m agent.probes.build`, which exits when done (with LLVM's memory)."""
    request = json.dumps({"key": key, "source": source, "flags": flags})
    with tempfile.TemporaryDirectory(prefix="corral-probes-") as scratch:
        out = Path(scratch) / "object.json"
        try:
            done = subprocess.run([sys.executable, "-m", "agent.probes.build", str(out)], input=request,
                                  capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as error:
            raise KernelError(f"compiling the probes: {error}") from None
        if done.returncode != 0:
            detail = done.stderr.strip()[-4000:] or f"exit status {done.returncode}"
            raise KernelError(f"compiling the probes: {detail}", hint="run with --dump-bpf to see the program")
        return object_file.read(out, key)
