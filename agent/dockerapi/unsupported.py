"""Docker routes Corral does not serve (yet), each answering 501 with the reason, so a client
reports it instead of guessing. docs/docker-api.md lists them as refused."""
from __future__ import annotations

from agent.dockerapi.errors import NotImplementedHere
from agent.dockerapi.router import Reply, Request, Router

ROUTES: tuple[tuple[str, str, str], ...] = (
    ("GET", "/distribution/{name*}/json", "distribution: ask the registry; Corral does not proxy it"),
)


def register(router: Router) -> None:
    for method, pattern, why in ROUTES:
        router.add(method, pattern, _refuse(why))


def _refuse(why: str):
    def handler(request: Request) -> Reply:
        raise NotImplementedHere(why)
    handler.__doc__ = why
    return handler
