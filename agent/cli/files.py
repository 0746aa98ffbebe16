"""`corral cp`, `corral diff` and `corral export` (docs/volumes.md).

`cp` follows docker's rules for where a copy lands: into DEST when it is a directory (a
source ending in `/.` copies a directory's content, not the directory), as DEST when it does
not exist, over DEST when both are files. The tar streams go through the daemon's archive
API; what arrives from a container is extracted with the same code the daemon uses
(agent/files: every member written relative to a descriptor of its directory, never through
a symlink out of the destination), so a hostile container cannot make `cp` write elsewhere.
"""
from __future__ import annotations

import argparse
import os
import stat
import sys
from pathlib import Path

from agent.api.client import ApiClient
from agent.errors import Conflict, InvalidArgument, NotFound

GO_DIR = 1 << 31           # os.ModeDir in the stat the daemon sends (Go's FileMode)
_READ = 1 << 20


def register(verbs: argparse._SubParsersAction) -> None:
    cp = verbs.add_parser("cp", help="copy files between a container and the host",
                          description="Copy files or directories between a container (running or stopped) and "
                                      "the host: `corral cp C:SRC DEST` or `corral cp SRC C:DEST`. `-` as DEST "
                                      "writes a tar stream to stdout; `-` as SRC reads one from stdin.")
    cp.add_argument("-a", "--archive", action="store_true",
                    help="keep the source's owners (default: root in the container, you on the host)")
    cp.add_argument("-L", "--follow-link", action="store_true", help="follow a symbolic link given as SRC")
    cp.add_argument("source", metavar="SRC", help="CONTAINER:PATH, a host path, or - (a tar stream on stdin)")
    cp.add_argument("dest", metavar="DEST", help="CONTAINER:PATH, a host path, or - (a tar stream on stdout)")
    cp.set_defaults(func=copy)

    diff = verbs.add_parser("diff", help="list what a container changed in its root file system",
                            description="One line per change: A added, C changed, D deleted.")
    diff.add_argument("container", metavar="CONTAINER", help="id, id prefix or name")
    diff.set_defaults(func=show_diff)

    export = verbs.add_parser("export", help="write a container's root file system as a tar stream",
                              description="The container's merged root (volumes left out) as a tar archive.")
    export.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    export.add_argument("container", metavar="CONTAINER", help="id, id prefix or name")
    export.set_defaults(func=export_container)


def split_ref(text: str) -> tuple[str | None, str]:
    """("container", "/path") for `container:/path`; (None, text) for a host path, as docker
    reads it: a word with `/` before the first colon, or starting with `.`, is a host path."""
    if text == "-" or text.startswith((".", "/")) or ":" not in text:
        return None, text
    container, _, path = text.partition(":")
    if "/" in container:
        return None, text
    return container, path


def copy(args: argparse.Namespace, client: ApiClient) -> int:
    source_container, source = split_ref(args.source)
    dest_container, dest = split_ref(args.dest)
    if (source_container is None) == (dest_container is None):
        raise InvalidArgument("cp: exactly one of SRC and DEST must be CONTAINER:PATH",
                              hint="like `corral cp web:/etc/hosts .` or `corral cp ./app web:/srv`")
    if source_container is not None:
        return copy_out(client, source_container, _absolute(source), dest, args)
    assert dest_container is not None
    return copy_in(client, source, dest_container, _absolute(dest), args)


def _absolute(path: str) -> str:
    return path if path.startswith("/") else "/" + path      # docker reads C:etc as C:/etc


def copy_out(client: ApiClient, container: str, source: str, dest: str, args: argparse.Namespace) -> int:
    from agent.files.resolve import Area, ContainerTree
    from agent.files.tar_in import ChunkReader, extract

    if args.follow_link:
        link = client.stat_path(container, source).get("linkTarget")
        source = link or source
    info, chunks = client.get_archive(container, source)
    if dest == "-":
        out = sys.stdout.buffer
        for chunk in chunks:
            out.write(chunk)
        out.flush()
        return 0
    is_dir = bool(info.get("mode", 0) & GO_DIR)
    name = info.get("name", "")
    rename: tuple[str, str] | None = None
    if os.path.isdir(dest):
        into = dest
        if is_dir and source.endswith("/."):
            rename = (name, "")
    elif os.path.lexists(dest):
        if is_dir:
            raise Conflict(f"cp: cannot copy the directory {container}:{source} to the file {dest}")
        into, rename = os.path.dirname(os.path.abspath(dest)), (name, os.path.basename(dest))
    else:
        if dest.endswith("/") and not is_dir:
            raise NotFound(f"cp: the destination directory {dest} does not exist")
        target = os.path.abspath(dest)
        into, rename = os.path.dirname(target), (name, os.path.basename(target))
        if not os.path.isdir(into):
            raise NotFound(f"cp: the destination's directory {into} does not exist")
    owner = None if args.archive and os.geteuid() == 0 else (os.getuid(), os.getgid())
    extract(ContainerTree("the host", Area("/", Path(into).absolute(), what=into)), "/", ChunkReader(chunks),
            owner=owner, rename=rename)
    return 0


def copy_in(client: ApiClient, source: str, container: str, dest: str, args: argparse.Namespace) -> int:
    from agent.files.tar_out import archive_path

    if source == "-":
        info = _dest_stat(client, container, dest)
        if info is None or not info["mode"] & GO_DIR:
            raise InvalidArgument(f"cp: {container}:{dest} must be an existing directory to extract a tar stream into")
        chunks = iter(lambda: sys.stdin.buffer.read(_READ), b"")
        client.put_archive(container, dest, chunks, copy_uid_gid=args.archive)
        return 0
    path = os.path.realpath(source) if args.follow_link else source
    try:
        is_dir = stat.S_ISDIR(os.lstat(path).st_mode)
    except FileNotFoundError:
        raise NotFound(f"cp: no such file or directory: {source}") from None
    info = _dest_stat(client, container, dest)
    if info is not None and info["mode"] & GO_DIR:
        into = dest
        name = "" if is_dir and source.endswith("/.") else os.path.basename(os.path.abspath(path))
    elif info is not None:
        if is_dir:
            raise Conflict(f"cp: cannot copy the directory {source} to the file {container}:{dest}")
        into, name = os.path.dirname(dest) or "/", os.path.basename(dest)
    else:
        if dest.endswith("/") and not is_dir:
            raise NotFound(f"cp: the destination directory {container}:{dest} does not exist")
        trimmed = dest.rstrip("/") or "/"
        into, name = os.path.dirname(trimmed) or "/", os.path.basename(trimmed)
    client.put_archive(container, into, archive_path(path, name), copy_uid_gid=args.archive)
    return 0


def _dest_stat(client: ApiClient, container: str, dest: str) -> dict | None:
    """The destination's stat, a symlink followed (inside the container), or None if missing."""
    try:
        info = client.stat_path(container, dest)
        if info.get("linkTarget"):
            info = client.stat_path(container, info["linkTarget"])
        return info
    except NotFound as exc:
        if exc.field != "path":
            raise           # the container itself is missing
        return None


def show_diff(args: argparse.Namespace, client: ApiClient) -> int:
    kinds = {0: "C", 1: "A", 2: "D"}
    for change in client.container_changes(args.container):
        print(f"{kinds[change['Kind']]} {change['Path']}")
    return 0


def export_container(args: argparse.Namespace, client: ApiClient) -> int:
    if args.output is None and sys.stdout.isatty():
        raise InvalidArgument("export: refusing to write a tar archive to a terminal",
                              hint="use -o FILE or redirect the output")
    chunks = client.export_container(args.container)
    if args.output is None:
        out = sys.stdout.buffer
        for chunk in chunks:
            out.write(chunk)
        out.flush()
        return 0
    with open(args.output, "wb") as handle:
        for chunk in chunks:
            handle.write(chunk)
    return 0
