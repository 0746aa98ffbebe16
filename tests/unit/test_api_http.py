"""The HTTP layer under the API: methods, sizes, limits and slow clients, on a real ApiServer
(over the FakeRuntime) spoken to byte by byte through its UNIX socket."""
from __future__ import annotations

import json
import socket
import threading

import pytest

from agent import schema
from agent.api import http_limits
from tests.unit.fake_runtime import FakeDaemon


@pytest.fixture
def daemon():
    with FakeDaemon(request_timeout=1.0) as instance:
        yield instance


def connect(daemon) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)     # a bound for a broken server, not a timing assertion
    sock.connect(str(daemon.socket))
    return sock


def exchange(daemon, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read until the server closes; the status, headers and body."""
    with connect(daemon) as sock:
        try:
            sock.sendall(data)
        except BrokenPipeError:
            pass     # the server answered early (413) and stopped reading: its answer is there
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("iso-8859-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def read_to_end(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def request(method: str, target: str, body: bytes = b"", extra: str = "") -> bytes:
    return (f"{method} {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def test_head_answers_the_get_headers_without_a_body(daemon):
    status, headers, body = exchange(daemon, request("HEAD", "/v1/version"))
    assert status == 200 and body == b""
    _, get_headers, get_body = exchange(daemon, request("GET", "/v1/version"))
    assert headers["content-length"] == get_headers["content-length"] == str(len(get_body))
    assert exchange(daemon, request("HEAD", "/v1/containers/nope"))[0] == 404


def test_options_lists_the_allowed_methods(daemon):
    status, headers, _ = exchange(daemon, request("OPTIONS", "/v1/containers"))
    assert status == 204 and headers["allow"] == "GET, HEAD, OPTIONS, POST"
    status, headers, _ = exchange(daemon, request("OPTIONS", "/v1/containers/web/start"))
    assert status == 204 and headers["allow"] == "OPTIONS, POST"
    assert exchange(daemon, request("OPTIONS", "/v9/nothing"))[0] == 404


def test_a_wrong_method_is_405_with_allow(daemon):
    status, headers, body = exchange(daemon, request("PUT", "/v1/containers"))
    assert status == 405 and headers["allow"] == "GET, HEAD, OPTIONS, POST"
    assert json.loads(body)["error"] == "MethodNotAllowed"


def test_an_unknown_method_is_501_with_a_json_body(daemon):
    status, headers, body = exchange(daemon, request("BREW", "/v1/version"))
    assert status == 501 and headers["content-type"] == "application/json"
    assert set(json.loads(body)) == {"error", "message", "hint", "field"}


def test_a_body_over_the_limit_is_413_without_being_read(daemon):
    # Only the headers are sent: the answer must not wait for the megabytes.
    head = b"POST /v1/containers HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (50 * 1024 * 1024)
    status, headers, body = exchange(daemon, head)
    assert status == 413 and headers["connection"] == "close"
    assert str(schema.MAX_BODY) in json.loads(body)["message"]
    big = json.dumps({"image": "busybox", "labels": {"a": "x" * schema.MAX_BODY}}).encode()
    assert exchange(daemon, request("POST", "/v1/containers", big))[0] == 413


def test_a_long_target_is_414_and_large_headers_431(daemon):
    status, _, body = exchange(daemon, request("GET", "/v1/containers?all=" + "1" * http_limits.MAX_TARGET))
    assert status == 414 and json.loads(body)["error"] == "TooLarge"
    status, _, _ = exchange(daemon, request("GET", "/v1/version?" + "a" * 70000))
    assert status == 414                                            # the stdlib's own line limit
    headers = "".join(f"X-Filler-{i}: {'v' * 1000}\r\n" for i in range(40))
    status, _, body = exchange(daemon, request("GET", "/v1/version", extra=headers))
    assert status == 431 and json.loads(body)["error"] == "TooLarge"
    many = "".join(f"X-{i}: v\r\n" for i in range(120))
    assert exchange(daemon, request("GET", "/v1/version", extra=many))[0] == 431


@pytest.mark.parametrize("target, field", [
    ("/v1/containers/web/stop?timeout=inf", "timeout"),
    ("/v1/containers/web/stop?timeout=-1", "timeout"),
    ("/v1/containers/web/kill?signal=KI%00LL", "signal"),
    ("/v1/containers/a%00b/start", "ref"),
    ("/v1/events?since=nan", "since"),
])
def test_bad_query_and_path_parameters_are_400_naming_them(daemon, target, field):
    method = "GET" if target.startswith("/v1/events") else "POST"
    status, _, body = exchange(daemon, request(method, target))
    assert (status, json.loads(body)["field"]) == (400, field), body


def test_a_client_that_stalls_mid_request_is_cut_off_and_pins_nothing(daemon):
    stalled = connect(daemon)
    stalled.sendall(b"POST /v1/containers HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"ima")
    other = connect(daemon)
    other.sendall(b"GET /v1/con")                     # half a request line, then nothing
    try:
        # Meanwhile another client is served at once...
        assert exchange(daemon, request("GET", "/v1/version"))[0] == 200
        # ...and the stalled ones are closed by the server (the deadline is 1 s here): the
        # one inside its body with a 408 first, the one inside its request line at once.
        assert read_to_end(stalled).startswith(b"HTTP/1.1 408 ")
        assert read_to_end(other) == b""
    finally:
        stalled.close()
        other.close()


def test_keep_alive_serves_several_requests_on_one_connection(daemon):
    with connect(daemon) as sock:
        for _ in range(3):
            sock.sendall(b"GET /v1/version HTTP/1.1\r\nHost: x\r\n\r\n")
            data = b""
            while b"\r\n\r\n" not in data or not data.endswith(b"}\n"):
                data += sock.recv(65536)
            assert data.startswith(b"HTTP/1.1 200")


def test_more_connections_than_the_cap_are_told_503(daemon):
    daemon.server._server.max_connections = 2      # type: ignore[union-attr]
    held = [connect(daemon) for _ in range(2)]
    try:
        for sock in held:
            sock.sendall(b"GET /v1/ver")           # open, mid-request: each holds a slot
        status, _, body = exchange(daemon, request("GET", "/v1/version"))
        assert status == 503 and "connections open" in json.loads(body)["message"]
    finally:
        for sock in held:
            sock.close()


def test_many_concurrent_clients_all_connect_and_are_answered(daemon):
    results: list[int] = []
    lock = threading.Lock()

    def one() -> None:
        status = exchange(daemon, request("GET", "/v1/version"))[0]
        with lock:
            results.append(status)

    threads = [threading.Thread(target=one) for _ in range(200)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 200
