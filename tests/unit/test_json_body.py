"""agent/api/json_body.py: the body's JSON without the json package is json.dumps' text."""
from __future__ import annotations

import json

import pytest

from agent.api.json_body import dumps


@pytest.mark.parametrize("value", [
    {"image": "busybox", "command": ["sh", "-c", "echo \"hi\"\n\ttab\\"], "env": ["É=ünïcode", "E=\u2028\x00"]},
    {"memory": 67108864, "cpus": 0.5, "auto_remove": True, "tty": False, "console_size": None, "n": -0.0},
    {"nested": {"a": [{"b": []}, {}], "t": (1, 2)}, "big": 10 ** 30, "small": 1e-300, "e": 1e100},
    [], "", 0, None,
    # Not a body's plain types: json.dumps itself answers.
    {1: "int key"}, {"x": float("nan")}, {"b": b"bytes"[:0].decode()}, {"f": float("inf")},
])
def test_the_text_is_json_dumps_text(value):
    assert dumps(value) == json.dumps(value)


def test_what_json_refuses_is_refused():
    with pytest.raises(TypeError):
        dumps({"x": object()})
