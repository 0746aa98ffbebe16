"""`corral exec [-i] [-t] [-e K=V]... [-w DIR] CONTAINER CMD...`: run a command in a running
container and exit with its exit code; `-i` passes this stdin, `-t` gives it a terminal."""
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
    parser.add_argument("-i", "--interactive", action="store_true", help="pass this stdin to the command")
    parser.add_argument("-t", "--tty", action="store_true",
                        help="run the command in a terminal (its size follows this window)")
    parser.add_argument("container", metavar="CONTAINER", help="id, id prefix or name")
    parser.add_argument("command", metavar="CMD", nargs=argparse.REMAINDER, help="the command and its arguments")
    parser.set_defaults(func=exec_command)


def exec_command(args: argparse.Namespace, client: ApiClient) -> int:
    if not args.command:
        raise InvalidArgument("exec: a command is required, like `corral exec web ls -l`")
    if args.workdir is not None and not args.workdir.startswith("/"):
        raise InvalidArgument(f"--workdir {args.workdir!r}: must be an absolute path")
    if args.interactive or args.tty:
        code = interactive(args, client)
    else:
        code = copy_frames(client.exec(args.container, args.command, env=env_items(args.env),
                                       workdir=args.workdir))
    if code is None:
        raise CorralError(f"exec in {args.container}: the daemon sent no exit code",
                          hint="the daemon may have stopped; check its log")
    return code


def interactive(args: argparse.Namespace, client: ApiClient) -> int | None:
    """`exec -i`/`-t`: this stdin to the command (its end closes the command's stdin), the
    output back, this terminal raw and its size followed with `-t`."""
    import os

    from agent.cli.terminal import RawTerminal, WindowFollower, relay, terminal_size
    if args.tty and args.interactive and not os.isatty(0):
        raise InvalidArgument("-t: the input device is not a terminal",
                              hint="drop -t when stdin is a pipe or a file (`-i` alone passes it)")
    sock, exec_id, first = client.exec_interactive(
        args.container, args.command, env=env_items(args.env), workdir=args.workdir, tty=args.tty,
        stdin=args.interactive, console_size=terminal_size() if args.tty else None)
    codes: list[int] = []

    def resize(rows: int, cols: int) -> None:
        client.resize_exec(exec_id, rows, cols)

    with RawTerminal(args.tty and args.interactive), WindowFollower(resize if args.tty else None):
        relay(sock, first, tty=False, stdin=args.interactive, on_exit_frame=codes.append)
    return codes[-1] if codes else None
