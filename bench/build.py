"""Build: the multi-stage Dockerfile of tests/integration/test_build.py (a toolchain stage made
from this host's gcc packages, a builder stage that compiles a static C program, a scratch stage
with the binary), cold (`--no-cache`) and cached, against `podman build` of the same context on
its own storage in the same run (runc: podman's crun refuses hybrid cgroups). Both with
`--network none` (podman's RUN network needs set-up this bench does not do; Corral's default is
the bridge)."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import CORRAL, BenchDaemon, Row, interleave, row_from


def _context(work: Path) -> Path:
    from tests.integration.build_support import MULTI_STAGE, toolchain_rootfs
    context = work / "context"
    context.mkdir()
    (context / "Dockerfile").write_text(MULTI_STAGE)
    (context / "hello.c").write_text('#include <stdio.h>\nint main(void){puts("hello");return 0;}\n')
    toolchain_rootfs(context / "rootfs")
    return context


def _timed(argv: list[str], env: dict | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def run(rounds: int = 3) -> dict:
    work = Path(tempfile.mkdtemp(prefix="corral-bench-build-", dir="/var/tmp"))
    rows: list[Row] = []
    try:
        context = _context(work)
        podman = ["podman", "--root", str(work / "podman" / "storage"), "--runroot", str(work / "podman" / "run"),
                  "--storage-driver", "overlay", "--runtime", "runc", "build", "--network", "none", "-q", "-t",
                  "bench-build"]
        with BenchDaemon("--no-probes", "--no-observe", name="build") as daemon:
            corral = [CORRAL, "build", "--network", "none", "-q", "-t", "bench-build:1"]
            cold = interleave({
                "corral": lambda: _timed([*corral, "--no-cache", str(context)], daemon.env),
                "podman": lambda: _timed([*podman, "--no-cache", str(context)]),
            }, rounds, warmup=1, progress="build cold")
            cached = interleave({
                "corral": lambda: _timed([*corral, str(context)], daemon.env),
                "podman": lambda: _timed([*podman, str(context)]),
            }, rounds * 3, warmup=1, progress="build cached")
        rows.append(row_from("build", "cold build (--no-cache), 3 stages", "s", cold["corral"],
                             anchor_name="podman build", anchor_values=cold["podman"]))
        rows.append(row_from("build", "rebuild, every step cached", "s", cached["corral"],
                             anchor_name="podman build", anchor_values=cached["podman"],
                             target="< 1 s", note=f"target met: {max(cached['corral']) < 1.0}"))
    finally:
        subprocess.run(["umount", "-R", "-l", str(work / "podman")], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
    return {"rows": [row.to_dict() for row in rows]}
