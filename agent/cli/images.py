"""Image verbs: `corral images`, `corral image ls|import|rm`."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from agent.api.client import ApiClient
from agent.cli.containers import for_each
from agent.cli.format import images_table, short_id
from agent.cli.formatting import FORMAT_HELP, parse_filter_flags, prepared_format, write_rows
from agent.cli.image_make import register_image_actions
from agent.errors import InvalidArgument


def register(verbs: argparse._SubParsersAction) -> None:
    images = verbs.add_parser("images", help="list images")
    _add_list_arguments(images)

    image = verbs.add_parser("image", help="manage images (ls, import, rm, inspect, prune, save, load, history)")
    actions = image.add_subparsers(dest="image_action", metavar="ACTION", required=True)
    _add_list_arguments(actions.add_parser("ls", help="list images"))

    load = actions.add_parser("import", help="import a rootfs tarball or an OCI image layout",
                              description="Import a `docker export` tarball (.tar, .tar.gz) or an OCI "
                                          "image layout directory found on this host.")
    load.add_argument("source", metavar="TARBALL", help="path of the tarball or OCI layout directory")
    load.add_argument("--name", required=True, metavar="NAME[:TAG]", help="the image's name (tag: latest)")
    load.set_defaults(func=import_image)

    rm = actions.add_parser("rm", help="remove images")
    rm.add_argument("images", metavar="IMAGE", nargs="+", help="NAME[:TAG] or image id")
    rm.set_defaults(func=remove_images)
    register_image_actions(actions)


def _add_list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", default="table", metavar="FORMAT", help=FORMAT_HELP)
    parser.add_argument("--digests", action="store_true", help="show the registry digests")
    parser.add_argument("-f", "--filter", action="append", metavar="KEY=VALUE",
                        help="only images matching: reference=GLOB, label=K[=V], dangling=true|false, "
                             "before=IMAGE, since=IMAGE (repeat)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the image ids")
    parser.add_argument("--no-trunc", action="store_true", help="full image ids")
    parser.add_argument("-a", "--all", action="store_true",
                        help="accepted for docker's sake: Corral keeps no intermediate images")
    parser.set_defaults(func=list_images)


def list_images(args: argparse.Namespace, client: ApiClient) -> int:
    template = prepared_format(args.format)
    images = client.list_images(filters=parse_filter_flags(args.filter))
    newest_first = sorted(images, key=lambda i: i.get("created") or 0, reverse=True)
    if args.quiet:
        for image in newest_first:
            print(image["id"] if args.no_trunc else short_id(image["id"]))
    elif template:
        from agent.cli.format_fields import ImageFields
        now = time.time()
        write_rows(args.format, [ImageFields(i, now, truncate=not args.no_trunc) for i in newest_first],
                   ImageFields.HEADERS)
    elif args.format == "json":
        print(json.dumps(images, indent=2))
    else:
        sys.stdout.write(images_table(images, time.time(), digests=args.digests))
    return 0


def import_image(args: argparse.Namespace, client: ApiClient) -> int:
    # The daemon opens the file, so it gets an absolute path; checking here gives the
    # user's own relative path in the message.
    path = os.path.abspath(args.source)
    if not os.path.exists(path):
        raise InvalidArgument(f"image source {args.source!r} does not exist",
                              hint="give a tarball made by `docker export` or an OCI layout directory")
    image = client.import_image(path, args.name)
    print(image["id"])
    return 0


def remove_images(args: argparse.Namespace, client: ApiClient) -> int:
    return for_each(args.images, client.remove_image, say=lambda ref: f"Deleted: {ref}")
