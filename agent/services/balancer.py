"""The one published port of a service, balanced by the kernel over its ready replicas.

IPVS is not on every kernel Corral runs on (the reference host has no ip_vs), nftables is: each
service has one DNAT rule per NAT chain (prerouting for other hosts and containers, output for
the host itself, loopback included) in Corral's own table, whose address comes from a
`numgen inc mod N` map over the ready replicas' addresses: round robin, per new connection.
Established connections keep their conntrack entry, so changing the map never moves or breaks
them; the rule is replaced in one nftables transaction, so no packet finds no rule. The rules
carry the comment `corral:service:NAME`, which network reconciliation leaves alone (it removes
only rules of containers that are gone).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

from agent.network.model import PortMapping
from agent.network.nat import NatTable, destination_match, nat_rule

SERVICE_TAG = "corral:service:"


@dataclass(frozen=True)
class Connections:
    """New connections to a service's port: sent to a replica, or refused (none was ready).
    The first packet of a connection is the only one the NAT chains see, so packets are connections."""

    balanced: int = 0
    refused: int = 0

    def __add__(self, other: Connections) -> Connections:
        return Connections(self.balanced + other.balanced, self.refused + other.refused)


def service_tag(name: str) -> str:
    return SERVICE_TAG + name


def balance_rules(table: str, name: str, port: PortMapping, addresses: list[str]) -> list[dict]:
    """The DNAT rules of a service over `addresses`. With no replica ready, rules that only
    count the connections (the port then refuses them, as a port nothing listens on does)."""
    dport = {"match": {"op": "==", "left": {"payload": {"protocol": port.protocol, "field": "dport"}},
                       "right": port.host_port}}
    if not addresses:
        return [nat_rule(table, chain, service_tag(name), [destination_match(port), dport, {"counter": None}])
                for chain in ("prerouting", "output")]
    choice = {"map": {"key": {"numgen": {"mode": "inc", "mod": len(addresses), "offset": 0}},
                      "data": {"set": [[index, address] for index, address in enumerate(addresses)]}}}
    rules = []
    for chain in ("prerouting", "output"):
        rules.append(nat_rule(table, chain, service_tag(name), [
            destination_match(port), dport, {"counter": None},
            {"dnat": {"addr": choice, "port": port.container_port}}]))
    return rules


class Balancer:
    """Keeps each service's rules in Corral's nft table; thread-safe."""

    def __init__(self, nat: NatTable) -> None:
        self.nat = nat
        self._lock = threading.Lock()
        self._applied: dict[str, tuple[PortMapping, tuple[str, ...]]] = {}
        self._past: dict[str, Connections] = {}

    def apply(self, name: str, port: PortMapping, addresses: list[str]) -> bool:
        """Balance `port` over `addresses` (in this order); False when that is already so."""
        wanted = (port, tuple(addresses))
        with self._lock:
            if self._applied.get(name) == wanted:
                return False
            # The rules' counters go with them: what they counted is kept here first.
            before = self._read_counters().get(name, Connections())
            self.nat.replace_tagged(service_tag(name), balance_rules(self.nat.name, name, port, list(addresses)))
            self._past[name] = self._past.get(name, Connections()) + before
            self._applied[name] = wanted
            return True

    def connections(self) -> dict[str, Connections]:
        """Connections each service's port balanced and refused (no replica ready), since the
        daemon started or the service was created, whichever is later."""
        with self._lock:
            now = self._read_counters()
            return {name: self._past.get(name, Connections()) + now.get(name, Connections())
                    for name in set(self._applied) | set(now)}

    def _read_counters(self) -> dict[str, Connections]:
        found: dict[str, Connections] = {}
        for rule in self.nat.rules():
            tag = rule.get("comment", "")
            if not tag.startswith(SERVICE_TAG):
                continue
            expr = rule.get("expr", [])
            packets = sum((item.get("counter") or {}).get("packets", 0) for item in expr if "counter" in item)
            balanced = any("dnat" in item for item in expr)
            counted = Connections(packets, 0) if balanced else Connections(0, packets)
            found[tag[len(SERVICE_TAG):]] = found.get(tag[len(SERVICE_TAG):], Connections()) + counted
        return found

    def addresses(self, name: str) -> tuple[str, ...]:
        with self._lock:
            applied = self._applied.get(name)
            return applied[1] if applied else ()

    def remove(self, name: str) -> None:
        with self._lock:
            self.nat.remove_tagged(service_tag(name))
            self._applied.pop(name, None)
            self._past.pop(name, None)

    def services(self) -> set[str]:
        """The services that have rules in the table (reconciliation at start)."""
        return {tag[len(SERVICE_TAG):] for tag in self.nat.tags() if tag.startswith(SERVICE_TAG)}
