"""`corral exec [-e K=V]... [-w DIR] CONTAINER CMD...`: run a command in a running container
and exit with its exit code."""
from __future__ import annotations

import argparse

from agent.api.client import ApiClient
from agent.cli.logs import copy_frames
from agent.cli.run import env_items
from agent.errors import CorralError, InvalidArgument


def register(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser("exec", help="run a command in a running container",
                              description="Run a command in a running container; exit with its code.")
    parser.add_argument("-e", "--env", action="append", default=[], metavar="K=V",
                        help="set an environment variable (repeat for more)")
    parser.add_argument("-w", "--workdir", metavar="DIR", help="working directory inside the container")
    parser.add_argument("container", metavar="CONTAINER", help="id, id prefix or name")
    parser.add_argument("command", metavar="CMD", nargs=argparse.REMAINDER, help="the command and its arguments")
    parser.set_defaults(func=exec_command)


def exec_command(args: argparse.Namespace, client: ApiClient) -> int:
    if not args.command:
        raise InvalidArgument("exec: a command is required, like `corral exec web ls -l`")
    if args.workdir is not None and not args.workdir.startswith("/"):
        raise InvalidArgument(f"--workdir {args.workdir!r}: must be an absolute path")
    code = copy_frames(client.exec(args.container, args.command, env=env_items(args.env),
                                   workdir=args.workdir))
    if code is None:
        raise CorralError(f"exec in {args.container}: the daemon sent no exit code",
                          hint="the daemon may have stopped; check its log")
    return code
