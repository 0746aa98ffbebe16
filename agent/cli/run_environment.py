"""`corral run`/`create` flags for users and environment and for health checks: their
arguments, and the ContainerSpec fields they make (bad values name the flag)."""
from __future__ import annotations

import argparse
import os

from agent.errors import InvalidArgument

TYPE_CHECKING = False   # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

_HEALTH_FLAGS = ("health_cmd", "health_interval", "health_timeout", "health_start_period", "health_retries")


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
    health = parser.add_argument_group("health check (docs/cli.md)")
    health.add_argument("--health-cmd", metavar="CMD", help="command run by a shell in the container to check health")
    health.add_argument("--health-interval", metavar="DURATION", help="time between checks, like 30s (default)")
    health.add_argument("--health-timeout", metavar="DURATION",
                        help="time a check may run before it counts as failed (default 30s)")
    health.add_argument("--health-start-period", metavar="DURATION",
                        help="failures in this time after the start do not count (default 0s)")
    health.add_argument("--health-retries", type=int, metavar="N",
                        help="failures in a row that make the container unhealthy (default 3)")
    health.add_argument("--no-healthcheck", action="store_true", help="disable any health check, the image's too")


def environment_fields(args: argparse.Namespace, env: list[str]) -> dict[str, Any]:
    """The body's fields of these flags, `env` (from -e) after the --env-file entries. What
    parses a flag's values is loaded only when the flag is given (`run`'s start-up time)."""
    if args.env_file:
        from agent.cli.env_file import read_env_files
        env = read_env_files(args.env_file, os.environ) + env
    ulimits = []
    if args.ulimit:
        from agent.runtime.model import Ulimit
        from agent.schema import to_builtins
        ulimits = [to_builtins(Ulimit.parse(item)) for item in args.ulimit]
    shm_size = None
    if args.shm_size is not None:
        from agent.units import parse_size
        shm_size = parse_size(args.shm_size, field="--shm-size")
    return {
        "env": env,
        "group_add": list(args.group_add),
        "init": args.init,
        "ulimits": ulimits,
        "shm_size": shm_size,
        "dns": list(args.dns),
        "dns_search": list(args.dns_search),
        "dns_options": list(args.dns_option),
        "extra_hosts": list(args.add_host),
        "healthcheck": healthcheck(args),
    }


def healthcheck(args: argparse.Namespace) -> dict | None:
    """The spec's healthcheck: None to keep the image's as it is, test ["NONE"] to turn it off."""
    given = [name for name in _HEALTH_FLAGS if getattr(args, name) is not None]
    if args.no_healthcheck:
        if given:
            raise InvalidArgument(f"--no-healthcheck conflicts with --{given[0].replace('_', '-')}",
                                  field="--no-healthcheck")
        return {"test": ["NONE"]}
    if not given:
        return None

    from agent.units import parse_duration

    def seconds(name: str) -> float | None:
        value = getattr(args, name)
        return None if value is None else parse_duration(value, field=f"--{name.replace('_', '-')}")
    config: dict[str, Any] = {"test": ["CMD-SHELL", args.health_cmd] if args.health_cmd is not None else []}
    for name in ("interval", "timeout", "start_period"):
        value = seconds(f"health_{name}")
        if value is not None:
            config[name] = value
    if args.health_retries is not None:
        config["retries"] = args.health_retries
    return config
