"""`corral attach CONTAINER` and the foreground `run -i/-t`: this terminal joined to the
container's (or its stdin and output), until it exits or the detach keys (ctrl-p ctrl-q) are
typed, which leave it running."""
from __future__ import annotations

import argparse
import os
import sys

from agent.api.client import ApiClient
from agent.cli.terminal import RawTerminal, WindowFollower, relay, terminal_size
from agent.errors import InvalidArgument, NotFound

DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"


def register(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser("attach", help="attach this terminal to a running container",
                              description="Attach this terminal's input and output to a running container. "
                                          "ctrl-p ctrl-q detaches and leaves it running.")
    parser.add_argument("--detach-keys", metavar="KEYS",
                        help="keys that detach, like ctrl-a,x (default: ctrl-p,ctrl-q)")
    parser.add_argument("--no-stdin", action="store_true", help="do not attach stdin")
    parser.add_argument("container", metavar="CONTAINER", help="id, id prefix or name")
    parser.set_defaults(func=attach)


def attach(args: argparse.Namespace, client: ApiClient) -> int:
    info = client.inspect_container(args.container)
    config = info.get("Config", {})
    tty, open_stdin = bool(config.get("Tty")), bool(config.get("OpenStdin"))
    code = session(client, info["Id"], tty=tty, stdin=open_stdin and not args.no_stdin,
                   detach_keys=args.detach_keys, start=False)
    return 0 if code is None else code


def run_attached(args: argparse.Namespace, client: ApiClient, spec: dict) -> int:
    """`run -i`/`-t` in the foreground: create, attach, start (docker's order, so nothing the
    container writes first is missed), relay, then its exit code."""
    if args.tty and args.interactive and not os.isatty(0):
        raise InvalidArgument("-t: the input device is not a terminal",
                              hint="drop -t when stdin is a pipe or a file (`-i` alone passes it)")
    from agent.cli.run import create_pulling
    container = create_pulling(client, spec, args, lambda: client.create_container(spec))
    code = session(client, container["id"], tty=args.tty, stdin=args.interactive,
                   detach_keys=args.detach_keys, start=True)
    if args.rm and code is not None:
        try:
            client.remove_container(container["id"])
        except NotFound:
            pass   # already removed by someone else: what --rm asked for
    return 0 if code is None else code


def session(client: ApiClient, container_id: str, *, tty: bool, stdin: bool, detach_keys: str | None,
            start: bool) -> int | None:
    """Attach (and start), relay; the container's exit code, or None when detached."""
    from agent.runtime.attach import parse_detach_keys
    keys = parse_detach_keys(DEFAULT_DETACH_KEYS if detach_keys is None else detach_keys, field="--detach-keys")
    sock, first = client.attach(container_id, stdin=stdin, detach_keys=detach_keys)
    if start:
        client.start_container(container_id)

    def resize(rows: int, cols: int) -> None:
        client.resize_container(container_id, rows, cols)

    size = terminal_size() if tty else None
    if size is not None and not start:
        resize(*size)                 # a new client's window (a new container got it at create)
    from agent.cli.run import SignalProxy
    proxy = SignalProxy(client, container_id) if not tty else _Nothing()
    with RawTerminal(tty and stdin), WindowFollower(resize if tty else None), proxy:
        detached = relay(sock, first, tty=tty, stdin=stdin, detach_keys=keys)
    if detached:
        if tty:
            sys.stdout.write("\r\n")
            sys.stdout.flush()
        return None
    result = client.wait_container(container_id)
    code = result.get("exit_code")
    return 125 if code is None else code


class _Nothing:
    def __enter__(self) -> _Nothing:
        return self

    def __exit__(self, *exc_info) -> None:
        return None
