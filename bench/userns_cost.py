"""User namespaces: what `--userns auto` adds to a launch, and the two ways of giving the image's
files to the mapped ids (docs/security.md, "User namespaces").

- launch: API create(start) + wait + remove of `/bin/true`, `--net none`, `--userns auto`
  (idmapped layers) against `--userns host` (anchor), interleaved in one daemon whose default
  is host.
- rootfs: mounting a container's root for a mapped range, idmapped layers and chown, against
  the plain overlay (anchor); on the busybox image's layers and on a synthetic 2-layer image of
  5000 files (what the chown walk grows with). Each cycle uses a fresh upper and work
  directory, mounts, unmounts and removes them.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench.common import BenchDaemon, interleave, row_from
from bench.launch import BUSYBOX

MANY_FILES = 5000


def cycle(daemon: BenchDaemon, userns: str) -> float:
    client = daemon.client()
    start = time.perf_counter()
    container = client.create_container({"image": BUSYBOX, "command": ["/bin/true"], "network": "none",
                                         "userns": userns}, start=True)
    daemon.created.add(container["id"])
    result = client.wait_container(container["id"])
    client.remove_container(container["id"])
    elapsed = time.perf_counter() - start
    if result.get("exit_code") != 0:
        raise RuntimeError(f"/bin/true exited {result}")
    return elapsed


def synthetic_layers(directory: Path) -> list[Path]:
    """Two layers of MANY_FILES small files in 50 directories, owned by a few ids."""
    layers = []
    for number in range(2):
        layer = directory / f"layer{number}"
        for index in range(MANY_FILES // 2):
            folder = layer / f"d{index % 50}"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"f{number}-{index}"
            path.write_bytes(b"x" * 64)
            os.chown(path, index % 3, index % 3)
        layers.append(layer)
    return layers


def mount_cycle(work_root: Path, lowers: list[Path], method: str, idrange) -> float:
    from agent.images.overlay import mount_overlay, unmount
    from agent.userns.ownership import RootfsOwnership
    base = Path(tempfile.mkdtemp(dir=work_root))
    upper, work, target = base / "upper", base / "work", base / "rootfs"
    for path in (upper, work, target):
        path.mkdir()
    start = time.perf_counter()
    if method == "plain":
        mount_overlay(lowers, upper, work, target)
    else:
        used = RootfsOwnership(method=method).mount(lowers, upper, work, target, idrange)
        if used != method:
            raise RuntimeError(f"asked for {method}, the kernel gave {used}")
    elapsed = time.perf_counter() - start
    unmount(target)
    shutil.rmtree(base)
    return elapsed


def rootfs_rows(rounds: int) -> tuple[list, dict]:
    from agent.images.store import ImageStore
    from agent.userns.ownership import CHOWN, IDMAP
    from agent.userns.ranges import IdRange
    idrange = IdRange(1 << 30, 1 << 30)          # never allocated by a daemon: nothing runs as it
    work_root = Path(tempfile.mkdtemp(prefix="corral-bench-userns-", dir="/var/tmp"))
    rows, raw = [], {}
    try:
        store_root = work_root / "store"
        busybox = ImageStore(store_root)
        busybox.build_busybox()
        images = {"busybox": busybox.layer_paths(busybox.get(BUSYBOX)),
                  f"{MANY_FILES} files": synthetic_layers(work_root / "synthetic")}
        for image, lowers in images.items():
            samples = interleave({method: (lambda m=method, layers=lowers: mount_cycle(work_root, layers, m, idrange))
                                  for method in ("plain", IDMAP, CHOWN)}, rounds, warmup=2, progress=f"rootfs {image}")
            raw[image] = {k: [round(v * 1e3, 3) for v in vs] for k, vs in samples.items()}
            for method in (IDMAP, CHOWN):
                rows.append(row_from("userns", f"mount root, {image}, {method}", "ms", samples[method], scale=1e3,
                                     anchor_name="plain overlay", anchor_values=samples["plain"]))
            rows.append(row_from("userns", f"mount root, {image}, plain overlay", "ms", samples["plain"], scale=1e3))
    finally:
        shutil.rmtree(work_root, ignore_errors=True)
    return rows, raw


def run(rounds: int = 30) -> dict:
    with BenchDaemon("--no-probes", "--no-network", name="userns") as daemon:   # touches no shared bridge
        samples = interleave({"auto": lambda: cycle(daemon, "auto"), "host": lambda: cycle(daemon, "host")},
                             rounds, warmup=3, progress="userns")
    rows = [row_from("userns", "API run /bin/true, --userns auto (idmapped)", "ms", samples["auto"], scale=1e3,
                     anchor_name="--userns host", anchor_values=samples["host"], target="<= 1.1x host", limit=1.1),
            row_from("userns", "API run /bin/true, --userns host", "ms", samples["host"], scale=1e3)]
    mount_rows, mount_raw = rootfs_rows(max(5, rounds // 2))
    return {"rows": [r.to_dict() for r in rows + mount_rows], "rounds": rounds,
            "samples_ms": {k: [round(v * 1e3, 3) for v in vs] for k, vs in samples.items()}, "rootfs_ms": mount_raw}


if __name__ == "__main__":
    from bench.__main__ import main
    sys.exit(main(["userns", *sys.argv[1:]]))
