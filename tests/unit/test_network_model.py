"""Network, PortMapping and Attachment: parsing `-p`, round trips, and the errors users see."""
from __future__ import annotations

import pytest

from agent.errors import InvalidArgument
from agent.network.manager import bridge_of, host_veth_of
from agent.network.model import Attachment, Network, PortMapping, mac_of, parse_subnet
from agent.network.rendering import hosts_file, resolv_conf

CID = "0123456789abcdef" * 4


@pytest.mark.parametrize("text, expected", [
    ("8080:80", PortMapping(8080, 80, "tcp", "0.0.0.0")),
    ("8080:80/udp", PortMapping(8080, 80, "udp", "0.0.0.0")),
    ("127.0.0.1:8080:80", PortMapping(8080, 80, "tcp", "127.0.0.1")),
    ("127.0.0.1:53:5353/udp", PortMapping(53, 5353, "udp", "127.0.0.1")),
    (":8080:80/tcp", PortMapping(8080, 80, "tcp", "0.0.0.0")),
])
def test_publish_syntax(text, expected):
    assert PortMapping.parse(text) == expected


@pytest.mark.parametrize("text, named", [
    ("80", "'80'"), ("a:80", "'a'"), ("8080:0", "'0'"), ("8080:70000", "'70000'"),
    ("8080:80/sctp", "'sctp'"), ("8080:80/", "''"), ("300.1.1.1:80:80", "'300.1.1.1'"),
    ("1:2:3:4", "'1:2:3:4'"), ("", "''"), ("-1:80", "'-1'"),
])
def test_bad_publish_names_the_bad_value(text, named):
    with pytest.raises(InvalidArgument) as error:
        PortMapping.parse(text)
    assert named in str(error.value)


def test_port_mapping_round_trip_and_string():
    port = PortMapping.parse("127.0.0.1:8080:80/udp")
    assert PortMapping.from_dict(port.to_dict()) == port
    assert PortMapping.from_dict("8080:80") == PortMapping(8080, 80)
    assert str(port) == "127.0.0.1:8080:80/udp"


def test_port_mapping_from_dict_rejects_unknown_keys():
    with pytest.raises(InvalidArgument, match="unknown field 'hostport'"):
        PortMapping.from_dict({"host_port": 1, "container_port": 2, "hostport": 3})
    with pytest.raises(InvalidArgument, match="'container_port' is required"):
        PortMapping.from_dict({"host_port": 1})


def network(**changes) -> Network:
    values = dict(name="web", subnet="10.214.0.0/24", gateway="10.214.0.1", bridge="cbr-0123456789",
                  created=1.5)
    values.update(changes)
    return Network(**values)


def test_network_round_trip_and_defaults():
    net = network()
    assert net.driver == "bridge" and net.internal is False and net.prefix == 24
    assert Network.from_dict(net.to_dict()) == net


@pytest.mark.parametrize("changes, message", [
    ({"name": "bad name"}, "'bad name'"),
    ({"subnet": "10.214.0.1/24"}, "host bits"),
    ({"subnet": "10.214.0.0/31"}, "/8 and /29"),
    ({"subnet": "fe80::/64"}, "'fe80::/64'"),
    ({"gateway": "10.9.9.9"}, "10.9.9.9 is not in 10.214.0.0/24"),
    ({"driver": "macvlan"}, "'macvlan'"),
    ({"bridge": "a-very-long-bridge-name"}, "15 characters"),
])
def test_network_errors_name_the_field(changes, message):
    with pytest.raises(InvalidArgument, match=message.replace("/", "/").replace("(", r"\(")):
        network(**changes)


def test_network_from_dict_rejects_unknown_keys():
    data = network().to_dict() | {"ipv6": True}
    with pytest.raises(InvalidArgument, match="unknown field 'ipv6'"):
        Network.from_dict(data)


def attachment(**changes) -> Attachment:
    values = dict(network="corral0", container_id=CID, container_name="web", host_veth=host_veth_of(CID),
                  address="10.213.0.2", prefix=16, mac=mac_of("10.213.0.2"), gateway="10.213.0.1",
                  ports=[PortMapping(8080, 80)])
    values.update(changes)
    return Attachment(**values)


def test_attachment_round_trip_through_json_shapes():
    original = attachment()
    data = original.to_dict()
    assert data["ports"] == [{"host_port": 8080, "container_port": 80, "protocol": "tcp", "host_ip": "0.0.0.0"}]
    assert Attachment.from_dict(data) == original
    assert original.interface == "eth0"


def test_attachment_rejects_unknown_keys_and_bad_addresses():
    with pytest.raises(InvalidArgument, match="unknown field 'ip'"):
        Attachment.from_dict(attachment().to_dict() | {"ip": "1.2.3.4"})
    with pytest.raises(InvalidArgument, match="attachment.address"):
        Attachment.from_dict(attachment().to_dict() | {"address": "nope"})
    with pytest.raises(InvalidArgument, match=r"ports\[0\]"):
        Attachment.from_dict(attachment().to_dict() | {"ports": [{"host_port": 0, "container_port": 1}]})


def test_mac_is_derived_from_the_address_like_docker():
    assert mac_of("172.17.0.2") == "02:42:ac:11:00:02"


def test_interface_names_fit_ifnamsiz():
    assert host_veth_of(CID) == "cv0123456789ab" and len(host_veth_of(CID)) <= 15
    assert len(bridge_of("a" * 64)) <= 15 and bridge_of("web") != bridge_of("db")


def test_parse_subnet_suggests_the_network_address():
    with pytest.raises(InvalidArgument, match="did you mean 10.0.0.0/24"):
        parse_subnet("10.0.0.5/24")


def test_hosts_file_lists_itself_and_its_neighbours():
    me = attachment()
    other = attachment(container_id="f" * 64, container_name="db", address="10.213.0.3")
    text = hosts_file(me, [me, other], hostname="myhost")
    lines = text.splitlines()
    assert "127.0.0.1\tlocalhost" in lines
    assert f"10.213.0.2\tmyhost web {CID[:12]}" in lines
    assert f"10.213.0.3\tdb {'f' * 12}" in lines
    assert sum("10.213.0.2" in line for line in lines) == 1


def test_resolv_conf_is_copied_unless_the_resolver_is_on_loopback(tmp_path):
    host = tmp_path / "resolv.conf"
    host.write_text("search example.org\nnameserver 192.0.2.53\n")
    assert resolv_conf(host, tmp_path / "missing") == "search example.org\nnameserver 192.0.2.53\n"
    host.write_text("nameserver 127.0.0.53\noptions edns0\n")
    upstream = tmp_path / "upstream.conf"
    upstream.write_text("nameserver 192.0.2.1\n")
    assert resolv_conf(host, upstream) == "nameserver 192.0.2.1\n"
    text = resolv_conf(host, tmp_path / "missing")
    assert "nameserver" not in [line.split()[0] for line in text.splitlines() if not line.startswith("#")]
    assert text.startswith("#")
