"""The pool of prepared network namespaces (agent/network/pool.py) with items from a double,
the start's rtnetlink messages (rtnl.py) against the kernel headers' layouts, and the network
manager's use of both (a claimed namespace, a previous run's pool veths removed before the fill). The
kernel side runs for real in tests/integration/test_netns_pool.py."""
from __future__ import annotations

import socket
import struct
import threading
import time

import pytest

from agent.errors import KernelError
from agent.network import rtnl
from agent.network.interfaces import pool_pattern, pool_tag
from agent.network.manager import NetworkManager
from agent.network.pool import NamespacePool
from tests.unit.test_network_manager import CID, OTHER, LinksDouble, NatDouble


class Item:
    def __init__(self, number: int) -> None:
        self.number = number
        self.closed = False

    def close(self) -> None:
        self.closed = True


class Maker:
    def __init__(self) -> None:
        self.made: list[Item] = []
        self.fail = False
        self.lock = threading.Lock()

    def __call__(self) -> Item:
        with self.lock:
            if self.fail:
                raise KernelError("no namespaces today")
            self.made.append(Item(len(self.made)))
            return self.made[-1]


def filled(pool: NamespacePool, size: int) -> None:
    deadline = time.monotonic() + 10
    while len(pool) != size:
        assert time.monotonic() < deadline, f"the pool never held {size}"
        time.sleep(0.005)


def test_size_0_is_off():
    maker = Maker()
    pool = NamespacePool(0, maker)
    pool.start()
    assert pool.take() is None and maker.made == [] and pool._thread is None
    with pytest.raises(ValueError, match="netns pool size -1"):
        NamespacePool(-1, maker)


def test_take_hands_out_each_item_once_and_the_pool_refills_to_its_size():
    maker = Maker()
    pool = NamespacePool(3, maker)
    pool.start()
    filled(pool, 3)
    taken = [pool.take() for _ in range(3)]
    assert [i.number for i in taken if i] == [0, 1, 2] and pool.take() is None
    pool.refill()
    filled(pool, 3)
    more = [pool.take() for _ in range(2)]
    pool.refill()
    assert {i.number for i in more if i} <= {3, 4, 5} and len({id(i) for i in taken + more}) == 5
    filled(pool, 3)
    assert len(maker.made) == 3 + 5                                     # the size, then one per take
    pool.close()
    assert all(i.closed for i in maker.made if i not in taken + more) and len(pool) == 0
    assert not any(i.closed for i in taken + more)                      # a taken item is its taker's


def test_the_first_take_starts_the_pool_and_a_failure_waits_for_the_next_take():
    maker = Maker()
    maker.fail = True
    pool = NamespacePool(2, maker)
    assert pool.take() is None                  # started now, and failing: the start makes its own
    deadline = time.monotonic() + 10
    while pool._wake.is_set() or pool._thread is None:     # the failed round is over
        assert time.monotonic() < deadline
        time.sleep(0.005)
    maker.fail = False
    pool.refill()
    filled(pool, 2)
    assert len(maker.made) == 2
    pool.close()


def test_rtnl_layouts_mirror_the_kernel_headers():
    # linux/netlink.h nlmsghdr 16, linux/rtnetlink.h ifinfomsg 16 / ifaddrmsg 8 / rtmsg 12
    assert (rtnl._HEADER.size, rtnl._IFINFO.size, rtnl._IFADDR.size, rtnl._RTMSG.size) == (16, 16, 8, 12)
    assert rtnl._attr(3, b"eth0\0") == struct.pack("=HH", 9, 3) + b"eth0\0" + b"\0\0\0"


class FakeSocket:
    """Records each request and acknowledges it (error 0, or `error`)."""

    def __init__(self, error: int = 0) -> None:
        self.sent: list[bytes] = []
        self.error = error

    def send(self, data: bytes) -> int:
        self.sent.append(data)
        return len(data)

    def recv(self, size: int) -> bytes:
        seq = struct.unpack_from("=I", self.sent[-1], 8)[0]
        return rtnl._HEADER.pack(36, rtnl.NLMSG_ERROR, 0, seq, 0) + struct.pack("=i", -self.error) + self.sent[-1][:16]

    def close(self) -> None:
        pass


def fake_rtnl(error: int = 0) -> tuple[rtnl.Rtnl, FakeSocket]:
    fake = FakeSocket(error)
    made = rtnl.Rtnl.__new__(rtnl.Rtnl)
    made._sock, made._seq = fake, 0      # type: ignore[assignment]
    return made, fake


def test_rtnl_requests_carry_the_start_settings():
    made, fake = fake_rtnl()
    made.set_link(7, name="cvabc", mac="02:42:0a:d5:00:02", master=3, up=True)
    made.add_address(2, "10.213.0.2", 16)
    made.add_default_route(2, "10.213.0.1")
    made.del_address(2, "10.213.0.2", 16)
    link, address, route, gone = fake.sent
    assert struct.unpack_from("=HH", link, 4) == (rtnl.RTM_NEWLINK, rtnl.NLM_F_REQUEST | rtnl.NLM_F_ACK)
    assert rtnl._IFINFO.unpack_from(link, 16) == (socket.AF_UNSPEC, 0, 7, rtnl.IFF_UP, rtnl.IFF_UP)
    assert b"cvabc\0" in link and bytes.fromhex("02420ad50002") in link and struct.pack("=HHI", 8, 10, 3) in link
    assert rtnl._IFADDR.unpack_from(address, 16) == (socket.AF_INET, 16, 0, 0, 2)
    assert address.count(socket.inet_aton("10.213.0.2")) == 2                    # local and address
    assert struct.pack("=HH", 8, rtnl.RTA_GATEWAY) + socket.inet_aton("10.213.0.1") in route
    assert struct.pack("=HHI", 8, rtnl.RTA_OIF, 2) in route
    assert struct.unpack_from("=HH", gone, 4) == (rtnl.RTM_DELADDR, rtnl.NLM_F_REQUEST | rtnl.NLM_F_ACK)
    assert gone[16:] == address[16:]                                            # the same address, taken off


def test_an_rtnl_error_names_the_step():
    made, _ = fake_rtnl(error=17)
    with pytest.raises(KernelError, match="cannot add the address of eth0: File exists"):
        made.add_address(2, "10.213.0.2", 16, what="cannot add the address of eth0")


class Prepared:
    """prepared.PreparedNamespace without a kernel: its veth's name, eth0's settings, the release."""

    def __init__(self, host_veth: str, endpoint=None) -> None:
        self.host_veth, self.endpoint, self.release = host_veth, endpoint, None
        self.closed = False

    def close(self) -> None:
        self.closed = True
        release, self.release = self.release, None
        if release is not None:
            release()


def test_a_link_deleted_by_name_may_be_gone_already():
    made, fake = fake_rtnl(error=19)                                            # ENODEV
    made.del_link("cvabababababab")
    assert struct.unpack_from("=HH", fake.sent[0], 4) == (rtnl.RTM_DELLINK, rtnl.NLM_F_REQUEST | rtnl.NLM_F_ACK)
    assert rtnl._IFINFO.unpack_from(fake.sent[0], 16)[2] == 0 and b"cvabababababab\0" in fake.sent[0]
    busy, _ = fake_rtnl(error=16)
    with pytest.raises(KernelError, match="cannot delete interface cvx: Device or resource busy"):
        busy.del_link("cvx")


class PoolLinks(LinksDouble):
    """LinksDouble with prepared namespaces: the pool's veth on a bridge, claimed by name."""

    def __init__(self) -> None:
        super().__init__()
        self.claims: list[dict] = []

    def prepare_namespace(self, bridge, name, endpoint=None):
        self.host_veths[name] = bridge
        return Prepared(name, endpoint)

    def claim_endpoint(self, prepared, **settings):
        made = prepared.endpoint
        settings["ready"] = made is not None and (made.address, made.mac) == (settings["address"], settings["mac"])
        self.claims.append(settings)
        self.host_veths[settings["host_veth"]] = self.host_veths.pop(prepared.host_veth, settings["bridge"])


def pool_manager(tmp_path, size: int = 2, links: PoolLinks | None = None) -> NetworkManager:
    manager = NetworkManager(tmp_path, links=links or PoolLinks(), nat=NatDouble(), host_resolv=tmp_path / "none",
                             netns_pool=size)
    manager.reconcile({})
    manager.pool.refill()                                            # now, not a second after reconcile
    filled(manager.pool, size)
    return manager


def held(manager: NetworkManager, network: str = "corral0") -> dict[str, str]:
    return manager.store.allocator(manager.store.load(network)).addresses()


def test_a_claimed_namespace_is_the_first_network_only_and_old_pool_veths_are_removed(tmp_path):
    links = PoolLinks()
    manager = NetworkManager(tmp_path, links=links, nat=NatDouble(), host_resolv=tmp_path / "none")
    manager.create_network("back", "10.214.2.0/24")
    prepared = Prepared("cpool0000000001")
    manager.attach(CID, "web", 1, "bridge", prepared=prepared)
    manager.attach(CID, "web", 1, "back", prepared=prepared)        # eth1: a veth of its own
    assert [c["host_veth"] for c in links.claims] == [f"cv{CID[:12]}"] and not links.claims[0]["ready"]
    assert links.claims[0]["gateway"] == "10.213.0.1" and f"cv{CID[:12]}1" in links.host_veths
    mine, others = f"cpool{pool_tag(tmp_path)}00beef", "cpool0000000000"
    links.host_veths.update({mine: "corral0", others: "corral0"})
    manager.pool._before_fill()                                      # the pool thread, before it fills
    assert mine not in links.host_veths and others in links.host_veths   # another daemon's are not ours
    assert pool_pattern(pool_tag(tmp_path)).fullmatch(mine)
    manager.detach(OTHER)
    manager.close()


def test_a_pool_item_holds_its_address_until_a_container_takes_it_and_no_one_else_gets_it(tmp_path):
    manager = pool_manager(tmp_path)
    items = dict(held(manager))
    assert len(items) == 2 and all(key.startswith("pool:cpool") for key in items)
    assert sorted(items.values()) == ["10.213.0.2", "10.213.0.3"]
    own = manager.attach(OTHER, "db", 1, "bridge")                   # no item: the next free address
    assert own.address == "10.213.0.4"
    prepared = manager.pool.take()
    taken = manager.attach(CID, "web", 2, "bridge", prepared=prepared)
    assert taken.address == prepared.endpoint.address and manager.links.claims[-1]["ready"]
    assert held(manager)[CID] == taken.address and "pool:" + prepared.host_veth not in held(manager)
    prepared.close()                                                 # after the start: the address stays the container's
    assert held(manager)[CID] == taken.address
    manager.detach(CID)
    assert taken.address not in held(manager).values()
    manager.close()
    assert held(manager) == {OTHER: "10.213.0.4"}                    # the daemon's stop frees the items' addresses


def test_an_item_taken_for_a_fixed_address_or_another_network_is_reconfigured_and_its_address_freed(tmp_path):
    manager = pool_manager(tmp_path, size=1)
    manager.create_network("back", "10.214.2.0/24")
    prepared = manager.pool.take()
    item_address = prepared.endpoint.address
    attachment = manager.attach(CID, "web", 1, "back", prepared=prepared)
    claim = manager.links.claims[-1]
    assert attachment.address == "10.214.2.2" and not claim["ready"] and claim["gateway"] == "10.214.2.1"
    assert item_address in held(manager).values()                    # until the item is closed
    prepared.close()
    assert item_address not in held(manager).values()
    manager.pool.refill()
    filled(manager.pool, 1)
    fixed = manager.pool.take()
    got = manager.attach(OTHER, "db", 2, "bridge", ip="10.213.0.9", prepared=fixed)
    assert got.address == "10.213.0.9" and not manager.links.claims[-1]["ready"]
    fixed.close()
    assert set(held(manager).values()) == {"10.213.0.9", *(v for k, v in held(manager).items() if k.startswith("pool:"))}
    manager.close()


def test_addresses_held_for_a_crashed_daemons_pool_items_are_freed_at_the_next_start(tmp_path):
    crashed = pool_manager(tmp_path, size=3)
    crashed.attach(CID, "web", 1, "bridge", prepared=crashed.pool.take())
    live = crashed.store.find_endpoint(CID).attachment
    assert len(held(crashed)) == 3
    # No close: the process died. The next daemon on the same root reconciles.
    restarted = NetworkManager(tmp_path, links=crashed.links, nat=crashed.nat, host_resolv=tmp_path / "none",
                               netns_pool=3)
    assert restarted.reconcile({CID: live}) == []                    # a pool item is not a container's leftover
    assert held(restarted) == {CID: live.address}
    restarted.close()


def test_a_container_started_again_gets_its_address_back_unless_taken_and_rm_forgets_it(tmp_path):
    manager = pool_manager(tmp_path, size=2)
    first = manager.pool.take()
    address = manager.attach(CID, "web", 1, "bridge", prepared=first).address
    first.close()
    manager._detach_exited(CID)                                      # its exit (the teardown thread)
    manager.pool.refill()
    filled(manager.pool, 2)
    again = manager.pool.take()
    assert manager.attach(CID, "web", 2, "bridge", prepared=again).address == address
    assert not manager.links.claims[-1]["ready"]                     # eth0 given the old address instead
    again.close()
    assert again.endpoint.address not in held(manager).values()      # the item's address freed
    manager._detach_exited(CID)
    manager.attach(OTHER, "db", 3, "bridge", ip=address)             # taken meanwhile
    third = manager.pool.take()
    assert manager.attach(CID, "web", 4, "bridge", prepared=third).address == third.endpoint.address
    manager._detach_exited(CID)
    manager.detach(CID)                                              # rm: no next start to keep it for
    assert manager.previous.take(CID, "corral0") is None
    manager.close()
