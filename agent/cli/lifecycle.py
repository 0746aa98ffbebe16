"""Life-cycle verbs: pause, unpause, rename, restart, update (docs/cli.md says where they differ
from docker's). Like docker's, verbs taking several containers go on past an error and exit 125
(the last error's code) after printing each error."""
from __future__ import annotations

import argparse

from agent.api.client import ApiClient
from agent.cli.containers import for_each
from agent.errors import InvalidArgument
from agent.units import parse_cpus, parse_signal, parse_size


def register(verbs: argparse._SubParsersAction) -> None:
    pause = verbs.add_parser("pause", help="pause every process of containers (cgroup freezer)")
    pause.add_argument("containers", metavar="CONTAINER", nargs="+", help="id, id prefix or name")
    pause.set_defaults(func=lambda args, client: for_each(args.containers, client.pause_container, say=str))

    unpause = verbs.add_parser("unpause", help="resume the processes of paused containers")
    unpause.add_argument("containers", metavar="CONTAINER", nargs="+", help="id, id prefix or name")
    unpause.set_defaults(func=lambda args, client: for_each(args.containers, client.unpause_container, say=str))

    rename = verbs.add_parser("rename", help="rename a container")
    rename.add_argument("container", metavar="CONTAINER", help="id, id prefix or name")
    rename.add_argument("name", metavar="NEW_NAME", help="its new name")
    rename.set_defaults(func=rename_container)

    restart = verbs.add_parser("restart", help="stop (if running) and start containers again")
    restart.add_argument("-t", "--time", "--timeout", dest="timeout", type=float, default=None, metavar="SECS",
                         help="seconds to wait after the stop signal before SIGKILL "
                              "(default: the container's --stop-timeout, else 10)")
    restart.add_argument("-s", "--signal", metavar="SIGNAL",
                         help="signal to stop it with (default: the container's --stop-signal, else TERM)")
    restart.add_argument("containers", metavar="CONTAINER", nargs="+", help="id, id prefix or name")
    restart.set_defaults(func=restart_containers)

    update = verbs.add_parser("update", help="change the limits or restart policy of containers, live",
                              description="Change limits (applied at once to running containers) and the "
                                          "restart policy; they are kept for later starts.")
    update.add_argument("-m", "--memory", metavar="SIZE", help="memory limit, like 64m or 1g")
    update.add_argument("--cpus", metavar="N", help="CPU limit, like 0.5")
    update.add_argument("--pids-limit", type=int, metavar="N", help="maximum number of processes")
    update.add_argument("--restart", metavar="POLICY", help="no, always, unless-stopped or on-failure[:N]")
    update.add_argument("containers", metavar="CONTAINER", nargs="+", help="id, id prefix or name")
    update.set_defaults(func=update_containers)


def rename_container(args: argparse.Namespace, client: ApiClient) -> int:
    client.rename_container(args.container, args.name)
    return 0


def restart_containers(args: argparse.Namespace, client: ApiClient) -> int:
    if args.signal is not None:
        parse_signal(args.signal, field="--signal")
    return for_each(args.containers, lambda ref: client.restart_container(ref, timeout=args.timeout, signal=args.signal),
                    say=str)


def update_changes(args: argparse.Namespace) -> dict:
    """The body of the update request from the flags; bad values fail here, naming the flag."""
    from agent.runtime.model import RestartPolicy
    from agent.schema import to_builtins

    changes: dict = {}
    if args.memory is not None:
        changes["memory"] = parse_size(args.memory, field="--memory")
    if args.cpus is not None:
        changes["cpus"] = parse_cpus(args.cpus, field="--cpus")
    if args.pids_limit is not None:
        if args.pids_limit < 1:
            raise InvalidArgument(f"--pids-limit: expected a number of processes of 1 or more, got {args.pids_limit}")
        changes["pids_limit"] = args.pids_limit
    if args.restart is not None:
        changes["restart_policy"] = to_builtins(RestartPolicy.parse(args.restart))
    if not changes:
        raise InvalidArgument("update: give one or more of --memory, --cpus, --pids-limit, --restart")
    return changes


def update_containers(args: argparse.Namespace, client: ApiClient) -> int:
    changes = update_changes(args)
    return for_each(args.containers, lambda ref: client.update_container(ref, changes), say=str)
