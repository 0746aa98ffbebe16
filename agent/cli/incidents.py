"""`corral incidents ls|show|export`: the evidence bundles of kills, freezes and OOM kills."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime

from agent.api.client import ApiClient
from agent.cli.format import ago, table
from agent.errors import InvalidArgument


def register(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser("incidents", help="evidence saved when a container was killed, frozen or OOM-killed")
    sub = parser.add_subparsers(dest="incidents_verb", metavar="VERB", required=True)
    ls = sub.add_parser("ls", help="list the bundles, newest first")
    ls.add_argument("--format", choices=("table", "json"), default="table")
    ls.set_defaults(func=list_incidents)
    show = sub.add_parser("show", help="one bundle: trigger, processes, events, signals, policy")
    show.add_argument("incident", metavar="ID")
    show.add_argument("--format", choices=("text", "json"), default="text")
    show.set_defaults(func=show_incident)
    export = sub.add_parser("export", help="one bundle as a .tar.gz")
    export.add_argument("incident", metavar="ID")
    export.add_argument("-o", "--output", metavar="FILE", help="default: ID.tar.gz in this folder")
    export.set_defaults(func=export_incident)


def list_incidents(args: argparse.Namespace, client: ApiClient) -> int:
    bundles = client.incidents()
    if args.format == "json":
        print(json.dumps(bundles, indent=2))
        return 0
    now = time.time()
    rows = [[b["id"], ago(b.get("time"), now), b.get("kind", ""), (b.get("container") or {}).get("name", ""),
             _trigger(b.get("trigger") or {})] for b in bundles]
    sys.stdout.write(table(("INCIDENT", "WHEN", "KIND", "CONTAINER", "TRIGGER"), rows))
    return 0


def _trigger(trigger: dict) -> str:
    if trigger.get("policy"):
        return f"{trigger['policy']}/{trigger.get('rule', '')}"
    return str(trigger.get("comm") or trigger.get("process") or "")


def show_incident(args: argparse.Namespace, client: ApiClient) -> int:
    bundle = client.incident(args.incident)
    if args.format == "json":
        print(json.dumps(bundle, indent=2))
        return 0
    container = bundle.get("container") or {}
    when = datetime.fromtimestamp(bundle["time"]).astimezone().isoformat(timespec="milliseconds")
    print(f"incident  {bundle['id']}\nwhen      {when}\nkind      {bundle['kind']}")
    print(f"container {container.get('name', '')} ({container.get('id', '')[:12]}, {container.get('image', '')})")
    print(f"trigger   {json.dumps(bundle.get('trigger') or {}, sort_keys=True)}")
    processes = [p for p in bundle.get("processes") or [] if "pid" in p]
    print(f"\nprocesses ({len(processes)}):")
    sys.stdout.write(table(("PID", "PPID", "STATE", "RSS", "COMMAND"),
                           [[p["pid"], p["ppid"], p["state"], p["rss_bytes"], " ".join(p["cmdline"]) or p["comm"]]
                            for p in processes]))
    events = bundle.get("events") or []
    print(f"\nevents in the 30 s before ({len(events)}):")
    for event in events:
        print(f"  {datetime.fromtimestamp(event['time']).astimezone():%H:%M:%S.%f} {event['type']} {event['action']}")
    print(f"\nsignal samples: {len(bundle.get('signals') or [])} (--format json shows them)")
    return 0


def export_incident(args: argparse.Namespace, client: ApiClient) -> int:
    data = client.export_incident(args.incident)
    target = args.output or f"{args.incident}.tar.gz"
    if os.path.exists(target):
        raise InvalidArgument(f"{target!r} exists: not overwritten", hint="give another name with -o")
    with open(target, "wb") as handle:
        handle.write(data)
    print(target)
    return 0
