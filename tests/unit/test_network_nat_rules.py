"""The nftables JSON Corral generates, and the table's bookkeeping with a recording runner."""
from __future__ import annotations

from agent.network.model import Attachment, Network, PortMapping
from agent.network.nat import NatTable, container_tag, delete_commands, network_rules, port_rules, table_commands

CID = "ab" * 32


def net(internal: bool = False) -> Network:
    return Network(name="web", subnet="10.214.0.0/24", gateway="10.214.0.1", bridge="cbr-x", created=0,
                   internal=internal)


def attached(*ports: str) -> Attachment:
    return Attachment(network="web", container_id=CID, container_name="c", host_veth="cvabababababab",
                      address="10.214.0.2", prefix=24, mac="02:42:0a:d6:00:02", gateway="10.214.0.1",
                      ports=[PortMapping.parse(p) for p in ports])


def rule_of(command: dict) -> dict:
    return command["add"]["rule"]


def test_the_table_has_three_nat_chains_and_nothing_else():
    commands = table_commands("corral")
    assert commands[0] == {"add": {"table": {"family": "ip", "name": "corral"}}}
    chains = {c["add"]["chain"]["name"]: c["add"]["chain"] for c in commands[1:]}
    assert set(chains) == {"prerouting", "output", "postrouting"}
    assert all(c["type"] == "nat" and c["table"] == "corral" and c["policy"] == "accept" for c in chains.values())
    assert chains["prerouting"]["prio"] == -100 and chains["postrouting"]["prio"] == 100


def test_network_rules_masquerade_the_subnet_out_of_other_interfaces():
    rules = [rule_of(c) for c in network_rules("corral", net())]
    assert all(r["chain"] == "postrouting" and r["comment"] == "corral:network:web" for r in rules)
    outbound = rules[0]["expr"]
    assert outbound[0]["match"]["right"] == {"prefix": {"addr": "10.214.0.0", "len": 24}}
    assert outbound[1]["match"] == {"op": "!=", "left": {"meta": {"key": "oifname"}}, "right": "cbr-x"}
    assert outbound[2] == {"masquerade": None}
    loopback = rules[1]["expr"]
    assert loopback[0]["match"]["right"] == {"prefix": {"addr": "127.0.0.0", "len": 8}}
    assert loopback[1]["match"]["op"] == "==" and loopback[1]["match"]["right"] == "cbr-x"
    hairpin = rules[2]["expr"]
    assert {"match": {"op": "in", "left": {"ct": {"key": "status"}}, "right": "dnat"}} in hairpin


def test_an_internal_network_is_not_masqueraded_to_the_outside():
    rules = [rule_of(c) for c in network_rules("corral", net(internal=True))]
    assert not any(r["expr"][1]["match"]["op"] == "!=" for r in rules)


def test_published_ports_are_dnat_in_prerouting_and_output():
    rules = [rule_of(c) for c in port_rules("corral", attached("8080:80", "127.0.0.1:5353:53/udp"))]
    assert [r["chain"] for r in rules] == ["prerouting", "output", "prerouting", "output"]
    assert all(r["comment"] == f"corral:container:{CID}" for r in rules)
    any_address, _, one_address, _ = [r["expr"] for r in rules]
    assert any_address == [
        {"match": {"op": "==", "left": {"fib": {"result": "type", "flags": ["daddr"]}}, "right": "local"}},
        {"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 8080}},
        {"dnat": {"addr": "10.214.0.2", "port": 80}}]
    assert one_address[0]["match"] == {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}},
                                       "right": "127.0.0.1"}
    assert one_address[1]["match"]["left"]["payload"]["protocol"] == "udp"


def test_no_ports_no_rules():
    assert port_rules("corral", attached()) == []


def test_delete_commands_use_handles_in_our_table_only():
    doomed = [{"chain": "output", "handle": 7}, {"chain": "prerouting", "handle": 3}]
    assert delete_commands("corral", doomed) == [
        {"delete": {"rule": {"family": "ip", "table": "corral", "chain": "output", "handle": 7}}},
        {"delete": {"rule": {"family": "ip", "table": "corral", "chain": "prerouting", "handle": 3}}}]


class Recorder:
    """A runner that answers `list table` with fixed rules and records every batch."""

    def __init__(self, rules: list[dict]) -> None:
        self.listing = {"nftables": [{"metainfo": {}}, {"table": {"name": "corral"}}] +
                                    [{"rule": r} for r in rules]}
        self.batches: list[list[dict]] = []

    def __call__(self, commands: dict) -> dict:
        self.batches.append(commands["nftables"])
        return self.listing if "list" in commands["nftables"][0] else {}


def test_remove_tagged_deletes_only_that_containers_rules():
    rules = [{"family": "ip", "table": "corral", "chain": "output", "handle": 4, "comment": container_tag(CID)},
             {"family": "ip", "table": "corral", "chain": "output", "handle": 5, "comment": container_tag("cd" * 32)},
             {"family": "ip", "table": "corral", "chain": "postrouting", "handle": 6, "comment": "corral:network:web"}]
    runner = Recorder(rules)
    table = NatTable("corral", runner)
    assert table.remove_tagged(container_tag(CID)) == 1
    assert runner.batches[-1] == [{"delete": {"rule": {"family": "ip", "table": "corral", "chain": "output",
                                                       "handle": 4}}}]
    assert table.tags() == {container_tag(CID), container_tag("cd" * 32), "corral:network:web"}


def test_every_command_names_our_table():
    runner = Recorder([])
    table = NatTable("corraltest", runner)
    table.add(port_rules("corraltest", attached("8080:80")))
    table.remove_tagged("nothing")
    assert runner.batches and all(runner.batches)
    for batch in runner.batches:
        for command in batch:
            (verb, body), = command.items()
            (kind, obj), = body.items()
            assert obj.get("table", obj.get("name")) == "corraltest", command
