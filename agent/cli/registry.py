"""Registry verbs: `corral pull`, `push`, `tag`, `login`, `logout`.

Credentials are found here, as the calling user, in docker's config.json (`$DOCKER_CONFIG`,
`~/.docker`), helpers included, and sent with the request; `login` checks them through the
daemon against the registry and then stores them (mode 0600) where `docker login` would.
Progress: on a terminal one live line per layer, as docker draws it; otherwise plain lines.
"""
from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Iterable
from typing import IO

from agent.api.client import ApiClient
from agent.errors import CorralError, InvalidArgument, from_dict


def register(verbs: argparse._SubParsersAction) -> None:
    pull = verbs.add_parser("pull", help="pull an image from a registry")
    pull.add_argument("image", metavar="NAME[:TAG|@DIGEST]")
    pull.add_argument("--platform", default="", metavar="OS/ARCH[/VARIANT]", help="the platform to pull")
    pull.add_argument("-q", "--quiet", action="store_true", help="print only the image reference")
    pull.set_defaults(func=pull_image)

    push = verbs.add_parser("push", help="push an image to a registry")
    push.add_argument("image", metavar="NAME[:TAG]")
    push.add_argument("-q", "--quiet", action="store_true", help="print only the digest")
    push.set_defaults(func=push_image)

    tag = verbs.add_parser("tag", help="give an image another name")
    tag.add_argument("source", metavar="SOURCE[:TAG]")
    tag.add_argument("target", metavar="TARGET[:TAG]")
    tag.set_defaults(func=tag_image)

    login = verbs.add_parser("login", help="log in to a registry (credentials shared with docker)")
    login.add_argument("server", nargs="?", default="docker.io", metavar="SERVER")
    login.add_argument("-u", "--username", default="")
    login.add_argument("-p", "--password", default="", help="(prefer --password-stdin)")
    login.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    login.set_defaults(func=login_registry)

    logout = verbs.add_parser("logout", help="forget a registry's credentials")
    logout.add_argument("server", nargs="?", default="docker.io", metavar="SERVER")
    logout.set_defaults(func=logout_registry)


def credentials_for(reference: str) -> dict | None:
    """What docker's config holds for the registry of `reference`, as the API's `auth` object."""
    from agent.registry.auth import DockerConfig
    from agent.registry.reference import parse
    found = DockerConfig().get(parse(reference).registry)
    if found is None:
        return None
    return {"username": found.username, "password": found.password, "identitytoken": found.identity_token}


class Progress:
    """Docker's pull/push display: a line per layer, redrawn in place on a terminal."""

    def __init__(self, out: IO[str], live: bool) -> None:
        self.out = out
        self.live = live
        self.order: list[str] = []
        self.lines: dict[str, str] = {}

    def show(self, event: dict) -> None:
        layer = event.get("id")
        text = str(event.get("status", ""))
        if event.get("progress"):
            text = f"{text} {event['progress']}"
        if not layer or not self.live:
            self.out.write(f"{layer + ': ' if layer else ''}{text}\n")
            self.out.flush()
            return
        line = f"{layer}: {text}"
        if layer not in self.lines:
            self.order.append(layer)
            self.lines[layer] = line
            self.out.write(line + "\n")
        else:
            self.lines[layer] = line
            up = len(self.order) - self.order.index(layer)
            self.out.write(f"\x1b[{up}A\r\x1b[2K{line}\x1b[{up}B\r")
        self.out.flush()


def follow(events: Iterable[dict], quiet: bool, out: IO[str] | None = None) -> dict:
    """Show progress lines; the final result object, or raise the error the stream ended with."""
    stream = out or sys.stdout
    progress = Progress(stream, stream.isatty())
    result: dict = {}
    for event in events:
        if "message" in event and "error" in event:
            raise from_dict(event)
        if "image" in event or "digest" in event:
            result = event
        elif not quiet:
            progress.show(event)
    if not result:
        raise CorralError("the daemon ended the stream without a result", hint="check the daemon's log")
    return result


def pull_for_create(client: ApiClient, image: str, policy: str) -> None:
    """The pull before a create (agent/cli/run.py create_pulling): `missing` once the daemon has
    said it does not have the image, `always` every time, `never` not at all."""
    if policy == "never":
        return
    if policy == "missing":
        sys.stderr.write(f"Unable to find image {image!r} locally\n")
    follow(client.pull_image(image, "", credentials_for(image)), quiet=False, out=sys.stderr)


def pull_image(args: argparse.Namespace, client: ApiClient) -> int:
    from agent.registry.reference import parse
    ref = parse(args.image)
    if not args.quiet and not ref.digest:
        print(f"{ref.tag}: Pulling from {ref.repository}")
    follow(client.pull_image(args.image, args.platform, credentials_for(args.image)), args.quiet)
    if args.quiet:
        print(f"{ref.registry}/{ref.repository}{'@' + ref.digest if ref.digest else ':' + ref.tag}")
    return 0


def push_image(args: argparse.Namespace, client: ApiClient) -> int:
    result = follow(client.push_image(args.image, credentials_for(args.image)), args.quiet)
    if args.quiet:
        print(result["digest"])
    return 0


def tag_image(args: argparse.Namespace, client: ApiClient) -> int:
    client.tag_image(args.source, args.target)
    return 0


def login_registry(args: argparse.Namespace, client: ApiClient) -> int:
    from agent.registry.auth import Credentials, DockerConfig
    from agent.registry.reference import normalize_registry
    server = normalize_registry(args.server)
    username = args.username or input("Username: ")
    if args.password_stdin:
        if args.password:
            raise InvalidArgument("--password and --password-stdin are mutually exclusive")
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = args.password or getpass.getpass("Password: ")
    if not username or not password:
        raise InvalidArgument("login: a username and a password are required")
    client.login(server, {"username": username, "password": password})
    config = DockerConfig()
    config.store(server, Credentials(username, password))
    print(f"Login Succeeded (credentials in {config.path})")
    return 0


def logout_registry(args: argparse.Namespace, client: ApiClient) -> int:
    from agent.registry.auth import DockerConfig
    from agent.registry.reference import normalize_registry
    server = normalize_registry(args.server)
    if DockerConfig().erase(server):
        print(f"Removing login credentials for {server}")
    else:
        print(f"Not logged in to {server}")
    return 0
