"""The compat API's route table, and the request and reply objects its handlers see.

Patterns are Docker's paths with `{name}` for one segment and `{name*}` for the rest of the
path, since image names carry slashes (`/images/localhost:5000/team/app:1/json`). Every route
answers bare and under `/v1.NN/` (the server strips the version before resolving). Unknown
query parameters are ignored, as dockerd ignores them: newer clients send parameters an older
daemon does not know. The ones a handler reads are checked, and a bad value is a 400 naming it.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import IO, Any, Callable, Iterable, Iterator
from urllib.parse import parse_qs, unquote, urlsplit

from agent.errors import InvalidArgument, MethodNotAllowed, NotFound

JSON_TYPE = "application/json"
_TRUE, _FALSE = ("1", "true", "yes", "y", "on"), ("", "0", "false", "no", "n", "off")


@dataclass
class Request:
    """One request: path parameters, the query (every value of each name), headers and body."""

    method: str
    path: str
    version: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    query: dict[str, list[str]] = field(default_factory=dict)
    headers: Any = None                      # an email.message.Message (case-insensitive get)
    body: bytes = b""
    body_stream: IO[bytes] | None = None     # routes with raw_body: the body as it arrives

    def text(self, name: str, default: str = "") -> str:
        values = self.query.get(name)
        return values[-1] if values else default

    def flag(self, name: str, default: bool = False) -> bool:
        """Docker's booleans: 1/true/yes are true, 0/false/no and empty are false."""
        if name not in self.query:
            return default
        value = self.text(name).lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise InvalidArgument(f"query parameter {name}: expected a boolean, got {self.text(name)!r}")

    def integer(self, name: str, default: int | None = None) -> int | None:
        text = self.text(name)
        if not text:
            return default
        try:
            return int(text)
        except ValueError:
            raise InvalidArgument(f"query parameter {name}: expected an integer, got {text!r}") from None

    def json(self, *, required: bool = True) -> Any:
        if not self.body:
            if required:
                raise InvalidArgument(f"{self.method} {self.path}: a JSON body is required")
            return {}
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise InvalidArgument(f"the request body is not JSON: {exc}") from None

    def header(self, name: str, default: str = "") -> str:
        if self.headers is None:
            return default
        return self.headers.get(name, default)


# What a hijacked connection is given: the connection's socket, its buffered reader (bytes the
# client sent after the request may already sit in it) and writer.
Hijack = Callable[[Any, Any, Any], None]


@dataclass
class Reply:
    """A JSON or text body, no body, a chunked stream, or a hijack of the connection."""

    status: int = 200
    body: bytes | None = None
    content_type: str = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)
    stream: Iterator[bytes] | None = None
    hijack: Hijack | None = None

    @classmethod
    def json(cls, data: Any, status: int = 200) -> Reply:
        return cls(status=status, body=json.dumps(data).encode() + b"\n")

    @classmethod
    def empty(cls, status: int = 204) -> Reply:
        return cls(status=status)

    @classmethod
    def text(cls, text: str, status: int = 200) -> Reply:
        return cls(status=status, body=text.encode(), content_type="text/plain; charset=utf-8")

    @classmethod
    def chunks(cls, stream: Iterable[bytes], content_type: str = JSON_TYPE) -> Reply:
        return cls(status=200, content_type=content_type, stream=iter(stream))


Handler = Callable[[Request], Reply]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str
    handler: Handler
    regex: re.Pattern[str]
    raw_body: bool = False


def _compile(pattern: str) -> re.Pattern[str]:
    parts = []
    for segment in pattern.strip("/").split("/"):
        if segment.startswith("{") and segment.endswith("*}"):
            parts.append(f"(?P<{segment[1:-2]}>.+)")
        elif segment.startswith("{") and segment.endswith("}"):
            parts.append(f"(?P<{segment[1:-1]}>[^/]+)")
        else:
            parts.append(re.escape(segment))
    return re.compile("^/" + "/".join(parts) + "/?$")


class Router:
    def __init__(self) -> None:
        self._routes: list[Route] = []

    def add(self, method: str, pattern: str, handler: Handler, *, raw_body: bool = False) -> None:
        if any(r.method == method and r.pattern == pattern for r in self._routes):
            raise ValueError(f"route {method} {pattern} is already registered")
        self._routes.append(Route(method, pattern, handler, _compile(pattern), raw_body))

    @property
    def routes(self) -> list[Route]:
        return list(self._routes)

    def resolve(self, method: str, target: str) -> tuple[Route, Request]:
        """The route for `method` on `target` (path and query, without the version prefix)."""
        split = urlsplit(target)
        path = split.path or "/"
        matched = []
        for route in self._routes:
            match = route.regex.match(path)
            if match is not None:
                matched.append(route)
                if route.method == method:
                    params = {k: unquote(v) for k, v in match.groupdict().items()}
                    query = parse_qs(split.query, keep_blank_values=True)
                    return route, Request(method, path, params=params, query=query)
        if matched:
            allowed = tuple(sorted({r.method for r in matched}))
            raise MethodNotAllowed(f"{method} is not allowed on {path}", allowed=allowed)
        raise NotFound(f"page not found: {path}")
