"""Building API and config dataclasses from untrusted dicts (JSON bodies, state files, YAML).

Every `from_dict` in Corral goes through `check_keys`, so a typo in a field name is an error
that names the field and the object, never a silently ignored key.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from agent.errors import InvalidArgument


def check_keys(data: Any, cls: type, where: str) -> None:
    """Reject a non-object, unknown keys and missing required keys, naming them and `where`."""
    if not isinstance(data, dict):
        raise InvalidArgument(f"{where}: expected an object, got {type(data).__name__}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise InvalidArgument(f"{where}: unknown field {unknown[0]!r} (known: {', '.join(sorted(known))})")
    missing = [f.name for f in dataclasses.fields(cls) if f.name not in data
               and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    if missing:
        raise InvalidArgument(f"{where}: field {missing[0]!r} is required")
