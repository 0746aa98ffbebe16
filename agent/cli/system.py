"""`corral version` and `corral info`: what the client and the daemon are."""
from __future__ import annotations

import argparse
import json
import sys

from agent import __version__
from agent.api.client import ApiClient
from agent.cli.format import key_values
from agent.errors import DaemonUnavailable

API_VERSION = "v1"


def register(verbs: argparse._SubParsersAction) -> None:
    version = verbs.add_parser("version", help="show the client's and the daemon's versions")
    version.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    version.set_defaults(func=show_version)

    info = verbs.add_parser("info", help="show what the daemon runs on: cgroups, probes, root")
    info.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    info.set_defaults(func=show_info)


def show_version(args: argparse.Namespace, client: ApiClient) -> int:
    import platform  # only this verb needs it

    local = {"version": __version__, "api_version": API_VERSION, "python": platform.python_version()}
    try:
        server = client.version()
    except DaemonUnavailable:
        # Like docker: say what the client is, then why the daemon part is missing.
        if args.format == "table":
            sys.stdout.write(_version_text(local, None))
        raise
    if args.format == "json":
        print(json.dumps({"client": local, "server": server}, indent=2))
    else:
        sys.stdout.write(_version_text(local, server))
    return 0


def _version_text(local: dict, server: dict | None) -> str:
    lines = ["Client:", f" Version:      {local['version']}", f" API version:  {local['api_version']}",
             f" Python:       {local['python']}"]
    if server is not None:
        lines += ["", "Server:", f" Version:      {server.get('version', '?')}",
                  f" API version:  {server.get('api_version', '?')}",
                  f" Python:       {server.get('python', '?')}",
                  f" Kernel:       {server.get('kernel', '?')}",
                  f" OS/Arch:      {server.get('os', '?')}/{server.get('arch', '?')}"]
    return "\n".join(lines) + "\n"


def show_info(args: argparse.Namespace, client: ApiClient) -> int:
    info = client.info()
    if args.format == "json":
        print(json.dumps(info, indent=2))
    else:
        sys.stdout.write(key_values(info))
    return 0
