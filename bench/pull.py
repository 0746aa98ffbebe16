"""Pull: a ~170 MB single-layer Debian image and a 2-layer image from a local docker-registry.

Set-up (cached in /var/tmp/corral-bench-cache): `mmdebstrap --variant=minbase bookworm` makes
the root filesystem tarball, which becomes a one-layer OCI image, copied into Debian's
docker-registry on loopback with skopeo; the 2-layer image adds a small second layer.

Each round, in a shuffled order, with every side's image storage on its own tmpfs, emptied
before the round:
  corral   `corral pull` through a daemon (fetch, verify, unpack)
  podman   `podman pull` (fetch and unpack; the anchor of the target)
  skopeo   `skopeo copy docker://... dir:` (fetch only: the floor of the network part)
Then a second `corral pull` of an image the store has, through the API (the target is 50 ms).
"""
from __future__ import annotations

import gzip
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench.common import CORRAL, BenchDaemon, Row, interleave, row_from

CACHE = Path("/var/tmp/corral-bench-cache")
SUITE = "bookworm"


def debian_tarball() -> Path:
    """The minbase root filesystem, built once per machine (~17 s)."""
    tarball = CACHE / f"debian-{SUITE}.tar"
    if not tarball.is_file():
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = tarball.with_suffix(".partial.tar")
        subprocess.run(["mmdebstrap", "--variant=minbase", "--quiet", SUITE, str(partial),
                        "http://deb.debian.org/debian"], check=True)
        partial.rename(tarball)
    return tarball


def _layout(work: Path, name: str, layers: list[bytes]):
    """An OCI layout with one image of these (uncompressed) layer tars, gzip'd at level 6."""
    from tests.integration.registry_support import Layout
    layout = Layout(work / name)
    layout.add_tars(layers, compress=lambda raw: gzip.compress(raw, compresslevel=6, mtime=0))
    layout.write_single("bench")
    return layout


class _Tmpfs:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> Path:
        self.path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2g", "tmpfs", str(self.path)], check=True)
        return self.path

    def __exit__(self, *exc) -> None:
        subprocess.run(["umount", "-l", str(self.path)], check=False)


def _emptied(path: Path) -> None:
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def run(rounds: int = 3) -> dict:
    from tests.integration.registry_support import Registry
    tarball = debian_tarball()
    work = Path(tempfile.mkdtemp(prefix="corral-bench-pull-", dir="/var/tmp"))
    registry = Registry(work / "registry")
    rows: list[Row] = []
    try:
        base = tarball.read_bytes()
        from tests.integration.registry_support import layer_tar
        extra = layer_tar({"etc/bench-app/config": b"second layer\n" * 1000})
        for name, layers in (("debian", [base]), ("two", [base, extra])):
            layout = _layout(work, name, layers)
            registry.push_layout(layout.path, "bench", f"bench/{name}")
        with _Tmpfs(work / "podman") as podman_root, _Tmpfs(work / "skopeo") as skopeo_dir:
            daemon = BenchDaemon("--no-probes", "--no-network", "--no-observe", name="pull")
            images = daemon.root / "images"
            with _Tmpfs(images):     # close() below unmounts it before it removes the root
                daemon.start()
                try:
                    for name in ("debian", "two"):
                        ref = f"{registry.host}/bench/{name}:bench"
                        samples = interleave({
                            "corral": lambda ref=ref: _corral_pull(daemon, ref),
                            "podman": lambda ref=ref: _podman_pull(podman_root, ref),
                            "skopeo": lambda ref=ref: _skopeo_copy(skopeo_dir, ref),
                        }, rounds, warmup=1, progress=f"pull {name}")
                        label = "170 MB, 1 layer" if name == "debian" else "170 MB + 1 small layer"
                        rows.append(row_from("pull", f"corral pull+unpack ({label})", "s", samples["corral"],
                                             anchor_name="podman pull", anchor_values=samples["podman"],
                                             target="<= 0.8x podman", limit=0.8))
                        rows.append(row_from("pull", f"skopeo copy, fetch only ({label})", "s", samples["skopeo"],
                                             anchor_name="podman pull", anchor_values=samples["podman"]))
                    debian = f"{registry.host}/bench/debian:bench"
                    list(daemon.client().pull_image(debian))          # the store has it again
                    again = [_second_pull(daemon, debian) for _ in range(10)]
                    rows.append(row_from("pull", "second pull (image up to date), API", "ms", again, scale=1000,
                                         target="<= 50 ms", limit=50))
                finally:
                    daemon.close()
    finally:
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)
    return {"rows": [row.to_dict() for row in rows]}


def _corral_pull(daemon: BenchDaemon, ref: str) -> float:
    client = daemon.client()
    for image in client.list_images():       # every bench image: no layer may be "Already exists"
        if "/bench/" in image["name"]:
            client.remove_image(f"{image['name']}:{image['tag']}")
    started = time.perf_counter()
    subprocess.run([CORRAL, "pull", "-q", ref], env=daemon.env, check=True, capture_output=True)
    return time.perf_counter() - started


def _second_pull(daemon: BenchDaemon, ref: str) -> float:
    client = daemon.client()
    started = time.perf_counter()
    lines = list(client.pull_image(ref))
    elapsed = time.perf_counter() - started
    assert any("up to date" in str(line.get("status", "")) for line in lines), lines
    return elapsed


def _podman_pull(root: Path, ref: str) -> float:
    _emptied(root)
    args = ["podman", "--root", str(root / "storage"), "--runroot", str(root / "run"), "--storage-driver", "overlay",
            "pull", "--quiet", "--tls-verify=false", ref]
    started = time.perf_counter()
    subprocess.run(args, check=True, capture_output=True)
    return time.perf_counter() - started


def _skopeo_copy(directory: Path, ref: str) -> float:
    _emptied(directory)
    started = time.perf_counter()
    subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{ref}",
                    f"dir:{directory / 'image'}"], check=True, capture_output=True)
    return time.perf_counter() - started
