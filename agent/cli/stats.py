"""`corral stats [--no-stream] [--format json] [CONTAINER...]`: live figures like `docker stats`.

The daemon sends cumulative snapshots (GET /v1/stats); rates come from the difference of two,
so the first figures appear after one interval, as in docker. The rows and their arithmetic are
in stats_rows, imported when the verb runs, so registering the verb stays cheap.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from agent.api.client import ApiClient
from agent.cli.formatting import FORMAT_HELP, prepared_format, write_rows

INTERVAL = 1.0


def register(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser("stats", help="live CPU, memory, network, pids and syscall rates per container",
                              description="Like `docker stats`: rates over the last second.")
    parser.add_argument("containers", nargs="*", metavar="CONTAINER", help="only these containers")
    parser.add_argument("--no-stream", action="store_true", help="print one reading and exit")
    parser.add_argument("--format", default="table", metavar="FORMAT", help=FORMAT_HELP)
    parser.add_argument("--no-trunc", action="store_true", help="full container ids")
    parser.set_defaults(func=show_stats)


def show_stats(args: argparse.Namespace, client: ApiClient) -> int:
    from dataclasses import asdict

    from agent.cli.stats_rows import rates, select, stats_table

    template = prepared_format(args.format)
    previous = client.stats()
    while True:
        time.sleep(INTERVAL)
        current = client.stats()
        rows = select(rates(previous, current), args.containers)
        previous = current
        if template:
            from agent.cli.format_fields import StatsFields
            if not args.no_stream and sys.stdout.isatty():
                print("\033[2J\033[H", end="")
            write_rows(args.format, [StatsFields(row, _given(row, args.containers)) for row in rows],
                       StatsFields.HEADERS)
            sys.stdout.flush()
        elif args.format == "json":
            for row in rows:
                data = asdict(row)
                data.pop("top_syscalls")
                print(json.dumps(data), flush=True)
        else:
            if not args.no_stream and sys.stdout.isatty():
                print("\033[2J\033[H", end="")
            print(stats_table(rows), flush=True)
        if args.no_stream:
            return 0


def _given(row: object, refs: list[str]) -> str | None:
    """docker's {{.Container}}: the name or id prefix the user named the container by."""
    for ref in refs:
        if ref in (getattr(row, "name", None), getattr(row, "id", "")) or getattr(row, "id", "").startswith(ref):
            return ref
    return None
