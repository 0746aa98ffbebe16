"""The compat API's description (agent/dockerapi/openapi.yaml) and its route table in
docs/docker-api.md are generated from the router: every route a client (and so every test)
can reach is described, with its status."""
from __future__ import annotations

import yaml

from agent.dockerapi import openapi_gen


def test_openapi_yaml_is_generated_from_the_routes():
    assert openapi_gen.SPEC.read_text() == openapi_gen.spec_text(), "run `python -m agent.dockerapi.openapi_gen`"


def test_docs_route_table_is_up_to_date():
    current = openapi_gen.DOCS.read_text()
    assert current == openapi_gen.docs_text(current), "run `python -m agent.dockerapi.openapi_gen`"


def test_every_route_is_described_with_a_status():
    described = yaml.safe_load(openapi_gen.SPEC.read_text())["paths"]
    for method, pattern in openapi_gen.routes():
        operation = described[pattern.replace("*}", "}")][method.lower()]
        assert operation["x-corral-status"] in ("full", "partial", "refused")
        if operation["x-corral-status"] != "full":
            assert operation.get("description"), f"{method} {pattern}: say what is missing or why"


def test_routes_the_integration_tests_drive_are_described():
    described = yaml.safe_load(openapi_gen.SPEC.read_text())["paths"]
    touched = ["/_ping", "/version", "/info", "/events", "/system/df", "/containers/json", "/containers/create",
               "/containers/{id}/json", "/containers/{id}/start", "/containers/{id}/stop", "/containers/{id}/wait",
               "/containers/{id}/attach", "/containers/{id}/logs", "/containers/{id}/exec", "/exec/{id}/start",
               "/exec/{id}/json", "/containers/{id}/top", "/containers/{id}/stats", "/containers/{id}",
               "/containers/{id}/kill", "/containers/prune", "/images/json", "/images/create",
               "/images/{name}/json", "/images/{name}/tag", "/images/{name}/push", "/images/{name}",
               "/images/{name}/history", "/networks", "/networks/create", "/networks/{id}", "/volumes",
               "/volumes/{name}", "/swarm"]
    assert not [path for path in touched if path not in described]
