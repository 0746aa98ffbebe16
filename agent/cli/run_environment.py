"""The ContainerSpec fields `corral run`/`create`'s flags for users and environment and for
health checks make (bad values name the flag); the flags are agent/cli/run_flags.py's."""
from __future__ import annotations

import os

from agent.errors import InvalidArgument

TYPE_CHECKING = False   # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    import argparse
    from typing import Any

_HEALTH_FLAGS = ("health_cmd", "health_interval", "health_timeout", "health_start_period", "health_retries")


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
