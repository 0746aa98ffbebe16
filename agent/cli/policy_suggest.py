"""`corral policy suggest CONTAINER | --selector KEY=VALUE... [--since 1h] [-o FILE]`: a
least-privilege policy from the history the daemon keeps (agent/policy/suggest*.py), and what
it would have blocked over a held-out part of the window, without acting.

The policy goes to FILE (or stdout), the seccomp profile to --seccomp FILE, the held-out
report to stderr (stdout with -o), so `corral policy suggest web-1 > web.yaml` gives a file
`corral policy check` accepts.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime

from agent.api.client import ApiClient
from agent.errors import InvalidArgument

SELECTOR_KEYS = {"name": "names", "image": "images", "service": "services"}


def register(sub: argparse._SubParsersAction) -> None:
    suggest = sub.add_parser("suggest", help="a least-privilege policy from what containers did (needs the daemon)",
                             description="Build a policy from the history the daemon keeps of a container (or "
                                         "of every container a selector matches): the syscalls it made (a "
                                         "seccomp allow-list, and deny rules for dangerous syscalls it never "
                                         "used), the TCP destinations it reached, limits and thresholds over its "
                                         "peaks. A policy built from the first part of the window is replayed "
                                         "over the rest, without acting, and what it would have blocked is "
                                         "printed (docs/policies.md, \"Suggesting a policy\").")
    suggest.add_argument("container", nargs="?", metavar="CONTAINER",
                         help="id, id prefix or name (also of a removed container the history holds)")
    suggest.add_argument("--selector", action="append", default=[], metavar="KEY=VALUE",
                         help="learn from every container matching: name=GLOB, image=GLOB, service=GLOB or "
                              "label.KEY=GLOB (repeat; the policy gets this selector)")
    suggest.add_argument("--since", default="1h", metavar="WHEN",
                         help="a duration back from now (10m, 1h), a UNIX timestamp or ISO date (default 1h)")
    suggest.add_argument("--holdout", type=float, default=0.2, metavar="SHARE",
                         help="the share of the window held out to check the suggestion (0 to 0.9, default 0.2)")
    suggest.add_argument("--mode", choices=("enforce", "audit"), default="enforce",
                         help="the policy's mode (default enforce)")
    suggest.add_argument("--name", metavar="NAME", help="the policy's name (default suggested-CONTAINER)")
    suggest.add_argument("-o", "--output", metavar="FILE", help="write the policy here instead of stdout")
    suggest.add_argument("--seccomp", metavar="FILE",
                         help="also write the Docker-format seccomp profile (for --security-opt seccomp=FILE)")
    suggest.add_argument("--format", choices=("text", "json"), default="text",
                         help="json: the whole answer (policy text, profile, held-out report) on stdout")
    suggest.set_defaults(func=suggest_policy)


def selector_fields(items: list[str]) -> dict:
    """`name=web-*`, `label.tier=web`... as the API's selector fields."""
    fields: dict = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise InvalidArgument(f"--selector {item!r}: expected KEY=VALUE (name=, image=, service=, label.KEY=)")
        if key.startswith("label."):
            fields.setdefault("labels", {})[key[len("label."):]] = value
        elif key in SELECTOR_KEYS:
            fields.setdefault(SELECTOR_KEYS[key], []).append(value)
        else:
            raise InvalidArgument(f"--selector {item!r}: unknown key {key!r} (name, image, service or label.KEY)")
    return fields


def suggest_policy(args: argparse.Namespace, client: ApiClient) -> int:
    from agent.cli.events import parse_since
    if (args.container is None) == (not args.selector):
        raise InvalidArgument("give a CONTAINER or --selector KEY=VALUE (not both)")
    body: dict = selector_fields(args.selector)
    if args.container is not None:
        body["container"] = args.container
    body.update(since=parse_since(args.since, time.time()), holdout=args.holdout, mode=args.mode)
    if args.name:
        body["name"] = args.name
    answer = client.policy_suggest(body)
    if args.seccomp:
        _write(args.seccomp, json.dumps(answer["seccomp"], indent=2) + "\n")
    if args.format == "json":
        print(json.dumps(answer, indent=2))
        return 0
    if args.output:
        _write(args.output, answer["policy"])
        report = sys.stdout
    else:
        sys.stdout.write(answer["policy"])
        report = sys.stderr
    report.write("\n".join(holdout_lines(answer)) + "\n")
    return 0


def _write(path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        raise InvalidArgument(f"{path}: cannot write it: {exc.strerror or exc}") from None


def _when(timestamp: float | None) -> str:
    return "-" if timestamp is None else datetime.fromtimestamp(timestamp).astimezone().strftime("%H:%M:%S")


def holdout_lines(answer: dict) -> list[str]:
    out = [f"policy {answer['name']}: from {answer['samples']} samples of {', '.join(answer['containers'])} "
           f"({_when(answer['start'])} to {_when(answer['end'])})"]
    held = answer.get("holdout")
    if held is None:
        out.append("held-out check: none (--holdout 0, or too short a window)")
        return out
    out.append(f"held-out check: a policy from the samples up to {_when(answer['split'])}, replayed over the "
               f"{held['samples']} after it without acting:")
    if not held["findings"]:
        out.append("  it would have blocked nothing")
    for finding in held["findings"]:
        out.append(f"  {_when(finding['time'])} {finding['container']}: {finding['what']} {finding['detail']} "
                   f"-> {finding['action']}")
    return out
