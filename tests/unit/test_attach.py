"""Attaching, without root: the detach keys, the shim's frames against a stand-in shim on a
real UNIX socket, the relay of agent/runtime/attach_session.py (log replay, live output, stdin,
end of stdin, detaching) and the CLI's side of it."""
from __future__ import annotations

import os
import socket
import struct
import threading
from pathlib import Path

import pytest

from agent.errors import InvalidArgument
from agent.runtime.attach import (
    EXIT,
    HELLO,
    RESIZE,
    SOCKET_NAME,
    STDIN,
    STDIN_EOF,
    DetachWatch,
    ShimGone,
    connect_shim,
    parse_detach_keys,
    resize_terminal,
)
from agent.runtime.attach_session import DETACHED, ENDED, EXITED, Attachment, AttachOptions, replay
from agent.runtime.model import CREATED, RUNNING
from agent.runtime.model import EXITED as STATE_EXITED

HEADER = struct.Struct(">BxxxI")


def frame(kind: int, payload: bytes) -> bytes:
    return HEADER.pack(kind, len(payload)) + payload


# Detach keys


@pytest.mark.parametrize(("text", "keys"), [
    ("ctrl-p,ctrl-q", b"\x10\x11"), ("a,ctrl-b", b"a\x02"), ("ctrl-@,ctrl-[,ctrl-_", b"\x00\x1b\x1f"),
    ("CTRL-A", b"\x01"), ("", b""),
])
def test_detach_keys_are_read_as_docker_writes_them(text, keys):
    assert parse_detach_keys(text) == keys


@pytest.mark.parametrize("text", ["ctrl-", "ctrl-1", "ab", "ctrl-p,", "é"])
def test_bad_detach_keys_are_named(text):
    with pytest.raises(InvalidArgument, match="is not a key") as caught:
        parse_detach_keys(text, field="--detach-keys")
    assert caught.value.field == "--detach-keys"


def test_the_detach_sequence_is_swallowed_and_a_partial_one_passed_on():
    watch = DetachWatch(b"\x10\x11")
    assert watch.feed(b"ls\x10") == b"ls"          # held back: it may be the start
    assert watch.feed(b"x") == b"\x10x"            # it was not
    assert watch.feed(b"\x10\x10") == b"\x10"      # a second start restarts the match
    assert not watch.detached
    assert watch.feed(b"\x11after") == b""
    assert watch.detached


def test_without_keys_everything_passes():
    watch = DetachWatch(b"")
    assert watch.feed(b"\x10\x11") == b"\x10\x11" and not watch.detached


# A stand-in shim: the socket protocol of launcher/tty.h


class FakeShim:
    """Listens on <dir>/attach.sock like the shim; records what clients send."""

    def __init__(self, directory: Path, *, log_offset: int = 0, tty: bool = True,
                 output: list[bytes] | None = None, exit_code: int | None = 0, wait_for_eof: bool = False) -> None:
        self.received: list[tuple[int, bytes]] = []
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(str(directory / SOCKET_NAME))
        self.listener.listen(4)
        self.hello = frame(HELLO, log_offset.to_bytes(8, "big") + bytes([1 if tty else 0]))
        self.output = output or []
        self.exit_code = exit_code
        self.wait_for_eof = wait_for_eof
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            conn.sendall(self.hello + b"".join(frame(1, data) for data in self.output))
            buffer = b""
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                buffer += data
                while len(buffer) >= 8:
                    kind, length = HEADER.unpack_from(buffer)
                    if len(buffer) < 8 + length:
                        break
                    self.received.append((kind, buffer[8:8 + length]))
                    if kind == STDIN:
                        conn.sendall(frame(1, b"echo:" + buffer[8:8 + length]))
                    buffer = buffer[8 + length:]
                    if kind == STDIN_EOF or (kind == STDIN and not self.wait_for_eof and self.exit_code is not None):
                        conn.sendall(frame(EXIT, str(self.exit_code).encode()))
                        return

    def close(self) -> None:
        self.listener.close()
        self.thread.join(timeout=5)


def test_a_connection_reads_the_greeting_and_the_output(tmp_path):
    shim = FakeShim(tmp_path, log_offset=123, tty=False, output=[b"one", b"two"])
    connection = connect_shim(tmp_path)
    assert (connection.hello.log_offset, connection.tty) == (123, False)
    connection.send_stdin(b"in")
    assert list(connection.frames()) == [(1, b"one"), (1, b"two"), (1, b"echo:in")]
    assert connection.exit_code == 0
    connection.close()
    shim.close()


def test_resize_sends_rows_and_columns(tmp_path):
    shim = FakeShim(tmp_path, exit_code=None)
    resize_terminal(tmp_path, 40, 120)
    shim.close()
    assert shim.received == [(RESIZE, struct.pack(">HH", 40, 120))]


def test_no_shim_is_shim_gone(tmp_path):
    with pytest.raises(ShimGone, match="does not answer"):
        connect_shim(tmp_path)
    with pytest.raises(ShimGone, match="is gone"):
        connect_shim(tmp_path / "missing")


def test_a_shim_that_does_not_greet_is_refused(tmp_path):
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp_path / SOCKET_NAME))
    listener.listen(1)

    def hang_up() -> None:
        conn, _ = listener.accept()
        conn.close()

    threading.Thread(target=hang_up, daemon=True).start()
    with pytest.raises(ShimGone, match="did not greet"):
        connect_shim(tmp_path)
    listener.close()


# The relay


def write_log(path: Path, *frames: tuple[int, bytes]) -> int:
    data = b"".join(frame(stream, payload) for stream, payload in frames)
    with open(path, "ab") as handle:
        handle.write(data)
    return path.stat().st_size


def attachment(tmp_path: Path, states: list[str], **options) -> Attachment:
    """An Attachment whose container goes through `states` (the last one stays)."""
    def state() -> str:
        return states.pop(0) if len(states) > 1 else states[0]

    return Attachment(state_dir=tmp_path, log_path=tmp_path / "container.log", tty=options.pop("tty", True),
                      close_stdin_at_eof=options.pop("stdin_once", False), options=AttachOptions(**options),
                      state=state, wait_change=lambda seconds: None)


def serve(att: Attachment, client_sends: bytes = b"", half_close: bool = True) -> tuple[str, bytes]:
    ours, theirs = socket.socketpair()
    ours.sendall(client_sends)
    if half_close:
        ours.shutdown(socket.SHUT_WR)
    result = att.serve(theirs)
    received = b""
    while data := ours.recv(65536):
        received += data
    ours.close()
    theirs.close()
    return result, received


def test_logs_replay_then_live_output_raw_for_a_terminal(tmp_path):
    offset = write_log(tmp_path / "container.log", (1, b"before "), (1, b"attach "))
    shim = FakeShim(tmp_path, log_offset=offset, output=[b"live"], exit_code=None)
    att = attachment(tmp_path, [RUNNING], logs=True, stdin=True)
    ours, theirs = socket.socketpair()
    results: list[str] = []
    thread = threading.Thread(target=lambda: results.append(att.serve(theirs)))
    thread.start()
    ours.sendall(b"x")
    received = b""
    while not received.endswith(b"echo:x"):
        received += ours.recv(100)
    ours.sendall(b"\x10\x11")
    thread.join(timeout=5)
    shim.close()
    assert results == [DETACHED]
    assert received == b"before attach liveecho:x"
    assert ours.recv(100) == b""                       # the daemon's side ended the connection
    assert shim.received == [(STDIN, b"x")]            # the keys themselves are not passed on


def test_without_a_terminal_output_is_framed_and_end_of_input_closes_stdin_once(tmp_path):
    write_log(tmp_path / "container.log", (1, b"old"))
    att = attachment(tmp_path, [RUNNING], tty=False, stdin=True, stdin_once=True, stderr=False)
    offset = write_log(tmp_path / "container.log", (2, b"hidden"), (1, b"new"))
    shim = FakeShim(tmp_path, log_offset=offset, tty=False, wait_for_eof=True)
    result, received = serve(att, b"data")
    shim.close()
    assert result == EXITED
    # Since the attach: stderr left out as asked, the log's part, then the live echo.
    assert received == frame(1, b"new") + frame(1, b"echo:data")
    assert shim.received == [(STDIN, b"data"), (STDIN_EOF, b"")]


def test_a_created_container_is_waited_for_and_nothing_of_its_start_missed(tmp_path):
    att = attachment(tmp_path, [CREATED, CREATED, RUNNING], stdin=True)
    shim = FakeShim(tmp_path, log_offset=write_log(tmp_path / "container.log", (1, b"first prompt")),
                    exit_code=3)
    result, received = serve(att, b"q", half_close=False)
    shim.close()
    assert result == EXITED and received == b"first promptecho:q"


def test_a_container_gone_meanwhile_gives_its_log(tmp_path):
    write_log(tmp_path / "container.log", (1, b"all of it"))
    att = attachment(tmp_path, [STATE_EXITED], logs=True)
    assert serve(att) == (EXITED, b"all of it")
    later = tmp_path / "later"
    later.mkdir()
    removed = attachment(later, [CREATED, None])       # attached before the start: the log is made and held
    write_log(later / "container.log", (1, b"ran and was removed"))
    (later / "container.log").unlink()                 # --rm: its state is gone before the relay looks
    assert serve(removed) == (EXITED, b"ran and was removed")


def test_logs_without_stream_end_after_the_replay(tmp_path):
    offset = write_log(tmp_path / "container.log", (1, b"so far"))
    shim = FakeShim(tmp_path, log_offset=offset, exit_code=None)
    att = attachment(tmp_path, [RUNNING], logs=True, stream=False)
    assert serve(att) == (ENDED, b"so far")
    shim.close()


def test_replay_stops_at_the_end_given_and_at_a_torn_frame(tmp_path):
    path = tmp_path / "log"
    end = write_log(path, (1, b"a"), (2, b"bb"))
    write_log(path, (1, b"after"))
    with open(path, "rb") as log:
        assert list(replay(log, 0, end)) == [(1, b"a"), (2, b"bb")]
        assert list(replay(log, 9, end)) == [(2, b"bb")]
        assert list(replay(log, 0, 0)) == []
        assert list(replay(None, 0, 10)) == []             # no log: the state was gone at attach
        with open(path, "ab") as handle:
            handle.write(b"\x01\x00")
        assert list(replay(log, end + 13, os.path.getsize(path))) == []


# The CLI's side


def test_the_cli_relay_passes_input_and_notices_the_detach_keys(capfdbinary):
    from agent.cli import terminal
    ours, theirs = socket.socketpair()
    read_end, write_end = os.pipe()
    os.write(write_end, b"typed\x10\x11ignored")
    theirs.sendall(b"shown")
    try:
        assert terminal.relay(ours, b"first ", tty=True, stdin=True, detach_keys=b"\x10\x11", stdin_fd=read_end)
        assert theirs.recv(100) == b"typed"
    finally:
        for fd in (read_end, write_end):
            os.close(fd)
        theirs.close()
    assert capfdbinary.readouterr().out.startswith(b"first ")


def test_the_end_of_input_is_a_half_close():
    from agent.cli import terminal
    ours, theirs = socket.socketpair()
    read_end, write_end = os.pipe()
    os.write(write_end, b"last words")
    os.close(write_end)

    def peer() -> None:
        received = b""
        while data := theirs.recv(100):
            received += data
        theirs.sendall(frame(1, received))          # answered only after the end of input
        theirs.close()

    thread = threading.Thread(target=peer)
    thread.start()
    try:
        assert terminal.relay(ours, b"", tty=False, stdin=True, stdin_fd=read_end) is False
    finally:
        os.close(read_end)
        thread.join(timeout=5)


def test_the_cli_relay_decodes_frames_and_the_exit_code(capfdbinary):
    from agent.cli import terminal
    ours, theirs = socket.socketpair()
    theirs.sendall(frame(1, b"out") + frame(2, b"err") + frame(3, b"6"))
    theirs.close()
    codes: list[int] = []
    assert terminal.relay(ours, b"", tty=False, stdin=False, on_exit_frame=codes.append) is False
    captured = capfdbinary.readouterr()
    assert (captured.out, captured.err, codes) == (b"out", b"err", [6])


def test_the_window_follower_sends_the_new_size(monkeypatch):
    import signal

    from agent.cli import terminal
    sizes: list[tuple[int, int]] = []
    monkeypatch.setattr(terminal, "terminal_size", lambda: (12, 34))
    before = signal.getsignal(signal.SIGWINCH)
    with terminal.WindowFollower(lambda rows, cols: sizes.append((rows, cols))):
        signal.raise_signal(signal.SIGWINCH)
    assert sizes == [(12, 34)]
    assert signal.getsignal(signal.SIGWINCH) == before
