"""Typed, bounded input: the msgspec types every API object is built from, and one decode path.

Every API object (ContainerSpec, Mount, PortMapping, the request bodies in agent/api/bodies.py)
is a frozen `msgspec.Struct` with `forbid_unknown_fields=True` whose fields use the bounded
types below, so the same declaration validates input and generates the OpenAPI document
(agent/api/openapi_gen.py). Decoding is strict: no bool for a number, no float for an int, no
string for a list, no coercion; every string refuses NUL and has a length bound, every number
a range.

`decode(body, Type)` and `convert(data, Type)` are the only ways in; a failure is an
InvalidArgument whose `field` is the path of the bad value (`mounts[0].target`) and whose
message names that path, what was expected and the value given.
"""
from __future__ import annotations

import re
from types import UnionType
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

import msgspec

from agent.errors import InvalidArgument

T = TypeVar("T")

# Limits of a JSON request body (docs/api.md): bigger is 413, deeper is 400.
MAX_BODY = 1024 * 1024
MAX_DEPTH = 64

# Every string: no NUL (it would cut a path, an argv item or a hostname short in the kernel).
# The patterns are written with escapes, not the characters, so they read the same in JSON Schema.
NO_NUL = r"^[^\x00]*$"

Text = Annotated[str, msgspec.Meta(max_length=4096, pattern=NO_NUL, description="text without NUL")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=1024, pattern=r"^[^\x00]+$",
                                   description="a name without NUL")]
AbsolutePath = Annotated[str, msgspec.Meta(
    min_length=1, max_length=4096, pattern=r"^/[^\x00]*$", description="an absolute path without NUL")]
# One argv item or environment entry: the kernel's MAX_ARG_STRLEN.
Argument = Annotated[str, msgspec.Meta(max_length=131072, pattern=NO_NUL, description="an argument without NUL")]
EnvEntry = Annotated[str, msgspec.Meta(
    max_length=131072, pattern=r"^[^=\x00]+=[^\x00]*$", description="KEY=VALUE, without NUL")]
Arguments = Annotated[list[Argument], msgspec.Meta(max_length=4096)]
Environment = Annotated[list[EnvEntry], msgspec.Meta(max_length=4096)]
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
IPv4 = Annotated[str, msgspec.Meta(
    max_length=15, pattern=r"^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
                           r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$",
    description="an IPv4 address like 10.213.0.2")]
LabelKey = Annotated[str, msgspec.Meta(min_length=1, max_length=256, pattern=r"^[^\x00]+$",
                                       description="a label key without NUL")]
LabelValue = Annotated[str, msgspec.Meta(max_length=4096, pattern=NO_NUL, description="text without NUL")]
Labels = Annotated[dict[LabelKey, LabelValue], msgspec.Meta(max_length=256)]



class Object(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Base of every API object: immutable, and an unknown key is an error.

    Subclasses inherit both; they repeat `frozen=True` only because mypy's dataclass
    transform wants it said (`class Mount(Object, frozen=True)`).
    """


def decode(body: bytes, kind: type[T], where: str = "") -> T:
    """`body` (JSON text) as a `kind`, strictly; InvalidArgument naming the field otherwise."""
    check_json(body, where or "request body")
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise _field_error(exc, _plain(body), kind, where) from None
    except msgspec.DecodeError as exc:
        raise InvalidArgument(f"{where or 'request body'} is not valid JSON: {exc}", field="") from None


def convert(data: Any, kind: type[T], where: str = "", *, strict: bool = True) -> T:
    """Already-parsed `data` (a state file, a YAML document) as a `kind`, as strictly as decode.

    `strict=False` only for text that stands for numbers and booleans (query parameters)."""
    try:
        return msgspec.convert(data, type=kind, strict=strict)
    except msgspec.ValidationError as exc:
        raise _field_error(exc, data, kind, where) from None


def to_builtins(value: Any) -> Any:
    return msgspec.to_builtins(value)


# Body limits

# A string literal or one bracket: the scan below skips brackets inside strings.
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def check_json(body: bytes, where: str = "request body") -> None:
    """Refuse a body deeper than MAX_DEPTH before any parser recurses into it."""
    if body.count(b"[") + body.count(b"{") <= MAX_DEPTH:
        return   # cannot be deeper: the common case costs two counts
    depth = 0
    for match in _TOKEN.finditer(body):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > MAX_DEPTH:
                raise InvalidArgument(f"{where} is nested {MAX_DEPTH + 1} or more levels deep; "
                                      f"the limit is {MAX_DEPTH}", field="")
        elif token in (b"]", b"}"):
            depth -= 1


# Errors

_AT = " - at `"
_SEGMENT = re.compile(r'\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[(\.\.\.)\]|\[("(?:[^"\\]|\\.)*")\]')
_KEY_TRIES = 256


def _field_error(exc: msgspec.ValidationError, data: Any, kind: type, where: str) -> InvalidArgument:
    """msgspec's `Expected ... - at `$.mounts[0].target`` as a message and a field path."""
    message, _, path = str(exc).partition(_AT)
    path = path.rstrip("`")
    key_error = path.startswith("key` in `")
    if key_error:
        path = path[len("key` in `"):]
    named = re.match(r"Object (missing required|contains unknown) field `([^`]*)`", message)
    if named:
        path = (path or "$") + "." + named.group(2)
        message = (f"field {named.group(2)!r} is required" if named.group(1).startswith("missing")
                   else f"unknown field {named.group(2)!r}")
    else:
        message = message.replace("`", "")
        message = message[0].lower() + message[1:]
    if path.endswith("[...]") and not key_error:
        key = _bad_key(data, path, str(exc).partition(_AT)[0], kind)
        if key is not None:
            path = path[:-len("[...]")] + "[" + msgspec.json.encode(key).decode() + "]"
    if key_error:
        described = _description(kind, path[1:], key=True) if "matching regex" in message else None
        message = f"a key: expected {described}" if described else f"a key: {message}"
    elif not named and path.startswith("$."):
        if message.startswith("expected str matching regex"):
            described = _description(kind, path[1:])
            if described:
                message = f"expected {described}"
        found, value = _lookup(data, path)
        if found:
            message = f"{message.split(', got ')[0]}, got {_show(value)}"
    field = path[1:].lstrip(".") if path.startswith("$") else ""
    prefix = f"{where}: " if where else ""
    return InvalidArgument(f"{prefix}{field + ': ' if field else ''}{message}", field=field)


def _lookup(data: Any, path: str) -> tuple[bool, Any]:
    """The value at a msgspec path in the plain data, if it can be found."""
    value = data
    for name, index, anything, key in _SEGMENT.findall(path[1:]):
        if anything:
            return False, None     # a dict value, key unknown: msgspec does not say which
        if key:
            name = msgspec.json.decode(key)
        if name:
            if not isinstance(value, dict) or name not in value:
                return False, None
            value = value[name]
        else:
            if not isinstance(value, list) or int(index) >= len(value):
                return False, None
            value = value[int(index)]
    return True, value


def _bad_key(data: Any, path: str, message: str, kind: type) -> str | None:
    """Which key of the dict at `path` (ending `[...]`) holds the bad value.

    msgspec says only `labels[...]`; checking each value (on the error path only, and at most
    _KEY_TRIES of them) against the dict's value type finds the one that fails the same way.
    """
    found, mapping = _lookup(data, path[:-len("[...]")])
    value_type = _value_type(kind, path[1:-len("[...]")])
    if not found or not isinstance(mapping, dict) or value_type is None:
        return None
    for key in list(mapping)[:_KEY_TRIES]:
        try:
            msgspec.convert(mapping[key], type=value_type)
        except msgspec.ValidationError as exc:
            if str(exc).startswith(message):
                return str(key)
    return None


def _value_type(kind: Any, path: str) -> Any:
    """The value type of the dict at `path` in the schema `kind`, or None if it cannot be told."""
    node = _bare(_type_at(kind, path))
    return get_args(node)[1] if get_origin(node) is dict else None


def _type_at(kind: Any, path: str) -> Any:
    """The declared type (bounds included) at `path` (no leading `$`) in the schema `kind`, or None."""
    node = kind
    for name, index, _, key in _SEGMENT.findall(path):
        node = _bare(node)
        if isinstance(node, type) and issubclass(node, msgspec.Struct):
            fields = {f.name: f.type for f in msgspec.structs.fields(node)}
            if not name or name not in fields:
                return None
            node = fields[name]
        elif get_origin(node) is list and index:
            node = get_args(node)[0]
        elif get_origin(node) is dict and key:
            node = get_args(node)[1]
        else:
            return None
    return node


def _description(kind: Any, path: str, *, key: bool = False) -> str | None:
    """The `Meta(description=...)` of the type at `path` (of its keys, for a map, with `key`):
    it says in words what a pattern means."""
    node = _type_at(kind, path)
    if key:
        node = _bare(node)
        node = get_args(node)[0] if get_origin(node) is dict else None
    while node is not None:
        if get_origin(node) is Annotated:
            for meta in get_args(node)[1:]:
                if isinstance(meta, msgspec.Meta) and meta.description:
                    return meta.description
            node = get_args(node)[0]
        elif get_origin(node) in (Union, UnionType):
            kinds = [k for k in get_args(node) if k is not type(None)]
            node = kinds[0] if len(kinds) == 1 else None
        else:
            return None
    return None


def _bare(node: Any) -> Any:
    """`node` without the Annotated bounds around it and without `| None`."""
    while True:
        if get_origin(node) is Annotated:
            node = get_args(node)[0]
        elif get_origin(node) in (Union, UnionType):
            kinds = [k for k in get_args(node) if k is not type(None)]
            if len(kinds) != 1:
                return node
            node = kinds[0]
        else:
            return node


def _show(value: Any) -> str:
    text = msgspec.json.encode(value).decode() if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _plain(body: bytes) -> Any:
    try:
        return msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return None
