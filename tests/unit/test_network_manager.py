"""NetworkManager's orchestration and the pieces it was split into (store, rendering, ports,
subnets), driven with in-memory doubles of the netlink and nftables sides. The kernel side is
exercised for real in tests/integration/test_network.py and test_container_network.py."""
from __future__ import annotations

import ipaddress

import pytest

from agent.errors import Conflict
from agent.network.manager import NetworkManager, host_veth_of
from agent.network.model import Attachment, Network, PortMapping
from agent.network.ports import check_ports
from agent.network.store import Endpoint, NetworkStore
from agent.network.subnets import check_overlap, free_subnet

CID, OTHER = "ab" * 32, "cd" * 32


class LinksDouble:
    """bridge.Links in memory: bridges, host veths, and the host's routes."""

    def __init__(self, routes: list[tuple[str, str]] | None = None) -> None:
        self.bridges: dict[str, str] = {}
        self.host_veths: dict[str, str] = {}      # host veth -> bridge
        self.host_routes = routes or []
        self.default_routes: dict[int, str] = {}     # pid -> gateway

    def ensure_bridge(self, name, gateway, prefix): self.bridges[name] = f"{gateway}/{prefix}"
    def remove_bridge(self, name): self.bridges.pop(name, None)
    def remove_link(self, name): self.host_veths.pop(name, None)

    def remove_links(self, names):
        for name in names:
            self.remove_link(name)

    def routes(self): return list(self.host_routes)

    def create_endpoint(self, *, pid, bridge, host_veth, address, prefix, mac, gateway, interface="eth0",
                        default_route=True):
        self.host_veths[host_veth] = bridge
        if default_route:
            self.default_routes[pid] = gateway

    def set_default_route(self, pid, gateway): self.default_routes[pid] = gateway

    def veths(self, pattern, bridges):
        return [v for v, b in self.host_veths.items() if pattern.fullmatch(v) and b in bridges]


class NatDouble:
    """nat.NatTable in memory: rules by their comment (tag)."""

    def __init__(self) -> None:
        self.name = "corral"
        self.rules: list[dict] = []

    def add(self, rules): self.rules += [r["add"]["rule"] for r in rules if "rule" in r.get("add", {})]
    def tags(self): return {r["comment"] for r in self.rules}

    def remove_tagged(self, tag):
        before = len(self.rules)
        self.rules = [r for r in self.rules if r["comment"] != tag]
        return before - len(self.rules)


@pytest.fixture
def manager(tmp_path):
    links, nat = LinksDouble(routes=[("192.168.1.0/24", "eth0")]), NatDouble()
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 9.9.9.9\n")
    return NetworkManager(tmp_path, links=links, nat=nat, host_resolv=resolv, clock=lambda: 1.0)


def test_attach_and_detach_keep_hosts_files_and_state_in_step(manager, tmp_path):
    web_hosts, db_hosts = tmp_path / "web.hosts", tmp_path / "db.hosts"
    web = manager.attach(CID, "web", 1, "bridge", [PortMapping.parse("8080:80")], hosts_path=web_hosts)
    assert host_veth_of(CID) in manager.links.host_veths and web.network == "corral0"
    assert any(r["comment"].endswith(CID) for r in manager.nat.rules)
    db = manager.attach(OTHER, "db", 2, "default", hostname="database", hosts_path=db_hosts)
    assert f"{db.address}\tdb {OTHER[:12]}" in web_hosts.read_text()        # neighbour added in place
    assert f"{db.address}\tdatabase db" in db_hosts.read_text()
    assert [a.container_name for a in manager.attachments()] == ["web", "db"]
    manager.detach(OTHER)
    manager.detach(OTHER)                                                   # twice: not an error
    assert "db" not in web_hosts.read_text() and host_veth_of(OTHER) not in manager.links.host_veths
    assert [a.container_name for a in manager.attachments("corral0")] == ["web"]


def test_a_failed_attach_leaves_nothing(manager):
    manager.attach(CID, "web", 1, "bridge", [PortMapping.parse("8080:80")])
    with pytest.raises(Conflict, match="already published by container web"):
        manager.attach(OTHER, "db", 2, "bridge", [PortMapping.parse("8080:81")])
    assert host_veth_of(OTHER) not in manager.links.host_veths
    assert manager.store.find_endpoint(OTHER) is None


def test_user_networks_get_free_subnets_and_can_be_removed(manager):
    first = manager.create_network("one")
    second = manager.create_network("two")
    assert (first.subnet, second.subnet) == ("10.214.0.0/24", "10.214.1.0/24")
    with pytest.raises(Conflict, match="overlaps 10.214.0.0/24 of network one"):
        manager.create_network("three", "10.214.0.0/16")
    manager.remove_network("one")
    assert [n.name for n in manager.list_networks()] == ["two"] and first.bridge not in manager.links.bridges


def test_reconcile_removes_what_no_live_container_uses(manager):
    kept = manager.attach(CID, "web", 1, "bridge", [PortMapping.parse("8080:80")])
    manager.attach(OTHER, "db", 2, "bridge", [PortMapping.parse("8081:80")])
    assert set(manager.reconcile({CID: kept})) == {OTHER, OTHER[:12]}     # by record and by veth name
    assert [a.container_id for a in manager.attachments()] == [CID]
    assert not any(r["comment"].endswith(OTHER) for r in manager.nat.rules)


def test_a_container_on_two_networks_has_a_veth_address_and_names_on_each(manager, tmp_path):
    manager.create_network("front", "10.214.1.0/24")
    manager.create_network("back", "10.214.2.0/24")
    me, peer_hosts = tmp_path / "me.hosts", tmp_path / "peer.hosts"
    manager.attach(OTHER, "db", 2, "back", hosts_path=peer_hosts, aliases=["database"])
    first = manager.attach(CID, "web", 1, "front", hosts_path=me)
    second = manager.attach(CID, "web", 1, "back", hosts_path=me, aliases=["api", "api"], ip="10.214.2.9")
    assert (first.interface, second.interface) == ("eth0", "eth1")
    assert second.host_veth == host_veth_of(CID, 1) == f"cv{CID[:12]}1" and second.aliases == ["api"]
    assert manager.links.default_routes[1] == "10.214.1.1"                 # the first network keeps it
    assert f"10.214.2.2\tdb {OTHER[:12]} database" in me.read_text()
    assert f"10.214.2.9\tweb {CID[:12]} api" in peer_hosts.read_text()
    with pytest.raises(Conflict, match="already connected to network back"):
        manager.attach(CID, "web", 1, "back")
    manager.detach(CID, "front", pid=1)
    assert manager.links.default_routes[1] == "10.214.2.1"                 # the next network takes it
    assert host_veth_of(CID) not in manager.links.host_veths and second.host_veth in manager.links.host_veths
    assert [a.network for a in manager.attachments() if a.container_id == CID] == ["back"]
    assert "database" in me.read_text()
    manager.detach(CID, "back")
    assert "web" not in peer_hosts.read_text() and not manager.store.find_endpoints(CID)
    assert CID not in manager.store.allocator(manager.get("back")).addresses()


def test_reconcile_keeps_each_live_attachment_and_removes_a_left_network(manager):
    manager.create_network("front", "10.214.1.0/24")
    kept = manager.attach(CID, "web", 1, "bridge")
    gone = manager.attach(CID, "web", 1, "front")
    assert set(manager.reconcile({CID: [kept]})) == {CID, CID[:12]}      # front's lease, record and veth
    assert manager.reconcile({CID: kept}) == []                           # one attachment, as before
    assert gone.host_veth not in manager.links.host_veths and kept.host_veth in manager.links.host_veths
    assert [a.network for a in manager.attachments()] == ["corral0"]


# -- the pieces --------------------------------------------------------------------------------

def network(name: str, subnet: str) -> Network:
    return Network(name=name, subnet=subnet, gateway=str(next(ipaddress.IPv4Network(subnet).hosts())),
                   bridge=f"br-{name}", created=0.0)


def test_free_subnet_skips_networks_and_foreign_routes_but_not_our_bridges():
    pool = ipaddress.IPv4Network("10.214.0.0/22")
    taken = [network("a", "10.214.0.0/24")]
    routes = [("10.214.1.0/24", "eth0"), ("10.214.0.0/24", "br-a")]
    assert free_subnet(pool, taken, routes) == "10.214.2.0/24"
    with pytest.raises(Conflict, match="no free /24"):
        free_subnet(ipaddress.IPv4Network("10.214.0.0/24"), taken, [])
    with pytest.raises(Conflict, match="host's route 10.214.1.0/24 on eth0"):
        check_overlap(network("b", "10.214.1.0/24"), taken, routes)


def test_ports_clash_on_the_same_host_port_and_any_address():
    mine = [PortMapping.parse("8080:80"), PortMapping.parse("127.0.0.1:8080:81")]
    with pytest.raises(Conflict, match="published twice"):
        check_ports("web", mine, [], host_check=False)
    other = Attachment(network="n", container_id=OTHER, container_name="db", host_veth="cv1", address="10.0.0.2",
                       prefix=24, mac="02:42:0a:00:00:02", gateway="10.0.0.1", ports=[PortMapping.parse("9090:90")])
    check_ports("web", [PortMapping.parse("9090:90/udp")], [other], host_check=False)     # other protocol
    with pytest.raises(Conflict, match="by container db"):
        check_ports("web", [PortMapping.parse("127.0.0.1:9090:91")], [other], host_check=False)
    reserved = {"service api": PortMapping.parse("7070:80")}
    with pytest.raises(Conflict, match="already published by service api"):
        check_ports("web", [PortMapping.parse("7070:8080")], [], host_check=False, reserved=reserved)


def test_store_round_trips_endpoints(tmp_path):
    store = NetworkStore(tmp_path)
    net = network("n", "10.9.0.0/24")
    store.save(net)
    assert store.load("n") == net and store.networks() == [net]
    attachment = Attachment(network="n", container_id=CID, container_name="web", host_veth="cv1",
                            address="10.9.0.2", prefix=24, mac="02:42:0a:09:00:02", gateway="10.9.0.1")
    store.save_endpoint(Endpoint(attachment, "h", "/x/hosts"))
    assert store.find_endpoint(CID) == Endpoint(attachment, "h", "/x/hosts") == store.endpoints("n")[0]
    store.remove_endpoint("n", CID)
    assert store.find_endpoint(CID) is None


def test_slots_fill_the_lowest_free_ethN_and_stop_at_ten():
    from agent.network.interfaces import VETH_PATTERN, free_slot
    assert free_slot(["eth0", "eth2"]) == 1 and free_slot([]) == 0
    with pytest.raises(Conflict, match="10 networks at most"):
        free_slot([f"eth{n}" for n in range(10)])
    assert VETH_PATTERN.fullmatch(host_veth_of(CID, 9)) and not VETH_PATTERN.fullmatch(host_veth_of(CID) + "0")


def test_a_hosts_file_is_rewritten_in_place_whatever_its_new_length(tmp_path):
    from agent.network.rendering import write_hosts
    path = tmp_path / "hosts"
    write_hosts(path, "10.213.0.2\tweb\n10.213.0.3\tdb\n")
    inode = path.stat().st_ino                      # the container's bind mount follows it
    write_hosts(path, "10.213.0.2\tweb\n")
    assert path.read_text() == "10.213.0.2\tweb\n" and path.stat().st_ino == inode
    write_hosts(path, "10.213.0.2\tweb\n10.213.0.4\tcache api\n")
    assert path.read_text() == "10.213.0.2\tweb\n10.213.0.4\tcache api\n" and path.stat().st_ino == inode
