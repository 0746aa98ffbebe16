"""`corral volume create|ls|inspect|rm|prune` (docs/volumes.md)."""
from __future__ import annotations

import argparse
import json
import sys

from agent.api.client import ApiClient
from agent.cli.containers import for_each
from agent.cli.format import table
from agent.cli.formatting import (
    FORMAT_HELP,
    INSPECT_FORMAT_HELP,
    parse_filter_flags,
    prepared_format,
    print_documents,
    write_rows,
)
from agent.cli.run import labels_of


def register(verbs: argparse._SubParsersAction) -> None:
    volume = verbs.add_parser("volume", help="manage volumes (create, ls, inspect, rm, prune)")
    actions = volume.add_subparsers(dest="volume_action", metavar="ACTION", required=True)

    create = actions.add_parser("create", help="create a volume",
                                description="Create a volume and print its name; `-v NAME:/path` also creates "
                                            "one on first use. Without NAME a random name is given.")
    create.add_argument("-l", "--label", action="append", default=[], metavar="K=V", help="set a label (repeat)")
    create.add_argument("-d", "--driver", default="local", choices=("local",), help="only local (the default)")
    create.add_argument("name", metavar="NAME", nargs="?", help="volume name")
    create.set_defaults(func=create_volume)

    ls = actions.add_parser("ls", help="list volumes")
    ls.add_argument("-q", "--quiet", action="store_true", help="only the names")
    ls.add_argument("--format", default="table", metavar="FORMAT", help=FORMAT_HELP)
    ls.add_argument("-f", "--filter", action="append", default=[], metavar="KEY=VALUE",
                    help="dangling=true|false, driver=local, label=K[=V], name=NAME (repeat)")
    ls.set_defaults(func=list_volumes)

    inspect = actions.add_parser("inspect", help="show volumes' details as a JSON array")
    inspect.add_argument("-f", "--format", metavar="TEMPLATE", help=INSPECT_FORMAT_HELP)
    inspect.add_argument("volumes", metavar="VOLUME", nargs="+", help="volume name")
    inspect.set_defaults(func=inspect_volumes)

    rm = actions.add_parser("rm", help="remove volumes (refused while a container uses them)")
    rm.add_argument("-f", "--force", action="store_true", help="no error for a volume that does not exist")
    rm.add_argument("volumes", metavar="VOLUME", nargs="+", help="volume name")
    rm.set_defaults(func=remove_volumes)

    prune = actions.add_parser("prune", help="remove anonymous volumes no container uses")
    prune.add_argument("-a", "--all", action="store_true", help="named volumes too, not only anonymous ones")
    prune.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    prune.set_defaults(func=prune_volumes)


def create_volume(args: argparse.Namespace, client: ApiClient) -> int:
    print(client.create_volume(args.name, labels_of(args.label))["Name"])
    return 0


def list_volumes(args: argparse.Namespace, client: ApiClient) -> int:
    template = prepared_format(args.format)
    volumes = client.list_volumes(parse_filter_flags(args.filter))
    if args.quiet:
        for volume in volumes:
            print(volume["Name"])
    elif template:
        from agent.cli.format_fields import VolumeFields
        write_rows(args.format, [VolumeFields(v) for v in volumes], VolumeFields.HEADERS)
    elif args.format == "json":
        print(json.dumps(volumes, indent=2))
    else:
        sys.stdout.write(table(("DRIVER", "VOLUME NAME"), [(v["Driver"], v["Name"]) for v in volumes]))
    return 0


def inspect_volumes(args: argparse.Namespace, client: ApiClient) -> int:
    prepared_format(args.format, each=True)
    found: list[dict] = []
    code = for_each(args.volumes, lambda name: found.append(client.inspect_volume(name)))
    print_documents(args.format, found)
    return code


def remove_volumes(args: argparse.Namespace, client: ApiClient) -> int:
    return for_each(args.volumes, lambda name: client.remove_volume(name, force=args.force), say=str)


def prune_volumes(args: argparse.Namespace, client: ApiClient) -> int:
    if not args.force:
        what = "all local volumes" if args.all else "anonymous local volumes"
        sys.stderr.write(f"WARNING! This will remove {what} not used by at least one container.\n"
                         "Are you sure you want to continue? [y/N] ")
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    result = client.prune_volumes(all=args.all)
    if result["removed"]:
        print("Deleted Volumes:")
        for name in result["removed"]:
            print(name)
        print()
    print(f"Total reclaimed space: {human_bytes(result['space_reclaimed'])}")
    return 0


def human_bytes(size: int) -> str:
    """docker's units: 0B, 512B, 1.5kB, 12.3MB (powers of 1000)."""
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.3g}{unit}"
        value /= 1000
    return f"{size}B"
