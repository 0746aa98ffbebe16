"""The v1 endpoints that make and move images: inspect, history, save, load, prune and commit.

`POST /v1/images/save` answers with the tar itself (`application/x-tar`, docker save's format);
`POST /v1/images/load` and `POST /v1/images/import` read a file the daemon can open (the CLI
spools standard input to one), as the image store reads every source from disk.
"""
from __future__ import annotations

from typing import Annotated

import msgspec

from agent.api.routes import Request, Response, Router
from agent.errors import Conflict, NotFound
from agent.schema import AbsolutePath, Name, Object, Text, decode

TAR_TYPE = "application/x-tar"


class SaveRequest(Object, frozen=True):
    """`POST /v1/images/save`: the images (names or ids) to write into one tar."""

    names: Annotated[list[Name], msgspec.Meta(min_length=1, max_length=256)]


class LoadRequest(Object, frozen=True):
    """`POST /v1/images/load`: a tar written by `corral save`, `docker save` or as an OCI layout."""

    path: AbsolutePath


class PruneQuery(Object, frozen=True):
    all: bool = False       # every image no container uses, not only the untagged ones


class CommitRequest(Object, frozen=True):
    """`POST /v1/containers/{ref}/commit`: the container's changes as the image `reference`."""

    reference: Name
    changes: Annotated[list[Text], msgspec.Meta(max_length=64)] = []   # Dockerfile lines: CMD, ENV, ...
    pause: bool = True              # freeze the container while its files are read, as docker does
    comment: Text = ""
    author: Text = ""


class ImageEndpoints:
    """Handlers over the image store, the runtime (which containers use what) and the cgroups
    (to pause a container being committed)."""

    def __init__(self, images, runtime, cgroups) -> None:
        self._images = images
        self._runtime = runtime
        self._cgroups = cgroups

    def register(self, router: Router) -> None:
        router.add("GET", "/v1/images/{ref}/json", self.inspect)
        router.add("GET", "/v1/images/{ref}/history", self.history)
        router.add("POST", "/v1/images/save", self.save, body=SaveRequest)
        router.add("POST", "/v1/images/load", self.load, body=LoadRequest)
        router.add("POST", "/v1/images/prune", self.prune, query=PruneQuery)
        router.add("POST", "/v1/containers/{ref}/commit", self.commit, body=CommitRequest)

    def inspect(self, request: Request) -> Response:
        from agent.images.describe import inspect
        image = self._images.get(request.params["ref"])
        names = sorted(other.reference for other in self._images.list() if other.id == image.id and other.tagged)
        return Response.json(inspect(self._images, image, names))

    def history(self, request: Request) -> Response:
        from agent.images.describe import history
        return Response.json(history(self._images, self._images.get(request.params["ref"])))

    def save(self, request: Request) -> Response:
        from agent.images.archive import save_stream
        body = decode(request.body, SaveRequest)
        return Response.chunks(save_stream(self._images, list(body.names)), TAR_TYPE)

    def load(self, request: Request) -> Response:
        from agent.images.archive import load
        body = decode(request.body, LoadRequest)
        return Response.json({"images": [image.to_dict() for image in load(self._images, body.path)]})

    def prune(self, request: Request) -> Response:
        every = bool(request.args.all) if request.args is not None else False
        used = {container.image_id for container in self._runtime.list(all=True)}
        deleted, reclaimed = [], 0
        for image in self._images.list():
            if image.id in used or (image.tagged and not every):
                continue
            try:
                self._images.remove(image.reference if image.tagged else image.id, in_use_by=[])
            except (NotFound, Conflict):
                continue        # gone meanwhile, or named twice and removed with its other name
            deleted.append(image.reference if image.tagged else image.id)
            reclaimed += image.size
        return Response.json({"deleted": deleted, "space_reclaimed": reclaimed})

    def commit(self, request: Request) -> Response:
        from agent.images.commit import commit_container
        body = decode(request.body, CommitRequest)
        image = commit_container(self._images, self._cgroups, self._runtime.get(request.params["ref"]),
                                 body.reference, list(body.changes), pause=body.pause, comment=body.comment,
                                 author=body.author)
        return Response.json(image.to_dict(), status=201)
