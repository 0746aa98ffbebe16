"""The v1 endpoints of registries: pull, push, tag, and checking a login.

`POST /v1/images/pull` and `/v1/images/push` answer with a stream of JSON lines as they go
(docker's words: "Pulling fs layer", "Downloading", "Pull complete", ...); the last line is
`{"image": ...}` / `{"digest": ...}` or an error object `{"error", "message", "hint"}`, since the
status line has gone out before the work is done. Credentials come in the body (`auth`), as the
CLI found them in the calling user's docker config: the daemon never reads anyone's home.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Annotated

import msgspec

from agent.api.routes import JSON_LINES_TYPE, Request, Response, Router
from agent.api.streaming import streamed
from agent.errors import InvalidArgument
from agent.schema import NO_NUL, Name, Object, decode

_Secret = Annotated[str, msgspec.Meta(max_length=16384, pattern=NO_NUL)]
PlatformText = Annotated[str, msgspec.Meta(max_length=64, pattern=r"^[a-zA-Z0-9_./-]*$",
                                           description="os/arch[/variant], like linux/arm64")]


class RegistryAuth(Object, frozen=True):
    """Credentials for one registry, as docker's config.json or `corral login` gave them."""

    username: _Secret = ""
    password: _Secret = ""
    identitytoken: _Secret = ""


class PullRequest(Object, frozen=True):
    """`POST /v1/images/pull`: NAME[:TAG|@DIGEST], optionally a platform os/arch[/variant]."""

    reference: Name
    platform: PlatformText = ""
    auth: RegistryAuth | None = None


class PushRequest(Object, frozen=True):
    """`POST /v1/images/push`: push the local image `reference` (or `source`) to its registry."""

    reference: Name
    source: Name | None = None
    auth: RegistryAuth | None = None


class TagRequest(Object, frozen=True):
    """`POST /v1/images/tag`: give `target` (NAME[:TAG]) to the image `source`."""

    source: Name
    target: Name


class LoginRequest(Object, frozen=True):
    """`POST /v1/auth`: check credentials against a registry (nothing is stored by the daemon)."""

    registry: Name
    auth: RegistryAuth


def _credentials(auth: RegistryAuth | None):
    from agent.registry.auth import Credentials
    if auth is None or not (auth.username or auth.password or auth.identitytoken):
        return None
    return Credentials(auth.username, auth.password, auth.identitytoken)


class RegistryEndpoints:
    """Handlers of the registry routes over one image store; `register` puts them on a Router."""

    def __init__(self, images, options=None) -> None:
        self._images = images
        self._options = options
        self._puller = None
        self._pusher = None
        self._guard = threading.Lock()

    def register(self, router: Router) -> None:
        router.add("POST", "/v1/images/pull", self.pull, body=PullRequest)
        router.add("POST", "/v1/images/push", self.push, body=PushRequest)
        router.add("POST", "/v1/images/tag", self.tag, body=TagRequest)
        router.add("POST", "/v1/auth", self.login, body=LoginRequest)

    def _parts(self):
        """The puller and pusher, built on first use: httpx is imported only by a daemon that pulls."""
        with self._guard:
            if self._puller is None:
                from agent.registry.pull import Puller
                from agent.registry.push import Pusher
                self._puller = Puller(self._images, self._options)
                self._pusher = Pusher(self._images, self._options, self._puller.tokens)
        return self._puller, self._pusher

    def pull(self, request: Request) -> Response:
        from agent.registry import platform as platforms
        from agent.registry.reference import parse
        body = decode(request.body, PullRequest)
        ref = parse(body.reference)
        wanted = platforms.parse(body.platform) if body.platform else None
        puller, _ = self._parts()

        def work(emit: Callable[[dict], None]) -> dict:
            image = puller.pull(ref, _credentials(body.auth), wanted, emit)
            return {"image": image.to_dict()}
        return Response.chunks(streamed(work), JSON_LINES_TYPE)

    def push(self, request: Request) -> Response:
        from agent.registry.reference import parse
        body = decode(request.body, PushRequest)
        ref = parse(body.reference)
        if ref.digest:
            raise InvalidArgument(f"reference: {body.reference!r}: push a tag, not a digest", field="reference")
        _, pusher = self._parts()
        self._images.get(body.source or f"{ref.familiar_name}:{ref.tag}")   # 404 before the stream starts

        def work(emit: Callable[[dict], None]) -> dict:
            return {"digest": pusher.push(ref, _credentials(body.auth), emit, source=body.source)}
        return Response.chunks(streamed(work), JSON_LINES_TYPE)

    def tag(self, request: Request) -> Response:
        body = decode(request.body, TagRequest)
        return Response.json(self._images.tag(body.source, body.target).to_dict(), status=201)

    def login(self, request: Request) -> Response:
        from agent.registry.login import check_login
        body = decode(request.body, LoginRequest)
        check_login(body.registry, _credentials(body.auth), self._options)
        return Response.json({"status": "Login Succeeded"})
