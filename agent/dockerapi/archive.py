"""Files in and out of containers: archive (`docker cp`), changes (`docker diff`) and export,
wrapping the runtime's ContainerFiles (agent/runtime/files.py), which resolves every path
inside the container's root or the volume that holds it (openat2 RESOLVE_IN_ROOT), so a
symlink the container planted never points a copy at a host file.

- `GET /containers/{id}/archive?path=`: the tar stream, with the path's stat (base64 JSON of
  name, size, mode, mtime, linkTarget) in X-Docker-Container-Path-Stat; `HEAD` the stat alone.
- `PUT /containers/{id}/archive?path=`: a tar body of any size (chunked or not) extracted into
  the directory `path`; files belong to the container's root unless `copyUIDGID`.
  `noOverwriteDirNonDir` is always on here: a directory is never replaced by a file nor the
  other way round (the docker CLI always asks for it; docker-py's put_archive does not).
- `GET /containers/{id}/changes`: [{Path, Kind}] (0 changed, 1 added, 2 deleted).
- `GET /containers/{id}/export`: the container's root as a tar stream, volumes left out.
"""
from __future__ import annotations

import base64
import json

from agent.dockerapi.app import Parts
from agent.dockerapi.errors import no_such_container
from agent.dockerapi.router import Reply, Request, Router
from agent.errors import InvalidArgument, NotFound

TAR_TYPE = "application/x-tar"
STAT_HEADER = "X-Docker-Container-Path-Stat"


class ArchiveRoutes:
    def __init__(self, parts: Parts) -> None:
        self.parts = parts

    def register(self, router: Router) -> None:
        router.add("GET", "/containers/{id}/archive", self.get)
        router.add("HEAD", "/containers/{id}/archive", self.head)
        router.add("PUT", "/containers/{id}/archive", self.put, raw_body=True)
        router.add("GET", "/containers/{id}/changes", self.changes)
        router.add("GET", "/containers/{id}/export", self.export)

    @property
    def files(self):
        """The runtime's ContainerFiles: no state of its own, so one is made per use."""
        from agent.runtime.files import ContainerFiles
        runtime = self.parts.runtime
        return ContainerFiles(runtime.store, runtime.rootfs, self.parts.images, runtime.volumes)

    def _container_id(self, request: Request) -> str:
        ref = request.params["id"]
        return no_such_container(ref, lambda: self.parts.runtime.get(ref)).id

    def head(self, request: Request) -> Reply:
        container_id, path = self._container_id(request), _path(request)
        stat = _found(request, lambda: self.files.stat(container_id, path))
        return Reply(status=200, headers={STAT_HEADER: stat_header(stat)}, content_type=TAR_TYPE)

    def get(self, request: Request) -> Reply:
        container_id, path = self._container_id(request), _path(request)
        stat, stream = _found(request, lambda: self.files.archive(container_id, path))
        reply = Reply.chunks(stream, TAR_TYPE)
        reply.headers[STAT_HEADER] = stat_header(stat)
        return reply

    def put(self, request: Request) -> Reply:
        container_id, path = self._container_id(request), _path(request)
        request.flag("noOverwriteDirNonDir")         # checked as a boolean; always on (see above)
        files = self.files
        try:
            files.stat(container_id, path.rstrip("/") + "/.")       # a directory, or a link to one
        except NotFound:
            _found(request, lambda: files.stat(container_id, path))  # 404 when nothing is there
            raise InvalidArgument(f"extraction point is not a directory: {path}", field="path") from None
        if request.body_stream is None:
            raise InvalidArgument("a tar body is required")
        files.extract(container_id, path, request.body_stream, copy_uid_gid=request.flag("copyUIDGID"))
        return Reply(status=200)

    def changes(self, request: Request) -> Reply:
        return Reply.json(self.files.changes(self._container_id(request)) or None)

    def export(self, request: Request) -> Reply:
        return Reply.chunks(self.files.export(self._container_id(request)), TAR_TYPE)


def stat_header(stat: dict) -> str:
    return base64.b64encode(json.dumps(stat).encode()).decode()


def _path(request: Request) -> str:
    path = request.text("path")
    if not path:
        raise InvalidArgument("query parameter path: a path in the container is required", field="path")
    return path if path.startswith("/") else "/" + path      # relative to the root, as dockerd takes it


def _found(request: Request, lookup):
    """NotFound in dockerd's words (the CLI shows them: "Could not find the file ...")."""
    try:
        return lookup()
    except NotFound:
        raise NotFound(f"Could not find the file {request.text('path')} in container {request.params['id']}") \
            from None
