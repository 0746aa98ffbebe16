"""Docker's `filters` query parameter: JSON of {name: [values]} (or the older {name: {value: true}}).

Each route says which names it knows; another is a 400 in dockerd's words ("invalid filter
'x'"). Matching helpers here are the ones every list route shares (labels, names, ids).
"""
from __future__ import annotations

import fnmatch
import json
from typing import Iterable, Mapping

from agent.errors import InvalidArgument

Filters = dict[str, list[str]]


def parse(text: str, known: Iterable[str]) -> Filters:
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        raise InvalidArgument(f"filters: not JSON: {text[:80]!r}") from None
    if not isinstance(data, dict):
        raise InvalidArgument("filters: expected a JSON object of {name: [values]}")
    allowed = set(known)
    result: Filters = {}
    for name, values in data.items():
        if name not in allowed:
            raise InvalidArgument(f"invalid filter '{name}'")
        if isinstance(values, dict):          # {"label": {"a=b": true}}, what old clients send
            values = [value for value, on in values.items() if on]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise InvalidArgument(f"filters: {name}: expected a list of strings")
        result[name] = values
    return result


def labels_match(wanted: list[str], labels: Mapping[str, str]) -> bool:
    """Every `key` or `key=value` of `wanted` is on `labels` (docker ANDs label filters)."""
    for item in wanted:
        key, sep, value = item.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def any_match(wanted: list[str] | None, value: str, *, prefix: bool = False, substring: bool = False) -> bool:
    """True when no values are wanted, or one of them matches `value` (docker ORs one name's values)."""
    if not wanted:
        return True
    for item in wanted:
        if item == value or (prefix and value.startswith(item)) or (substring and item in value) \
                or fnmatch.fnmatchcase(value, item):
            return True
    return False


def truthy(wanted: list[str] | None) -> bool | None:
    """A boolean filter (`dangling=true`): None when absent."""
    if not wanted:
        return None
    value = wanted[-1].lower()
    if value not in ("true", "false", "1", "0"):
        raise InvalidArgument(f"filters: expected true or false, got {wanted[-1]!r}")
    return value in ("true", "1")
