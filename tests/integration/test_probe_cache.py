"""The compiled-probes cache (agent/probes/cache.py), for real: a daemon compiles its probes in a
child and never maps libbcc; restarted on the same root it loads them from the cache (no
compile, still no libbcc/libLLVM/libclang in its maps) and every probe attaches. Loaded from
the cache, the probes count a known workload exactly as freshly compiled ones do. A changed
source, a damaged file and a file others can write are compiled again, never loaded.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from agent.probes.loader import ProbeOptions, ProbeSet
from agent.syscall_table import load_syscall_table
from tests.integration.corral_daemon import CorralDaemon
from tests.integration.test_probes import SYSCALL_LOOP, UNIFIED

pytestmark = pytest.mark.privileged

REPO = Path(__file__).resolve().parents[2]
COMPILER_LIBRARIES = ("libbcc", "libLLVM", "libclang")
CALLS = 1000


def compiler_mappings(pid: int) -> list[str]:
    """The libbcc/LLVM/clang mappings of a process (none: it never loaded bcc)."""
    return sorted({line.split()[-1] for line in Path(f"/proc/{pid}/maps").read_text().splitlines()
                   if any(name in line for name in COMPILER_LIBRARIES)})


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="corral-probe-cache-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def looper(workdir: Path) -> Path:
    source = workdir / "loop.c"
    source.write_text(SYSCALL_LOOP)
    subprocess.run(["cc", "-O1", "-o", str(workdir / "loop"), str(source)], check=True)
    return workdir / "loop"


def test_a_restarted_daemon_loads_its_probes_from_the_cache_without_bcc(workdir: Path):
    daemon = CorralDaemon(workdir / "root", "--no-network", "--docker-socket", "")
    try:
        daemon.start()
        assert "probes compiled and attached" in daemon.log.read_text()
        assert compiler_mappings(daemon.process.pid) == []
        cached = list((daemon.root / "probe-cache").glob("*.json"))
        assert len(cached) == 1 and cached[0].stat().st_mode & 0o777 == 0o600
        daemon.stop()
        daemon.start()
        log = daemon.log.read_text()
        assert log.count("probes compiled and attached") == 1
        assert "probes loaded from the cache and attached" in log
        assert compiler_mappings(daemon.process.pid) == []
        probes = json.loads(daemon.out("info", "--format", "json"))["probes"]
        assert probes and all(probes.values()), probes
    finally:
        daemon.stop()


def _count(cache: Path, looper: Path, probes_dir: Path = REPO / "probes") -> tuple[bool, dict[int, tuple[int, int]]]:
    """Load the probes with `cache`, run the loop in a fresh cgroup: (compiled?, its counts)."""
    cgroup = UNIFIED / f"corral-test-{secrets.token_hex(4)}"
    cgroup.mkdir()
    probes = ProbeSet(probes_dir, ProbeOptions(), cache_dir=cache)
    try:
        probes.load()
        cgroup_id = cgroup.stat().st_ino
        probes.watch(cgroup_id, str(cgroup))
        # The loop joins the cgroup through a shell, so the counts are the shell's exec onwards.
        subprocess.run(["sh", "-c", f'echo $$ > {cgroup}/cgroup.procs && exec {looper} {CALLS}'], check=True)
        counts = probes.syscall_counts()[cgroup_id]
        probes.unwatch(cgroup_id, str(cgroup))
        return probes.cache.compiled, counts
    finally:
        probes.close()
        cgroup.rmdir()


def test_cached_probes_count_exactly_as_freshly_compiled_ones(workdir: Path, looper: Path):
    table = load_syscall_table()
    compiled, fresh = _count(workdir / "cache", looper)
    cached, again = _count(workdir / "cache", looper)
    assert (compiled, cached) == (True, False)
    getppid, close = table.number("getppid"), table.number("close")
    assert fresh[getppid] == again[getppid] == (CALLS, 0)
    assert fresh[close] == again[close] and fresh[close][1] >= CALLS     # close(-1): an error each
    assert fresh.keys() == again.keys()


def test_a_changed_source_a_damaged_file_and_a_foreign_one_are_compiled_again(workdir: Path, looper: Path):
    probes_dir = workdir / "probes"
    shutil.copytree(REPO / "probes", probes_dir)
    cache = workdir / "cache"
    assert _count(cache, looper, probes_dir)[0] is True
    first = list(cache.glob("*.json"))
    with open(probes_dir / "syscalls.c", "a") as source:
        source.write("\n/* a change: a new source hash */\n")
    compiled, counts = _count(cache, looper, probes_dir)
    second = list(cache.glob("*.json"))
    assert compiled and len(second) == 1 and second != first
    assert counts[load_syscall_table().number("getppid")] == (CALLS, 0)
    second[0].write_text('{"format": 1, "key": "')                  # damaged
    assert _count(cache, looper, probes_dir)[0] is True
    os.chmod(second[0], 0o666)                                       # anyone could have written it
    assert _count(cache, looper, probes_dir)[0] is True
    assert second[0].stat().st_mode & 0o777 == 0o600
    assert _count(cache, looper, probes_dir)[0] is False
