"""Container verbs that act on existing containers: start, ps, stop, kill, rm, wait, inspect
(pause, restart, update... are in agent/cli/lifecycle.py).

Verbs taking several containers go on after an error, as docker does, print each error and
exit with the last error's code (125).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable

from agent.api.client import ApiClient
from agent.cli.format import ago, container_command, container_status, containers_table, error_text, short_id, table
from agent.cli.formatting import (
    FORMAT_HELP,
    INSPECT_FORMAT_HELP,
    parse_filter_flags,
    prepared_format,
    print_documents,
    write_rows,
)
from agent.errors import CorralError, DaemonUnavailable


def register(verbs: argparse._SubParsersAction) -> None:
    start = verbs.add_parser("start", help="start created containers")
    start.add_argument("containers", metavar="CONTAINER", nargs="+", help="id, id prefix or name")
    start.set_defaults(func=start_containers)

    ps = verbs.add_parser("ps", help="list containers", description="List running containers (all with -a).")
    ps.add_argument("-a", "--all", action="store_true", help="show all containers, not only running ones")
    ps.add_argument("-q", "--quiet", action="store_true", help="print only the short ids")
    ps.add_argument("--format", default="table", metavar="FORMAT", help=FORMAT_HELP)
    ps.add_argument("-f", "--filter", action="append", metavar="KEY=VALUE",
                    help="only containers matching: label=K[=V], name=, id=, status=, ancestor=, exited=, "
                         "health=, network=, volume=, before=, since= (repeat; docs/cli.md)")
    ps.add_argument("--no-trunc", action="store_true", help="full ids and commands")
    ps.add_argument("-n", "--last", type=int, default=-1, metavar="N",
                    help="the N containers created last, in every state")
    ps.add_argument("-l", "--latest", action="store_true", help="the container created last, in any state")
    ps.add_argument("--all-cgroups", action="store_true",
                    help="also list containers Corral did not start (docker, containerd/Kubernetes, "
                         "podman, systemd services), marked as observed")
    ps.set_defaults(func=list_containers)

    stop = verbs.add_parser("stop", help="stop containers (SIGTERM, then SIGKILL)")
    stop.add_argument("-t", "--time", "--timeout", dest="timeout", type=float, default=None, metavar="SECS",
                      help="seconds to wait after the stop signal before SIGKILL "
                           "(default: the container's --stop-timeout, else 10)")
    stop.add_argument("-s", "--signal", metavar="SIGNAL",
                      help="signal to send first (default: the container's --stop-signal, else TERM)")
    stop.add_argument("containers", metavar="CONTAINER", nargs="+", help="id, id prefix or name")
    stop.set_defaults(func=stop_containers)

    kill = verbs.add_parser("kill", help="send a signal to containers")
    kill.add_argument("-s", "--signal", default="KILL", help="signal name or number (default KILL)")
    kill.add_argument("containers", metavar="CONTAINER", nargs="+", help="id, id prefix or name")
    kill.set_defaults(func=kill_containers)

    rm = verbs.add_parser("rm", help="remove containers")
    rm.add_argument("-f", "--force", action="store_true", help="kill a running container first")
    rm.add_argument("-v", "--volumes", action="store_true", help="remove its anonymous volumes too")
    rm.add_argument("containers", metavar="CONTAINER", nargs="+", help="id, id prefix or name")
    rm.set_defaults(func=remove_containers)

    wait = verbs.add_parser("wait", help="wait for containers to exit and print their exit codes")
    wait.add_argument("--condition", choices=("not-running", "next-exit", "removed"), default="not-running",
                      help="not-running (default): return at once if it is not running; next-exit: the "
                           "next exit from now; removed: once it is removed")
    wait.add_argument("containers", metavar="CONTAINER", nargs="+", help="id, id prefix or name")
    wait.set_defaults(func=wait_containers)

    inspect = verbs.add_parser("inspect", help="show containers' details as a JSON array")
    inspect.add_argument("-f", "--format", metavar="TEMPLATE", help=INSPECT_FORMAT_HELP)
    inspect.add_argument("containers", metavar="CONTAINER", nargs="+", help="id, id prefix or name")
    inspect.set_defaults(func=inspect_containers)


def for_each(refs: list[str], action: Callable[[str], object], say: Callable[[str], str] | None = None) -> int:
    """Apply `action` to every ref, printing `say(ref)` after each success; report failures on
    stderr; 0, or the last error's code."""
    code = 0
    for ref in refs:
        try:
            action(ref)
            if say is not None:
                print(say(ref))
        except DaemonUnavailable:
            raise   # the rest would fail the same way
        except CorralError as exc:
            sys.stderr.write(error_text(exc))
            code = exc.exit_code
    return code


def start_containers(args: argparse.Namespace, client: ApiClient) -> int:
    return for_each(args.containers, client.start_container, say=str)


def list_containers(args: argparse.Namespace, client: ApiClient) -> int:
    template = prepared_format(args.format)      # a bad template fails before any request
    wanted = parse_filter_flags(args.filter)
    last = 1 if args.latest else args.last
    containers = client.list_containers(all=args.all or last > 0, filters=wanted)
    if last > 0:
        containers = sorted(containers, key=lambda c: c.get("created_at") or 0, reverse=True)[:last]
    if getattr(args, "all_cgroups", False):
        return _list_with_observed(args, containers, client)
    newest_first = sorted(containers, key=lambda c: c.get("created_at") or 0, reverse=True)
    if args.quiet:
        for container in newest_first:
            print(container["id"] if args.no_trunc else short_id(container["id"]))
    elif template:
        from agent.cli.format_fields import ContainerFields
        now = time.time()
        write_rows(args.format, [ContainerFields(c, now, truncate=not args.no_trunc) for c in newest_first],
                   ContainerFields.HEADERS)
    elif args.format == "json":
        print(json.dumps(containers, indent=2))
    else:
        sys.stdout.write(containers_table(containers, time.time()))
    return 0


def _list_with_observed(args: argparse.Namespace, containers: list[dict], client: ApiClient) -> int:
    """`ps --all-cgroups`: Corral's containers, then the observed ones (a RUNTIME column says which)."""
    # GET /v1/observed (agent/api/observed_endpoints.py); ApiClient has no method for it yet.
    observed = client.list_observed()
    ordered = sorted(containers, key=lambda c: c.get("created_at") or 0, reverse=True)
    if args.quiet:
        for container in ordered + observed:
            print(short_id(container["id"]) if not container.get("observed") else container["id"])
        return 0
    if args.format == "json":
        print(json.dumps(ordered + observed, indent=2))
        return 0
    now = time.time()
    rows = [(short_id(c["id"]), (c.get("spec") or {}).get("image", ""), container_command(c),
             ago(c.get("created_at"), now), container_status(c, now), "corral", c.get("name", ""))
            for c in ordered]
    rows += [(short_id(o["id"]) if o["runtime"] != "systemd" else o["id"], o.get("image") or "-",
              o["cgroup"], ago(o.get("started_at"), now), container_status(o, now),
              f"{o['runtime']} (observed)", o["name"]) for o in observed]
    sys.stdout.write(table(("CONTAINER ID", "IMAGE", "CGROUP/COMMAND", "CREATED", "STATUS", "RUNTIME", "NAMES"),
                           rows))
    return 0


def stop_containers(args: argparse.Namespace, client: ApiClient) -> int:
    if args.signal is not None:
        from agent.units import parse_signal  # here, not at the top: `ps` starts without it
        parse_signal(args.signal, field="--signal")      # a bad name fails here, before any container
    return for_each(args.containers, lambda ref: client.stop_container(ref, timeout=args.timeout, signal=args.signal),
                    say=str)


def kill_containers(args: argparse.Namespace, client: ApiClient) -> int:
    from agent.units import parse_signal
    number = parse_signal(args.signal, field="--signal")
    return for_each(args.containers, lambda ref: client.kill_container(ref, signal=number), say=str)


def remove_containers(args: argparse.Namespace, client: ApiClient) -> int:
    return for_each(args.containers, lambda ref: client.remove_container(ref, force=args.force,
                                                                             volumes=args.volumes), say=str)


def wait_containers(args: argparse.Namespace, client: ApiClient) -> int:
    condition = getattr(args, "condition", "not-running")
    return for_each(args.containers, lambda ref: print(client.wait_container(ref, condition)["exit_code"]))


def inspect_containers(args: argparse.Namespace, client: ApiClient) -> int:
    prepared_format(args.format, each=True)
    found: list[dict] = []
    code = for_each(args.containers, lambda ref: found.append(client.inspect_container(ref)))
    print_documents(args.format, found)
    return code
