"""Every problem of a document against a msgspec schema, each with the path of its field.

`msgspec.convert` stops at the first problem; a policy author wants them all, as a compiler
gives them. So `validate` walks the schema (agent.policy.schema) beside the data: it descends
into Structs, lists and dicts itself (unknown and missing fields, lengths), hands every leaf
value to msgspec with its annotated type (so bounds and patterns are msgspec's, not ours),
and runs a field's semantic check (named by `check` in its Meta extra) once its type is right.
Only the schema's shape is followed, never the data's, so the walk is as deep as the schema
(7 levels) whatever the document holds. Problems are worded from the field's Meta extra
(see agent.policy.schema).
"""
from __future__ import annotations

import functools
import operator
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

import msgspec
from msgspec import Meta, UnsetType

Path = tuple


@dataclass(frozen=True)
class FieldError:
    """One problem in a document: the path of the field (keys and indexes) and what is wrong."""

    path: Path
    message: str
    at_key: bool = False          # point at the key (unknown or duplicate field), not its value

    @property
    def dotted(self) -> str:
        return format_path(self.path)


def format_path(path: Path) -> str:
    """("spec", "syscalls", 0, "names") -> "spec.syscalls[0].names"."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + str(part)
    return text or "(document)"


class Errors(list):
    """The problems found so far; `add` is how checks report one."""

    def add(self, path: Path, message: str, *, at_key: bool = False) -> None:
        self.append(FieldError(tuple(path), message, at_key))


# A semantic check: (value, its path, the errors) -> adds problems.
Check = Callable[[Any, Path, Errors], None]


def describe(value: Any) -> str:
    """A value as a problem shows it: short, and `nothing` for YAML's empty value."""
    if value is None:
        return "nothing"
    if isinstance(value, (dict, list)):
        return "a mapping" if isinstance(value, dict) else "a list"
    text = repr(value)
    return text if len(text) <= 80 else text[:70] + "..." + text[-7:]


def validate(data: Any, schema: Any, checks: dict[str, Check]) -> list[FieldError]:
    """Every problem of `data` read as `schema` (a Struct type), in document order."""
    errors = Errors()
    _walk(data, schema, (), errors, checks)
    return list(errors)


@functools.cache
def _parts(tp: Any) -> tuple[Any, dict]:
    """(the type without Annotated and UNSET, the merged Meta extra: outer wins)."""
    extra: dict = {}
    while True:
        if get_origin(tp) is typing.Annotated:
            tp, *metas = get_args(tp)
            for meta in reversed(metas):
                if isinstance(meta, Meta) and meta.extra:
                    extra = {**meta.extra, **extra}
            continue
        if get_origin(tp) in (Union, types.UnionType):
            members = [m for m in get_args(tp) if m is not UnsetType]
            if len(members) == 1 and len(get_args(tp)) > 1:
                tp = members[0]
                continue
        return tp, extra


@functools.cache
def _fields(struct: type) -> tuple[tuple[str, Any, bool], ...]:
    """(name in the document, annotated type, required) of a Struct's fields."""
    return tuple((f.encode_name, f.type, f.required) for f in msgspec.structs.fields(struct))


def _walk(value: Any, tp: Any, path: Path, errors: Errors, checks: dict[str, Check]) -> bool:
    """Check `value` against `tp`; True when it has no problem (then its check runs too)."""
    base, extra = _parts(tp)
    if isinstance(base, type) and issubclass(base, msgspec.Struct):
        ok = _struct(value, base, path, errors, extra, checks)
    elif get_origin(base) is list:
        ok = _list(value, get_args(base)[0], tp, path, errors, extra, checks)
    elif get_origin(base) is dict:
        ok = _dict(value, get_args(base), tp, path, errors, extra, checks)
    elif get_origin(base) is Literal:
        ok = _literal(value, get_args(base), path, errors, extra)
    else:
        ok = _leaf(value, tp, path, errors, extra)
    if "check" in extra and (ok or (extra.get("always") and isinstance(value, dict))):
        before = len(errors)
        checks[extra["check"]](value, path, errors)
        ok = len(errors) == before
    return ok


def _expected(value: Any, extra: dict, fallback: str) -> str:
    if "message" in extra and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return extra["message"].format(value=describe(value))
    return f"expected {extra.get('expected', fallback)}, got {describe(value)}"


def _struct(value: Any, struct: type, path: Path, errors: Errors, extra: dict, checks: dict[str, Check]) -> bool:
    fields = _fields(struct)
    known = ", ".join(name for name, _, _ in fields)
    if not isinstance(value, dict):
        errors.add(path, _expected(value, extra, f"a mapping with {known}"))
        return False
    before = len(errors)
    types_of = {name: tp for name, tp, _ in fields}
    for key in value:
        if key not in types_of:
            errors.add(path + (key,), f"unknown field {key!r} (known: {known})", at_key=True)
    for name, tp, required in fields:
        if name in value:
            _walk(value[name], tp, path + (name,), errors, checks)
        elif required:
            errors.add(path, f"missing required field {name!r}")
    return len(errors) == before


def _sized(value: Any, kind: type[list | dict], tp: Any, path: Path, errors: Errors, extra: dict) -> bool:
    """`value` is a `kind` (list or dict) within the length bounds of `tp`."""
    if not isinstance(value, kind):
        errors.add(path, _expected(value, extra, "a list" if kind is list else "a mapping"))
        return False
    meta = _meta(tp)
    if meta.min_length and len(value) < meta.min_length:
        errors.add(path, extra["empty"] if "empty" in extra else _expected(value, extra, "a non-empty list"))
        return False
    if meta.max_length is not None and len(value) > meta.max_length:
        errors.add(path, f"at most {meta.max_length} {'items' if kind is list else 'entries'}, got {len(value)}")
        return False
    return True


def _list(value: Any, item: Any, tp: Any, path: Path, errors: Errors, extra: dict,
          checks: dict[str, Check]) -> bool:
    if not _sized(value, list, tp, path, errors, extra):
        return False
    results = [_walk(v, item, path + (i,), errors, checks) for i, v in enumerate(value)]
    return all(results)


def _dict(value: Any, args: tuple, tp: Any, path: Path, errors: Errors, extra: dict,
          checks: dict[str, Check]) -> bool:
    if not _sized(value, dict, tp, path, errors, extra):
        return False
    key_type, value_type = args
    ok = True
    for key, item in value.items():
        if not _leaf(key, key_type, path + (key,), errors, _parts(key_type)[1], at_key=True) or not _walk(item, value_type, path + (key,), errors, checks):
            ok = False
    return ok


def _literal(value: Any, choices: tuple, path: Path, errors: Errors, extra: dict) -> bool:
    if value in choices and isinstance(value, str):
        return True
    listed = ", ".join(choices)
    if len(choices) == 1:
        errors.add(path, f"expected {choices[0]!r}, got {describe(value)}")
    elif isinstance(value, str):
        errors.add(path, f"unknown {extra.get('what', 'value')} {describe(value)} (expected one of: {listed})")
    else:
        errors.add(path, f"expected one of {listed}, got {describe(value)}")
    return False


_WORDS = {"`str`": "text", "`int`": "a whole number", "`float`": "a number", "`bool`": "true or false"}


def _leaf(value: Any, tp: Any, path: Path, errors: Errors, extra: dict, *, at_key: bool = False) -> bool:
    try:
        msgspec.convert(value, _set(tp), strict=True)
    except msgspec.ValidationError as exc:
        # "Expected `int` >= 1, got `str` - at `$...`" -> "an integer >= 1"
        wanted = str(exc).split(" - at `", 1)[0].split(", got `", 1)[0].removeprefix("Expected ")
        for name, words in _WORDS.items():
            wanted = wanted.replace(name, words)
        errors.add(path, _expected(value, extra, wanted), at_key=at_key)
        return False
    return True


@functools.cache
def _set(tp: Any) -> Any:
    """`X | UnsetType` -> X, keeping X's Annotated bounds (UNSET only means "left out")."""
    if get_origin(tp) in (Union, types.UnionType) and UnsetType in get_args(tp):
        members = [m for m in get_args(tp) if m is not UnsetType]
        return functools.reduce(operator.or_, members)
    return tp


@functools.cache
def _meta(tp: Any) -> Meta:
    """The length bounds Annotated on a list or dict type (through an `| UnsetType`)."""
    tp = _set(tp)
    bounds = [m for m in get_args(tp)[1:] if isinstance(m, Meta)] if get_origin(tp) is typing.Annotated else []
    return Meta(min_length=next((m.min_length for m in bounds if m.min_length is not None), None),
                max_length=next((m.max_length for m in bounds if m.max_length is not None), None))
