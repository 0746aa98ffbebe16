"""The address allocator: gateway first, lowest free address, reuse, persistence, limits."""
from __future__ import annotations

import json
import threading

import pytest

from agent.errors import Conflict, CorralError
from agent.network.ipam import AddressAllocator, gateway_of


def test_gateway_is_the_first_address():
    assert gateway_of("10.251.0.0/24") == "10.251.0.1"


def test_allocates_after_the_gateway_and_is_idempotent(tmp_path):
    ipam = AddressAllocator(tmp_path / "a.json", "10.251.0.0/24")
    assert ipam.allocate("one") == "10.251.0.2"
    assert ipam.allocate("two") == "10.251.0.3"
    assert ipam.allocate("one") == "10.251.0.2"
    assert ipam.addresses() == {"one": "10.251.0.2", "two": "10.251.0.3"}


def test_released_addresses_are_reused(tmp_path):
    ipam = AddressAllocator(tmp_path / "a.json", "10.251.0.0/24")
    for name in ("a", "b", "c"):
        ipam.allocate(name)
    ipam.release("b")
    ipam.release("b")   # twice is fine
    assert ipam.allocate("d") == "10.251.0.3"


def test_hand_over_moves_a_holders_address_to_a_container_once(tmp_path):
    ipam = AddressAllocator(tmp_path / "a.json", "10.251.0.0/24")
    item = ipam.allocate("pool:cpoolaaaa000001")
    ipam.allocate("stale")                                   # what a container held before goes
    assert ipam.hand_over("pool:cpoolaaaa000001", "stale") == item
    assert ipam.addresses() == {"stale": item}
    assert ipam.hand_over("pool:cpoolaaaa000001", "other") is None     # handed over once
    assert ipam.addresses() == {"stale": item} and ipam.allocate("other") == "10.251.0.3"


def test_allocate_avoids_addresses_exited_containers_want_back_while_others_are_free(tmp_path):
    ipam = AddressAllocator(tmp_path / "a.json", "10.251.0.0/29")    # .2-.6
    assert ipam.allocate("item1", avoid={"10.251.0.2", "10.251.0.3"}) == "10.251.0.4"
    for name in ("b", "c", "d", "e"):
        ipam.allocate(name, avoid={"10.251.0.2"})
    assert ipam.addresses()["e"] == "10.251.0.2"                       # nothing else left: avoided no more


def test_state_persists_across_instances(tmp_path):
    path = tmp_path / "a.json"
    AddressAllocator(path, "10.251.0.0/24").allocate("one")
    again = AddressAllocator(path, "10.251.0.0/24")
    assert again.allocate("two") == "10.251.0.3"
    assert json.loads(path.read_text()) == {"subnet": "10.251.0.0/24",
                                            "addresses": {"one": "10.251.0.2", "two": "10.251.0.3"}}
    assert not list(tmp_path.glob(".*.tmp"))


def test_a_full_subnet_is_a_conflict_naming_it(tmp_path):
    ipam = AddressAllocator(tmp_path / "a.json", "10.251.0.0/29")   # 6 hosts: gateway + 5
    for index in range(5):
        ipam.allocate(f"c{index}")
    with pytest.raises(Conflict, match="10.251.0.0/29 has no free address"):
        ipam.allocate("one-too-many")


def test_reserve_records_and_refuses_clashes(tmp_path):
    ipam = AddressAllocator(tmp_path / "a.json", "10.251.0.0/24")
    ipam.reserve("kept", "10.251.0.7")
    assert ipam.allocate("new") == "10.251.0.2"
    with pytest.raises(Conflict, match="held by container kept"):
        ipam.reserve("other", "10.251.0.7")
    with pytest.raises(Conflict, match="not a container address"):
        ipam.reserve("x", "10.251.0.1")


def test_a_file_for_another_subnet_is_refused(tmp_path):
    path = tmp_path / "a.json"
    AddressAllocator(path, "10.251.0.0/24").allocate("one")
    with pytest.raises(CorralError, match="is for subnet '10.251.0.0/24'"):
        AddressAllocator(path, "10.252.0.0/24").allocate("two")


def test_concurrent_allocations_never_share_an_address(tmp_path):
    path = tmp_path / "a.json"
    results = []

    def worker(index: int) -> None:
        results.append(AddressAllocator(path, "10.251.0.0/24").allocate(f"c{index}"))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(results)) == 20
