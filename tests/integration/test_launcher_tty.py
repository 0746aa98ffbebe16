"""The shim's terminal, stdin and attach socket (launcher/tty.h: tty.c, attach.c, relay.c), driven as the daemon drives
them: through agent.runtime.attach's ShimConnection."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import pytest

from agent.runtime.attach import SOCKET_NAME, ShimGone, connect_shim
from tests.integration.launcher_support import (
    STEP_TIMEOUT,
    Launcher,
    build_launcher,
    build_rootfs,
    decode_frames,
    wait_until,
)

pytestmark = pytest.mark.privileged


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    base = tmp_path_factory.mktemp("launcher-tty")
    return build_launcher(base), build_rootfs(base / "rootfs")


@pytest.fixture
def launcher(built, tmp_path):
    binary, rootfs = built
    runner = Launcher(binary=binary, rootfs=rootfs, tmp=tmp_path)
    yield runner
    runner.cleanup()


def read_until(connection, needle: bytes) -> bytes:
    """Output frames until `needle` shows up in what was read (a bounded wait)."""
    seen = b""
    deadline = time.monotonic() + STEP_TIMEOUT        # output that keeps coming must not extend it
    connection.sock.settimeout(STEP_TIMEOUT)
    for _stream, data in connection.frames():
        seen += data
        if needle in seen:
            return seen
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"{needle!r} never came; got {seen[-400:]!r}")


def test_a_terminal_is_the_containers_stdio_and_the_shim_keeps_it(launcher):
    shim = launcher.start("--tty", "--stdin", "--attach-socket", str(launcher.tmp / SOCKET_NAME),
                          "--tty-size", "33,101", command=["/bin/sh"])
    connection = connect_shim(launcher.tmp)
    assert connection.tty
    connection.send_stdin(b"tty; stty size; echo done-$((6*7))\n")
    seen = read_until(connection, b"done-42")
    assert b"/dev/pts/0" in seen and b"33 101" in seen
    connection.resize(40, 120)
    connection.send_stdin(b"stty size\n")
    assert b"40 120" in read_until(connection, b"40 120")
    connection.close()                            # detached: the shell goes on

    again = connect_shim(launcher.tmp)
    assert again.hello.log_offset > 0             # what came before is in the log
    again.send_stdin(b"exit 3\n")
    for _ in again.frames():
        pass
    assert again.exit_code == 3
    assert shim.exit_code() == 3
    # One stream, raw bytes as the terminal wrote them (CRLF included).
    frames = shim.frames()
    assert {stream for stream, _ in frames} == {1}
    assert b"done-42\r\n" in b"".join(data for _, data in frames)
    assert not (launcher.tmp / SOCKET_NAME).exists()


def test_a_resize_from_a_client_that_closed_at_once_is_applied_with_output_waiting(launcher):
    """The daemon resizes on a connection of its own: RESIZE, then close at once. When output
    waits in the same turn of the shim's loop (the shell's redraw after a resize: `docker
    attach` sends rows+1, cols+1, then the size), sending it to that closed client fails; the
    client must still have its RESIZE read, or the terminal keeps the older size."""
    shim = launcher.start("--tty", "--attach-socket", str(launcher.tmp / SOCKET_NAME), "--tty-size", "24,80",
                          command=["/bin/sh", "-c", "while :; do stty size; usleep 20000; done"])
    watcher = connect_shim(launcher.tmp)
    read_until(watcher, b"24 80")
    for rows, cols in ((26, 91), (25, 90), (41, 121), (40, 120)):
        resizer = connect_shim(launcher.tmp)            # greeted: one of the shim's clients now
        os.kill(shim.process.pid, signal.SIGSTOP)       # its next turn sees output and RESIZE at once
        try:
            time.sleep(0.1)                             # the shell prints its size meanwhile
            resizer.resize(rows, cols)
            resizer.close()
        finally:
            os.kill(shim.process.pid, signal.SIGCONT)
        read_until(watcher, b"%d %d" % (rows, cols))


def test_stdin_without_a_terminal_reaches_end_of_file(launcher):
    shim = launcher.start("--stdin", "--attach-socket", str(launcher.tmp / SOCKET_NAME),
                          command=["/bin/sh", "-c", "cat; echo err >&2"])
    connection = connect_shim(launcher.tmp)
    assert not connection.tty
    connection.send_stdin(b"hello\n")
    connection.close_stdin()
    out = [(stream, data) for stream, data in connection.frames()]
    assert connection.exit_code == 0
    assert b"".join(d for s, d in out if s == 1) == b"hello\n"
    assert b"".join(d for s, d in out if s == 2) == b"err\n"
    assert shim.exit_code() == 0
    assert decode_frames(shim.log.read_bytes()) == [(1, b"hello\n"), (2, b"err\n")]


def test_a_client_gone_does_not_close_stdin(launcher):
    shim = launcher.start("--stdin", "--attach-socket", str(launcher.tmp / SOCKET_NAME),
                          command=["/bin/cat"])
    first = connect_shim(launcher.tmp)
    first.send_stdin(b"one\n")
    read_until(first, b"one")
    first.close()                                 # like a daemon restart: no end-of-file
    time.sleep(0.2)
    assert shim.process.poll() is None
    second = connect_shim(launcher.tmp)
    second.send_stdin(b"two\n")
    read_until(second, b"two")
    second.close_stdin()
    assert shim.exit_code() == 0
    assert b"one\ntwo\n" == b"".join(d for _, d in shim.frames())


def test_the_socket_is_only_for_root_and_goes_with_the_container(launcher):
    path = launcher.tmp / SOCKET_NAME
    shim = launcher.start("--attach-socket", str(path), command=["/bin/sleep", "30"])
    assert os.stat(path).st_mode & 0o777 == 0o600
    os.kill(shim.pid, 9)
    assert shim.exit_code() == 137
    assert not path.exists()
    with pytest.raises(ShimGone):
        connect_shim(launcher.tmp)


def test_an_aborted_start_leaves_no_socket(launcher):
    path = launcher.tmp / SOCKET_NAME
    shim = launcher.spawn("--tty", "--attach-socket", str(path), command=["/bin/true"])
    assert shim.read_line().startswith("pid ")
    wait_until(path.exists, "the socket")
    shim.send("abort\n")
    assert shim.wait() == 1
    assert not path.exists()


def test_bad_console_options_are_named(launcher):
    shim = launcher.spawn("--tty-size", "tall", command=["/bin/true"])
    assert shim.read_line() == 'error usage: --tty-size "tall": expected ROWS,COLS'
    shim.wait()


def test_exec_with_a_terminal_hands_its_master_over_fd_1(launcher):
    shim = launcher.start(command=["/bin/sleep", "30"])
    ours, theirs = socket.socketpair()
    with ours, theirs:
        process = subprocess.Popen([str(launcher.binary), "exec", "--pid", str(shim.pid), "--tty",
                                    "--tty-size", "20,70", "--", "/bin/sh", "-c", "tty; stty size; exit 4"],
                                   stdout=theirs, stderr=subprocess.PIPE, env={})
        theirs.close()
        ours.settimeout(STEP_TIMEOUT)
        _, fds, _, _ = socket.recv_fds(ours, 1, 1)
        assert len(fds) == 1
        master = fds[0]
        output = b""
        try:
            while chunk := os.read(master, 4096):
                output += chunk
        except OSError:                       # EIO: the slave is closed, all is read
            pass
        os.close(master)
        assert process.wait(timeout=STEP_TIMEOUT) == 4
        assert b"/dev/pts/0" in output and b"20 70" in output
