"""The probe seams: the real ProbeSet and the in-memory ProbeDouble have every method of the
protocols in agent/probes/interface.py, with the same signatures, so a unit test written
against the double holds for the real thing (which tests/integration/test_probes.py runs)."""
from __future__ import annotations

import inspect

import pytest

from agent.errors import Conflict, InvalidArgument, KernelError
from agent.probes.double import ProbeDouble
from agent.probes.egress import EgressPolicy, EgressRuleSpec
from agent.probes.events import OomEvent
from agent.probes.interface import NetCounters, ProbeControl, ProbeEvents, ProbeReader, Probes
from agent.probes.loader import ProbeSet

PROTOCOLS = (ProbeControl, ProbeReader, ProbeEvents)


def protocol_methods(protocol: type) -> list[str]:
    return [name for name, value in vars(protocol).items() if callable(value) and not name.startswith("_")]


def test_the_protocols_are_not_empty():
    assert {"watch", "unwatch", "set_syscall_actions", "set_egress", "close"} <= set(protocol_methods(ProbeControl))
    assert {"syscall_counts", "network", "errors", "status"} <= set(protocol_methods(ProbeReader))
    assert protocol_methods(ProbeEvents) == ["poll_events"]


@pytest.mark.parametrize("protocol", PROTOCOLS, ids=lambda p: p.__name__)
@pytest.mark.parametrize("implementation", (ProbeSet, ProbeDouble), ids=lambda c: c.__name__)
def test_each_implementation_has_every_method_with_the_protocols_signature(protocol, implementation):
    for name in protocol_methods(protocol):
        method = getattr(implementation, name, None)
        assert callable(method), f"{implementation.__name__} lacks {protocol.__name__}.{name}"
        assert inspect.signature(method) == inspect.signature(getattr(protocol, name)), \
            f"{implementation.__name__}.{name} differs from {protocol.__name__}.{name}"


def test_the_double_is_an_instance_of_every_protocol():
    double = ProbeDouble()
    assert all(isinstance(double, protocol) for protocol in (*PROTOCOLS, Probes))


# -- the double keeps the rules callers rely on ------------------------------------------------

def test_rules_need_a_watched_container():
    probes = ProbeDouble()
    with pytest.raises(InvalidArgument, match="not watched"):
        probes.set_syscall_actions(7, {59})
    probes.watch(7, "/sys/fs/cgroup/unified/c")
    probes.set_syscall_actions(7, {59})
    assert probes.kill == {7: {59: 9}} and probes.map_entries()["kill_tables"] == 1
    with pytest.raises(InvalidArgument, match="signal 99"):
        probes.set_syscall_actions(7, {59: 99})


def test_slots_run_out_like_the_real_ones():
    probes = ProbeDouble(max_containers=1)
    probes.watch(1, "/a")
    probes.watch(1, "/a")                       # again: the same slot
    with pytest.raises(Conflict, match="probe slots"):
        probes.watch(2, "/b")


def test_unwatch_forgets_counters_and_rules():
    probes = ProbeDouble()
    probes.watch(7, "/c")
    probes.counts[7] = {0: (1, 0)}
    probes.net[7] = NetCounters(1, 1, 1, 1)
    policy = EgressPolicy("p", "deny", (EgressRuleSpec("allow", "10.0.0.0/8", name="r"),))
    assert probes.set_egress(7, "/c", [policy]) == 1
    assert probes.egress_attached() == {7: "/c"}
    probes.unwatch(7, "/c")
    assert probes.syscall_counts() == {} and probes.network() == {} and probes.egress_attached() == {}
    assert probes.map_entries() == {"slots": 0, "watch_index": 0, "watch_overflow": 0, "tcp_owner": 0,
                                    "tcp_destinations": 0,
                                    "kill_tables": 0, "egress_tables": 0}


def test_without_the_programs_enforcement_fails_loudly():
    probes = ProbeDouble(egress=False, status={"syscalls": False})
    probes.watch(7, "/c")
    assert probes.enforcement() == {"syscall_kill": False, "egress": False}
    with pytest.raises(KernelError, match="syscalls probe"):
        probes.set_syscall_actions(7, {59})
    policy = EgressPolicy("p", "deny")
    with pytest.raises(KernelError, match="sock_addr"):
        probes.set_egress(7, "/c", [policy])


def test_events_are_polled_once_and_failing_reads_raise():
    probes = ProbeDouble()
    event = OomEvent(7, 42, "hog", 1.0)
    probes.emit(event)
    assert probes.poll_events(10) == [event] and probes.poll_events() == []
    probes.fail.add("tcp")
    with pytest.raises(OSError):
        probes.tcp()
    assert probes.reads["tcp"] == 1
