"""HTTP keep-alive between ApiClient and the API server: one connection reused across JSON
calls, a connection the server closed found and replaced, a request the server never read sent
again (and one it may have read not), and the server's limits on kept connections (idle time,
requests per connection, the connection cap, stop)."""
from __future__ import annotations

import json
import select
import socket
import tempfile
import threading
from pathlib import Path

import pytest

from agent.api import http_limits
from agent.api.client import ApiClient
from agent.errors import CorralError, DaemonUnavailable
from tests.unit.fake_runtime import FakeDaemon

BOUND = 30      # seconds: a bound for a broken server, not a timing assertion


@pytest.fixture
def daemon():
    with FakeDaemon() as instance:
        yield instance


def server_state(daemon):
    return daemon.server._server          # type: ignore[union-attr]


def kept_socket(daemon) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(BOUND)
    sock.connect(str(daemon.socket))
    return sock


def answer(sock: socket.socket) -> tuple[bytes, bytes]:
    """One answer's head and body off a kept connection (bodies here carry Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection after {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
    while len(body) < length:
        body += sock.recv(65536)
    return head, body


GET_VERSION = b"GET /v1/version HTTP/1.1\r\nHost: x\r\n\r\n"


def wait_for(condition, what: str) -> None:
    event = threading.Event()
    for _ in range(BOUND * 20):
        if condition():
            return
        event.wait(0.05)
    raise AssertionError(f"{what} did not happen within {BOUND} s")


# The client side


def test_json_calls_share_one_connection(daemon):
    client = ApiClient(daemon.host)
    try:
        created = client.create_container({"image": "busybox", "command": ["true"]}, start=True)
        client.inspect_container(created["id"])
        daemon.runtime.finish(created["id"], 0)
        assert client.wait_container(created["id"])["exit_code"] == 0
        client.remove_container(created["id"])
        with pytest.raises(Exception, match="no such container"):
            client.inspect_container(created["id"])       # an error answer keeps it too
        assert client.version()["version"]
        assert client._kept.opened == 1
    finally:
        client.close()


def test_a_client_with_a_timeout_reuses_its_connection_without_waiting(daemon):
    """The peek that checks a kept connection must not wait: a socket with a timeout polls for
    that long before a recv, MSG_DONTWAIT or not, and then the connection was dropped as dead
    (every reused call of a client with a timeout stalled for the whole timeout)."""
    client = ApiClient(daemon.host, timeout=1.0)
    try:
        for _ in range(3):
            assert client.version()["version"]
        assert client._kept.opened == 1
    finally:
        client.close()


def test_streams_do_not_take_the_kept_connection(daemon):
    client = ApiClient(daemon.host)
    try:
        created = client.create_container({"image": "busybox", "command": ["true"]})
        daemon.runtime.logs_of[created["id"]] = b""
        list(client.logs(created["id"]))
        client.inspect_container(created["id"])
        assert client._kept.opened == 1
    finally:
        client.close()


def test_a_connection_the_server_closed_while_idle_is_replaced(daemon):
    client = ApiClient(daemon.host)
    try:
        client.version()
        server = server_state(daemon)
        wait_for(lambda: len(server._idle) == 1, "the connection idling on the server")
        for handler in list(server._idle):
            handler.drain()                        # what the cap and stop do
        wait_for(lambda: server._open == 0, "the server closing it")
        assert client.version()["version"]
        assert client._kept.opened == 2
    finally:
        client.close()


class ScriptedServer:
    """A UNIX socket server that answers the first request of its first connection with
    keep-alive, then does `second` with that connection when the next request arrives, and
    answers every later connection's request normally. It records each request it read."""

    def __init__(self, second: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="corral-ka-", dir="/tmp"))
        self.path = str(self.dir / "s.sock")
        self.second = second
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(8)
        self.requests: list[bytes] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _read_request(self, conn: socket.socket) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return b""
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                while len(body) < int(line.split(b":")[1]):
                    body += conn.recv(65536)
        self.requests.append(head.split(b"\r\n")[0])
        return head

    @staticmethod
    def _answer(conn: socket.socket) -> None:
        body = json.dumps({"version": "scripted"}).encode()
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(body), body))

    def _run(self) -> None:
        first, _ = self.listener.accept()
        first.settimeout(BOUND)
        self._read_request(first)
        self._answer(first)
        select.select([first], [], [], BOUND)     # the next request is in the socket, unread
        if self.second == "close unread":
            first.close()                            # the client's recv is reset
        else:                                        # "close after reading"
            self._read_request(first)
            first.close()                            # the client sees the end, no answer
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(BOUND)
                if self._read_request(conn):
                    self._answer(conn)

    def close(self) -> None:
        self.listener.close()
        import shutil
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_request_the_server_closed_unread_is_sent_again(method):
    server = ScriptedServer("close unread")
    client = ApiClient(f"unix://{server.path}")
    try:
        client.version()
        assert client._json(method, "/v1/version")["version"] == "scripted"
        assert client._kept.opened == 2
        # Read once on the first connection and once (the repeat) on the second.
        assert server.requests == [b"GET /v1/version HTTP/1.1", f"{method} /v1/version HTTP/1.1".encode()]
    finally:
        client.close()
        server.close()


def test_a_request_the_server_may_have_read_is_repeated_only_when_it_is_a_get():
    server = ScriptedServer("close after reading")
    client = ApiClient(f"unix://{server.path}")
    try:
        client.version()
        with pytest.raises(DaemonUnavailable, match="before the answer began"):
            client._json("POST", "/v1/containers/x/kill")      # done or not: the caller is told
        assert server.requests[1:] == [b"POST /v1/containers/x/kill HTTP/1.1"]
    finally:
        client.close()
        server.close()
    server = ScriptedServer("close after reading")
    client = ApiClient(f"unix://{server.path}")
    try:
        client.version()
        assert client.version()["version"] == "scripted"
        assert server.requests[1:] == [b"GET /v1/version HTTP/1.1"] * 2
    finally:
        client.close()
        server.close()


# The server side


def test_an_idle_kept_connection_is_closed_and_its_thread_ends(daemon, monkeypatch):
    monkeypatch.setattr(http_limits, "KEEPALIVE_TIMEOUT", 0.2)
    with kept_socket(daemon) as sock:
        sock.sendall(GET_VERSION)
        head, _ = answer(sock)
        assert head.startswith(b"HTTP/1.1 200") and b"connection: close" not in head.lower()
        assert sock.recv(1) == b""                 # closed by the server once idle
    wait_for(lambda: server_state(daemon)._open == 0, "the connection's thread ending")


def test_a_kept_connection_serves_at_most_the_request_limit(daemon, monkeypatch):
    monkeypatch.setattr(http_limits, "MAX_REQUESTS_PER_CONNECTION", 3)
    with kept_socket(daemon) as sock:
        heads = []
        for _ in range(3):
            sock.sendall(GET_VERSION)
            heads.append(answer(sock)[0].lower())
        assert [b"connection: close" in head for head in heads] == [False, False, True]
        assert sock.recv(1) == b""


def test_idle_kept_connections_make_room_at_the_cap(daemon):
    server_state(daemon).max_connections = 2
    kept = [kept_socket(daemon) for _ in range(2)]
    try:
        for sock in kept:
            sock.sendall(GET_VERSION)
            answer(sock)
        wait_for(lambda: len(server_state(daemon)._idle) == 2, "both connections idling")
        # A third client is served, not told 503: one of the idle connections made room (the
        # one idling longest: which one that is depends on when each thread began to wait).
        with ApiClient(daemon.host) as client:
            assert client.version()["version"]
        served = []
        for sock in kept:
            try:
                sock.sendall(GET_VERSION)
                served.append(answer(sock)[0].startswith(b"HTTP/1.1 200"))
            except (BrokenPipeError, AssertionError):   # drained: EPIPE, or its end
                served.append(False)
        assert sorted(served) == [False, True]
    finally:
        for sock in kept:
            sock.close()


def test_connections_busy_with_a_request_are_not_drained(daemon):
    server_state(daemon).max_connections = 1
    with kept_socket(daemon) as held:
        held.sendall(b"GET /v1/ver")                 # mid-request: not idle, holds its slot
        wait_for(lambda: server_state(daemon)._open == 1, "the first connection counted")
        with ApiClient(daemon.host) as client, pytest.raises(CorralError, match="connections open"):
            client.version()


def test_stop_ends_kept_connections():
    with FakeDaemon() as daemon:
        sock = kept_socket(daemon)
        sock.sendall(GET_VERSION)
        answer(sock)
        wait_for(lambda: len(server_state(daemon)._idle) == 1, "the connection idling")
        server = server_state(daemon)
    try:
        assert sock.recv(1) == b""                 # the stopped server closed it
        wait_for(lambda: server._open == 0, "its thread ending")
    finally:
        sock.close()
