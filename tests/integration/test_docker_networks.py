"""Containers on several networks through Docker's clients: `docker network connect --alias`,
`docker network disconnect`, `docker network inspect`, `docker run --network a --network b
--network-alias`, and docker-py's `network.connect(container, aliases=[...])`."""
from __future__ import annotations

import json
import time

import pytest

from tests.integration.test_docker_cli import clean, daemon, docker  # noqa: F401 - the module's fixtures
from tests.integration.test_network_connect import reach  # any client with `.out(...)`: docker's here

pytestmark = pytest.mark.privileged


@pytest.fixture
def nets(docker):
    docker.run("network", "create", "--subnet", "10.252.41.0/24", "dk-front")
    docker.run("network", "create", "--subnet", "10.252.42.0/24", "dk-back")
    yield "dk-front", "dk-back"
    docker.run("rm", "-f", "web", "db", "cache", check=False)
    docker.run("network", "rm", "dk-front", "dk-back", check=False)


def test_docker_network_connect_alias_inspect_and_disconnect(docker, nets):
    docker.run("run", "-d", "--name", "db", "--network", "dk-back", "--network-alias", "database",
               "busybox", "sleep", "300")
    docker.run("run", "-d", "--name", "web", "--network", "dk-front", "busybox", "sleep", "300")
    assert reach(docker, "web", "db", "database") == []

    since = str(int(time.time()) - 1)
    docker.run("network", "connect", "--alias", "x", "--ip", "10.252.42.77", "dk-back", "web")
    events = docker.out("events", "--since", since, "--until", str(int(time.time()) + 1), "--filter", "type=network",
                        "--format", "{{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.container}}")
    assert f"connect dk-back {docker.out('inspect', '-f', '{{.Id}}', 'web')}" in events.splitlines()
    assert reach(docker, "web", "db", "database") == ["db", "database"]
    assert reach(docker, "db", "web", "x") == ["web", "x"]
    networks = json.loads(docker.out("inspect", "-f", "{{json .NetworkSettings.Networks}}", "web"))
    assert sorted(networks) == ["dk-back", "dk-front"]
    assert networks["dk-back"]["IPAddress"] == "10.252.42.77" and networks["dk-back"]["Aliases"] == ["x"]
    back_id = docker.out("network", "inspect", "-f", "{{.Id}}", "dk-back")
    assert networks["dk-back"]["NetworkID"] == back_id and networks["dk-front"]["NetworkID"] != back_id
    members = json.loads(docker.out("network", "inspect", "-f", "{{json .Containers}}", "dk-back"))
    assert sorted(m["Name"] for m in members.values()) == ["db", "web"]
    assert "dk-back" in docker.out("ps", "--filter", "network=dk-back", "--format", "{{.Names}} {{.Networks}}")
    refused = docker.run("network", "connect", "dk-back", "web", check=False)
    assert refused.returncode != 0 and "already connected" in refused.stderr.decode()

    docker.run("network", "disconnect", "dk-back", "web")
    assert reach(docker, "web", "db") == [] and reach(docker, "db", "web", "x") == []
    members = json.loads(docker.out("network", "inspect", "-f", "{{json .Containers}}", "dk-back"))
    assert [m["Name"] for m in members.values()] == ["db"]
    refused = docker.run("network", "disconnect", "dk-back", "web", check=False)
    assert refused.returncode != 0 and "not connected" in refused.stderr.decode()
    docker.run("network", "disconnect", "--force", "dk-back", "web")


def test_docker_run_with_two_networks_and_a_created_container(docker, nets):
    docker.run("run", "-d", "--name", "db", "--network", "dk-back", "busybox", "sleep", "300")
    docker.run("run", "-d", "--name", "web", "--network", "dk-front", "--network", "dk-back",
               "busybox", "sleep", "300")
    assert reach(docker, "web", "db") == ["db"]
    assert sorted(json.loads(docker.out("inspect", "-f", "{{json .NetworkSettings.Networks}}", "web"))) == \
        ["dk-back", "dk-front"]
    docker.run("create", "--name", "cache", "--network", "dk-front", "busybox", "sleep", "300")
    docker.run("network", "connect", "--alias", "kv", "dk-back", "cache")
    created = json.loads(docker.out("inspect", "-f", "{{json .NetworkSettings.Networks}}", "cache"))
    assert sorted(created) == ["dk-back", "dk-front"] and created["dk-back"]["Aliases"] == ["kv"]
    docker.run("start", "cache")
    assert reach(docker, "db", "cache", "kv") == ["cache", "kv"]


def test_docker_py_connect_with_aliases_and_disconnect(daemon, nets):  # noqa: F811 - the fixture
    docker_py = pytest.importorskip("docker")
    client = docker_py.DockerClient(base_url=f"unix://{daemon.docker_socket}", version="auto", timeout=60)
    try:
        back = client.networks.get("dk-back")
        db = client.containers.run("busybox", ["sleep", "300"], detach=True, name="db", network="dk-back")
        web = client.containers.run("busybox", ["sleep", "300"], detach=True, name="web", network="dk-front")
        back.connect(web, aliases=["api"])
        web.reload()
        assert sorted(web.attrs["NetworkSettings"]["Networks"]) == ["dk-back", "dk-front"]
        assert web.attrs["NetworkSettings"]["Networks"]["dk-back"]["Aliases"] == ["api"]
        back.reload()
        assert sorted(c.name for c in back.containers) == ["db", "web"]
        code, output = db.exec_run(["ping", "-c", "1", "-W", "2", "api"])
        assert code == 0, output
        back.disconnect(web)
        code, _ = db.exec_run(["ping", "-c", "1", "-W", "2", "api"])
        assert code != 0
        with pytest.raises(docker_py.errors.APIError):
            back.disconnect(web)
        # create with NetworkingConfig: aliases on a user network, as Compose sends them
        endpoint = client.api.create_endpoint_config(aliases=["cache-alias"])
        created = client.api.create_container(
            "busybox", ["sleep", "300"], name="cache",
            host_config=client.api.create_host_config(network_mode="dk-back"),
            networking_config=client.api.create_networking_config({"dk-back": endpoint}))
        client.api.start(created["Id"])
        code, output = db.exec_run(["ping", "-c", "1", "-W", "2", "cache-alias"])
        assert code == 0, output
    finally:
        client.close()
