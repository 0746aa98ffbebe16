"""`corral run`/`create` flags for users and environment: their arguments, and the
ContainerSpec fields they make (bad values name the flag)."""
from __future__ import annotations

import argparse
import os
from typing import Any

from agent.units import parse_size


def add_environment_arguments(parser: argparse.ArgumentParser) -> None:
    users = parser.add_argument_group("users and environment (docs/cli.md)")
    users.add_argument("--group-add", action="append", default=[], metavar="GROUP",
                       help="an extra group for the container's processes: a name from the image's "
                            "/etc/group or a gid (repeat for more)")
    users.add_argument("--env-file", action="append", default=[], metavar="FILE",
                       help="read KEY=VALUE lines from a file (docker's format; -e wins over it)")
    users.add_argument("--init", action="store_true",
                       help="run a tiny init as pid 1 that forwards signals and reaps zombies")
    users.add_argument("--ulimit", action="append", default=[], metavar="NAME=SOFT[:HARD]",
                       help="a resource limit, like nofile=1024:2048 (-1 is unlimited; repeat for more)")
    users.add_argument("--shm-size", metavar="SIZE", help="size of /dev/shm, like 128m (default 64m)")
    users.add_argument("--dns", action="append", default=[], metavar="IP", help="a DNS server (repeat for more)")
    users.add_argument("--dns-search", action="append", default=[], metavar="DOMAIN",
                       help="a DNS search domain (repeat for more)")
    users.add_argument("--dns-option", action="append", default=[], metavar="OPT",
                       help="a resolver option, like ndots:2 (repeat for more)")
    users.add_argument("--add-host", action="append", default=[], metavar="NAME:IP",
                       help="add a line to /etc/hosts; IP may be host-gateway (repeat for more)")


def environment_fields(args: argparse.Namespace, env: list[str]) -> dict[str, Any]:
    """ContainerSpec fields of these flags, `env` (from -e) after the --env-file entries."""
    from agent.cli.env_file import read_env_files
    from agent.runtime.model import Ulimit

    return {
        "env": read_env_files(args.env_file, os.environ) + env,
        "group_add": list(args.group_add),
        "init": args.init,
        "ulimits": [Ulimit.parse(item) for item in args.ulimit],
        "shm_size": None if args.shm_size is None else parse_size(args.shm_size, field="--shm-size"),
        "dns": list(args.dns),
        "dns_search": list(args.dns_search),
        "dns_options": list(args.dns_option),
        "extra_hosts": list(args.add_host),
    }

