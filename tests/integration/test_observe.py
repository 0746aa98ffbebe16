"""Observe mode for real: cgroups laid out the way containerd (systemd and cgroupfs drivers),
docker and systemd lay them out, made by the test below a cgroup subtree it owns
(`/corral-observe-test-<rand>` in every hierarchy of this host), with real processes inside.

The daemon is started with --observe-root pointing there (and --observe-state-root at a fixture
tree holding the runtimes' state files), so nothing of the host's own cgroups is touched.
Podman cannot run on this machine (not installed; crun refuses hybrid cgroups), so the podman
layout is covered by the unit tests only.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from agent.cgroups.driver import Limits
from agent.discovery.classify import HostState
from agent.discovery.foreign_cgroups import ForeignCgroups
from agent.discovery.observed import ObservedContainers
from agent.discovery.watcher import CgroupTrees, scan
from tests.integration.corral_daemon import CorralDaemon

pytestmark = pytest.mark.privileged

UID = "5e6f7a8b-0c1d-4e2f-9a3b-4c5d6e7f8091"


class OwnedCgroups:
    """Cgroups below /corral-observe-test-<rand> in every hierarchy, and the processes moved in;
    `remove()` kills the processes and removes every directory, deepest first."""

    def __init__(self) -> None:
        self.trees = CgroupTrees.detect()
        self.root = f"/corral-observe-test-{secrets.token_hex(4)}"
        self.processes: list[subprocess.Popen] = []
        self.made: list[str] = []

    def make(self, path: str, *, unified: bool = True) -> str:
        rel = self.root + path
        mounts = ([self.trees.unified] if unified else []) + list(self.trees.controllers.values())
        for mount in dict.fromkeys(os.path.realpath(m) for m in mounts):
            directory = mount
            for part in rel.strip("/").split("/"):
                directory = os.path.join(directory, part)
                if not os.path.isdir(directory):
                    os.mkdir(directory)
                    self.made.append(directory)
        return rel

    def run_in(self, rel: str, *command: str) -> subprocess.Popen:
        """Start `command` and move it into the cgroup `rel` of every hierarchy that has it."""
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                   start_new_session=True)
        self.processes.append(process)
        for mount in dict.fromkeys(os.path.realpath(m) for m in self.trees.mounts()):
            procs = os.path.join(mount, rel.strip("/"), "cgroup.procs")
            if os.path.exists(procs):
                with open(procs, "w") as handle:
                    handle.write(str(process.pid))
        return process

    def stop(self, process: subprocess.Popen) -> None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=10)

    def rmdir(self, rel: str) -> None:
        for mount in dict.fromkeys(os.path.realpath(m) for m in self.trees.mounts()):
            directory = os.path.join(mount, rel.strip("/"))
            for _ in range(100):
                try:
                    os.rmdir(directory)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)    # EBUSY while killed tasks exit

    def remove(self) -> None:
        for process in self.processes:
            self.stop(process)
        for directory in sorted(self.made, key=lambda d: d.count("/"), reverse=True):
            rel = directory
            for _ in range(100):
                try:
                    os.rmdir(rel)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.05)

    def leftovers(self) -> list[str]:
        return [m for m in self.trees.mounts() if os.path.exists(os.path.join(m, self.root.strip("/")))]


@pytest.fixture
def tree():
    made = OwnedCgroups()
    try:
        yield made
    finally:
        made.remove()
        assert made.leftovers() == []


def hexid() -> str:
    return secrets.token_hex(32)


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def wait_until(check, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def metrics(daemon: CorralDaemon) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{daemon.metrics_port}/metrics", timeout=30) as answer:
        return answer.read().decode()


def observed(daemon: CorralDaemon) -> dict[str, dict]:
    listing = json.loads(daemon.out("ps", "--all-cgroups", "--format", "json"))
    return {c["name"]: c for c in listing if c.get("observed")}


def test_the_daemon_observes_lists_counts_and_forgets_foreign_containers(tmp_path, tree):
    state = tmp_path / "host"
    k8s_systemd, k8s_cgroupfs, docker, docker_v1 = hexid(), hexid(), hexid(), hexid()
    write_json(state / f"run/containerd/io.containerd.runtime.v2.task/k8s.io/{k8s_systemd}/config.json",
               {"annotations": {"io.kubernetes.cri.container-type": "container",
                                "io.kubernetes.cri.container-name": "nginx",
                                "io.kubernetes.cri.sandbox-name": "web-0", "io.kubernetes.cri.sandbox-namespace": "shop",
                                "io.kubernetes.cri.image-name": "docker.io/library/nginx:1.25"}})
    write_json(state / f"run/containerd/io.containerd.runtime.v2.task/k8s.io/{k8s_cgroupfs}/config.json",
               {"annotations": {"io.kubernetes.cri.container-name": "worker",
                                "io.kubernetes.cri.sandbox-name": "jobs-1", "io.kubernetes.cri.sandbox-namespace": "batch"}})
    write_json(state / f"var/lib/docker/containers/{docker}/config.v2.json",
               {"Name": "/shop-db", "Config": {"Image": "postgres:16", "Labels": {"team": "shop"}}})

    uid_escaped = UID.replace("-", "_")
    paths = {
        "k8s_nginx_web-0_shop": tree.make("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod"
                                          f"{uid_escaped}.slice/cri-containerd-{k8s_systemd}.scope"),
        "k8s_worker_jobs-1_batch": tree.make(f"/kubepods/burstable/pod{UID}/{k8s_cgroupfs}"),
        "shop-db": tree.make(f"/system.slice/docker-{docker}.scope"),
        "corral-observe-test.service": tree.make("/system.slice/corral-observe-test.service"),
        docker_v1[:12]: tree.make(f"/docker/{docker_v1}", unified=False),
    }
    for rel in paths.values():
        tree.run_in(rel, "sleep", "600")
    # A process that keeps making syscalls, in the docker container.
    tree.run_in(paths["shop-db"], "sh", "-c", "while :; do cat /proc/self/stat >/dev/null; done")

    daemon = CorralDaemon(tmp_path / "corral", "--no-network", "--config", "none",
                          "--observe-root", tree.root, "--observe-state-root", str(state))
    daemon.start()
    try:
        found = wait_until(lambda: (lambda o: o if set(paths) <= set(o) else None)(observed(daemon)))
        assert found, f"observed: {sorted(observed(daemon))}"
        nginx = found["k8s_nginx_web-0_shop"]
        assert (nginx["runtime"], nginx["pod"], nginx["namespace"], nginx["container"], nginx["image"]) == (
            "containerd", "web-0", "shop", "nginx", "docker.io/library/nginx:1.25")
        assert found["k8s_worker_jobs-1_batch"]["runtime"] == "containerd"
        assert found["shop-db"]["image"] == "postgres:16" and found["shop-db"]["probes"] is True
        assert found["corral-observe-test.service"]["runtime"] == "systemd"
        v1_only = found[docker_v1[:12]]
        assert v1_only["probes"] is False and "without BPF probes" in v1_only["note"]

        table = daemon.out("ps", "--all-cgroups")
        assert "docker (observed)" in table and "systemd (observed)" in table and "shop-db" in table

        def exported():
            text = metrics(daemon)
            ok = ('container_label_io_kubernetes_pod_name="web-0"' in text
                  and 'container_label_io_kubernetes_pod_namespace="shop"' in text
                  and 'container_label_io_kubernetes_container_name="nginx"' in text
                  and any(line.startswith("corral_syscalls_total{") and 'name="shop-db"' in line
                          and float(line.rsplit(" ", 1)[1]) > 0 for line in text.splitlines()))
            return text if ok else None
        text = wait_until(exported)
        assert text, "no syscalls or Kubernetes labels for the observed containers in /metrics"
        memory = [line for line in text.splitlines()
                  if line.startswith("container_memory_usage_bytes{") and 'name="k8s_nginx_web-0_shop"' in line]
        assert memory and f'id="{paths["k8s_nginx_web-0_shop"]}"' in memory[0]
        assert any(line.startswith("container_processes{") and f'name="{docker_v1[:12]}"' in line
                   for line in text.splitlines())

        # Removal while observed: the container leaves the listing, and an event says so.
        inside = _pids_of(tree, paths["shop-db"])
        for process in tree.processes:
            if process.pid in inside:
                tree.stop(process)
        tree.rmdir(paths["shop-db"])
        assert wait_until(lambda: "shop-db" not in observed(daemon)), "shop-db is still listed"
        events = daemon.out("events", "--since", "0")
        assert "container vanish" in events and "shop-db" in events
        assert daemon.cli("inspect", "shop-db", check=False).returncode != 0
    finally:
        assert daemon.stop() == 0
    # The probes' cgroup attachments went with the daemon; nothing of Corral's is left behind
    # in the test's cgroups (they are still there, with their processes, until the fixture ends).
    assert Path(tree.trees.unified, paths["k8s_nginx_web-0_shop"].strip("/")).is_dir()


def _pids_of(tree: OwnedCgroups, rel: str) -> set[int]:
    pids: set[int] = set()
    for mount in tree.trees.mounts():
        try:
            pids.update(int(p) for p in Path(mount, rel.strip("/"), "cgroup.procs").read_text().split())
        except OSError:
            continue
    return pids


def test_policy_actions_act_on_a_foreign_cgroup_without_removing_it(tree, tmp_path):
    rel = tree.make(f"/system.slice/docker-{hexid()}.scope")
    sleeper = tree.run_in(rel, "sleep", "600")
    registry = ObservedContainers(state=HostState(root=str(tmp_path)))
    registry.update(scan(tree.trees, tree.root)[0])
    [container] = registry.list()
    driver = ForeignCgroups("hybrid" if tree.trees.hybrid else "v2", registry.owns, keep_files_open=False)
    paths = container.cgroup

    driver.set_limits(paths, Limits(memory_bytes=256 << 20, cpu_quota_us=50_000, pids_max=64))
    limits = driver.read_limits(paths)
    assert (limits.memory_bytes, limits.cpu_quota_us, limits.pids_max) == (256 << 20, 50_000, 64)
    assert driver.stats(paths).memory_limit_bytes == 256 << 20

    driver.freeze(paths)
    assert driver.stats(paths).frozen is True
    driver.thaw(paths)
    assert driver.stats(paths).frozen is False

    driver.kill(paths)
    assert sleeper.wait(timeout=10) == -signal.SIGKILL
    assert driver.exists(paths)          # killed, never removed: the runtime that made it removes it
