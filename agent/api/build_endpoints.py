"""`POST /v1/build`: build a Dockerfile from a context directory on this host.

The answer is a stream of JSON lines as the build goes (`{"stream": "Step 1/4 : FROM busybox\\n"}`,
the RUN commands' output, ` ---> CACHED`), ending with `{"image": ...}` or an error object. The
context is a directory the daemon reads, as `image import` reads its tarball.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import msgspec

from agent.api.routes import JSON_LINES_TYPE, Request, Response, Router
from agent.api.streaming import streamed
from agent.schema import AbsolutePath, Name, Object, Text, decode

_Key = Annotated[str, msgspec.Meta(min_length=1, max_length=256, pattern=r"^[^\x00=]+$")]


class BuildRequest(Object, frozen=True):
    """What `corral build` asks for."""

    context: AbsolutePath
    dockerfile: AbsolutePath | None = None       # default: CONTEXT/Dockerfile
    tags: Annotated[list[Name], msgspec.Meta(max_length=64)] = []
    build_args: Annotated[dict[_Key, Text], msgspec.Meta(max_length=256)] = {}
    target: Annotated[str, msgspec.Meta(max_length=128, pattern=r"^[a-zA-Z0-9_.-]*$")] = ""
    no_cache: bool = False
    labels: Annotated[dict[_Key, Text], msgspec.Meta(max_length=256)] = {}
    network: Annotated[str, msgspec.Meta(max_length=64, pattern=r"^[a-zA-Z0-9_.-]*$")] = ""   # "": the default
    platform: Annotated[str, msgspec.Meta(max_length=64, pattern=r"^[a-zA-Z0-9_./-]*$")] = ""
    pull: bool = False                           # pull FROM images even when the store has them


class BuildEndpoints:
    def __init__(self, builder) -> None:
        self._builder = builder                  # agent.build.builder.Builder, shared with the Docker API

    def register(self, router: Router) -> None:
        router.add("POST", "/v1/build", self.build, body=BuildRequest)

    def build(self, request: Request) -> Response:
        from agent.build.builder import BuildOptions
        body = decode(request.body, BuildRequest)
        options = BuildOptions(context=Path(body.context), dockerfile=Path(body.dockerfile) if body.dockerfile else None,
                               tags=list(body.tags), build_args=dict(body.build_args), target=body.target,
                               no_cache=body.no_cache, labels=dict(body.labels), network=body.network,
                               platform=body.platform, pull=body.pull)

        def work(emit) -> dict:
            return {"image": self._builder.build(options, emit).to_dict()}
        return Response.chunks(streamed(work, name="build"), JSON_LINES_TYPE)
