"""`corral container prune`, `corral system df` and `corral system prune`, with docker's output:
"Deleted Containers:" lists, "Total reclaimed space: 1.2kB", df's TYPE/TOTAL/ACTIVE table.
Without -f the prunes ask first, as docker does; any answer but y leaves everything."""
from __future__ import annotations

import argparse
import json
import sys

from agent.api.client import ApiClient
from agent.cli.format import human_size, table
from agent.cli.formatting import FORMAT_HELP, prepared_format, write_rows
from agent.errors import InvalidArgument

CONTAINERS_WARNING = "WARNING! This will remove all stopped containers."
SYSTEM_WARNING = ("WARNING! This will remove:\n  - all stopped containers\n"
                  "  - all networks not used by at least one container\n")


def register(verbs: argparse._SubParsersAction) -> None:
    container = verbs.add_parser("container", help="manage containers (prune)")
    actions = container.add_subparsers(dest="container_action", metavar="ACTION", required=True)
    prune = actions.add_parser("prune", help="remove every stopped container")
    _prune_flags(prune)
    prune.set_defaults(func=prune_containers)

    system = verbs.add_parser("system", help="disk usage and clean-up (df, prune)")
    system_actions = system.add_subparsers(dest="system_action", metavar="ACTION", required=True)
    df = system_actions.add_parser("df", help="show the disk space images and containers use")
    df.add_argument("--format", default="table", metavar="FORMAT", help=FORMAT_HELP)
    df.set_defaults(func=show_disk_usage)
    system_prune = system_actions.add_parser(
        "prune", help="remove stopped containers, unused networks and dangling images")
    system_prune.add_argument("-a", "--all", action="store_true",
                              help="remove every image no container uses, not only dangling ones")
    _prune_flags(system_prune)
    system_prune.set_defaults(func=prune_system)


def _prune_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    parser.add_argument("--filter", action="append", default=[], metavar="FILTER",
                        help="until=TIME (a timestamp, a date or a duration like 10m), label=K[=V], label!=K[=V]")


def filters_of(items: list[str]) -> dict[str, list[str]]:
    """`--filter until=10m --filter label=a=b` as docker's filters object."""
    filters: dict[str, list[str]] = {}
    for item in items:
        name, sep, value = item.partition("=")
        # label!=K partitions as name `label!`, docker's name for "has not".
        if not sep or not name:
            raise InvalidArgument(f"--filter {item!r}: expected NAME=VALUE, like until=24h or label=tier=web")
        filters.setdefault(name, []).append(value)
    return filters


def confirmed(warning: str) -> bool:
    sys.stdout.write(f"{warning}\nAre you sure you want to continue? [y/N] ")
    sys.stdout.flush()
    answer = sys.stdin.readline().strip().lower()
    return answer in ("y", "yes")


def prune_containers(args: argparse.Namespace, client: ApiClient) -> int:
    filters = filters_of(args.filter)
    if not args.force and not confirmed(CONTAINERS_WARNING):
        return 0
    result = client.prune_containers(filters)
    _print_deleted("Deleted Containers:", result.get("ContainersDeleted") or [])
    print(f"Total reclaimed space: {human_size(result.get('SpaceReclaimed', 0))}")
    return 0


def prune_system(args: argparse.Namespace, client: ApiClient) -> int:
    filters = filters_of(args.filter)
    images = ("  - all images without at least one container associated to them\n" if args.all
              else "  - all dangling images\n")
    if not args.force and not confirmed(SYSTEM_WARNING + images):
        return 0
    containers = client.prune_containers(filters)
    networks = client.prune_networks({k: v for k, v in filters.items() if k == "until"})
    pruned = client.prune_images(every=args.all)
    _print_deleted("Deleted Containers:", containers.get("ContainersDeleted") or [])
    _print_deleted("Deleted Networks:", networks.get("NetworksDeleted") or [])
    _print_deleted("Deleted Images:", [f"deleted: {name}" if name.startswith("sha256:") else f"untagged: {name}"
                                       for name in pruned.get("deleted") or []])
    total = containers.get("SpaceReclaimed", 0) + pruned.get("space_reclaimed", 0)
    print(f"Total reclaimed space: {human_size(total)}")
    return 0


def _print_deleted(title: str, items: list[str]) -> None:
    if items:
        print(title)
        for item in items:
            print(item)
        print()


def show_disk_usage(args: argparse.Namespace, client: ApiClient) -> int:
    template = prepared_format(args.format)
    usage = client.disk_usage()
    if template:
        from agent.cli.format_fields import DiskUsageFields
        write_rows(args.format, [DiskUsageFields(row) for row in disk_usage_rows(usage)], DiskUsageFields.HEADERS)
        return 0
    if args.format == "json":
        print(json.dumps(usage, indent=2))
        return 0
    sys.stdout.write(table(("TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"), disk_usage_rows(usage)))
    return 0


def disk_usage_rows(usage: dict) -> list[tuple]:
    """docker's `system df` rows: images active when a container uses them, containers when
    running; reclaimable is what the inactive ones take."""
    images = usage.get("Images") or []
    containers = usage.get("Containers") or []
    image_size = usage.get("LayersSize") or sum(i.get("Size", 0) for i in images)
    unused = sum(i.get("Size", 0) for i in images if not i.get("Containers"))
    running = [c for c in containers if c.get("State") in ("running", "paused")]
    written = sum(c.get("SizeRw", 0) for c in containers)
    stopped = sum(c.get("SizeRw", 0) for c in containers if c not in running)
    return [("Images", len(images), sum(1 for i in images if i.get("Containers")), human_size(image_size),
             _reclaimable(unused, image_size)),
            ("Containers", len(containers), len(running), human_size(written), _reclaimable(stopped, written))]


def _reclaimable(part: int, whole: int) -> str:
    return f"{human_size(part)} ({int(part * 100 / whole)}%)" if whole else human_size(part)
