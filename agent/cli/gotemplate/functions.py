"""The function table of docker's templates (Go's builtins plus docker's json, join, split,
title, lower, upper, pad, truncate) and Go's way of printing values (fmt's %v, encoding/json).

Functions get evaluated arguments; a missing value arrives as None, as Go hands a nil to an
`interface{}` parameter. `and` and `or` are not here: they stop early, so the evaluator runs
them. A function refuses a wrong argument with FunctionError, which the evaluator turns into a
TemplateError naming the position.
"""
from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any, Callable
from urllib.parse import quote_plus

from agent.cli.gotemplate.lexer import TemplateError

__all__ = ["TemplateError", "FunctionError", "FUNCTIONS", "HEADER_FUNCTIONS", "go_json", "go_string",
           "type_name", "truth", "MISSING"]


class _Missing:
    """Go's invalid value: what a missing map key or a field of nothing gives."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class FunctionError(Exception):
    """A function or field refused its input; the evaluator adds the position."""


def type_name(value: object) -> str:
    """The Go type a JSON value would have, for error messages."""
    from agent.cli.gotemplate.evaluate import Fields
    if value is None or value is MISSING:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "[]interface {}"
    if isinstance(value, dict):
        return "map[string]interface {}"
    if isinstance(value, Fields):
        return value.kind
    return type(value).__name__


def truth(value: object) -> bool:
    """Go's `if`: false, 0, "", empty list or map, nil and missing are false."""
    if value is None or value is MISSING:
        return False
    if isinstance(value, (bool, int, float)):
        return bool(value)
    if isinstance(value, (str, list, tuple, dict)):
        return len(value) > 0
    return True


# Printing: fmt's %v and encoding/json's numbers.

def go_float(value: float) -> str:
    """fmt's %v of a float64: shortest digits, %e when the exponent is < -4 or >= 6 (1e+06)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1, value) < 0 else "0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    text = "".join(map(str, digits))
    point = len(text) + int(exponent)          # position of the decimal point in the digits
    power = point - 1
    prefix = "-" if sign else ""
    if power < -4 or power >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if power < 0 else '+'}{abs(power):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{text}"
    if point >= len(text):
        return prefix + text + "0" * (point - len(text))
    return f"{prefix}{text[:point]}.{text[point:]}"


def go_string(value: object) -> str:
    """fmt's %v: `true`, `[a b]`, `map[a:1 b:2]` (keys sorted), `<nil>`."""
    from agent.cli.gotemplate.evaluate import Fields
    if value is None:
        return "<nil>"
    if value is MISSING:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_string(item) for item in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{go_string(key)}:{go_string(value[key])}" for key in sorted(value, key=str)) + "]"
    if isinstance(value, Fields):
        return "{" + " ".join(go_string(item) for item in value.to_json().values()) + "}"
    return str(value)


def _json_float(value: float) -> str:
    if not math.isfinite(value):
        raise FunctionError(f"json: unsupported value: {go_float(value)}")
    if value == int(value) and abs(value) < 1e21:
        return str(int(value))
    if 1e-6 <= abs(value) < 1e21:
        return format(Decimal(repr(value)), "f")
    mantissa, _, power = repr(value).partition("e")
    if not power:       # Python wrote it without an exponent: write one as Go does
        mantissa, _, power = f"{value:e}".partition("e")
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{'-' if power.startswith('-') else '+'}{int(power.lstrip('+-'))}"


def _to_json(value: object) -> object:
    from agent.cli.gotemplate.evaluate import Fields
    if isinstance(value, Fields):
        return _to_json(value.to_json())
    if isinstance(value, dict):
        return {str(key): _to_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(item) for item in value]
    return None if value is MISSING else value


def go_json(value: object) -> str:
    """docker's `json` function: Go's encoding/json, compact, without HTML escaping."""
    data = _to_json(value)
    parts: list[str] = []

    def write(item: object) -> None:
        if isinstance(item, float):
            parts.append(_json_float(item))
        elif isinstance(item, dict):
            parts.append("{")
            for index, (key, element) in enumerate(item.items()):
                parts.append(("," if index else "") + _json_text(key) + ":")
                write(element)
            parts.append("}")
        elif isinstance(item, list):
            parts.append("[")
            for index, element in enumerate(item):
                if index:
                    parts.append(",")
                write(element)
            parts.append("]")
        elif isinstance(item, str):
            parts.append(_json_text(item))
        else:
            parts.append(json.dumps(item))
    write(data)
    return "".join(parts)


def _json_text(text: str) -> str:
    return json.dumps(text, ensure_ascii=False).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


# Go's builtins.

def _string(name: str, value: object, position: str = "") -> str:
    if not isinstance(value, str):
        raise FunctionError(f"wrong type for value; expected string; got {type_name(value)} (in {name}{position})")
    return value


def _integer(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FunctionError(f"wrong type for value; expected int; got {type_name(value)} (in {name})")
    return value


def _length(value: object) -> int:
    if isinstance(value, (str, list, tuple, dict)):
        return len(value.encode() if isinstance(value, str) else value)   # Go counts a string's bytes
    raise FunctionError(f"len of type {type_name(value)}" if value is not None else "len of nil pointer")


def _index(item: object, *keys: object) -> object:
    for key in keys:
        if item is None:
            raise FunctionError("index of untyped nil")
        if isinstance(item, dict):
            if not isinstance(key, str):
                raise FunctionError(f"value has type {type_name(key)}; should be string")
            item = item.get(key)
        elif isinstance(item, (list, tuple, str)):
            if isinstance(key, bool) or not isinstance(key, int):
                raise FunctionError(f"cannot index slice/array with type {type_name(key)}")
            if not 0 <= key < len(item):
                raise FunctionError(f"index out of range: {key}")
            item = item[key] if not isinstance(item, str) else item.encode()[key]
        else:
            raise FunctionError(f"can't index item of type {type_name(item)}")
    return item


def _slice(item: object, *bounds: object) -> object:
    if not isinstance(item, (str, list, tuple)):
        raise FunctionError(f"can't slice item of type {type_name(item)}")
    if len(bounds) > 2:
        raise FunctionError("too many slice indexes")
    numbers = [_integer("slice", bound) for bound in bounds]
    start = numbers[0] if numbers else 0
    end = numbers[1] if len(numbers) > 1 else len(item)
    if not 0 <= start <= end <= len(item):
        raise FunctionError(f"index out of range: {start}:{end}")
    return item[start:end]


def _comparable(a: object, b: object) -> tuple[object, object]:
    for value in (a, b):
        if value is None or value is MISSING:
            raise FunctionError("invalid type for comparison")
    numbers = (int, float)
    if isinstance(a, bool) != isinstance(b, bool) or isinstance(a, numbers) != isinstance(b, numbers) or \
            isinstance(a, str) != isinstance(b, str) or (isinstance(a, float) != isinstance(b, float)):
        raise FunctionError("incompatible types for comparison")
    return a, b


def _eq(first: object, *others: object) -> bool:
    if not others:
        raise FunctionError("missing argument for comparison")
    for other in others:
        a, b = _comparable(first, other)
        if a == b:
            return True
    return False


def _ordered(op: Callable[[Any, Any], bool]) -> Callable[[object, object], bool]:
    def compare(a: object, b: object) -> bool:
        a, b = _comparable(a, b)
        if isinstance(a, (bool, dict, list)):
            raise FunctionError(f"invalid type for comparison: {type_name(a)}")
        return op(a, b)
    return compare


def _sprint(*args: object) -> str:
    """fmt.Sprint: a space between two operands when neither is a string."""
    out = []
    for index, arg in enumerate(args):
        if index and not isinstance(arg, str) and not isinstance(args[index - 1], str):
            out.append(" ")
        out.append(go_string(arg))
    return "".join(out)


def _title(text: object) -> str:
    """strings.Title: the first letter of each word in upper case, the rest as it was."""
    out, previous = [], " "
    for char in _string("title", text):
        separator = not (previous.isalnum() or previous == "_")
        out.append(char.upper() if separator else char)
        previous = char
    return "".join(out)


def _join(items: object, separator: object) -> str:
    if not isinstance(items, (list, tuple)) or not all(isinstance(item, str) for item in items):
        raise FunctionError(f"wrong type for value; expected []string; got {type_name(items)} (in join)")
    return _string("join", separator).join(items)


def _html(*args: object) -> str:
    text = _sprint(*args)
    for char, entity in (("&", "&amp;"), ("'", "&#39;"), ("<", "&lt;"), (">", "&gt;"), ('"', "&#34;"),
                         ("\x00", "\ufffd")):
        text = text.replace(char, entity)
    return text


def _js(*args: object) -> str:
    out = []
    for char in _sprint(*args):
        if char in "\\'\"":
            out.append("\\" + char)
        elif char in "<>&=" or ord(char) < 0x20:
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return "".join(out)


def _pad(text: object, prefix: object, suffix: object) -> str:
    return " " * _integer("pad", prefix) + _string("pad", text) + " " * _integer("pad", suffix)


def _truncate(text: object, length: object) -> str:
    return _string("truncate", text)[:max(0, _integer("truncate", length))]


def _printf(form: object, *args: object) -> str:
    from agent.cli.gotemplate.printf import sprintf
    return sprintf(_string("printf", form), args)


FUNCTIONS: dict[str, Callable[..., object]] = {
    # Go's builtins
    "len": _length,
    "index": _index,
    "slice": _slice,
    "not": lambda value: not truth(value),
    "eq": _eq,
    "ne": lambda a, b: not _eq(a, b),
    "lt": _ordered(lambda a, b: a < b),
    "le": _ordered(lambda a, b: a <= b),
    "gt": _ordered(lambda a, b: a > b),
    "ge": _ordered(lambda a, b: a >= b),
    "print": _sprint,
    "println": lambda *args: " ".join(go_string(arg) for arg in args) + "\n",
    "printf": _printf,
    "html": _html,
    "js": _js,
    "urlquery": lambda *args: quote_plus(_sprint(*args)),
    # docker's (cli/templates/templates.go)
    "json": go_json,
    "split": lambda text, separator: _string("split", text).split(_string("split", separator))
    if separator != "" else list(_string("split", text)),
    "join": _join,
    "title": _title,
    "lower": lambda text: _string("lower", text).lower(),
    "upper": lambda text: _string("upper", text).upper(),
    "pad": _pad,
    "truncate": _truncate,
}

# A `table` format's header row runs the same template over the column names, with docker's
# HeaderFunctions: these functions give their argument back unchanged.
HEADER_FUNCTIONS: dict[str, Callable[..., object]] = {
    **FUNCTIONS,
    **{name: (lambda value, *_: value) for name in ("json", "split", "join", "title", "lower", "upper",
                                                      "truncate")},
}
