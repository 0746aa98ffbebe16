"""Launch: start-to-exit of `/bin/true` in the busybox image, Corral against the anchors.

Subjects, each timed from the bench process, one of each per round in a shuffled order:
  api_run_none the API's own one-request launch, `POST /v1/containers/run?remove=true` (what
               `corral run --rm` sends), --net none: create, start, the output, the exit code
               once the container is removed                                (vs crun)
  api_none     ApiClient: create(start=true) + wait + remove, --net none: three requests, the
               docker-style path, kept for reference
  api_bridge   the same on the default bridge network (veth, IP, nft rules)
  cli_none     `corral run --rm --net none busybox /bin/true` as a subprocess (vs podman)
  cli_bridge   `corral run --rm busybox /bin/true` (the default network)
  cli_version  `corral version`: the CLI's interpreter start and imports, one API call
  python       the venv's `python -c pass`: the interpreter alone (site, the editable-install hook)
  runc         `runc run` on an OCI bundle of the same rootfs (`runc spec`, /bin/true)
  crun         `crun run` on the same bundle; crun 1.8 refuses hybrid cgroups and its
               --cgroup-manager=disabled refuses them too, so it runs from a helper process in a
               private mount namespace with a tmpfs over /sys/fs/cgroup/unified: crun then sees
               a v1-only host and makes v1 cgroups, the same work as runc. The helper times each
               run itself, so neither unshare nor the mount is in the figure.
  podman       `podman run --rm --network none` of the same rootfs (`podman import`), runtime
               runc (its default crun refuses hybrid cgroups), a private --root, cgroupfs
               manager under the bench's own cgroup parent, rlimits lowered to what a process
               without CAP_SYS_RESOURCE may set (podman's defaults raise them and fail here).
  floor        `unshare -pfmiun --mount-proc chroot ROOTFS /bin/true`

The OCI runtimes' containers get a new netns with only `lo`, like --net none; so does podman's
`--network none` (its default CNI bridge would change the host's iptables).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from bench.common import CORRAL, BenchDaemon, bench_cgroup_name, interleave, remove_cgroup_tree, row_from, timed_command

BUSYBOX = "busybox:latest"
# Runs inside the private mount namespace: reads an argv per line, answers seconds and code.
_HELPER = r"""
import json, subprocess, sys, time
for line in sys.stdin:
    argv = json.loads(line)
    start = time.perf_counter()
    result = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    print(json.dumps([elapsed, result.returncode, result.stderr.decode(errors="replace")[-400:]]), flush=True)
"""


class OciAnchors:
    """The OCI bundle of the daemon's busybox rootfs, and runc / crun / podman / unshare runs of
    /bin/true in it. Everything it makes lives under `work` and one corral-bench-* cgroup
    parent, and `close()` removes it (podman image, storage, cgroups, the helper)."""

    def __init__(self, daemon_root: Path, work: Path) -> None:
        from agent.images.store import ImageStore
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        self.cgroup = bench_cgroup_name()
        self.rootfs = work / "rootfs"
        store = ImageStore(daemon_root)
        layers = store.layer_paths(store.get(BUSYBOX))
        if len(layers) != 1:
            raise RuntimeError(f"{BUSYBOX} has {len(layers)} layers; the bench copies a one-layer rootfs")
        subprocess.run(["cp", "-a", str(layers[0]), str(self.rootfs)], check=True)
        self.bundles = {name: self._bundle(name) for name in ("runc", "crun")}
        self._helper: subprocess.Popen | None = None
        self._podman_root = work / "podman"
        # podman refuses a runroot path longer than 50 characters.
        self._podman_runroot = Path("/run") / self.cgroup
        self._podman_image = "localhost/corral-bench-busybox:latest"
        self._had_containers_dir = Path("/var/lib/containers").exists()
        self.podman_problem: str | None = None
        self._count = 0

    def _bundle(self, runtime: str) -> Path:
        bundle = self.work / f"bundle-{runtime}"
        bundle.mkdir()
        subprocess.run(["runc", "spec", "--bundle", str(bundle)], check=True)
        config = json.loads((bundle / "config.json").read_text())
        config["process"]["terminal"] = False
        config["process"]["args"] = ["/bin/true"]
        config["root"] = {"path": str(self.rootfs), "readonly": True}
        config["linux"]["cgroupsPath"] = f"/{self.cgroup}/{runtime}"
        (bundle / "config.json").write_text(json.dumps(config))
        return bundle

    def _next_id(self, runtime: str) -> str:
        self._count += 1
        return f"{self.cgroup}-{runtime}-{self._count}"

    def runc(self) -> float:
        return timed_command(["runc", "run", "--bundle", str(self.bundles["runc"]), self._next_id("runc")])

    def crun(self) -> float:
        if self._helper is None:
            script = self.work / "crun_helper.py"
            script.write_text(_HELPER)
            self._helper = subprocess.Popen(
                ["unshare", "-m", "--propagation", "private", "sh", "-c",
                 'mount -t tmpfs tmpfs /sys/fs/cgroup/unified && exec "$0" -u "$1"', sys.executable, str(script)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        argv = ["crun", "run", "--bundle", str(self.bundles["crun"]), self._next_id("crun")]
        self._helper.stdin.write(json.dumps(argv) + "\n")
        self._helper.stdin.flush()
        line = self._helper.stdout.readline()
        if not line:
            raise RuntimeError("the crun helper (private mount namespace) exited")
        elapsed, code, stderr = json.loads(line)
        if code != 0:
            raise RuntimeError(f"crun run exited {code}: {stderr}")
        return elapsed

    def floor(self) -> float:
        return timed_command(["unshare", "-pfmiun", "--mount-proc", "chroot", str(self.rootfs), "/bin/true"])

    # podman

    def _podman(self, *args: str) -> list[str]:
        return ["podman", "--root", str(self._podman_root / "root"), "--runroot", str(self._podman_runroot),
                "--storage-driver", "overlay", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                "--runtime", "runc", *args]

    def podman_ready(self) -> bool:
        """Import the rootfs into podman's private store and run it once; False (with the
        reason in `podman_problem`) when podman cannot run here."""
        if shutil.which("podman") is None:
            self.podman_problem = "podman is not installed (bench/setup.sh installs it)"
            return False
        tarball = self.work / "rootfs.tar"
        with tarfile.open(tarball, "w") as tar:
            tar.add(self.rootfs, arcname=".")
        imported = subprocess.run(self._podman("import", str(tarball), self._podman_image),
                                  capture_output=True, text=True)
        if imported.returncode != 0:
            self.podman_problem = f"podman import failed: {imported.stderr.strip()[-300:]}"
            return False
        try:
            self.podman()
        except RuntimeError as exc:
            self.podman_problem = str(exc)
            return False
        return True

    def podman(self) -> float:
        return timed_command(self._podman(
            "run", "--rm", "--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
            "--cgroup-parent", f"/{self.cgroup}/podman", self._podman_image, "/bin/true"))

    def podman_ps(self) -> float:
        """`podman ps -a` on the private store: podman's start-up and one listing (bench/cli_startup.py)."""
        return timed_command(self._podman("ps", "-a"))

    def close(self) -> list[str]:
        """Remove everything; returns what could not be removed."""
        problems = []
        if self._helper is not None:
            self._helper.stdin.close()
            self._helper.wait(timeout=30)
        if self._podman_root.exists():
            subprocess.run(self._podman("rm", "-a", "-f"), capture_output=True)
            subprocess.run(self._podman("rmi", "-a", "-f"), capture_output=True)
        shutil.rmtree(self._podman_runroot, ignore_errors=True)
        if not self._had_containers_dir:   # podman import's blob cache, made by this run
            shutil.rmtree("/var/lib/containers", ignore_errors=True)
        problems += remove_cgroup_tree(self.cgroup)
        return problems


def api_cycle(daemon: BenchDaemon, network: str) -> float:
    """create(start) + wait + remove of /bin/true through the API: the equal of `runc run`,
    which also returns once the container is gone."""
    client = daemon.client()
    start = time.perf_counter()
    container = client.create_container({"image": BUSYBOX, "command": ["/bin/true"], "network": network},
                                         start=True)
    daemon.created.add(container["id"])
    result = client.wait_container(container["id"])
    client.remove_container(container["id"])
    elapsed = time.perf_counter() - start
    if result.get("exit_code") != 0:
        raise RuntimeError(f"/bin/true through the API exited {result}")
    return elapsed


def api_run_cycle(daemon: BenchDaemon, network: str) -> float:
    """`POST /v1/containers/run?remove=true` of /bin/true, read to its status frame (sent once the
    container is removed): one request, as `corral run --rm` makes it."""
    from agent.api.frames import decode_exit
    from agent.api.run_client import run_container
    client = daemon.client()
    start = time.perf_counter()
    container_id, stream = run_container(client, {"image": BUSYBOX, "command": ["/bin/true"], "network": network},
                                         remove=True)
    daemon.created.add(container_id)
    code = None
    for number, data in stream:
        if number == 3:
            code = decode_exit(data)
    elapsed = time.perf_counter() - start
    if code != 0:
        raise RuntimeError(f"/bin/true through the run route exited {code}")
    return elapsed


def run(rounds: int = 20) -> dict:
    rows = []
    raw: dict = {}
    with BenchDaemon(name="launch") as daemon:
        anchors = OciAnchors(daemon.root, daemon.root / "anchors")
        try:
            subjects = {
                "api_run_none": lambda: api_run_cycle(daemon, "none"),
                "api_none": lambda: api_cycle(daemon, "none"),
                "api_bridge": lambda: api_cycle(daemon, "bridge"),
                "cli_none": lambda: timed_command([CORRAL, "run", "--rm", "--net", "none", BUSYBOX, "/bin/true"],
                                                  env=daemon.env),
                "cli_bridge": lambda: timed_command([CORRAL, "run", "--rm", BUSYBOX, "/bin/true"], env=daemon.env),
                "cli_version": lambda: timed_command([CORRAL, "version"], env=daemon.env),
                "python": lambda: timed_command([sys.executable, "-c", "pass"]),
                "runc": anchors.runc,
                "crun": anchors.crun,
                "floor": anchors.floor,
            }
            podman = anchors.podman_ready()
            if podman:
                subjects["podman"] = anchors.podman
            samples = interleave(subjects, rounds, warmup=2, progress="launch")
        finally:
            problems = anchors.close()
    ms = 1e3
    crun, podman_s = samples["crun"], samples.get("podman")
    rows.append(row_from("launch", "API run /bin/true, --net none (one request)", "ms", samples["api_run_none"],
                         scale=ms, anchor_name="crun", anchor_values=crun, target="<= 1.0x crun", limit=1.0))
    rows.append(row_from("launch", "API create+wait+rm /bin/true, --net none", "ms", samples["api_none"], scale=ms,
                         anchor_name="crun", anchor_values=crun))
    rows.append(row_from("launch", "API run /bin/true, bridge", "ms", samples["api_bridge"], scale=ms,
                         anchor_name="crun", anchor_values=crun))
    for name, label in (("cli_none", "CLI run --rm, --net none"), ("cli_bridge", "CLI run --rm, bridge")):
        if podman_s:
            rows.append(row_from("launch", label, "ms", samples[name], scale=ms, anchor_name="podman",
                                 anchor_values=podman_s,
                                 target="<= 0.15x podman" if name == "cli_none" else None,
                                 limit=0.15 if name == "cli_none" else None))
        else:
            rows.append(row_from("launch", label, "ms", samples[name], scale=ms,
                                 note=f"no podman anchor: {anchors.podman_problem}"))
    for name, label in (("cli_version", "CLI `corral version` (start-up + 1 call)"),
                        ("python", "venv `python -c pass` (interpreter alone)")):
        if podman_s:
            rows.append(row_from("launch", label, "ms", samples[name], scale=ms, anchor_name="podman",
                                 anchor_values=podman_s))
        else:
            rows.append(row_from("launch", label, "ms", samples[name], scale=ms, anchor_name="crun",
                                 anchor_values=crun))
    for name in ("runc", "crun", "podman", "floor"):
        if name in samples:
            rows.append(row_from("launch", f"anchor: {name}", "ms", samples[name], scale=ms,
                                 anchor_name="crun", anchor_values=crun))
    raw = {name: [round(v * ms, 3) for v in values] for name, values in samples.items()}
    return {"rows": [r.to_dict() for r in rows], "samples_ms": raw, "rounds": rounds,
            "podman_problem": anchors.podman_problem, "cleanup_problems": problems}


if __name__ == "__main__":
    from bench.__main__ import main
    sys.exit(main(["launch", *sys.argv[1:]]))
