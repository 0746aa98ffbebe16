"""`POST /v1/containers/run` from the caller's side (agent/api/run_endpoints.py): the foreground
`corral run` in one request. Written on ApiClient's transport (agent/api/transport.py) and kept
out of ApiClient's own module, which changes for other reasons."""
from __future__ import annotations

from collections.abc import Iterator

from agent.api.transport import Transport

CONTAINER_ID_HEADER = "corral-container-id"     # agent/api/run_endpoints.py, as the client reads headers


def run_container(client: Transport, spec: dict, *, remove: bool = False) -> tuple[str, Iterator[tuple[int, bytes]]]:
    """Create and start a container; its id, and the (stream, data) frames of its output
    followed by (3, its status). The daemon's refusal of the spec (or a missing image, or a
    failed start) is raised here, before any frame; a failure after that comes as the status
    frame, which agent.api.frames.decode_exit raises. `remove`: the daemon removes it (and its
    anonymous volumes) once it has exited, before the status frame."""
    response = client._open("POST", "/v1/containers/run", body=spec, query={"remove": True} if remove else None)
    return response.headers.get(CONTAINER_ID_HEADER, ""), client._frames(response)
