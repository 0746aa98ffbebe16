"""Interactive exec and the connection takeover on the real ApiServer, backed by the in-memory
runtime (its exec runs the command on the host, with real pipes)."""
from __future__ import annotations

import socket

import pytest

from agent.api import frames
from agent.errors import Conflict, NotFound
from tests.unit.fake_runtime import FakeDaemon


@pytest.fixture
def daemon():
    with FakeDaemon() as running:
        running.client.create_container({"image": "busybox", "command": ["sh"], "name": "web"}, start=True)
        yield running


def read_all(sock: socket.socket, first: bytes) -> list[tuple[int, bytes]]:
    data = first
    while chunk := sock.recv(65536):
        data += chunk
    sock.close()
    return frames.decode_all(data)


def test_stdin_reaches_the_command_and_its_end_is_end_of_file(daemon):
    sock, exec_id, first = daemon.client.exec_interactive("web", ["sh", "-c", "cat; echo err >&2; exit 3"],
                                                          tty=False, stdin=True)
    assert len(exec_id) == 64
    sock.sendall(b"to cat\n")
    sock.shutdown(socket.SHUT_WR)
    got = read_all(sock, first)
    assert got[-1] == (frames.EXIT, b"3")
    assert b"".join(d for s, d in got if s == frames.STDOUT) == b"to cat\n"
    assert b"".join(d for s, d in got if s == frames.STDERR) == b"err\n"


def test_a_client_that_does_not_upgrade_gets_200_and_the_raw_stream(daemon):
    body = b'{"command": ["sh", "-c", "cat"], "stdin": true}'
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(daemon.socket))
        sock.sendall(b"POST /v1/containers/web/exec HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body) + b"typed")
        sock.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"Corral-Exec-Id: " in head and b"Connection: close" in head
    # Bytes sent right after the request (buffered by the server's reader) are not lost.
    assert frames.decode_all(rest) == [(frames.STDOUT, b"typed"), (frames.EXIT, b"0")]


def test_resizing_an_exec_without_a_terminal_is_a_conflict(daemon):
    sock, exec_id, first = daemon.client.exec_interactive("web", ["true"], tty=False, stdin=True)
    sock.shutdown(socket.SHUT_WR)
    read_all(sock, first)
    with pytest.raises(Conflict, match="has no terminal to resize"):
        daemon.client.resize_exec(exec_id, 10, 10)
    with pytest.raises(NotFound, match="no such exec"):
        daemon.client.resize_exec("0" * 64, 10, 10)


def test_attach_and_resize_name_the_container(daemon):
    with pytest.raises(NotFound):
        daemon.client.attach("nothing", stdin=True)
    with pytest.raises(NotFound):
        daemon.client.resize_container("nothing", 10, 10)


@pytest.mark.parametrize("query", ["h=0&w=10", "h=10", "h=x&w=1", "h=70000&w=1"])
def test_bad_sizes_are_400_naming_the_parameter(daemon, query):
    status, _, body = daemon.raw("POST", f"/v1/containers/web/resize?{query}")
    assert status == 400 and b'"field"' in body


def test_bad_detach_keys_are_400(daemon):
    status, _, body = daemon.raw("POST", "/v1/containers/web/attach?stream=1&detachKeys=ctrl-%E2%82%AC")
    assert status == 400 and b"detachKeys" in body
