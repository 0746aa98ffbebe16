"""`POST /build`: docker's classic builder over Corral's own (agent/build, the same Builder that
`corral build` uses, so RUN steps are Corral containers, the cache and the layers are shared).

The body is the context as a tar (plain, gzip, bzip2 or xz), unpacked into a private directory
under the image store for the build's length. The answer is docker's JSON lines: `{"stream":
"Step 1/4 : FROM busybox\\n"}`, the RUN output, `{"aux": {"ID": "sha256:..."}}`, `Successfully
built` and `Successfully tagged`, an error as `{"errorDetail": {"message": ...}, "error": ...}`.
BuildKit (`version=2`, `POST /session`) stays refused: docker's CLI then uses this builder
(`DOCKER_BUILDKIT=0`, or by itself since `_ping` says `Builder-Version: 1`).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.dockerapi.app import Parts
from agent.dockerapi.errors import NotImplementedHere
from agent.dockerapi.images import familiar, progress
from agent.dockerapi.router import Reply, Request, Router
from agent.errors import InvalidArgument
from agent.events import Event

# docker's network modes a build may name, as Corral's networks ("default": the builder's own).
_NETWORKS = {"default": "", "": ""}


class BuildRoutes:
    def __init__(self, parts: Parts) -> None:
        self.parts = parts

    def register(self, router: Router) -> None:
        router.add("POST", "/build", self.build, raw_body=True)

    def build(self, request: Request) -> Reply:
        from agent.build.builder import BuildOptions
        if self.parts.builder is None:
            raise NotImplementedHere("this daemon was started without a builder")
        if request.text("version") == "2":
            raise NotImplementedHere("BuildKit builds (version=2) are not supported by Corral; "
                                     "use the classic builder (DOCKER_BUILDKIT=0)")
        if request.text("remote"):
            raise InvalidArgument("remote: Corral builds only a context sent as the request body, "
                                  "not a URL or git repository")
        # rm and forcerm are read and not needed: each RUN's container is removed once its layer
        # is stored, or when it fails (docker-py sends rm=False by default; nothing is kept).
        request.flag("rm", True), request.flag("forcerm")
        tags = [familiar(tag) for tag in request.query.get("t", []) if tag]
        network = request.text("networkmode")
        build_args, labels = _json_map(request, "buildargs"), _json_map(request, "labels")
        quiet = request.flag("q")
        workspace = Path(tempfile.mkdtemp(prefix="docker-build-", dir=self.parts.images.dir / "tmp"))
        try:
            context = workspace / "context"
            context.mkdir()
            _unpack(request, context)
            build = BuildOptions(context=context, dockerfile=_inside(context, request.text("dockerfile") or "Dockerfile"),
                                 tags=tags, build_args=build_args, target=request.text("target"),
                                 no_cache=request.flag("nocache"), labels=labels,
                                 network=_NETWORKS.get(network, network), platform=request.text("platform"),
                                 pull=request.flag("pull"))
        except BaseException:
            shutil.rmtree(workspace, ignore_errors=True)
            raise
        builder, events = self.parts.builder, self.parts.events

        def work(emit: Callable[[dict], None]) -> None:
            try:
                image = builder.build(build, _docker_lines(emit, quiet))
            finally:
                shutil.rmtree(workspace, ignore_errors=True)
            for tag in tags:
                events.emit(Event("image", "tag", image.id, tag))
            if quiet:
                emit({"stream": image.id + "\n"})
        return Reply.chunks(progress(work))


def _docker_lines(emit: Callable[[dict], None], quiet: bool) -> Callable[[dict[str, Any]], None]:
    """The build's events as docker's: only `stream`, the image id as `aux` before
    `Successfully built`; with q=1 nothing but the id at the end."""
    def shaped(event: dict[str, Any]) -> None:
        if "built" in event:
            emit({"aux": {"ID": event["built"]}})
        if not quiet and "stream" in event:
            emit({"stream": event["stream"]})
    return shaped


def _json_map(request: Request, name: str) -> dict[str, str]:
    """A query parameter holding a JSON object of strings (`buildargs`, `labels`); a null value
    (docker's "from the client's environment" when unset there) is left out."""
    text = request.text(name)
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        raise InvalidArgument(f"query parameter {name}: expected a JSON object, got {text[:80]!r}") from None
    if not isinstance(value, dict) or not all(isinstance(v, (str, type(None))) for v in value.values()):
        raise InvalidArgument(f"query parameter {name}: expected a JSON object of strings")
    return {str(k): v for k, v in value.items() if v is not None}


def _unpack(request: Request, into: Path) -> None:
    """The request body, a tar (compressed or not), into `into` by the store's own layer
    extractor: nothing lands outside it, modes as sent (COPY keeps them, as docker's does)."""
    from agent.images.extract import extract_layer
    if request.body_stream is None:
        raise InvalidArgument("POST /build: the build context (a tar) is required as the body")
    extract_layer(request.body_stream, into, whiteouts=False, label="the build context")


def _inside(context: Path, name: str) -> Path:
    path = (context / name).resolve()
    if os.path.commonpath([path, context.resolve()]) != str(context.resolve()):
        raise InvalidArgument(f"dockerfile {name!r}: must be a path inside the build context")
    return path
