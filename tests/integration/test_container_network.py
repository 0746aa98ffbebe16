"""Container networking through the CLI: the default bridge, user networks, published ports."""
from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from tests.integration.corral_daemon import free_port

pytestmark = pytest.mark.privileged


def wait_http(url: str, timeout: float = 10.0) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_net_none_has_only_loopback(daemon):
    out = daemon.out("run", "--rm", "--net", "none", "busybox", "ls", "/sys/class/net")
    assert out.split() == ["lo"]


def test_bridge_gives_an_address_route_and_files(daemon):
    out = daemon.out("run", "--rm", "--name", "addr", "busybox", "sh", "-c",
                     "ip -o -4 addr show eth0; ip route; cat /etc/hostname; grep addr /etc/hosts")
    assert "inet 10.213." in out and "default via 10.213.0.1" in out
    assert "addr" in out


def test_published_port_serves_the_host(daemon, tmp_path):
    (tmp_path / "index.html").write_text("hello from corral\n")
    port = free_port()
    daemon.cli("run", "-d", "--name", "web", "-p", f"{port}:80", "-v", f"{tmp_path}:/www:ro",
               "busybox", "httpd", "-f", "-p", "80", "-h", "/www")
    try:
        assert wait_http(f"http://127.0.0.1:{port}/") == b"hello from corral\n"
        info = json.loads(daemon.out("inspect", "web"))[0]
        gateway = info["NetworkSettings"]["Gateway"]
        assert wait_http(f"http://{gateway}:{port}/") == b"hello from corral\n"
        assert info["NetworkSettings"]["Ports"] == {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": str(port)}]}
        assert f"0.0.0.0:{port}" in daemon.out("port", "web")
    finally:
        daemon.cli("rm", "-f", "web")


def test_containers_on_a_user_network_reach_each_other_by_name(daemon):
    daemon.cli("network", "create", "--subnet", "10.252.7.0/24", "testnet")
    try:
        daemon.cli("run", "-d", "--name", "server", "--net", "testnet", "busybox", "sh", "-c",
                   "while true; do echo pong-data | nc -l -p 7000; done")
        time.sleep(0.3)
        out = daemon.out("run", "--rm", "--net", "testnet", "busybox", "sh", "-c",
                         "ping -c 1 -W 2 server >/dev/null && echo ping-ok; nc server 7000")
        assert out.splitlines() == ["ping-ok", "pong-data"]
        refused = daemon.cli("network", "rm", "testnet", check=False)
        assert refused.returncode == 125 and b"server" in refused.stderr
    finally:
        daemon.cli("rm", "-f", "server", check=False)
        daemon.cli("network", "rm", "testnet", check=False)


def veths() -> set[str]:
    """The host's veths but the daemons' pool items (`cpool...`: made ahead and replaced as
    containers take them; test_netns_pool.py checks those)."""
    out = subprocess.run(["ip", "-o", "link", "show", "type", "veth"], capture_output=True, text=True).stdout
    names = {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}
    return {name for name in names if not name.startswith("cpool")}


def nft_rules() -> str:
    return subprocess.run(["nft", "list", "table", "ip", "corral"], capture_output=True, text=True).stdout


def settled(daemon) -> None:
    """The daemon's detaches of exited containers are done: they run off the exit path
    (agent/network/teardown.py), and listing a network's containers waits for them."""
    daemon.cli("network", "inspect", "bridge")


def test_run_rm_cycles_leave_no_veth_address_or_rule(daemon):
    before_veths, before_rules = veths(), nft_rules().count("corral:container:")
    for _ in range(50):
        daemon.cli("run", "--rm", "-p", f"{free_port()}:80", "busybox", "true")
    settled(daemon)
    assert veths() == before_veths
    assert nft_rules().count("corral:container:") == before_rules
    addresses = json.loads((daemon.root / "networks" / "corral0" / "addresses.json").read_text())
    # Only the pool's items hold one (test_netns_pool.py), at most one each.
    assert all(key.startswith("pool:cpool") for key in addresses["addresses"]) and len(addresses["addresses"]) <= 4


def test_daemon_restart_keeps_published_ports(daemon):
    port = free_port()
    daemon.cli("run", "-d", "--name", "steady", "-p", f"{port}:80", "busybox", "httpd", "-f", "-p", "80")
    try:
        daemon.stop()
        daemon.start()
        with pytest.raises(urllib.error.HTTPError) as error:
            wait_http(f"http://127.0.0.1:{port}/")
        assert error.value.code == 404    # busybox httpd serving nothing: reached all the same
    finally:
        daemon.cli("rm", "-f", "steady")
