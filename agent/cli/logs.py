"""`corral logs [-f] [-t] [--since T] [--until T] [-n N] CONTAINER`, and the copying of framed output to stdout and stderr that
`run` and `exec` share."""
from __future__ import annotations

import sys
import time

from agent.api import frames
from agent.api.client import ApiClient

TYPE_CHECKING = False   # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterable


def register(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser("logs", help="show a container's output",
                              description="Print a container's stdout and stderr, as they were written.")
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing until the container exits")
    parser.add_argument("-t", "--timestamps", action="store_true",
                        help="start each line with the time it was written (RFC3339Nano, UTC)")
    parser.add_argument("--since", metavar="TIME",
                        help="only lines written at or after TIME: a duration back from now (10m, 1h30m), "
                             "UNIX seconds (1700000000.5) or an RFC 3339 date (2024-05-01T12:00:00Z)")
    parser.add_argument("--until", metavar="TIME", help="only lines written at or before TIME (as --since)")
    parser.add_argument("-n", "--tail", default="all", metavar="N",
                        help="only the last N lines of the log (default: all)")
    parser.add_argument("container", metavar="CONTAINER", help="id, id prefix or name")
    parser.set_defaults(func=logs)


def logs(args: argparse.Namespace, client: ApiClient) -> int:
    # Times are read here, as docker's CLI reads them, so a duration is back from this moment;
    # the daemon is sent exact UNIX seconds.nanoseconds. (Imported here: `run` shares this module.)
    from agent.log_time import parse_log_time, parse_tail
    now = time.time_ns()
    since = None if args.since is None else _unix(parse_log_time(args.since, now_ns=now, field="--since"))
    until = None if args.until is None else _unix(parse_log_time(args.until, now_ns=now, field="--until"))
    tail = parse_tail(args.tail, field="--tail")
    copy_frames(client.logs(args.container, follow=args.follow, timestamps=args.timestamps, since=since,
                            until=until, tail="all" if tail is None else str(tail)))
    return 0


def _unix(ns: int) -> str:
    from agent.log_time import NS
    seconds, fraction = divmod(ns, NS)
    return f"{seconds}.{fraction:09d}"


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
