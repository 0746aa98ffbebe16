"""`corral version` and `corral info`: what the client and the daemon are."""
from __future__ import annotations

import argparse
import json
import sys

from agent import __version__
from agent.api.client import ApiClient
from agent.cli.format import key_values
from agent.cli.formatting import is_template, prepared_format, print_documents
from agent.errors import DaemonUnavailable

API_VERSION = "v1"


def register(verbs: argparse._SubParsersAction) -> None:
    version = verbs.add_parser("version", help="show the client's and the daemon's versions")
    version.add_argument("-f", "--format", default="table", metavar="FORMAT",
                         help="table, json, or a Go template over docker's fields: '{{.Server.Version}}', "
                              "'{{.Client.ApiVersion}}' (docs/format.md)")
    version.set_defaults(func=show_version)

    info = verbs.add_parser("info", help="show what the daemon runs on: cgroups, probes, root")
    info.add_argument("-f", "--format", default="table", metavar="FORMAT",
                      help="table, json, or a Go template over the JSON `--format json` prints "
                           "('{{.cgroup_driver}}')")
    info.set_defaults(func=show_info)


def show_version(args: argparse.Namespace, client: ApiClient) -> int:
    import platform  # only this verb needs it

    template = prepared_format(args.format, each=True)
    local = {"version": __version__, "api_version": API_VERSION, "python": platform.python_version()}
    try:
        server = client.version()
    except DaemonUnavailable:
        # Like docker: say what the client is, then why the daemon part is missing.
        if args.format == "table":
            sys.stdout.write(_version_text(local, None))
        elif template:
            _print_version_template(args.format, local, None)
        raise
    if template:
        _print_version_template(args.format, local, server)
    elif args.format == "json":
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


def _print_version_template(format_text: str, local: dict, server: dict | None) -> None:
    """docker's `version --format` data: `.Client` and `.Server` with docker's field names."""
    data = {"Client": {"Version": local["version"], "ApiVersion": local["api_version"],
                       "Python": local["python"], "Os": sys.platform, "Arch": _machine()},
            "Server": None if server is None else {
                "Version": server.get("version"), "ApiVersion": server.get("api_version"),
                "Python": server.get("python"), "Os": server.get("os"), "Arch": server.get("arch"),
                "KernelVersion": server.get("kernel")}}
    print_documents(format_text, [data])


def _machine() -> str:
    import platform
    return platform.machine()


def show_info(args: argparse.Namespace, client: ApiClient) -> int:
    prepared_format(args.format, each=True)
    info = client.info()
    if is_template(args.format):
        print_documents(args.format, [info])
    elif args.format == "json":
        print(json.dumps(info, indent=2))
    else:
        sys.stdout.write(key_values(info))
    return 0
