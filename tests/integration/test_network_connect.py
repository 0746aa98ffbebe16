"""A container on several networks through Corral's CLI: `network connect|disconnect`, `run
--network a --network b --network-alias`, names and aliases resolved on each network, the
daemon's restart, and nothing left (veth, nft rule, address lease) after rm."""
from __future__ import annotations

import json
import subprocess

import pytest

from tests.integration.test_container_network import nft_rules, settled, veths

pytestmark = pytest.mark.privileged

SLEEPER = ("busybox", "sleep", "3600")


def leases(daemon, network: str) -> dict:
    path = daemon.root / "networks" / network / "addresses.json"
    return json.loads(path.read_text())["addresses"] if path.exists() else {}


def reach(daemon, container: str, *names: str) -> list[str]:
    """The names `container` reaches by ping, each printed on a line of its own when it does
    (`daemon`: Corral's CLI, or docker's: anything whose `out` runs `exec`)."""
    script = "; ".join(f"ping -c 1 -W 2 {name} >/dev/null 2>&1 && echo {name}" for name in names)
    return daemon.out("exec", container, "sh", "-c", script + "; true").split()


@pytest.fixture
def networks(daemon):
    daemon.cli("network", "create", "--subnet", "10.252.31.0/24", "conn-a")
    daemon.cli("network", "create", "--subnet", "10.252.32.0/24", "conn-b")
    yield "conn-a", "conn-b"
    daemon.remove_all()
    for name in ("conn-a", "conn-b"):
        daemon.cli("network", "rm", name, check=False)


def test_connect_reaches_peers_on_both_networks_and_disconnect_takes_it_back(daemon, networks):
    daemon.cli("run", "-d", "--name", "pa", "--net", "conn-a", "--network-alias", "alpha", *SLEEPER)
    daemon.cli("run", "-d", "--name", "pb", "--net", "conn-b", "--network-alias", "beta", *SLEEPER)
    daemon.cli("run", "-d", "--name", "hub", "--net", "conn-a", *SLEEPER)
    assert reach(daemon, "hub", "pa", "alpha", "pb", "beta") == ["pa", "alpha"]

    daemon.cli("network", "connect", "--alias", "center", "--ip", "10.252.32.50", "conn-b", "hub")
    assert reach(daemon, "hub", "pa", "alpha", "pb", "beta") == ["pa", "alpha", "pb", "beta"]
    assert reach(daemon, "pb", "hub", "center") == ["hub", "center"]      # its name and alias on conn-b
    assert reach(daemon, "pa", "center") == []                            # the alias is conn-b's only
    addresses = daemon.out("exec", "hub", "ip", "-o", "-4", "addr", "show")
    assert "eth1" in addresses and "10.252.32.50/24" in addresses
    info = daemon.inspect("hub")["NetworkSettings"]["Networks"]
    assert sorted(info) == ["conn-a", "conn-b"] and info["conn-b"]["Aliases"] == ["center"]
    inspected = json.loads(daemon.out("network", "inspect", "conn-b"))[0]["containers"]
    assert sorted((c["name"], c["interface"], c["aliases"]) for c in inspected.values()) == [
        ("hub", "eth1", ["center"]), ("pb", "eth0", ["beta"])]
    refused = daemon.cli("network", "connect", "conn-b", "hub", check=False)
    assert refused.returncode != 0 and b"already connected to network conn-b" in refused.stderr

    daemon.cli("network", "disconnect", "conn-b", "hub")
    assert reach(daemon, "hub", "pb", "beta") == []
    assert "10.252.32." not in daemon.out("exec", "hub", "ip", "route")  # the subnet's route went with eth1
    assert reach(daemon, "pb", "hub", "center") == []                     # peers no longer resolve it
    assert "hub" not in daemon.out("exec", "pb", "cat", "/etc/hosts")
    assert sorted(daemon.inspect("hub")["NetworkSettings"]["Networks"]) == ["conn-a"]
    assert leases(daemon, "conn-b") == {daemon.inspect("pb")["Id"]: "10.252.32.2"}
    refused = daemon.cli("network", "disconnect", "conn-b", "hub", check=False)
    assert refused.returncode != 0 and b"not connected to network conn-b" in refused.stderr
    daemon.cli("network", "disconnect", "-f", "conn-b", "hub")


def test_the_first_network_can_go_and_the_next_takes_the_default_route(daemon, networks):
    daemon.cli("run", "-d", "--name", "two", "--net", "conn-a", "--net", "conn-b", *SLEEPER)
    routes = daemon.out("exec", "two", "ip", "route")
    assert "default via 10.252.31.1" in routes and "10.252.32.0/24 dev eth1" in routes
    daemon.cli("network", "disconnect", "conn-a", "two")
    assert "default via 10.252.32.1" in daemon.out("exec", "two", "ip", "route")
    daemon.cli("network", "disconnect", "conn-b", "two")                  # the last one too, as docker
    assert daemon.out("exec", "two", "ls", "/sys/class/net").split() == ["lo"]
    assert daemon.inspect("two")["NetworkSettings"]["Networks"] == {}


def test_a_stopped_container_connects_at_its_next_start(daemon, networks):
    daemon.cli("create", "--name", "later", "--net", "conn-a", *SLEEPER)
    daemon.cli("network", "connect", "--alias", "late", "conn-b", "later")
    assert sorted(daemon.inspect("later")["NetworkSettings"]["Networks"]) == ["conn-a", "conn-b"]
    daemon.cli("run", "-d", "--name", "peer", "--net", "conn-b", *SLEEPER)
    daemon.cli("start", "later")
    assert reach(daemon, "peer", "later", "late") == ["later", "late"]
    daemon.cli("stop", "-t", "0", "later")
    daemon.cli("network", "disconnect", "conn-a", "later")
    daemon.cli("start", "later")
    assert daemon.out("exec", "later", "ls", "/sys/class/net").split() == ["eth0", "lo"]
    assert "10.252.32." in daemon.out("exec", "later", "ip", "-o", "-4", "addr", "show", "eth0")


def test_daemon_restart_keeps_connections_and_rm_leaves_nothing(daemon, networks):
    before_veths, before_rules = veths(), nft_rules().count("corral:container:")
    daemon.cli("run", "-d", "--name", "steady", "--net", "conn-a", "-p", "18093:80", *SLEEPER)
    daemon.cli("run", "-d", "--name", "other", "--net", "conn-b", *SLEEPER)
    daemon.cli("network", "connect", "--alias", "firm", "conn-b", "steady")
    container_id = daemon.inspect("steady")["Id"]
    daemon.stop()
    daemon.start()
    assert reach(daemon, "other", "steady", "firm") == ["steady", "firm"]
    assert sorted(daemon.inspect("steady")["NetworkSettings"]["Networks"]) == ["conn-a", "conn-b"]
    assert f"cv{container_id[:12]}1" in veths()
    daemon.cli("network", "disconnect", "conn-b", "steady")          # after the restart, too
    assert f"cv{container_id[:12]}1" not in veths()
    daemon.cli("network", "connect", "conn-b", "steady")
    daemon.cli("rm", "-f", "steady", "other")
    settled(daemon)
    assert veths() == before_veths
    assert nft_rules().count("corral:container:") == before_rules
    assert leases(daemon, "conn-a") == {} and leases(daemon, "conn-b") == {}
    left = subprocess.run(["ls", daemon.root / "networks" / "conn-b" / "endpoints"], capture_output=True, text=True)
    assert left.stdout.split() == []


def test_connect_refuses_host_and_none_containers(daemon, networks):
    daemon.cli("run", "-d", "--name", "alone", "--net", "none", *SLEEPER)
    refused = daemon.cli("network", "connect", "conn-a", "alone", check=False)
    assert refused.returncode != 0 and b"--net none" in refused.stderr
    refused = daemon.cli("network", "connect", "nosuchnet", "alone", check=False)
    assert refused.returncode != 0


def test_a_connect_the_dead_daemon_never_recorded_is_undone_at_its_restart(daemon, networks):
    """The daemon dies (SIGKILL) after a connect made its veth, lease and endpoint record but
    before the container's record said so: the restart's reconcile removes all three and keeps
    the network the record does claim."""
    daemon.cli("run", "-d", "--name", "torn", "--net", "conn-a", *SLEEPER)
    daemon.cli("network", "connect", "conn-b", "torn")
    container_id = daemon.inspect("torn")["Id"]
    assert f"cv{container_id[:12]}1" in veths() and container_id in leases(daemon, "conn-b")
    daemon.process.kill()                              # no clean shutdown
    daemon.process.wait()
    daemon.process = None
    directory = daemon.root / "containers" / container_id
    latest = max(directory.glob("state.*.json"), key=lambda p: int(p.name.split(".")[1]))
    record = json.loads(latest.read_text())
    assert [a["network"] for a in record["extra_attachments"]] == ["conn-b"]
    record["extra_attachments"], record["networks"] = [], [{"network": "conn-a", "aliases": [], "ip": None}]
    (directory / f"state.{int(latest.name.split('.')[1]) + 1}.json").write_text(json.dumps(record))
    daemon.start()
    assert f"cv{container_id[:12]}1" not in veths() and f"cv{container_id[:12]}" in veths()
    assert container_id not in leases(daemon, "conn-b") and container_id in leases(daemon, "conn-a")
    assert not (daemon.root / "networks" / "conn-b" / "endpoints" / f"{container_id}.json").exists()
    assert daemon.out("exec", "torn", "ls", "/sys/class/net").split() == ["eth0", "lo"]
    assert sorted(daemon.inspect("torn")["NetworkSettings"]["Networks"]) == ["conn-a"]
