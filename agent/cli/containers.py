"""Container verbs that act on existing containers: start, ps, stop, kill, rm, wait, inspect.

Verbs taking several containers go on after an error, as docker does, print each error and
exit with the last error's code (125).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Callable

from agent.api.client import ApiClient
from agent.cli.format import containers_table, error_text, short_id
from agent.errors import CorralError, DaemonUnavailable
from agent.units import parse_signal


def register(verbs: argparse._SubParsersAction) -> None:
    start = verbs.add_parser("start", help="start created containers")
    start.add_argument("containers", metavar="CONTAINER", nargs="+", help="id, id prefix or name")
    start.set_defaults(func=start_containers)

    ps = verbs.add_parser("ps", help="list containers", description="List running containers (all with -a).")
    ps.add_argument("-a", "--all", action="store_true", help="show all containers, not only running ones")
    ps.add_argument("-q", "--quiet", action="store_true", help="print only the short ids")
    ps.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    ps.set_defaults(func=list_containers)

    stop = verbs.add_parser("stop", help="stop containers (SIGTERM, then SIGKILL)")
    stop.add_argument("-t", "--time", "--timeout", dest="timeout", type=float, default=10.0, metavar="SECS",
                      help="seconds to wait after SIGTERM before SIGKILL (default 10)")
    stop.add_argument("containers", metavar="CONTAINER", nargs="+", help="id, id prefix or name")
    stop.set_defaults(func=stop_containers)

    kill = verbs.add_parser("kill", help="send a signal to containers")
    kill.add_argument("-s", "--signal", default="KILL", help="signal name or number (default KILL)")
    kill.add_argument("containers", metavar="CONTAINER", nargs="+", help="id, id prefix or name")
    kill.set_defaults(func=kill_containers)

    rm = verbs.add_parser("rm", help="remove containers")
    rm.add_argument("-f", "--force", action="store_true", help="kill a running container first")
    rm.add_argument("containers", metavar="CONTAINER", nargs="+", help="id, id prefix or name")
    rm.set_defaults(func=remove_containers)

    wait = verbs.add_parser("wait", help="wait for containers to exit and print their exit codes")
    wait.add_argument("containers", metavar="CONTAINER", nargs="+", help="id, id prefix or name")
    wait.set_defaults(func=wait_containers)

    inspect = verbs.add_parser("inspect", help="show containers' details as a JSON array")
    inspect.add_argument("containers", metavar="CONTAINER", nargs="+", help="id, id prefix or name")
    inspect.set_defaults(func=inspect_containers)


def for_each(refs: list[str], action: Callable[[str], None]) -> int:
    """Apply `action` to every ref; report failures on stderr; 0, or the last error's code."""
    code = 0
    for ref in refs:
        try:
            action(ref)
        except DaemonUnavailable:
            raise   # the rest would fail the same way
        except CorralError as exc:
            sys.stderr.write(error_text(exc))
            code = exc.exit_code
    return code


def start_containers(args: argparse.Namespace, client: ApiClient) -> int:
    return for_each(args.containers, lambda ref: (client.start_container(ref), print(ref)))


def list_containers(args: argparse.Namespace, client: ApiClient) -> int:
    containers = client.list_containers(all=args.all)
    if args.quiet:
        for container in sorted(containers, key=lambda c: c.get("created_at") or 0, reverse=True):
            print(short_id(container["id"]))
    elif args.format == "json":
        print(json.dumps(containers, indent=2))
    else:
        sys.stdout.write(containers_table(containers, time.time()))
    return 0


def stop_containers(args: argparse.Namespace, client: ApiClient) -> int:
    return for_each(args.containers, lambda ref: (client.stop_container(ref, timeout=args.timeout), print(ref)))


def kill_containers(args: argparse.Namespace, client: ApiClient) -> int:
    number = parse_signal(args.signal, field="--signal")
    return for_each(args.containers, lambda ref: (client.kill_container(ref, signal=number), print(ref)))


def remove_containers(args: argparse.Namespace, client: ApiClient) -> int:
    return for_each(args.containers, lambda ref: (client.remove_container(ref, force=args.force), print(ref)))


def wait_containers(args: argparse.Namespace, client: ApiClient) -> int:
    return for_each(args.containers, lambda ref: print(client.wait_container(ref)["exit_code"]))


def inspect_containers(args: argparse.Namespace, client: ApiClient) -> int:
    found: list[dict] = []
    code = for_each(args.containers, lambda ref: found.append(client.inspect_container(ref)))
    print(json.dumps(found, indent=4))
    return code
