"""Docker's errors: the body is `{"message": ...}` and clients branch on the status code.

Corral's own errors map by their `http_status` (400, 404, 409, 500, ...). The few statuses
Docker uses that Corral has no error for are here: 304 (start of a started container, stop of
a stopped one: no body) and 503 (swarm and the other parts this daemon does not run). Lookups
are re-worded the way docker words them, because clients read the words too: docker-py raises
ImageNotFound only when a 404 says "No such image".
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from agent.errors import CorralError, NotFound

T = TypeVar("T")


class NotModified(CorralError):
    """The container is already in the state asked for (304, no body)."""

    http_status = 304


class Unavailable(CorralError):
    """A part of Docker this daemon does not run: swarm, plugins, build (503)."""

    http_status = 503


class NotImplementedHere(CorralError):
    """A route Corral does not serve (501), so a client reports it instead of guessing."""

    http_status = 501


def body_of(error: CorralError) -> dict[str, str]:
    message = error.message
    if error.hint and error.http_status >= 500:
        message = f"{message} ({error.hint})"
    return {"message": message}


def no_such_container(ref: str, lookup: Callable[[], T]) -> T:
    try:
        return lookup()
    except NotFound:
        raise NotFound(f"No such container: {ref}") from None


def no_such_image(ref: str, lookup: Callable[[], T]) -> T:
    try:
        return lookup()
    except NotFound:
        raise NotFound(f"No such image: {ref}") from None
