"""`corral build`: a Dockerfile into an image, the daemon doing the work (docs/images.md)."""
from __future__ import annotations

import argparse
import os
import shutil
import sys

from agent.api.client import ApiClient
from agent.errors import InvalidArgument, from_dict


def register(verbs: argparse._SubParsersAction) -> None:
    build = verbs.add_parser("build", help="build an image from a Dockerfile",
                             description="Build an image from CONTEXT (a directory) and its Dockerfile; each RUN "
                                         "runs in a Corral container under the same policies as any other.")
    build.add_argument("context", metavar="CONTEXT", help="the build context: a directory on this host")
    build.add_argument("-t", "--tag", action="append", default=[], metavar="NAME[:TAG]",
                       help="name the image (repeat for more)")
    build.add_argument("-f", "--file", metavar="DOCKERFILE", help="the Dockerfile (default: CONTEXT/Dockerfile)")
    build.add_argument("--build-arg", action="append", default=[], metavar="K=V",
                       help="set a build ARG; a bare K takes the value from this shell")
    build.add_argument("--target", default="", metavar="STAGE", help="build up to this stage")
    build.add_argument("--no-cache", action="store_true", help="do not use the build cache")
    build.add_argument("--label", action="append", default=[], metavar="K=V", help="add a label to the image")
    build.add_argument("--network", default="", metavar="NET", help="network of the RUN steps (default: bridge)")
    build.add_argument("--platform", default="", metavar="OS/ARCH", help="only this host's platform is built")
    build.add_argument("--pull", action="store_true", help="pull FROM images even when the store has them")
    build.add_argument("-q", "--quiet", action="store_true", help="print only the image id")
    build.add_argument("--progress", choices=("auto", "tty", "plain"), default="auto",
                       help="tty: each step on a line with its time and the tail of its output, redrawn in "
                            "place; plain: the output as lines; auto (default): tty on a terminal")
    build.set_defaults(func=build_image)


def build_image(args: argparse.Namespace, client: ApiClient) -> int:
    if args.context == "-" or "://" in args.context:
        raise InvalidArgument(f"build context {args.context!r}: give a directory on this host")
    context = os.path.abspath(args.context)
    if not os.path.isdir(context):
        raise InvalidArgument(f"build context {args.context!r} is not a directory")
    dockerfile = os.path.abspath(args.file) if args.file else None
    body = {"context": context, "dockerfile": dockerfile, "tags": args.tag, "build_args": _pairs(args.build_arg, True),
            "target": args.target, "no_cache": args.no_cache, "labels": _pairs(args.label, False),
            "network": args.network, "platform": args.platform, "pull": args.pull}
    tty = args.progress == "tty" or (args.progress == "auto" and sys.stdout.isatty()
                                      and os.environ.get("TERM", "") != "dumb")
    display = None
    if tty and not args.quiet:
        from agent.cli.build_progress import TerminalDisplay
        display = TerminalDisplay(sys.stdout, lambda: shutil.get_terminal_size().columns)
    image = None
    try:
        for event in client.build(body):
            if "message" in event and "error" in event:
                raise from_dict(event)
            if display is not None:
                display.feed(event)
            elif "stream" in event and not args.quiet:
                sys.stdout.write(event["stream"])
                sys.stdout.flush()
            if "image" in event:
                image = event["image"]
    finally:
        if display is not None:
            display.close(ok=image is not None)
    if args.quiet and image is not None:
        print(image["id"])
    return 0


def _pairs(items: list[str], from_environment: bool) -> dict[str, str]:
    result = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"{item!r}: expected KEY=VALUE")
        if not sep:
            if not from_environment:
                raise InvalidArgument(f"label {item!r}: expected KEY=VALUE")
            if key not in os.environ:
                continue        # docker leaves an unset bare build-arg out
            value = os.environ[key]
        result[key] = value
    return result
