"""docker-compose 1.29 (PyPI, its own venv: scripts/compose-venv.sh) drives Corral through the
Docker Engine API: a two-service project with a user network, a named volume, depends_on and
deploy.replicas, through up, ps, logs, exec -T, up --scale, run and down.

What a user sees is checked (exit codes, output), then that Corral sees the same containers
with Compose's labels exactly, that its probes count them, and that `down -v` leaves nothing on
the host: no container, network, bridge, volume, veth, nft rule, cgroup or mount. A policy
selecting Compose's labels applies to the containers Compose made.
"""
from __future__ import annotations

import glob
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.integration import host_state
from tests.integration.corral_daemon import running_daemon, until
from tests.integration.docker_support import DockerCli
from tests.integration.test_metrics_endpoint import samples, scrape

pytestmark = pytest.mark.privileged
COMPOSE_VENV = Path(os.environ.get("COMPOSE_VENV", "/opt/corral-test/compose-venv"))
PROJECT = "corralcompose"
# web serves a file from the named volume; client fetches it by the service name over the
# project's network, once a second, from the moment web has been started (depends_on).
COMPOSE_FILE = """\
version: "3.8"
services:
  web:
    image: busybox
    command: ["sh", "-c", "echo served from the volume > /www/index.html && exec httpd -f -v -p 8080 -h /www"]
    volumes: ["www:/www"]
    networks: [back]
    deploy:
      replicas: 2
  client:
    image: busybox
    command: ["sh", "-c", "while :; do wget -q -O - http://web:8080/; sleep 1; done"]
    depends_on: [web]
    networks: [back]
volumes:
  www: {}
networks:
  back: {}
"""


class ComposeCli(DockerCli):
    """`docker-compose -p PROJECT ...` in the project's directory, DOCKER_HOST at the daemon."""

    def __init__(self, daemon, project_dir: Path) -> None:
        super().__init__(daemon, project_dir / ".docker", str(COMPOSE_VENV / "bin" / "docker-compose"),
                         "none: PyPI's docker-compose 1.29.2, by scripts/compose-venv.sh")
        self.argv = [self.path, "--ansi", "never", "-p", PROJECT]
        self.cwd = str(project_dir)

    def out(self, *args: str, **kwargs) -> str:        # compose's output, to its last newline
        return self.run(*args, **kwargs).stdout.decode()


# A policy selecting web's containers by the labels Compose gives them.
POLICY = f"""\
apiVersion: corral/v1
kind: Policy
metadata: {{name: compose-web}}
spec:
  selector:
    labels: {{com.docker.compose.project: {PROJECT}, com.docker.compose.service: web}}
  limits: {{memory: 48Mi}}
"""


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    policies = tmp_path_factory.mktemp("policies")
    (policies / "compose-web.yaml").write_text(POLICY)
    with running_daemon("--policies", str(policies)) as instance:
        yield instance


@pytest.fixture
def project(daemon, tmp_path):
    (tmp_path / "docker-compose.yml").write_text(COMPOSE_FILE)
    compose = ComposeCli(daemon, tmp_path)
    yield compose
    compose.run("down", "-v", "-t", "1", check=False)     # after a failure; a no-op after a passing test


def _nft_comments() -> set[str]:
    done = subprocess.run(["nft", "-j", "list", "table", "ip", "corral"], capture_output=True, text=True)
    if done.returncode != 0:
        return set()
    return {item["rule"].get("comment", "") for item in json.loads(done.stdout)["nftables"] if "rule" in item}


def _bridges() -> set[str]:
    links = json.loads(subprocess.run(["ip", "-j", "link", "show", "type", "bridge"], capture_output=True,
                                      text=True, check=True).stdout)
    return {link["ifname"] for link in links}


def _running(compose: ComposeCli) -> dict[str, str]:
    """`docker-compose ps` as {container name: state}."""
    rows = compose.out("ps").splitlines()[2:]       # a header and a rule first
    return {row.split()[0]: row.split()[-1] for row in rows if row.strip()}


def test_a_two_service_project_up_scale_exec_run_and_down_leaves_nothing(daemon, project, tmp_path):
    docker = DockerCli(daemon, tmp_path / ".docker")
    before = host_state.snapshot(daemon.root)
    bridges_before, nft_before = _bridges(), _nft_comments()

    up = project.run("up", "-d")
    said = up.stderr.decode()
    for line in (f'Creating network "{PROJECT}_back"', f'Creating volume "{PROJECT}_www"',
                 f"Creating {PROJECT}_web_1", f"Creating {PROJECT}_web_2", f"Creating {PROJECT}_client_1"):
        assert line in said
    assert said.index(f"Creating {PROJECT}_client_1") > said.index(f"Creating {PROJECT}_web_2")   # depends_on
    assert _running(project) == {f"{PROJECT}_client_1": "Up", f"{PROJECT}_web_1": "Up", f"{PROJECT}_web_2": "Up"}

    # client reaches web by its service name over the project network; web's log shows the requests
    until(lambda: "served from the volume" in project.out("logs", "client"), "client fetched web's page")
    web_log = project.out("logs", "web")
    assert re.search(r"^web_[12]\s+\| .*response:200", web_log, re.M), web_log
    assert project.out("exec", "-T", "web", "cat", "/www/index.html") == "served from the volume\n"
    assert project.out("exec", "-T", "--index=2", "web", "cat", input=b"through stdin\n") == "through stdin\n"
    failed = project.run("exec", "-T", "web", "sh", "-c", "exit 7", check=False)
    assert failed.returncode == 7

    # Corral's own view: the same containers, Compose's labels exactly as Compose sent them
    ids = project.out("ps", "-q").split()
    assert len(ids) == 3
    for cid in ids:
        sent = json.loads(docker.out("inspect", "-f", "{{json .Config.Labels}}", cid))
        seen = daemon.inspect(cid)
        assert seen["Labels"] == sent
        number = sent["com.docker.compose.container-number"]
        assert seen["Name"] == f"{PROJECT}_{sent['com.docker.compose.service']}_{number}"
        assert {k: v for k, v in sent.items() if k not in ("com.docker.compose.config-hash",
                                                           "com.docker.compose.container-number",
                                                           "com.docker.compose.service")} == {
            "com.docker.compose.project": PROJECT, "com.docker.compose.oneoff": "False",
            "com.docker.compose.project.working_dir": str(tmp_path),
            "com.docker.compose.project.config_files": "docker-compose.yml",
            "com.docker.compose.version": "1.29.2"}
        assert re.fullmatch(r"[0-9a-f]{64}", sent["com.docker.compose.config-hash"])
    web = daemon.out("ps", "--filter", f"label=com.docker.compose.project={PROJECT}",
                     "--filter", "label=com.docker.compose.service=web", "--format", "{{.Names}}").split()
    assert sorted(web) == [f"{PROJECT}_web_1", f"{PROJECT}_web_2"]
    # a policy selects web's containers by Compose's labels, and its limit is in their cgroups
    listed = json.loads(daemon.out("policy", "ls", "--format", "json"))["policies"]
    assert sorted(next(p for p in listed if p["name"] == "compose-web")["containers"]) == sorted(web)
    for name in web:
        limit = glob.glob(f"/sys/fs/cgroup/memory/corral/{daemon.inspect(name)['Id']}/memory.limit_in_bytes") \
            or glob.glob(f"/sys/fs/cgroup/corral/{daemon.inspect(name)['Id']}/memory.max")
        assert limit and Path(limit[0]).read_text().strip() == str(48 << 20)
    # the probes see the client's connections like any Corral container's
    until(lambda: sum(samples(scrape(daemon), "corral_tcp_connects_total", name=f"{PROJECT}_client_1")) >= 1,
          "the client's TCP connects counted")

    # scale up: a third web, the rest left as they are; it serves the same volume
    scaled = project.run("up", "-d", "--scale", "web=3").stderr.decode()
    assert f"Creating {PROJECT}_web_3" in scaled and f"{PROJECT}_client_1 is up-to-date" in scaled
    assert "Recreating" not in scaled
    assert _running(project) == {f"{PROJECT}_client_1": "Up", f"{PROJECT}_web_1": "Up", f"{PROJECT}_web_2": "Up",
                                 f"{PROJECT}_web_3": "Up"}
    fetch = f"until wget -q -O - http://{PROJECT}_web_3:8080/; do sleep 0.2; done"
    assert project.out("exec", "-T", "client", "sh", "-c", fetch) == "served from the volume\n"
    # a one-off container of the client service, linked to the service's containers, removed after
    assert project.out("run", "--rm", "-T", "client", "wget", "-q", "-O", "-", "http://web:8080/") \
        == "served from the volume\n"
    assert project.run("run", "--rm", "-T", "client", "sh", "-c", "exit 3", check=False).returncode == 3
    assert len(daemon.out("ps", "-a", "-q").split()) == 4
    network = json.loads(daemon.out("network", "inspect", f"{PROJECT}_back"))[0]

    down = project.run("down", "-v", "-t", "1").stderr.decode()
    for line in (f"Removing {PROJECT}_web_3", f"Removing {PROJECT}_client_1", f"Removing network {PROJECT}_back",
                 f"Removing volume {PROJECT}_www"):
        assert line in down
    assert _running(project) == {}
    assert daemon.out("ps", "-a", "-q") == ""
    assert docker.out("network", "ls", "--format", "{{.Name}}").split() == ["bridge", "host", "none"]
    assert docker.out("volume", "ls", "-q") == ""
    assert not (daemon.root / "volumes" / f"{PROJECT}_www").exists()
    assert host_state.leaks_after(before, daemon.root, set()) == []
    assert network["bridge"] not in _bridges() and _bridges() <= bridges_before
    assert not {c for c in _nft_comments() - nft_before if PROJECT in c}
