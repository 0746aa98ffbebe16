"""`corral logs [-f] CONTAINER`, and the copying of framed output to stdout and stderr that
`run` and `exec` share."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable

from agent.api import frames
from agent.api.client import ApiClient


def register(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser("logs", help="show a container's output",
                              description="Print a container's stdout and stderr, as they were written.")
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing until the container exits")
    parser.add_argument("container", metavar="CONTAINER", help="id, id prefix or name")
    parser.set_defaults(func=logs)


def logs(args: argparse.Namespace, client: ApiClient) -> int:
    copy_frames(client.logs(args.container, follow=args.follow))
    return 0


def copy_frames(stream: Iterable[tuple[int, bytes]]) -> int | None:
    """Write stream 1 to stdout and 2 to stderr as they come; return the exit code of a
    stream-3 frame (exec), or None when the stream has none (logs)."""
    exit_code = None
    for number, data in stream:
        if number == frames.EXIT:
            exit_code = frames.decode_exit(data)
        elif number in (frames.STDOUT, frames.STDERR):
            _write(sys.stderr if number == frames.STDERR else sys.stdout, data)
    return exit_code


def _write(text_stream, data: bytes) -> None:
    text_stream.flush()   # keep the order of anything already printed through the text layer
    binary = getattr(text_stream, "buffer", None)
    if binary is None:
        text_stream.write(data.decode(errors="replace"))
    else:
        binary.write(data)
        binary.flush()
    text_stream.flush()
