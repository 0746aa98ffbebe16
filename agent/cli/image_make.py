"""Verbs that make and move images: `save`, `load`, `history`, `commit`, and `image inspect`,
`image prune`, `image save|load|history` (docker spells both)."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

from agent.api.client import ApiClient
from agent.cli.format import ago, human_size, short_id, table
from agent.cli.formatting import FORMAT_HELP, INSPECT_FORMAT_HELP, prepared_format, print_documents, write_rows
from agent.errors import InvalidArgument, NotFound


def register(verbs: argparse._SubParsersAction) -> None:
    _save(verbs.add_parser("save", help="write images to a tar archive (docker save's format)"))
    _load(verbs.add_parser("load", help="load images from a tar archive"))
    _history(verbs.add_parser("history", help="show how an image was made"))
    commit = verbs.add_parser("commit", help="make an image from a container's changes",
                              description="Record the files a container changed as a new image on top of "
                                          "its own; the container is paused meanwhile (unless --pause=false).")
    commit.add_argument("container", metavar="CONTAINER")
    commit.add_argument("reference", metavar="NAME[:TAG]")
    commit.add_argument("-c", "--change", action="append", default=[], metavar="INSTRUCTION",
                        help="a Dockerfile instruction for the config: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, "
                             "USER, VOLUME, WORKDIR, STOPSIGNAL, SHELL (repeat for more)")
    commit.add_argument("-m", "--message", default="", help="commit message")
    commit.add_argument("-a", "--author", default="", help='author, like "Ann <ann@example.com>"')
    commit.add_argument("-p", "--pause", default="true", choices=("true", "false"),
                        help="pause the container while committing (default true)")
    commit.set_defaults(func=commit_container)


def register_image_actions(actions: argparse._SubParsersAction) -> None:
    """`corral image inspect|prune|save|load|history`, called by agent.cli.images."""
    inspect = actions.add_parser("inspect", help="show images' details as JSON (docker's fields)")
    inspect.add_argument("-f", "--format", metavar="TEMPLATE", help=INSPECT_FORMAT_HELP)
    inspect.add_argument("images", metavar="IMAGE", nargs="+")
    inspect.set_defaults(func=inspect_images)
    prune = actions.add_parser("prune", help="remove images no container uses")
    prune.add_argument("-a", "--all", action="store_true", help="every unused image, not only untagged ones")
    prune.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    prune.set_defaults(func=prune_images)
    _save(actions.add_parser("save", help="write images to a tar archive"))
    _load(actions.add_parser("load", help="load images from a tar archive"))
    _history(actions.add_parser("history", help="show how an image was made"))


def _save(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", metavar="IMAGE", nargs="+", help="NAME[:TAG] or image id")
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")
    parser.set_defaults(func=save_images)


def _load(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--input", metavar="FILE", help="read FILE instead of standard input")
    parser.add_argument("-q", "--quiet", action="store_true", help="print nothing")
    parser.set_defaults(func=load_images)


def _history(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", metavar="IMAGE")
    parser.add_argument("-H", "--human", default="true", choices=("true", "false"),
                        help="sizes and dates in human form (default true)")
    parser.add_argument("--no-trunc", action="store_true", help="do not shorten the output")
    parser.add_argument("-q", "--quiet", action="store_true", help="only the image ids")
    parser.add_argument("--format", default="table", metavar="FORMAT", help=FORMAT_HELP)
    parser.set_defaults(func=show_history)


def save_images(args: argparse.Namespace, client: ApiClient) -> int:
    if args.output is None and sys.stdout.isatty():
        raise InvalidArgument("save: refusing to write a tar archive to a terminal",
                              hint="use -o FILE or redirect standard output")
    chunks = client.save_images(args.images)
    if args.output is None:
        for chunk in chunks:
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        return 0
    # Written beside the target and renamed, so a failed save never leaves half an archive.
    target = os.path.abspath(args.output)
    handle = tempfile.NamedTemporaryFile(dir=os.path.dirname(target), prefix=".corral-save-", delete=False)
    try:
        with handle:
            for chunk in chunks:
                handle.write(chunk)
        os.replace(handle.name, target)
    except BaseException:
        os.unlink(handle.name)
        raise
    return 0


def load_images(args: argparse.Namespace, client: ApiClient) -> int:
    if args.input is not None:
        path = os.path.abspath(args.input)
        if not os.path.isfile(path):
            raise InvalidArgument(f"load: {args.input!r} is not a file")
        images = client.load_images(path)
    else:
        if sys.stdin.isatty():
            raise InvalidArgument("load: no archive on standard input", hint="use -i FILE or pipe one in")
        # The daemon reads images from files: standard input is spooled to one it can open.
        with tempfile.NamedTemporaryFile(prefix="corral-load-", suffix=".tar") as spool:
            shutil.copyfileobj(sys.stdin.buffer, spool)
            spool.flush()
            os.chmod(spool.name, 0o644)
            images = client.load_images(spool.name)
    if not args.quiet:
        for image in images:
            named = image.get("name") != "<none>"
            print(f"Loaded image: {image['name']}:{image['tag']}" if named else f"Loaded image ID: {image['id']}")
    return 0


def show_history(args: argparse.Namespace, client: ApiClient) -> int:
    template = prepared_format(args.format)
    rows = client.image_history(args.image)
    if args.quiet:
        for row in rows:
            print(row["Id"] if args.no_trunc or row["Id"] == "<missing>" else short_id(row["Id"]))
        return 0
    if template:
        from agent.cli.format_fields import HistoryFields
        now = time.time()
        write_rows(args.format, [HistoryFields(row, now, human=args.human == "true", truncate=not args.no_trunc)
                                 for row in rows], HistoryFields.HEADERS)
        return 0
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    human, now = args.human == "true", time.time()
    lines = []
    for row in rows:
        created_by = row["CreatedBy"] if args.no_trunc or len(row["CreatedBy"]) <= 45 else row["CreatedBy"][:44] + "…"
        lines.append([row["Id"] if args.no_trunc or row["Id"] == "<missing>" else short_id(row["Id"]),
                      ago(row["Created"], now) if human else str(row["Created"]), created_by,
                      human_size(row["Size"]) if human else str(row["Size"]), row["Comment"]])
    sys.stdout.write(table(("IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"), lines))
    return 0


def commit_container(args: argparse.Namespace, client: ApiClient) -> int:
    image = client.commit(args.container, args.reference, args.change, pause=args.pause == "true",
                          comment=args.message, author=args.author)
    print(image["id"])
    return 0


def inspect_images(args: argparse.Namespace, client: ApiClient) -> int:
    prepared_format(args.format, each=True)
    found, failed = [], 0
    for ref in args.images:
        try:
            found.append(client.inspect_image(ref))
        except NotFound as exc:     # docker prints what it found and names what it did not
            sys.stderr.write(f"corral: {exc.message}\n")
            failed = 1
    print_documents(args.format, found)
    return failed


def prune_images(args: argparse.Namespace, client: ApiClient) -> int:
    if not args.force and sys.stdin.isatty():
        what = "all images without at least one container" if args.all else "all dangling images"
        answer = input(f"WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            return 0
    result = client.prune_images(every=args.all)
    if result["deleted"]:
        print("Deleted Images:")
        for name in result["deleted"]:
            print(f"deleted: {name}")
        print()
    print(f"Total reclaimed space: {human_size(result['space_reclaimed'])}")
    return 0
