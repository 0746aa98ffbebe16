"""`corral events [--follow] [--since 10m|TIMESTAMP] [--format json]`."""
from __future__ import annotations

import argparse
import json
import re
import time
from datetime import datetime

from agent.api.client import ApiClient
from agent.cli.format import event_line
from agent.cli.formatting import parse_filter_flags, prepared_format
from agent.errors import InvalidArgument
from agent.units import parse_duration

_TIMESTAMP = re.compile(r"^\d+(\.\d+)?$")


def register(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser("events", help="show container, image, OOM, probe and policy events",
                              description="Print past events (all kept, or since --since); with "
                                          "--follow, keep printing new ones.")
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing events as they happen")
    parser.add_argument("--since", metavar="WHEN",
                        help="a duration back from now (10m, 2h) or a UNIX timestamp or ISO date")
    parser.add_argument("--format", default="table", metavar="FORMAT",
                        help="table: one readable line each; json: one JSON object per line; or a Go "
                             "template over docker's event fields, like '{{.Type}} {{.Action}} "
                             "{{.Actor.Attributes.name}}'")
    parser.add_argument("--filter", action="append", metavar="KEY=VALUE",
                        help="only events matching: container=, event=, type=, image=, label=K[=V], "
                             "scope=local (repeat)")
    parser.set_defaults(func=show_events)


def parse_since(text: str, now: float) -> float:
    """A UNIX timestamp from "1700000000", "2024-05-01T12:00:00" or a duration ago ("10m")."""
    if _TIMESTAMP.match(text):
        return float(text)
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        pass
    try:
        return now - parse_duration(text, field="--since")
    except InvalidArgument:
        raise InvalidArgument(f"--since {text!r}: expected a duration like 10m or 2h, a UNIX timestamp "
                              "or a date like 2024-05-01T12:00:00") from None


def show_events(args: argparse.Namespace, client: ApiClient) -> int:
    template = prepared_format(args.format, each=True)
    since = None if args.since is None else parse_since(args.since, time.time())
    events = client.events(since=since, follow=args.follow, filters=parse_filter_flags(args.filter))
    if template:
        from agent.cli.format_fields import event_message
        from agent.cli.template_output import parse, render_tree
        compiled = parse(args.format)      # as docker's events: no `table`, `\t` stays as written
        for event in events:
            print(render_tree(compiled, event_message(event)), flush=True)
        return 0
    for event in events:
        print(json.dumps(event) if args.format == "json" else event_line(event), flush=True)
    return 0
