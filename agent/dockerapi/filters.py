"""Docker's `filters` query parameter. Parsing and the rules for containers, images and
events are Corral's own (agent/runtime/filters.py, shared with `corral ps --filter`); what is
here matches the listings only this API has (networks, prunes)."""
from __future__ import annotations

import fnmatch

from agent.errors import InvalidArgument
from agent.runtime.filters import Filters, labels_match, parse

__all__ = ["Filters", "any_match", "labels_match", "parse", "truthy"]


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
