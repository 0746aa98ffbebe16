"""The nftables side of networking: one table owned by Corral (`ip corral` by default).

The table has three NAT base chains:

- `prerouting` (hook prerouting, dstnat): DNAT of published ports for traffic arriving from
  other hosts and from containers;
- `output` (hook output, dstnat): the same DNAT for connections the host itself opens, to any
  of its own addresses, loopback included (`curl 127.0.0.1:8080`);
- `postrouting` (hook postrouting, srcnat): per network, masquerade of the subnet leaving
  through any interface but its bridge (containers reach the outside with the host's address);
  masquerade of 127.0.0.0/8 sources leaving through the bridge (the loopback case: after the
  output DNAT the packet still has source 127.0.0.1, which the container could not answer; with
  the bridge's `route_localnet=1` the kernel lets it out and masquerade gives it the gateway's
  address); and masquerade of DNATed connections from the subnet back into the bridge (a
  container reaching a published port of its own network through the host: hairpin).

Each rule carries a comment naming its owner, `corral:network:NAME` or `corral:container:ID`, so
rules are removed precisely by owner. Corral only ever adds to, lists and deletes from its own
table; it never reads or changes another table. The builders below are pure functions that
return libnftables JSON commands, so unit tests check them without root.
"""
from __future__ import annotations

import json
from typing import Any, Callable, Iterable

from agent.errors import KernelError
from agent.network.model import Attachment, Network, PortMapping

FAMILY = "ip"
CHAINS = (("prerouting", "prerouting", -100), ("output", "output", -100), ("postrouting", "postrouting", 100))
NETWORK_TAG = "corral:network:"
CONTAINER_TAG = "corral:container:"
LOOPBACK = ("127.0.0.0", 8)

Runner = Callable[[dict], dict]


def network_tag(name: str) -> str:
    return NETWORK_TAG + name


def container_tag(container_id: str) -> str:
    return CONTAINER_TAG + container_id


# ---- pure builders -----------------------------------------------------------------------

def _match(left: Any, right: Any, op: str = "==") -> dict:
    return {"match": {"op": op, "left": left, "right": right}}


def _prefix(cidr: str) -> dict:
    address, _, length = cidr.partition("/")
    return {"prefix": {"addr": address, "len": int(length)}}


def _rule(table: str, chain: str, comment: str, expr: list[dict]) -> dict:
    return {"add": {"rule": {"family": FAMILY, "table": table, "chain": chain,
                             "comment": comment, "expr": expr}}}


def table_commands(table: str) -> list[dict]:
    """Create the table and its chains; `add` leaves existing ones (and their rules) as they are."""
    commands: list[dict] = [{"add": {"table": {"family": FAMILY, "name": table}}}]
    for name, hook, priority in CHAINS:
        commands.append({"add": {"chain": {"family": FAMILY, "table": table, "name": name, "type": "nat",
                                           "hook": hook, "prio": priority, "policy": "accept"}}})
    return commands


def network_rules(table: str, network: Network) -> list[dict]:
    """Masquerade rules of one network (none to the outside when the network is internal)."""
    tag = network_tag(network.name)
    saddr = {"payload": {"protocol": "ip", "field": "saddr"}}
    oifname = {"meta": {"key": "oifname"}}
    rules = []
    if not network.internal:
        rules.append(_rule(table, "postrouting", tag, [
            _match(saddr, _prefix(network.subnet)),
            _match(oifname, network.bridge, "!="),
            {"masquerade": None}]))
    rules.append(_rule(table, "postrouting", tag, [
        _match(saddr, _prefix(f"{LOOPBACK[0]}/{LOOPBACK[1]}")),
        _match(oifname, network.bridge),
        {"masquerade": None}]))
    rules.append(_rule(table, "postrouting", tag, [
        _match(saddr, _prefix(network.subnet)),
        _match(oifname, network.bridge),
        _match({"ct": {"key": "status"}}, "dnat", "in"),
        {"masquerade": None}]))
    return rules


def port_rules(table: str, attachment: Attachment) -> list[dict]:
    """DNAT of each published port, in prerouting (from elsewhere) and output (from the host).

    A port published on 0.0.0.0 matches any destination address that is the host's own
    (`fib daddr type local`, which includes 127.0.0.1 and the bridge's gateway); one published
    on a given host address matches that address only.
    """
    tag = container_tag(attachment.container_id)
    rules = []
    for port in attachment.ports:
        expr = [destination_match(port),
                _match({"payload": {"protocol": port.protocol, "field": "dport"}}, port.host_port),
                {"dnat": {"addr": attachment.address, "port": port.container_port}}]
        for chain in ("prerouting", "output"):
            rules.append(_rule(table, chain, tag, [dict(item) for item in expr]))
    return rules


def destination_match(port: PortMapping) -> dict:
    """The host addresses a published port answers on: any of the host's own for 0.0.0.0
    (`fib daddr type local`: 127.0.0.1 and the gateways too), else the one given."""
    if port.host_ip == "0.0.0.0":
        return _match({"fib": {"result": "type", "flags": ["daddr"]}}, "local")
    return _match({"payload": {"protocol": "ip", "field": "daddr"}}, port.host_ip)


def nat_rule(table: str, chain: str, comment: str, expr: list[dict]) -> dict:
    """An `add rule` command (the rule's comment names its owner)."""
    return _rule(table, chain, comment, expr)


def delete_commands(table: str, rules: Iterable[dict]) -> list[dict]:
    """Delete listed rules (as `list table` gives them, with handles)."""
    return [{"delete": {"rule": {"family": FAMILY, "table": table, "chain": rule["chain"],
                                 "handle": rule["handle"]}}} for rule in rules]


def rules_in(listing: dict) -> list[dict]:
    """The rules of a `list table` answer."""
    return [item["rule"] for item in listing.get("nftables", []) if "rule" in item]


# ---- the table ---------------------------------------------------------------------------

def libnftables_runner() -> Runner:
    """Runs JSON commands with the python3-nftables binding (libnftables, no subprocess)."""
    import nftables

    engine = nftables.Nftables()
    engine.set_json_output(True)
    engine.set_handle_output(True)

    def run(commands: dict) -> dict:
        try:
            code, output, error = engine.json_cmd(commands)
        except Exception as exc:  # noqa: BLE001 - the binding raises on schema errors too
            raise KernelError(f"nftables refused the commands: {exc}") from exc
        if code != 0:
            raise KernelError(f"nftables refused the commands: {error.strip() or code}")
        return output if isinstance(output, dict) else (json.loads(output) if output else {})

    return run


class NatTable:
    """Corral's own nftables table; every method touches that table and nothing else."""

    def __init__(self, name: str = "corral", runner: Runner | None = None) -> None:
        self.name = name
        self._runner = runner

    def _run(self, commands: list[dict]) -> dict:
        if not commands:
            return {}
        if self._runner is None:
            self._runner = libnftables_runner()
        return self._runner({"nftables": commands})

    def ensure(self) -> None:
        self._run(table_commands(self.name))

    def add(self, rules: list[dict]) -> None:
        """Add rules in one transaction: all of them or none."""
        self._run(table_commands(self.name) + rules)

    def rules(self) -> list[dict]:
        """Every rule of the table, with chain, handle and comment; [] when there is no table."""
        try:
            listing = self._run([{"list": {"table": {"family": FAMILY, "name": self.name}}}])
        except KernelError as exc:
            if "No such file or directory" in str(exc):
                return []
            raise
        return rules_in(listing)

    def replace_tagged(self, tag: str, rules: list[dict]) -> None:
        """Swap every rule whose comment is `tag` for `rules`, in one transaction: a packet sees
        the old rules or the new ones, never none (a balancer's set of replicas changing)."""
        doomed = [rule for rule in self.rules() if rule.get("comment") == tag]
        self._run(table_commands(self.name) + delete_commands(self.name, doomed) + rules)

    def tags(self) -> set[str]:
        return {rule.get("comment", "") for rule in self.rules()}

    def remove_tagged(self, tag: str) -> int:
        """Delete every rule whose comment is `tag`; the number deleted."""
        doomed = [rule for rule in self.rules() if rule.get("comment") == tag]
        self._run(delete_commands(self.name, doomed))
        return len(doomed)

    def delete_table(self) -> None:
        """Remove the whole table (tests and `reset`); a missing table is not an error."""
        try:
            self._run([{"delete": {"table": {"family": FAMILY, "name": self.name}}}])
        except KernelError as exc:
            if "No such file or directory" not in str(exc):
                raise
