"""Strict input at the API: every field of every request object, refused with 400 naming it.

The table is generated from the schemas themselves (msgspec.inspect), so a field added to
ContainerSpec or any body is covered without touching this file. Each case goes through a real
ApiServer (over the FakeRuntime) and must answer 400 with `field` = the path of the bad value,
never 500 and never 201.
"""
from __future__ import annotations

import json
from typing import Any, Iterator

import msgspec
import msgspec.inspect as mi
import pytest

from agent import schema
from agent.api.build_endpoints import BuildEndpoints
from agent.api.image_endpoints import ImageEndpoints
from agent.api.lifecycle_endpoints import LifecycleEndpoints
from agent.api.network_endpoints import NetworkEndpoints
from agent.api.openapi_gen import served_router
from agent.api.policy_endpoints import PolicyEndpoints
from agent.api.registry_endpoints import RegistryEndpoints
from agent.api.service_endpoints import ServiceEndpoints
from agent.api.volume_endpoints import VolumeEndpoints
from agent.errors import InvalidArgument
from agent.runtime.model import ContainerSpec
from tests.unit.fake_runtime import FakeDaemon

# A valid value for each required field, so a case changes exactly one thing.
VALID_REQUIRED = {
    "image": "busybox", "source": "/srv", "target": "/data", "host_port": 8080, "container_port": 80,
    "command": ["ls"], "path": "/a.tar", "reference": "app", "name": "net1", "text": "", "host": "/dev/null",
    "registry": "localhost:5000", "auth": {}, "names": ["busybox"], "soft": 1024, "hard": 2048, "replicas": 2,
    "context": "/srv", "network": "bridge", "container": "web",
    "Ulimit.name": "nofile",        # "Class.field" where the plain name's value does not fit
}
# Each body route, with a container `web` running for exec.
BODY_ROUTES = {route.body_type: (route.method, route.pattern.replace("{ref}", "web"))
               for route in served_router().routes if route.body_type is not None}


@pytest.fixture(scope="module")
def daemon():
    extra = [NetworkEndpoints(None).register, PolicyEndpoints(None).register, RegistryEndpoints(None).register,
             ImageEndpoints(None, None, None).register, ServiceEndpoints(None).register,
             BuildEndpoints(None).register,
             LifecycleEndpoints(None, None).register, VolumeEndpoints(None).register]
    with FakeDaemon(extra_routes=extra) as instance:
        instance.client.create_container({"image": "busybox", "name": "web"}, start=True)
        yield instance


def minimal(kind: type) -> dict[str, Any]:
    required = [f.name for f in mi.type_info(kind).fields if f.required]
    values = {name: VALID_REQUIRED.get(f"{kind.__name__}.{name}", VALID_REQUIRED.get(name)) for name in required}
    unknown = [name for name in required if name not in VALID_REQUIRED and f"{kind.__name__}.{name}" not in VALID_REQUIRED]
    assert not unknown, f"{kind.__name__}: add a valid value for {unknown} to VALID_REQUIRED"
    return values


def _core(t: mi.Type) -> mi.Type:
    """The type without `| None` and without its description."""
    while isinstance(t, (mi.UnionType, mi.Metadata)):
        if isinstance(t, mi.Metadata):
            t = t.type
            continue
        kinds = [k for k in t.types if not isinstance(k, mi.NoneType)]
        if len(kinds) != 1:
            break
        t = kinds[0]
    return t


def bad_values(t: mi.Type) -> Iterator[tuple[str, Any]]:
    """(what, value) pairs that a field of type `t` must refuse."""
    t = _core(t)
    if isinstance(t, mi.BoolType):
        yield from [("string for bool", "yes"), ("int for bool", 1), ("null for bool", None)]
    elif isinstance(t, mi.IntType):
        yield from [("bool for int", True), ("float for int", 2.5), ("integral float for int", 64.0),
                    ("string for int", "1"), ("2**63", 2 ** 63)]
        if t.ge is not None:
            yield "below the minimum", t.ge - 1
        if t.le is not None:
            yield "above the maximum", t.le + 1
    elif isinstance(t, mi.FloatType):
        yield from [("bool for number", True), ("string for number", "1.5")]
        if t.ge is not None:
            yield "below the minimum", t.ge - 1
        if t.le is not None:
            yield "above the maximum", t.le * 2 + 1
    elif isinstance(t, mi.StrType):
        yield from [("int for string", 123), ("bool for string", True), ("list for string", ["x"]),
                    ("NUL", "/a\x00b"), ("too long", "a" * ((t.max_length or 0) + 1))]
        if t.min_length:
            yield "empty", ""
    elif isinstance(t, mi.LiteralType):
        yield from [("not one of the values", "nope"), ("int for enum", 1)]
    elif isinstance(t, mi.ListType):
        yield from [("string for list", "text"), ("object for list", {}), ("list of null", [None])]
        if t.max_length is not None:
            yield "too many items", [None] * (t.max_length + 1)
    elif isinstance(t, mi.DictType):
        yield from [("string for object", "k=v"), ("int value", {"k": 1}), ("NUL in a key", {"a\x00": "v"})]
    elif isinstance(t, mi.StructType):
        yield from [("int for object", 5), ("unknown key", {**minimal(t.cls), "bogus": 1})]
    else:
        raise AssertionError(f"no bad values for {t!r}: teach this table the new type")


def cases() -> Iterator[Any]:
    """One case per (body, field path, bad value), fields of nested objects included."""
    def walk(top: type, kind: type, path: str, wrap) -> Iterator[Any]:
        yield pytest.param(top, wrap({**minimal(kind), "bogus": 1}), f"{path}bogus",
                           id=f"{top.__name__}.{path}bogus-unknown key")
        for field in mi.type_info(kind).fields:
            where = f"{path}{field.name}"
            for what, value in bad_values(field.type):
                if what == "too long" and len(value) > schema.MAX_BODY // 2:
                    continue   # the body limit (413) comes first; tested on its own
                yield pytest.param(top, wrap({**minimal(kind), field.name: value}), where,
                                   id=f"{top.__name__}.{where}-{what}")
            inner = _core(field.type)
            if isinstance(inner, mi.ListType) and isinstance(inner.item_type, mi.StructType):
                yield from walk(top, inner.item_type.cls, f"{where}[0].",
                                lambda item, name=field.name, k=kind: wrap({**minimal(k), name: [item]}))
    for kind in BODY_ROUTES:
        yield from walk(kind, kind, "", lambda body: body)


CASES = list(cases())


def test_the_table_covers_every_body_and_nested_object():
    tops = {param.values[0] for param in CASES}
    assert tops == set(BODY_ROUTES) and len(tops) >= 5
    fields = {param.values[2] for param in CASES}
    assert {"mounts[0].target", "ports[0].host_port", "labels", "pids_limit", "command"} <= fields


@pytest.mark.parametrize("kind, body, field", CASES)
def test_every_field_refuses_a_bad_value_naming_it(daemon, kind, body, field):
    method, target = BODY_ROUTES[kind]
    status, headers, data = daemon.raw(method, target, json.dumps(body))
    error = json.loads(data)
    assert status == 400, error
    assert headers["Content-Type"] == "application/json"
    assert error["field"] == field or error["field"].startswith((field + "[", field + ".")), error
    assert error["message"].startswith(error["field"] + ": "), error


# The cases issue 19 reported, literally: each was a 500 or a 201.
REPORTED = [
    ({"workdir": 123}, "workdir"), ({"image": True}, "image"), ({"entrypoint": "text"}, "entrypoint"),
    ({"labels": "k=v"}, "labels"), ({"mounts": 5}, "mounts"), ({"command": ["sh", "-c", "a\x00b"]}, "command[2]"),
    ({"env": ["A=1", "B=\x00"]}, "env[1]"), ({"hostname": "a\x00b"}, "hostname"), ({"workdir": "/a\x00"}, "workdir"),
    ({"pids_limit": 9223372036854775808}, "pids_limit"), ({"hostname": ["x"]}, "hostname"),
    ({"command": [None]}, "command[0]"), ({"auto_remove": "yes"}, "auto_remove"), ({"cpus": True}, "cpus"),
    ({"memory": 67108864.5}, "memory"), ({"labels": {"k": 1}}, 'labels["k"]'),
]


@pytest.mark.parametrize("change, field", REPORTED, ids=[f for _, f in REPORTED])
def test_the_reported_bodies_are_400_naming_the_field_and_value(daemon, change, field):
    body = {"image": "busybox", **change}
    status, _, data = daemon.raw("POST", "/v1/containers", json.dumps(body))
    error = json.loads(data)
    assert (status, error["field"]) == (400, field), error
    assert error["message"].startswith(f"{field}: ") and ", got " in error["message"], error


def test_json_nested_100000_deep_is_400_naming_the_depth(daemon):
    for body in ("[" * 100000 + "]" * 100000, '{"image": ' + "[" * 100000 + "]" * 100000 + "}"):
        status, _, data = daemon.raw("POST", "/v1/containers", body)
        error = json.loads(data)
        assert status == 400 and f"the limit is {schema.MAX_DEPTH}" in error["message"], error
    ok = '{"image": "busybox", "labels": {"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}}'
    assert daemon.raw("POST", "/v1/containers", ok)[0] == 201   # brackets in strings are not depth


def test_a_nul_escape_in_any_body_string_is_refused(daemon):
    status, _, data = daemon.raw("POST", "/v1/images/import", '{"path": "/a\\u0000b", "reference": "x"}')
    assert status == 400 and json.loads(data)["field"] == "path"


def test_decode_and_convert_report_the_same_path():
    body = {"image": "busybox", "mounts": [{"source": "/a", "target": "rel"}]}
    with pytest.raises(InvalidArgument) as decoded:
        schema.decode(json.dumps(body).encode(), ContainerSpec)
    with pytest.raises(InvalidArgument) as converted:
        schema.convert(body, ContainerSpec)
    assert decoded.value.field == converted.value.field == "mounts[0].target"
    assert "got 'rel'" in decoded.value.message


def test_a_valid_spec_round_trips_through_the_schema():
    spec = ContainerSpec.checked(image="busybox", command=["sh"], env=["A=1"], workdir="/w", hostname="h1",
                                 memory=64 << 20, cpus=1, pids_limit=10, labels={"a": "b"})
    assert msgspec.json.decode(msgspec.json.encode(spec), type=ContainerSpec) == spec
    assert spec.cpus == 1.0 and isinstance(spec.cpus, float)   # an int is a fine number


@pytest.mark.parametrize("change, message", [
    ({"mounts": [{"source": "/a", "target": "data"}]}, "mounts[0].target: expected an absolute path without NUL, got 'data'"),
    ({"env": ["X"]}, "env[0]: expected KEY=VALUE, without NUL, got 'X'"),
    ({"labels": {"ok": "1", "bad\x00": "2"}}, "labels: a key: expected a label key without NUL"),
    ({"memory": 1000}, "memory: expected int >= 4194304, got 1000"),
])
def test_patterns_are_reported_in_words(change, message):
    with pytest.raises(InvalidArgument) as error:
        schema.convert({"image": "busybox", **change}, ContainerSpec)
    assert error.value.message == message
