"""The network library for real, with network namespaces the test makes (`unshare -n sleep`)
standing in for containers: bridge, veths, addresses, NAT and published ports.

Traffic only goes between these namespaces and the test bridge or the host's loopback. Every
test uses its own bridge, subnet and nft table (corraltest*, 10.251.0.0/24, 10.252.0.0/24), and
the fixtures remove them, every process and every file, even when a test fails.
"""
from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from agent.errors import Conflict, KernelError
from agent.network.bridge import Links
from agent.network.manager import VETH_PATTERN, NetworkManager, host_veth_of
from agent.network.model import PortMapping
from agent.network.nat import container_tag

pytestmark = pytest.mark.privileged

BRIDGE = "corraltest0"
SUBNET = "10.251.0.0/24"
GATEWAY = "10.251.0.1"
TABLE = "corraltest"
USER_SUBNET = "10.252.0.0/24"


class Namespaces:
    """Processes the test starts (sleepers in new netns, servers inside them); all killed at the end."""

    def __init__(self) -> None:
        self.processes: list[subprocess.Popen] = []

    def sleeper(self) -> int:
        process = subprocess.Popen(["unshare", "-n", "sleep", "600"])
        self.processes.append(process)
        deadline = time.monotonic() + 5
        # unshare execs sleep once the namespace exists: wait for the netns to differ from ours.
        while Path(f"/proc/{process.pid}/ns/net").readlink() == Path("/proc/self/ns/net").readlink():
            assert time.monotonic() < deadline, "unshare did not make a network namespace"
            time.sleep(0.01)
        return process.pid

    def inside(self, pid: int, *command: str, **kwargs) -> subprocess.Popen:
        process = subprocess.Popen(["nsenter", "-n", "-t", str(pid), *command], **kwargs)
        self.processes.append(process)
        return process

    def close(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.kill()
            process.wait()


@pytest.fixture
def manager():
    root = Path(tempfile.mkdtemp(prefix="corral-net-", dir="/var/tmp"))
    instance = NetworkManager(root, default_network=BRIDGE, default_subnet=SUBNET, table=TABLE)
    try:
        yield instance
    finally:
        links = Links()
        try:
            for name in links.veths(VETH_PATTERN, [n.bridge for n in instance.list_networks()] + [BRIDGE]):
                links.remove_link(name)
            for network in instance.list_networks():
                links.remove_bridge(network.bridge)
            links.remove_bridge(BRIDGE)
        finally:
            instance.nat.delete_table()
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def spaces():
    namespaces = Namespaces()
    try:
        yield namespaces
    finally:
        namespaces.close()


def new_id() -> str:
    return secrets.token_hex(32)


def ping(*prefix: str, address: str) -> bool:
    result = subprocess.run([*prefix, "busybox", "ping", "-c", "1", "-W", "2", address],
                            capture_output=True, text=True)
    return result.returncode == 0


def in_netns(pid: int) -> tuple[str, ...]:
    return ("nsenter", "-n", "-t", str(pid))


def leftovers(manager: NetworkManager, container_id: str) -> list[str]:
    """What is left of a container anywhere: interfaces, addresses, rules, records."""
    found = []
    if Links().exists(host_veth_of(container_id)):
        found.append(f"veth {host_veth_of(container_id)}")
    for network in manager.list_networks():
        if container_id in manager.store.allocator(network).addresses():
            found.append(f"address in {network.name}")
    if container_tag(container_id) in manager.nat.tags():
        found.append("nft rules")
    if any(a.container_id == container_id for a in manager.attachments()):
        found.append("endpoint record")
    return found


def fetch(url: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def test_two_containers_ping_and_exchange_tcp_data(manager, spaces, tmp_path):
    one, two = spaces.sleeper(), spaces.sleeper()
    first = manager.attach(new_id(), "first", one, "bridge", hosts_path=tmp_path / "hosts1")
    second = manager.attach(new_id(), "second", two, "bridge", hosts_path=tmp_path / "hosts2")
    assert first.address != second.address
    assert first.gateway == second.gateway == GATEWAY
    assert ping(*in_netns(one), address=second.address)
    assert ping(*in_netns(two), address=first.address)
    assert ping(address=first.address)                         # host -> container over the bridge
    assert ping(*in_netns(one), address=GATEWAY)               # container -> host

    # The server's stdin stays open: busybox nc may stop reading once its stdin ends.
    server = spaces.inside(two, "busybox", "nc", "-l", "-p", "5000", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while True:
        client = subprocess.run([*in_netns(one), "busybox", "sh", "-c",
                                 f"echo corral-payload | busybox nc -w 2 {second.address} 5000"],
                                capture_output=True)
        if client.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert client.returncode == 0, client.stderr
    assert read_line(server) == b"corral-payload\n"

    # Each finds the other by name in its hosts file, rewritten when the second attached.
    assert f"{second.address}\tsecond" in (tmp_path / "hosts1").read_text()
    assert f"{first.address}\tfirst" in (tmp_path / "hosts2").read_text()
    manager.detach(second.container_id)
    assert "second" not in (tmp_path / "hosts1").read_text()


def test_published_port_reaches_httpd_from_loopback_and_the_gateway(manager, spaces, tmp_path):
    pid = spaces.sleeper()
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("hello from corral\n")
    host_port = free_port()
    attachment = manager.attach(new_id(), "web", pid, "bridge", [PortMapping(host_port, 8080)])
    spaces.inside(pid, "busybox", "httpd", "-f", "-p", "8080", "-h", str(www))
    assert fetch(f"http://{attachment.address}:8080/") == "hello from corral\n"
    assert fetch(f"http://127.0.0.1:{host_port}/") == "hello from corral\n"
    assert fetch(f"http://{GATEWAY}:{host_port}/") == "hello from corral\n"

    manager.detach(attachment.container_id)
    assert leftovers(manager, attachment.container_id) == []
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{host_port}/", timeout=1)


def test_a_published_port_is_not_given_twice(manager, spaces):
    host_port = free_port()
    manager.attach(new_id(), "first", spaces.sleeper(), "bridge", [PortMapping(host_port, 80)])
    other = new_id()
    with pytest.raises(Conflict, match=f"{host_port}/tcp is already published by container first"):
        manager.attach(other, "second", spaces.sleeper(), "bridge", [PortMapping(host_port, 80)])
    assert leftovers(manager, other) == []


def test_detach_leaves_nothing(manager, spaces):
    container_id = new_id()
    manager.attach(container_id, "gone", spaces.sleeper(), "bridge", [PortMapping(free_port(), 80)])
    assert leftovers(manager, container_id) != []
    manager.detach(container_id)
    manager.detach(container_id)   # twice is not an error
    assert leftovers(manager, container_id) == []


def test_fifty_cycles_leave_nothing_and_reuse_addresses(manager, spaces):
    pid = spaces.sleeper()
    addresses = set()
    for cycle in range(50):
        container_id = new_id()
        attachment = manager.attach(container_id, f"c{cycle}", pid, "bridge", [PortMapping(free_port(), 80)])
        addresses.add(attachment.address)
        manager.detach(container_id)
        assert leftovers(manager, container_id) == []
    assert addresses == {"10.251.0.2"}
    assert Links().veths(VETH_PATTERN, [BRIDGE]) == []
    assert manager.nat.tags() <= {f"corral:network:{BRIDGE}"}


def test_a_failed_attach_leaves_nothing(manager, spaces):
    gone = subprocess.Popen(["unshare", "-n", "true"])
    gone.wait()
    container_id = new_id()
    with pytest.raises(KernelError, match=f"process {gone.pid} has exited"):
        manager.attach(container_id, "late", gone.pid, "bridge", [PortMapping(free_port(), 80)])
    assert leftovers(manager, container_id) == []

    # Fails half-way: the namespace already has an eth0, so the veth pair cannot be made.
    pid = spaces.sleeper()
    manager.attach(new_id(), "first", pid, "bridge")
    second = new_id()
    with pytest.raises(KernelError, match="cannot create veth"):
        manager.attach(second, "second", pid, "bridge", [PortMapping(free_port(), 80)])
    assert leftovers(manager, second) == []


def test_reconcile_removes_stale_state_and_keeps_live_containers(manager, spaces):
    kept_pid, stale_pid = spaces.sleeper(), spaces.sleeper()
    host_port = free_port()
    kept = manager.attach(new_id(), "kept", kept_pid, "bridge", [PortMapping(host_port, 7000)])
    stale = manager.attach(new_id(), "stale", stale_pid, "bridge", [PortMapping(free_port(), 7000)])

    # A daemon restart: a new manager over the same root, told which containers still run.
    restarted = NetworkManager(manager.directory.parent, default_network=BRIDGE, default_subnet=SUBNET,
                               table=TABLE)
    removed = restarted.reconcile({kept.container_id: kept})
    assert stale.container_id in removed and kept.container_id not in removed
    assert leftovers(restarted, stale.container_id) == []
    assert [a.container_id for a in restarted.attachments()] == [kept.container_id]
    assert container_tag(kept.container_id) in restarted.nat.tags()
    assert ping(address=kept.address)
    server = spaces.inside(kept_pid, "busybox", "nc", "-l", "-p", "7000", stdin=subprocess.PIPE,
                           stdout=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", host_port), timeout=2) as connection:
                connection.sendall(b"still here\n")
            break
        except OSError:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    assert read_line(server) == b"still here\n"

    # A new attach does not get the kept address.
    assert restarted.attach(new_id(), "new", spaces.sleeper(), "bridge").address != kept.address


def test_user_network_create_inspect_and_refused_remove_while_in_use(manager, spaces):
    network = manager.create_network("corraltest-net", USER_SUBNET)
    assert Links().addresses(network.bridge) == ["10.252.0.1/24"]
    with pytest.raises(Conflict, match="already exists"):
        manager.create_network("corraltest-net", "10.253.0.0/24")
    with pytest.raises(Conflict, match="overlaps 10.252.0.0/24 of network corraltest-net"):
        manager.create_network("corraltest-other", "10.252.0.0/16")
    pid = spaces.sleeper()
    attachment = manager.attach(new_id(), "member", pid, "corraltest-net")
    assert attachment.address == "10.252.0.2" and attachment.gateway == "10.252.0.1"
    assert ping(*in_netns(pid), address="10.252.0.1")
    assert manager.inspect("corraltest-net")["containers"][attachment.container_id]["name"] == "member"
    with pytest.raises(Conflict, match="in use by container\\(s\\) member"):
        manager.remove_network("corraltest-net")
    manager.detach(attachment.container_id)
    manager.remove_network("corraltest-net")
    assert not Links().exists(network.bridge)
    assert "corral:network:corraltest-net" not in manager.nat.tags()
    assert manager.list_networks() == []


def read_line(server: subprocess.Popen, timeout: float = 10.0) -> bytes:
    """The first line the server printed; the server is killed if it says nothing in time."""
    timer = threading.Timer(timeout, server.kill)
    timer.start()
    try:
        return server.stdout.readline()
    finally:
        timer.cancel()


def free_port() -> int:
    """A TCP port nothing on the host listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
