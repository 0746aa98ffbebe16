"""The v1 endpoints that move files in and out of containers, shaped like Docker's so the
Docker API can wrap them: `GET|HEAD /v1/containers/{ref}/archive?path=` (a tar stream, and
the path's stat in the `X-Docker-Container-Path-Stat` header, base64 JSON), `PUT` of the same
(a tar body of any size, extracted into the directory `path`), `GET .../changes` and
`GET .../export`. `files` is the runtime's ContainerFiles (agent/runtime/files.py).
"""
from __future__ import annotations

import base64
import json

from agent.api.bodies import ArchiveQuery, ArchiveUploadQuery
from agent.api.routes import Request, Response, Router

TAR_TYPE = "application/x-tar"
STAT_HEADER = "X-Docker-Container-Path-Stat"


def stat_header(stat: dict) -> str:
    return base64.b64encode(json.dumps(stat).encode()).decode()


class FileEndpoints:
    def __init__(self, files) -> None:
        self._files = files

    def register(self, router: Router) -> None:
        router.add("GET", "/v1/containers/{ref}/archive", self.get_archive, query=ArchiveQuery)
        router.add("PUT", "/v1/containers/{ref}/archive", self.put_archive, query=ArchiveUploadQuery,
                   stream_body=True)
        router.add("GET", "/v1/containers/{ref}/changes", self.changes)
        router.add("GET", "/v1/containers/{ref}/export", self.export)

    def get_archive(self, request: Request) -> Response:
        stat, stream = self._files.archive(request.params["ref"], request.args.path)
        response = Response.chunks(stream, TAR_TYPE)
        response.headers[STAT_HEADER] = stat_header(stat)
        return response

    def put_archive(self, request: Request) -> Response:
        self._files.extract(request.params["ref"], request.args.path, request.stream,
                            copy_uid_gid=request.args.copy_uid_gid)
        return Response.empty(200)

    def changes(self, request: Request) -> Response:
        return Response.json(self._files.changes(request.params["ref"]))

    def export(self, request: Request) -> Response:
        return Response.chunks(self._files.export(request.params["ref"]), TAR_TYPE)
