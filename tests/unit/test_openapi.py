"""agent/api/openapi.yaml describes exactly the routes the server serves, and what the server
answers validates against its schemas (with a small validator for the OpenAPI 3.0 subset used)."""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import pkgutil
import re
from pathlib import Path

import jsonschema
import msgspec
import pytest
import yaml

import agent.api
from agent.api import frames, openapi_gen
from agent.api.bodies import ExecRequest, ImportRequest
from agent.api.server import ApiServer
from agent.images.model import Image, ImageConfig
from agent.runtime.model import Container, ContainerSpec, Mount
from tests.unit.fake_runtime import FakeDaemon

SPEC = yaml.safe_load((Path(__file__).parents[2] / "agent/api/openapi.yaml").read_text())
METHODS = {"get", "post", "put", "patch", "delete"}


def resolve(node: dict) -> dict:
    while "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        section = node["$ref"].split("/")[2]
        node = SPEC["components"][section][name]
    return node


def validate(value, schema: dict, where: str = "$") -> list[str]:
    """Errors of `value` against a schema of the document (OpenAPI 3.1: JSON Schema 2020-12)."""
    validator = jsonschema.Draft202012Validator({**schema, "components": SPEC["components"]})
    return [f"{where}{''.join(f'[{p!r}]' for p in error.absolute_path)}: {error.message}"
            for error in validator.iter_errors(value)]


def schema_of(name: str) -> dict:
    return SPEC["components"]["schemas"][name]


def served_routes() -> dict[tuple[str, str], set[str]]:
    """The core routes, plus every route group in agent/api/*_endpoints.py (a `...Endpoints`
    class with `register(router)`), built with no backends: registering touches none."""
    server = ApiServer(Path("/tmp/unused.sock"), None, None, dict)
    for found in pkgutil.iter_modules(agent.api.__path__):
        if not found.name.endswith("_endpoints"):
            continue
        module = importlib.import_module(f"agent.api.{found.name}")
        for name, cls in vars(module).items():
            if isinstance(cls, type) and name.endswith("Endpoints") and cls.__module__ == module.__name__:
                needed = [p for p in inspect.signature(cls).parameters.values() if p.default is p.empty]
                cls(*[None] * len(needed)).register(server.router)
    return {(route.method.lower(), route.pattern): set(route.query) for route in server.router.routes}


def described_routes() -> dict[tuple[str, str], set[str]]:
    routes = {}
    for path, item in SPEC["paths"].items():
        for method in set(item) & METHODS:
            parameters = [resolve(p) for p in item.get("parameters", []) + item[method].get("parameters", [])]
            routes[(method, path)] = {p["name"] for p in parameters if p["in"] == "query"}
    return routes


def test_every_served_route_is_described_and_vice_versa():
    served, described = served_routes(), described_routes()
    assert sorted(served) == sorted(described)
    for route, query in served.items():
        assert described[route] == query, f"query parameters of {route}"


def test_path_parameters_are_declared():
    for path, item in SPEC["paths"].items():
        for method in set(item) & METHODS:
            parameters = [resolve(p) for p in item[method].get("parameters", [])]
            declared = {p["name"] for p in parameters if p["in"] == "path"}
            assert declared == set(re.findall(r"\{(\w+)\}", path)), (method, path)


def test_the_committed_document_is_the_generated_one():
    assert (Path(__file__).parents[2] / "agent/api/openapi.yaml").read_text() == openapi_gen.render(), \
        "agent/api/openapi.yaml is stale: run `make openapi`"


def test_the_document_loads_as_openapi_3_1_with_every_operation():
    import schemathesis
    operations = [result.ok() for result in schemathesis.openapi.from_dict(SPEC).get_all_operations()]
    assert len(operations) == sum(len(set(item) & METHODS) for item in SPEC["paths"].values())


def test_every_ref_resolves():
    text = json.dumps(SPEC)
    refs = set(re.findall(r'"\$ref": "([^"]+)"', text))
    assert refs
    for ref in refs:
        _, section, kind, name = ref.split("/")
        assert name in SPEC[section][kind], ref


@pytest.mark.parametrize("schema, cls", [("ContainerSpec", ContainerSpec), ("Container", Container),
                                         ("Mount", Mount), ("ExecRequest", ExecRequest),
                                         ("ImportRequest", ImportRequest), ("Image", Image),
                                         ("ImageConfig", ImageConfig)])
def test_object_schemas_have_the_fields_of_their_dataclass(schema, cls):
    names = ({f.name for f in msgspec.structs.fields(cls)} if issubclass(cls, msgspec.Struct)
             else {f.name for f in dataclasses.fields(cls)})
    listed_only = {"Container": {"health"}}.get(schema, set())   # added by GET /v1/containers, not stored
    assert set(schema_of(schema)["properties"]) - listed_only == names
    assert schema_of(schema)["additionalProperties"] is False


def test_the_validator_can_fail():
    assert validate({"exit_code": "0", "oom_killed": False}, schema_of("WaitResult"))
    assert validate({"exit_code": 0}, schema_of("WaitResult"))
    assert validate({"exit_code": 0, "oom_killed": False, "x": 1}, schema_of("WaitResult"))
    assert not validate({"exit_code": None, "oom_killed": False}, schema_of("WaitResult"))


def response_schema(method: str, path: str, status: int, media: str = "application/json") -> dict:
    responses = SPEC["paths"][path][method]["responses"]
    response = resolve(responses.get(str(status)) or responses["default"])
    return response["content"][media]["schema"]


def test_responses_of_the_server_validate():
    with FakeDaemon() as daemon:
        def check(method, target, pattern, body=None, expect=200, media="application/json"):
            status, headers, data = daemon.raw(method.upper(), target, json.dumps(body) if body is not None else None)
            assert status == expect, data
            if status == 204:
                assert "204" in SPEC["paths"][pattern][method]["responses"] and data == b""
                return None
            assert headers["Content-Type"] == media
            assert str(status) in SPEC["paths"][pattern][method]["responses"] or status >= 400
            schema = response_schema(method, pattern, status, media)
            if media == "application/json":
                value = json.loads(data)
                assert validate(value, schema) == [], target
                return value
            if media == "application/x-ndjson":
                for line in data.splitlines():
                    assert validate(json.loads(line), schema) == [], line
            return data

        check("get", "/v1/version", "/v1/version")
        check("get", "/v1/info", "/v1/info")
        created = check("post", "/v1/containers?start=true", "/v1/containers",
                        {"image": "busybox", "name": "web", "memory": 64 << 20,
                         "mounts": [{"source": "/srv", "target": "/data", "readonly": True}],
                         "cpus": 0.5, "labels": {"a": "b"}, "entrypoint": ["sh"],
                         "ports": [{"host_port": 8080, "container_port": 80}]},
                        expect=201)
        check("get", "/v1/containers?all=true", "/v1/containers")
        check("get", "/v1/containers/web", "/v1/containers/{ref}")
        daemon.runtime.write_log("web", 1, b"hello\n")
        logs = check("get", "/v1/containers/web/logs", "/v1/containers/{ref}/logs", media=frames.MEDIA_TYPE)
        assert frames.decode_all(logs) == [(1, b"hello\n")]
        out = check("post", "/v1/containers/web/exec", "/v1/containers/{ref}/exec",
                    {"command": ["sh", "-c", "exit 2"]}, media=frames.MEDIA_TYPE)
        assert frames.decode_all(out)[-1] == (3, b"2")
        check("post", "/v1/containers/web/kill?signal=TERM", "/v1/containers/{ref}/kill")
        check("post", "/v1/containers/web/wait", "/v1/containers/{ref}/wait")
        check("post", "/v1/containers/web/start", "/v1/containers/{ref}/start")
        check("post", "/v1/containers/web/stop?timeout=1", "/v1/containers/{ref}/stop")
        check("delete", f"/v1/containers/{created['id']}?force=true", "/v1/containers/{ref}", expect=204)
        check("get", "/v1/containers/web", "/v1/containers/{ref}", expect=404)
        check("post", "/v1/containers", "/v1/containers", {"image": "busybox", "x": 1}, expect=400)
        check("get", "/v1/images", "/v1/images")
        check("post", "/v1/images/import", "/v1/images/import", {"path": "/a.tar", "reference": "app"}, expect=201)
        check("delete", "/v1/images/app", "/v1/images/{ref}", expect=204)
        check("get", "/v1/events?since=0", "/v1/events", media="application/x-ndjson")
