"""The JSON of a request body without importing the json package.

Why: `json` imports `re` (its decoder's number and string patterns), and `re` imports `enum`,
`functools` and its compiler: ~4-5 ms of every `corral run`, whose foreground path decodes no
JSON at all (the answer is Docker frames: agent/api/run_endpoints.py). A body is what the CLI
builds from flags: dicts with string keys, lists, strings, numbers, booleans and None; strings
are escaped by the same C function the json package's encoder uses. Anything else is handed to
json.dumps, so the text is always what json.dumps(value) would send.
"""
from __future__ import annotations

import math
from _json import encode_basestring_ascii

TYPE_CHECKING = False   # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from typing import Any


class _Unplain(Exception):
    """A value this module leaves to json.dumps."""


def dumps(value: Any) -> str:
    """json.dumps(value), with json imported only for values other than a body's plain types."""
    try:
        return _encoded(value)
    except _Unplain:
        import json
        return json.dumps(value)


def _encoded(value: Any) -> str:
    if isinstance(value, str):
        return str(encode_basestring_ascii(value))
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is int:
        return int.__repr__(value)
    if type(value) is float and math.isfinite(value):
        return float.__repr__(value)
    if type(value) is dict and all(type(key) is str for key in value):
        return "{" + ", ".join(f"{_encoded(key)}: {_encoded(item)}" for key, item in value.items()) + "}"
    if type(value) in (list, tuple):
        return "[" + ", ".join(_encoded(item) for item in value) + "]"
    raise _Unplain
