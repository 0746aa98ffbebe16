"""The API of a real daemon under load, slow clients and a property-based fuzz run.

- 200 clients create a container of the same name at once: one 201, 199 409, every client
  answered, and nothing is left behind by the 199 (no cgroup, no state directory);
- a client that sends half a request and stalls does not stop another from being served, and
  is cut off at the request deadline;
- schemathesis, from the generated OpenAPI document, sends valid and invalid requests to every
  operation (20 of each, seeded): no answer is a 5xx.
"""
from __future__ import annotations

import glob
import json
import secrets
import socket
import tempfile
import threading
import urllib.parse
from pathlib import Path

import pytest
import yaml

from agent.api import http_limits, http_unix
from tests.integration.corral_daemon import leftovers, running_daemon

pytestmark = pytest.mark.privileged
OPENAPI = Path(__file__).parents[2] / "agent/api/openapi.yaml"
CLIENTS = 200


def call(daemon, method: str, target: str, body: bytes | None = None) -> tuple[int, bytes]:
    response = http_unix.request(str(daemon.socket), method, target, body=body, timeout=300,
                                 headers={"Content-Type": "application/json"} if body is not None else None)
    return response.status, response.read()


def corral_cgroups() -> set[str]:
    return set(glob.glob("/sys/fs/cgroup/*/corral/*")) | set(glob.glob("/sys/fs/cgroup/unified/corral/*"))


def test_200_concurrent_creates_of_one_name_make_one_container(daemon):
    name = f"race-{secrets.token_hex(3)}"
    body = json.dumps({"image": "busybox", "name": name, "command": ["sleep", "60"]}).encode()
    cgroups_before = corral_cgroups()
    start = threading.Barrier(CLIENTS)
    answers: list[tuple[int, bytes] | BaseException] = []
    lock = threading.Lock()

    def client() -> None:
        start.wait()
        try:
            answer: tuple[int, bytes] | BaseException = call(daemon, "POST", "/v1/containers", body)
        except BaseException as exc:  # noqa: BLE001 - a refused connection is what this test looks for
            answer = exc
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    errors = [a for a in answers if isinstance(a, BaseException)]
    assert errors == []
    statuses = sorted(status for status, _ in answers)          # type: ignore[misc]
    assert statuses == [201] + [409] * (CLIENTS - 1), {s: statuses.count(s) for s in set(statuses)}
    created = next(json.loads(data) for status, data in answers if status == 201)  # type: ignore[misc]
    conflict = next(json.loads(data) for status, data in answers if status == 409)  # type: ignore[misc]
    assert name in conflict["message"] and conflict["error"] == "Conflict"

    listed = json.loads(call(daemon, "GET", "/v1/containers?all=true")[1])
    assert [c["id"] for c in listed if c["name"] == name] == [created["id"]]
    assert [p.name for p in (daemon.root / "containers").iterdir() if p.is_dir()
            and p.name != "quarantine"] == [created["id"]]
    assert call(daemon, "DELETE", f"/v1/containers/{created['id']}?force=true")[0] == 204
    assert leftovers(created["id"]) == []
    assert not (daemon.root / "containers" / created["id"]).exists()
    assert corral_cgroups() <= cgroups_before


def test_a_stalled_half_request_pins_nothing_and_is_cut_off(daemon):
    stalled = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stalled.settimeout(http_limits.REQUEST_TIMEOUT * 3)   # a bound for a broken server only
    stalled.connect(str(daemon.socket))
    try:
        stalled.sendall(b"POST /v1/containers HTTP/1.1\r\nContent-Length: 500\r\n\r\n{\"image\": \"busy")
        status, data = call(daemon, "GET", "/v1/version")
        assert status == 200 and json.loads(data)["api_version"] == "v1"
        answer = b""
        while chunk := stalled.recv(65536):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 408 ") and b'"field"' in answer
    finally:
        stalled.close()


# --- schemathesis ----------------------------------------------------------------------------

# Operations left out, and why: creating and removing networks makes bridges and nft rules on
# the host with whatever subnet the fuzzer picks, outside this daemon's root.
SKIPPED = {"POST /v1/networks", "DELETE /v1/networks/{name}"}
# Only invalid bodies for these: a valid one makes the daemon reach out to whatever registry host
# the fuzzer wrote (tests talk to loopback and their own namespaces only); test_registry.py
# drives them against real registries on loopback.
INVALID_ONLY = {"POST /v1/images/pull", "POST /v1/images/push", "POST /v1/auth"}


def operations() -> list:
    import schemathesis

    # Tar uploads (PUT .../archive): schemathesis has no serializer for them; the generated
    # value goes as bytes, so the server sees arbitrary (mostly invalid) tar streams.
    @schemathesis.serializer("application/x-tar")
    def _tar(ctx, value) -> bytes:   # noqa: ANN001 - schemathesis' own signature
        return value if isinstance(value, (bytes, bytearray)) else str(value).encode()

    schema = schemathesis.openapi.from_dict(yaml.safe_load(OPENAPI.read_text()))
    found = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    return [op for op in found if op.label not in SKIPPED]


@pytest.fixture(scope="module")
def fuzzed_daemon():
    with tempfile.TemporaryDirectory(prefix="corral-fuzz-policies-") as policies:
        with running_daemon("--policies", policies) as instance:
            yield instance


def send(daemon, case) -> int:
    """The case over the UNIX socket; the status only (streams are not read to their end)."""
    kwargs = case.as_transport_kwargs(base_url="http://localhost")
    path = urllib.parse.quote(urllib.parse.urlsplit(kwargs["url"]).path, safe="/%")
    params = []
    for name, value in (kwargs.get("params") or {}).items():
        for item in value if isinstance(value, list) else [value]:
            params.append((str(name), item if isinstance(item, str) else json.dumps(item)))
    target = path + ("?" + urllib.parse.urlencode(params) if params else "")
    body = json.dumps(kwargs["json"]).encode() if "json" in kwargs else None
    response = http_unix.request(str(daemon.socket), kwargs["method"], target, body=body, timeout=60,
                                 headers={"Content-Type": "application/json"} if body is not None else None)
    try:
        return response.status
    finally:
        response.close()


@pytest.mark.parametrize("operation", operations(), ids=lambda op: op.label)
def test_schemathesis_finds_no_5xx(fuzzed_daemon, operation):
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    modes = [GenerationMode.NEGATIVE] if operation.label in INVALID_ONLY else \
        [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    for mode in modes:
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=20, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def no_server_error(case) -> None:
            status = send(fuzzed_daemon, case)
            assert status < 500, f"{case.method} {case.formatted_path}: {status}\n{case.as_curl_command()}"

        try:
            no_server_error()
        except Unsatisfiable:
            # Only a path parameter, which the URL carries as text whatever it is: nothing
            # invalid can be said about it, so there are no negative cases to send.
            if mode is not GenerationMode.NEGATIVE:
                raise
