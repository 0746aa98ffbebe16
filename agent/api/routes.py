"""Routing for the API: a table of (method, path pattern) -> handler, and the request and
response objects handlers see.

A pattern is a path whose `{name}` segments capture one path segment, so
`/v1/containers/{ref}/start` gives the handler `request.params["ref"]`. Each route declares the
query parameters it reads; any other is refused, the same way unknown body keys are.

Route groups beyond the core (stats, policies, networks) live in `agent/api/<thing>_endpoints.py`
as a class `<Thing>Endpoints(backend...)` with `register(router)`; the daemon passes
`extra_routes=[ThingEndpoints(backend).register]` to ApiServer. tests/unit/test_openapi.py finds
every such class and checks its routes against openapi.yaml, so a new group needs only its module
and its paths in the spec.
"""
from __future__ import annotations

import json
import math
import re
import socket
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec
import msgspec.inspect

from agent import schema
from agent.errors import InvalidArgument, MethodNotAllowed, NotFound

JSON_TYPE = "application/json"
JSON_LINES_TYPE = "application/x-ndjson"
MAX_BODY = schema.MAX_BODY
T = TypeVar("T")
_TRUE, _FALSE = ("", "1", "true", "yes"), ("0", "false", "no")
MAX_PARAMETER = 1024       # characters of one path or query parameter
MAX_QUERY_NUMBER = 1e12    # seconds or timestamps: more is a mistake, and inf would hang a wait


@dataclass
class Request:
    """What a handler is given: path parameters, the declared query parameters and the body."""

    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    args: Any = None       # the query as the route's query schema (agent/api/bodies.py), if it has one
    stream: Any = None     # a route with `stream_body`: the body to read(), however long (a tar upload)

    def json(self) -> Any:
        if not self.body:
            raise InvalidArgument(f"{self.method} {self.path}: a JSON request body is required", field="")
        schema.check_json(self.body)
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, ValueError) as exc:
            raise InvalidArgument(f"{self.method} {self.path}: request body is not valid JSON: {exc}",
                                  field="") from None

    def decode(self, kind: type[T]) -> T:
        """The body as the schema `kind` (agent/schema.py), strictly; 400 naming the field if not."""
        if not self.body:
            raise InvalidArgument(f"{self.method} {self.path}: a JSON request body is required", field="")
        return schema.decode(self.body, kind)

    def flag(self, name: str, default: bool = False) -> bool:
        """A boolean query parameter: `?all`, `?all=1` and `?all=true` are true."""
        if name not in self.query:
            return default
        value = self.query[name].lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise InvalidArgument(f"query parameter {name}: expected true or false, got {self.query[name]!r}",
                              field=name)

    def number(self, name: str, default: float | None = None) -> float | None:
        if name not in self.query:
            return default
        try:
            number = float(self.query[name])
        except ValueError:
            number = math.nan
        if not math.isfinite(number) or abs(number) > MAX_QUERY_NUMBER:
            raise InvalidArgument(f"query parameter {name}: expected a number, got {self.query[name]!r}",
                                  field=name)
        return number


# What takes over a connection after its answer's head: given the socket and a reader of the
# client's bytes (the HTTP reader's, so nothing it buffered is lost).
Takeover = Callable[[socket.socket, Callable[[int], bytes]], None]


@dataclass
class Response:
    """A JSON body, no body (204), a stream of chunks sent with chunked transfer-encoding, or a
    connection taken over (`takeover`): `101 UPGRADED` when the client asked to upgrade, else
    `200` and the raw stream until the connection closes, as Docker's attach answers."""

    status: int = 200
    body: bytes | None = None
    content_type: str = JSON_TYPE
    stream: Iterator[bytes] | None = None
    takeover: Takeover | None = None
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: Any, status: int = 200) -> Response:
        return cls(status=status, body=json.dumps(data).encode() + b"\n")

    @classmethod
    def empty(cls, status: int = 204) -> Response:
        return cls(status=status)

    @classmethod
    def hijack(cls, takeover: Takeover, content_type: str, headers: dict[str, str] | None = None) -> Response:
        return cls(status=200, content_type=content_type, takeover=takeover, headers=dict(headers or {}))

    @classmethod
    def chunks(cls, stream: Iterable[bytes], content_type: str) -> Response:
        return cls(status=200, content_type=content_type, stream=iter(stream))


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Route:
    """One route. `query_type` and `body_type` are schemas (agent/api/bodies.py) the router
    validates against and the OpenAPI generator (agent/api/openapi_gen.py) describes."""

    method: str
    pattern: str
    handler: Handler
    query: tuple[str, ...] = ()
    query_type: type | None = None
    body_type: type | None = None
    stream_body: bool = False      # the handler reads request.stream; the body has no size limit
    # Worked out once, not per request: the pattern's segments, and the query schema's fields as
    # (name, is a flag) (msgspec.inspect of the schema was ~4 % of an API launch cycle).
    parts: tuple[str, ...] = field(init=False, repr=False, compare=False)
    query_fields: tuple[tuple[str, bool], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "parts", tuple(self.pattern.strip("/").split("/")))
        fields = () if self.query_type is None else tuple(
            (info.name, isinstance(info.type, msgspec.inspect.BoolType))
            for info in msgspec.inspect.type_info(self.query_type).fields)  # type: ignore[attr-defined]
        object.__setattr__(self, "query_fields", fields)

    def match(self, path: str) -> dict[str, str] | None:
        pattern_parts = self.parts
        path_parts = path.strip("/").split("/")
        if len(pattern_parts) != len(path_parts):
            return None
        params = {}
        for want, got in zip(pattern_parts, path_parts):
            if want.startswith("{") and want.endswith("}"):
                if not got:
                    return None
                params[want[1:-1]] = unquote(got)
            elif want != got:
                return None
        return params


_PATTERN = re.compile(r"^(/[a-z0-9_.-]+|/\{[a-z_]+\})+$")


class Router:
    """The route table. `add` a route; `resolve` a method and raw target to handler + Request."""

    def __init__(self) -> None:
        self._routes: list[Route] = []

    def add(self, method: str, pattern: str, handler: Handler, *, query: type | Iterable[str] = (),
            body: type | None = None, stream_body: bool = False) -> None:
        """A route. `query` is its query schema (or, untyped, the names it reads); `body` the
        schema of its JSON body, which the handler decodes with `request.decode(body)`; with
        `stream_body` the handler reads the raw body from `request.stream` instead."""
        method = method.upper()
        if not _PATTERN.match(pattern):
            raise ValueError(f"route pattern {pattern!r}: expected /segments with {{name}} parameters")
        if any(r.method == method and r.pattern == pattern for r in self._routes):
            raise ValueError(f"route {method} {pattern} is already registered")
        if isinstance(query, type):
            names = tuple(f.name for f in msgspec.structs.fields(query))
            self._routes.append(Route(method, pattern, handler, names, query, body, stream_body))
        else:
            self._routes.append(Route(method, pattern, handler, tuple(query), None, body, stream_body))

    @property
    def routes(self) -> list[Route]:
        return list(self._routes)

    def resolve(self, method: str, target: str, body: bytes = b"") -> tuple[Route, Request]:
        split = urlsplit(target)
        path = split.path or "/"
        candidates = [(route, params) for route in self._routes
                      if (params := route.match(path)) is not None]
        if not candidates:
            raise NotFound(f"no API route {path}", hint="see agent/api/openapi.yaml for the routes")
        for route, params in candidates:
            if route.method == method:
                for name, value in params.items():
                    _check_text(value, name)
                query = self._query(route, split.query)
                return route, Request(method, path, params, query, body, _typed_query(route, query))
        allowed = self.allowed(path)
        raise MethodNotAllowed(f"{method} is not allowed on {path} (allowed: {', '.join(allowed)})",
                               allowed=allowed)

    def streams_body(self, method: str, target: str) -> bool:
        """Whether the route `method target` reads its body as a stream (so the server does not)."""
        path = urlsplit(target).path or "/"
        return any(route.stream_body and route.method == method and route.match(path) is not None
                   for route in self._routes)

    def allowed(self, path: str) -> tuple[str, ...]:
        """The methods `path` answers to (with HEAD where GET is, and OPTIONS), or () if none."""
        methods = {route.method for route in self._routes if route.match(path) is not None}
        if not methods:
            return ()
        if "GET" in methods:
            methods.add("HEAD")
        return tuple(sorted(methods | {"OPTIONS"}))

    @staticmethod
    def _query(route: Route, text: str) -> dict[str, str]:
        query = {}
        for name, values in parse_qs(text, keep_blank_values=True).items():
            if name not in route.query:
                known = ", ".join(route.query) or "none"
                raise InvalidArgument(
                    f"query parameter {name!r} is not known for {route.method} {route.pattern} (known: {known})",
                    field=name)
            query[name] = _check_text(values[-1], name)
        return query


def _typed_query(route: Route, query: dict[str, str]) -> Any:
    """The query as the route's schema: flags read as booleans, numbers as decimals, then bounds."""
    if route.query_type is None:
        return None
    values: dict[str, Any] = {}
    for name, flag in route.query_fields:
        if name not in query:
            continue
        text = query[name]
        if flag:
            lowered = text.lower()
            if lowered not in _TRUE + _FALSE:
                raise InvalidArgument(f"query parameter {name}: expected true or false, got {text!r}", field=name)
            values[name] = lowered in _TRUE
        else:
            values[name] = text
    return schema.convert(values, route.query_type, strict=False)


def _check_text(value: str, name: str) -> str:
    """A path or query parameter: bounded and without NUL, like every string of a body."""
    if "\x00" in value or len(value) > MAX_PARAMETER:
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise InvalidArgument(f"parameter {name}: expected at most {MAX_PARAMETER} characters "
                              f"without NUL, got {shown!r}", field=name)
    return value
