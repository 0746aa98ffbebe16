"""Bridge containers started from the daemon's pool of network namespaces made ahead
(agent/network/pool.py, prepared.py; the launcher's --net join:PATH): the container has its
address, reaches another container by name and by alias, serves a published port; the pool
refills; a daemon killed with SIGKILL leaves no pool namespace or veth once started again; a
pool of 0 starts as before; a container with a user namespace makes its own. What a pool item
is, is read from the host: the namespaces the daemon holds open (/proc/PID/fd) and its `cpool`
veths."""
from __future__ import annotations

import glob
import json
import os
import subprocess

import pytest

from agent.network.interfaces import pool_tag
from tests.integration.corral_daemon import free_port, running_daemon, until
from tests.integration.test_container_network import settled, veths, wait_http

pytestmark = pytest.mark.privileged

SLEEPER = ("busybox", "sleep", "300")


def held_namespaces(pid: int) -> set[str]:
    """The network namespaces (`net:[inode]`) process `pid` holds through descriptors."""
    found = set()
    for fd in glob.glob(f"/proc/{pid}/fd/*"):
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("net:["):
            found.add(target)
    return found


def namespace_of(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/ns/net")


def pool_veths(daemon) -> set[str]:
    """The `cpool` veths of this daemon (its root's tag) on the host."""
    out = subprocess.run(["ip", "-o", "link", "show", "type", "veth"], capture_output=True, text=True).stdout
    prefix = "cpool" + pool_tag(daemon.root)
    return {name for line in out.splitlines() if (name := line.split(":")[1].strip().split("@")[0]).startswith(prefix)}


def held_addresses(daemon) -> dict[str, str]:
    """The default network's allocator: holder (container id, or `pool:` and an item's veth) -> address."""
    path = daemon.root / "networks" / "corral0" / "addresses.json"
    return json.loads(path.read_text())["addresses"] if path.exists() else {}


def pool_held(daemon) -> dict[str, str]:
    return {key: address for key, address in held_addresses(daemon).items() if key.startswith("pool:")}


def full(daemon, size: int = 4) -> set[str]:
    """The daemon's pool once it holds `size` namespaces and as many veths."""
    def ready() -> set[str] | None:
        found = held_namespaces(daemon.process.pid)
        return found if len(found) == size and len(pool_veths(daemon)) == size else None
    return until(ready, f"the pool holds {size} namespaces")


def test_a_container_from_the_pool_has_its_address_peers_and_published_port(daemon, tmp_path):
    pool = full(daemon)
    items = pool_held(daemon)
    assert len(items) == 4 and len(set(items.values())) == 4    # each item holds an address of its own
    (tmp_path / "index.html").write_text("from the pool\n")
    port = free_port()
    daemon.cli("run", "-d", "--name", "pooled-web", "--network-alias", "www", "-p", f"{port}:80",
               "-v", f"{tmp_path}:/www:ro", "busybox", "httpd", "-f", "-p", "80", "-h", "/www")
    try:
        info = daemon.inspect("pooled-web")
        assert namespace_of(info["State"]["Pid"]) in pool        # it joined one made ahead
        address = info["NetworkSettings"]["IPAddress"]
        assert address in items.values()                          # the one made ahead with its namespace
        assert held_addresses(daemon)[info["Id"]] == address and address not in pool_held(daemon).values()
        out = daemon.out("exec", "pooled-web", "sh", "-c", "ip -o -4 addr show eth0; ip route; "
                                                           "cat /sys/class/net/eth0/address")
        assert f"inet {address}/16" in out and "default via 10.213.0.1" in out
        assert info["NetworkSettings"]["MacAddress"] in out
        assert f"cv{info['Id'][:12]}" in veths()                  # its host end took the container's name
        assert wait_http(f"http://127.0.0.1:{port}/") == b"from the pool\n"
        for target in ("pooled-web", "www", address):            # by name, by alias, by address
            got = daemon.out("run", "--rm", "busybox", "wget", "-q", "-O", "-", f"http://{target}/")
            assert got == "from the pool"
    finally:
        daemon.cli("rm", "-f", "pooled-web")
    settled(daemon)


def test_the_pool_refills_and_never_hands_a_namespace_out_twice(daemon):
    before = full(daemon)
    seen = []
    for index in range(6):                                      # more than the pool holds
        daemon.cli("run", "-d", "--name", f"refill{index}", *SLEEPER)
        seen.append(namespace_of(daemon.inspect(f"refill{index}")["State"]["Pid"]))
    try:
        assert len(set(seen)) == 6                              # each its own
        after = full(daemon)
        assert not after & set(seen) and not after & before - set(seen)
        out = daemon.out("run", "--rm", "busybox", "ping", "-c", "1", "-W", "2",
                         daemon.inspect("refill5")["NetworkSettings"]["IPAddress"])
        assert "1 packets received" in out
    finally:
        daemon.cli("rm", "-f", *(f"refill{index}" for index in range(6)))
    settled(daemon)


def test_a_container_started_again_gets_its_address_back_from_a_full_pool(daemon):
    full(daemon)
    daemon.cli("run", "-d", "--name", "again", "busybox", "ip", "-o", "-4", "addr", "show", "eth0")
    try:
        assert daemon.out("wait", "again").strip() == "0"
        full(daemon)                       # the refill after its start took another address
        daemon.cli("start", "again")
        assert daemon.out("wait", "again").strip() == "0"
        lines = [line.split()[3] for line in daemon.out("logs", "again").splitlines()]
        assert len(lines) == 2 and lines[0] == lines[1]
    finally:
        daemon.cli("rm", "-f", "again")
    settled(daemon)


def test_a_user_network_container_takes_from_the_pool_and_reaches_its_peer(daemon):
    pool = full(daemon)
    daemon.cli("network", "create", "--subnet", "10.252.9.0/24", "poolnet")
    try:
        daemon.cli("run", "-d", "--name", "pserver", "--net", "poolnet", "busybox", "sh", "-c",
                   "while true; do echo pool-pong | nc -l -p 7000; done")
        assert namespace_of(daemon.inspect("pserver")["State"]["Pid"]) in pool
        # The item's default-network address was freed, not kept by the container or lost.
        until(lambda: set(held_addresses(daemon)) == set(pool_held(daemon)) and len(pool_held(daemon)) == 4,
              "the default network holds the four items' addresses only")
        out = until(lambda: daemon.out("run", "--rm", "--net", "poolnet", "busybox", "nc", "pserver", "7000"),
                    "the peer answers")
        assert out == "pool-pong"
    finally:
        daemon.cli("rm", "-f", "pserver", check=False)
        daemon.cli("network", "rm", "poolnet", check=False)


def test_a_daemon_killed_with_sigkill_leaves_no_pool_namespace_or_veth():
    """The pool is held by the daemon's descriptors only: once it is killed the kernel frees the
    namespaces, and a namespace freed deletes its veth pair, so the pool's veths going away on
    their own (before any restart) says that no namespace of the pool outlived the daemon.
    (Namespace inode numbers are reused by the kernel, so they cannot say it.)"""
    with running_daemon() as daemon:
        full(daemon)
        old_veths = pool_veths(daemon)
        daemon.cli("run", "-d", "--name", "survivor", *SLEEPER)
        survivor = daemon.inspect("survivor")
        until(lambda: len(pool_held(daemon)) == 4, "the pool holds four addresses again")
        old_items = pool_held(daemon)
        daemon.process.kill()                                     # no clean shutdown
        daemon.process.wait()
        daemon.process = None
        until(lambda: not pool_veths(daemon) & old_veths, "the killed daemon's pool veths go with its namespaces")
        daemon.start()
        full(daemon)
        assert not old_veths & pool_veths(daemon)
        now = held_addresses(daemon)         # the killed daemon's items' addresses were freed, the survivor's kept
        assert not set(old_items) & set(now) and now[survivor["Id"]] == survivor["NetworkSettings"]["IPAddress"]
        assert len(pool_held(daemon)) == 4 and len(set(now.values())) == len(now)
        assert daemon.out("exec", "survivor", "ls", "/sys/class/net").split() == ["eth0", "lo"]
        daemon.remove_all()
        settled(daemon)
        daemon.stop()
        until(lambda: not pool_veths(daemon), "the pool's veths go with the stopped daemon")
        assert pool_held(daemon) == {}                             # a clean stop frees the items' addresses


def test_pool_size_0_starts_bridge_containers_as_before():
    with running_daemon("--netns-pool", "0") as daemon:
        out = daemon.out("run", "--rm", "busybox", "sh", "-c", "ip -o -4 addr show eth0; ip route")
        assert "inet 10.213." in out and "default via 10.213.0.1" in out
        assert held_namespaces(daemon.process.pid) == set() and pool_veths(daemon) == set()
        settled(daemon)


def test_a_user_namespace_container_makes_its_own(daemon):
    """Its network namespace must be owned by its user namespace (its root binds port 80)."""
    pool = full(daemon)
    port = free_port()
    daemon.cli("run", "-d", "--name", "userns-web", "--userns", "auto", "-p", f"{port}:80",
               "busybox", "httpd", "-f", "-p", "80")
    try:
        assert namespace_of(daemon.inspect("userns-web")["State"]["Pid"]) not in pool
        until(lambda: json.loads(daemon.out("inspect", "userns-web"))[0]["State"]["Running"], "it runs")
    finally:
        daemon.cli("rm", "-f", "userns-web")
