"""The detach of an exited container, queued off the exit path (agent/network/teardown.py):
what it still holds (its records, its address, its host ports) is waited for by whoever needs
it, and nothing is given again before its veth is gone. Driven with the manager's doubles and a
veth deletion that blocks until the test lets it go, as the kernel's namespace clean-up does."""
from __future__ import annotations

import threading

import pytest

from agent.errors import Conflict
from agent.network.manager import NetworkManager, host_veth_of
from agent.network.model import PortMapping
from agent.network.teardown import Teardown
from tests.unit.test_network_manager import CID, OTHER, LinksDouble, NatDouble

THIRD = "ef" * 32


class HeldLinks(LinksDouble):
    """Deleting a veth blocks until `release` is set (the kernel's clean-up of a namespace)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.deleting = threading.Event()

    def remove_links(self, names):
        names = list(names)
        if any(name in self.host_veths for name in names):
            self.deleting.set()
            assert self.release.wait(10)
        super().remove_links(names)


@pytest.fixture
def manager(tmp_path):
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 9.9.9.9\n")
    made = NetworkManager(tmp_path, links=HeldLinks(), nat=NatDouble(), host_resolv=resolv, clock=lambda: 1.0)
    yield made
    made.links.release.set()
    made.teardown.close()


def in_thread(step) -> tuple[threading.Thread, dict]:
    result: dict = {}

    def run() -> None:
        try:
            result["value"] = step()
        except BaseException as exc:  # handed to the test's assertion
            result["error"] = exc
    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def test_the_exit_returns_at_once_and_the_address_waits_for_the_veth(manager):
    first = manager.attach(CID, "quick", 1, "bridge")
    manager.detach_exited(CID)                                # returns with the veth still there
    assert manager.links.deleting.wait(5)
    assert manager.teardown.pending(CID)
    other = manager.attach(OTHER, "next", 2, "bridge")       # not held up, and not given the old address
    assert other.address != first.address
    manager.detach(CID)                                       # rm meanwhile: left to the queued detach
    manager.links.release.set()
    manager.teardown.wait(CID)
    assert not manager.teardown.pending(CID)
    assert host_veth_of(CID) not in manager.links.host_veths
    assert [a.container_name for a in manager.attachments()] == ["next"]
    assert manager.store.allocator(manager.get("bridge")).addresses() == {OTHER: other.address}


def test_its_next_start_waits_for_the_detach_and_gets_its_address_back(manager):
    first = manager.attach(CID, "quick", 1, "bridge")
    manager.detach_exited(CID)
    assert manager.links.deleting.wait(5)
    thread, result = in_thread(lambda: manager.attach(CID, "quick", 3, "bridge"))
    thread.join(0.2)
    assert thread.is_alive()                                  # not "already connected": waiting
    manager.links.release.set()
    thread.join(5)
    assert "error" not in result and result["value"].address == first.address


def exited_and_waited_for(manager, container_id, step):
    """`step` run in a thread after `container_id` exited: it waits for the veth to go."""
    manager.links.release.clear()
    manager.links.deleting.clear()
    manager.detach_exited(container_id)
    assert manager.links.deleting.wait(5)
    thread, result = in_thread(step)
    thread.join(0.2)
    assert thread.is_alive()
    manager.links.release.set()
    thread.join(5)
    assert "error" not in result, result
    return result["value"]


def test_a_host_port_or_a_fixed_address_waits_for_every_queued_detach(manager):
    port = PortMapping.parse("8080:80")
    manager.attach(CID, "web", 1, "bridge", [port])
    second = exited_and_waited_for(manager, CID, lambda: manager.attach(OTHER, "web2", 2, "bridge", [port]))
    assert {r["comment"] for r in manager.nat.rules if "container" in r["comment"]} == \
        {f"corral:container:{OTHER}"}
    pinned = exited_and_waited_for(manager, OTHER,
                                   lambda: manager.attach(THIRD, "pinned", 3, "bridge", ip=second.address))
    assert pinned.address == second.address


def test_a_failed_detach_does_not_stop_the_next_ones():
    done: list[str] = []

    def detach(container_id: str) -> None:
        if container_id == "bad":
            raise Conflict("the kernel said no")
        done.append(container_id)
    teardown = Teardown(detach)
    for container_id in ("bad", "good"):
        teardown.submit(container_id)
    teardown.wait()
    assert done == ["good"] and not teardown.pending("bad")
    teardown.close()
    teardown.submit("late")                                   # after close: done in the caller
    assert done == ["good", "late"]
