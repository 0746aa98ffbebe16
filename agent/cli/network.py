"""Network verbs: `corral network create|ls|inspect|rm|connect|disconnect` and `corral port CONTAINER`."""
from __future__ import annotations

import argparse
import json
import sys

from agent.api.client import ApiClient
from agent.cli.containers import for_each
from agent.cli.format import short_id, table
from agent.cli.formatting import (
    FORMAT_HELP,
    INSPECT_FORMAT_HELP,
    parse_filter_flags,
    prepared_format,
    print_documents,
    write_rows,
)
from agent.errors import InvalidArgument, NotFound


def register(verbs: argparse._SubParsersAction) -> None:
    network = verbs.add_parser("network", help="manage networks (create, ls, inspect, rm, connect, disconnect)")
    actions = network.add_subparsers(dest="network_action", metavar="ACTION", required=True)

    create = actions.add_parser("create", help="create a bridge network",
                                description="Create a bridge network; containers join it with --net NAME "
                                            "and reach each other by name.")
    create.add_argument("--subnet", metavar="CIDR", help="IPv4 subnet, like 10.214.5.0/24 (default: the next free /24 "
                                                         "of 10.214.0.0/16)")
    create.add_argument("--internal", action="store_true", help="no access to the outside (no masquerade)")
    create.add_argument("name", metavar="NAME", help="network name")
    create.set_defaults(func=create_network)

    ls = actions.add_parser("ls", help="list networks")
    ls.add_argument("--format", default="table", metavar="FORMAT", help=FORMAT_HELP)
    ls.add_argument("-q", "--quiet", action="store_true", help="print only the names")
    ls.add_argument("-f", "--filter", action="append", metavar="KEY=VALUE",
                    help="only networks matching: name=, id=, driver=, type=custom|builtin, label=, scope= (repeat)")
    ls.set_defaults(func=list_networks)

    inspect = actions.add_parser("inspect", help="show networks' details as a JSON array")
    inspect.add_argument("-f", "--format", metavar="TEMPLATE", help=INSPECT_FORMAT_HELP)
    inspect.add_argument("networks", metavar="NETWORK", nargs="+", help="network name")
    inspect.set_defaults(func=inspect_networks)

    rm = actions.add_parser("rm", help="remove networks (refused while containers use them)")
    rm.add_argument("networks", metavar="NETWORK", nargs="+", help="network name")
    rm.set_defaults(func=remove_networks)

    connect = actions.add_parser("connect", help="connect a container to a network",
                                 description="Connect a container to a further network: at once when it runs, "
                                             "else at its next start. The network's containers reach it by "
                                             "name and by each --alias.")
    connect.add_argument("--alias", action="append", default=[], metavar="NAME",
                         help="another name it has on this network (repeat)")
    connect.add_argument("--ip", metavar="IP", help="its IPv4 address on the network (default: the next free one)")
    connect.add_argument("network", metavar="NETWORK", help="network name")
    connect.add_argument("container", metavar="CONTAINER", help="id, id prefix or name")
    connect.set_defaults(func=connect_container)

    disconnect = actions.add_parser("disconnect", help="disconnect a container from a network",
                                    description="Remove a container's interface, address and names on a "
                                                "network (its last one too).")
    disconnect.add_argument("-f", "--force", action="store_true",
                            help="clean up even when it is not connected or the network is gone")
    disconnect.add_argument("network", metavar="NETWORK", help="network name")
    disconnect.add_argument("container", metavar="CONTAINER", help="id, id prefix or name")
    disconnect.set_defaults(func=disconnect_container)

    port = verbs.add_parser("port", help="list a container's published ports",
                            description="List the published ports of a container, like `80/tcp -> 0.0.0.0:8080`.")
    port.add_argument("container", metavar="CONTAINER", help="id, id prefix or name")
    port.add_argument("private", metavar="PORT[/PROTO]", nargs="?", help="only this container port")
    port.set_defaults(func=show_ports)


def create_network(args: argparse.Namespace, client: ApiClient) -> int:
    network = client.create_network(args.name, subnet=args.subnet, internal=args.internal)
    print(network["name"])
    return 0


def list_networks(args: argparse.Namespace, client: ApiClient) -> int:
    template = prepared_format(args.format)
    networks = sorted(client.list_networks(filters=parse_filter_flags(args.filter)), key=lambda n: n["name"])
    if args.quiet:
        for network in networks:
            print(network["name"])
        return 0
    if template:
        from agent.cli.format_fields import NetworkFields
        write_rows(args.format, [NetworkFields(n) for n in networks], NetworkFields.HEADERS)
        return 0
    if args.format == "json":
        print(json.dumps(networks, indent=2))
        return 0
    rows = [(n["name"], n["driver"], n["subnet"], n["gateway"], n["bridge"], "yes" if n.get("internal") else "no")
            for n in sorted(networks, key=lambda n: n["name"])]
    sys.stdout.write(table(("NAME", "DRIVER", "SUBNET", "GATEWAY", "BRIDGE", "INTERNAL"), rows))
    return 0


def inspect_networks(args: argparse.Namespace, client: ApiClient) -> int:
    prepared_format(args.format, each=True)
    found: list[dict] = []
    code = for_each(args.networks, lambda name: found.append(client.inspect_network(name)))
    print_documents(args.format, found)
    return code


def remove_networks(args: argparse.Namespace, client: ApiClient) -> int:
    return for_each(args.networks, client.remove_network, say=str)


def connect_container(args: argparse.Namespace, client: ApiClient) -> int:
    client.connect_network(args.network, args.container, aliases=args.alias, ip=args.ip)
    return 0


def disconnect_container(args: argparse.Namespace, client: ApiClient) -> int:
    client.disconnect_network(args.network, args.container, force=args.force)
    return 0


def port_lines(container: dict, private: str | None = None) -> list[str]:
    """`80/tcp -> 0.0.0.0:8080` lines from a container's inspect document, as `docker port`
    prints them (docker's `NetworkSettings.Ports` shape: {"80/tcp": [{"HostIp", "HostPort"}]})."""
    ports = ((container.get("NetworkSettings") or {}).get("Ports")) or {}
    wanted = None
    if private is not None:
        number, _, protocol = private.partition("/")
        if not number.isdigit() or protocol not in ("", "tcp", "udp"):
            raise InvalidArgument(f"port {private!r}: expected PORT or PORT/tcp or PORT/udp, like 80/tcp")
        wanted = f"{int(number)}/{protocol or 'tcp'}"
    lines = []
    for key in sorted(ports, key=lambda k: (int(k.split("/")[0]), k)):
        if wanted is not None and key != wanted:
            continue
        for binding in ports[key] or []:
            lines.append(f"{key} -> {binding['HostIp']}:{binding['HostPort']}")
    return lines


def show_ports(args: argparse.Namespace, client: ApiClient) -> int:
    container = client.inspect_container(args.container)
    lines = port_lines(container, args.private)
    if args.private is not None and not lines:
        raise NotFound(f"no public port {args.private!r} published for container "
                       f"{container.get('Name') or short_id(container.get('Id', args.container))}")
    for line in lines:
        print(line)
    return 0
