"""Terminals and stdin through the real daemon and CLI, typed at a pseudo-terminal as a person
types: `run -it`, detaching with ctrl-p ctrl-q and attaching back, window sizes, `run -i` with a
pipe, `exec -it`, and a shell that outlives a daemon restart."""
from __future__ import annotations

import json
import time

import pytest

from tests.integration.pty_client import PtyClient

pytestmark = pytest.mark.privileged

PROMPT = b"# "          # busybox sh's prompt as root


@pytest.fixture
def terminals():
    opened: list[PtyClient] = []

    def open_client(daemon, *args, **size) -> PtyClient:
        client = PtyClient(daemon, *args, **size)
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        client.close()


def state(daemon, name: str) -> dict:
    return json.loads(daemon.out("inspect", name))[0]["State"]


def test_run_it_gives_a_shell_that_exits_with_its_code(daemon, terminals):
    term = terminals(daemon, "run", "-it", "--rm", "--name", "shell", "busybox", "sh", rows=33, cols=99)
    term.expect(PROMPT)
    term.send(b"echo $((40+2)); tty; stty size\r")
    shown = term.expect(b"99")
    assert b"42" in shown and b"/dev/pts/0" in shown and b"33 99" in shown
    term.send(b"exit 7\r")
    assert term.wait() == 7
    assert daemon.cli("inspect", "shell", check=False).returncode != 0     # --rm removed it


def test_detach_with_ctrl_p_ctrl_q_and_attach_back(daemon, terminals):
    term = terminals(daemon, "run", "-it", "--name", "detachable", "busybox", "sh")
    term.expect(PROMPT)
    term.send(b"KEPT=still-here\r")
    term.expect(PROMPT)
    term.send(b"\x10\x11")
    assert term.wait() == 0
    assert state(daemon, "detachable")["Running"] is True

    again = terminals(daemon, "attach", "detachable", rows=30, cols=100)
    again.send(b"echo $KEPT; stty size\r")
    shown = again.expect(b"30 100")
    assert b"still-here" in shown
    again.resize(41, 132)                    # the window changes: SIGWINCH, then a resize call
    again.expect_size(41, 132)
    again.send(b"exit 3\r")
    assert again.wait() == 3
    # A terminal's log is one stream of the bytes it showed, CRLF and all.
    logs = daemon.cli("logs", "detachable").stdout
    assert b"still-here\r\n" in logs
    daemon.cli("rm", "detachable")


def test_other_detach_keys(daemon, terminals):
    term = terminals(daemon, "run", "-it", "--detach-keys", "ctrl-a,x", "--name", "keys", "busybox", "sh")
    term.expect(PROMPT)
    term.send(b"\x10\x11echo p-and-q-pass\r")     # the default keys are plain input now
    term.expect(b"p-and-q-pass\r\n")
    term.send(b"\x01x")
    assert term.wait() == 0
    assert state(daemon, "keys")["Running"] is True
    daemon.cli("rm", "-f", "keys")


def test_stdin_from_a_pipe_reaches_end_of_file(daemon):
    result = daemon.cli("run", "-i", "--rm", "busybox", "sh", "-c", "cat; echo done >&2",
                        input=b"x\nsecond line\n")
    assert result.stdout == b"x\nsecond line\n"
    assert result.stderr == b"done\n"
    assert result.returncode == 0


def test_without_i_stdin_is_not_read(daemon):
    result = daemon.cli("run", "--rm", "busybox", "cat", input=b"never seen\n")
    assert result.stdout == b"" and result.returncode == 0


def test_ctrl_c_without_a_terminal_is_passed_to_the_container(daemon, terminals):
    term = terminals(daemon, "run", "-i", "--rm", "busybox", "sh", "-c",
                     "trap 'echo got-int; exit 5' INT; echo ready; while true; do sleep 0.1; done")
    term.expect(b"ready")
    term.send(b"\x03")                       # the terminal is not raw: SIGINT to the CLI
    term.expect(b"got-int")
    assert term.wait() == 5


def test_t_with_a_pipe_for_stdin_is_refused(daemon):
    result = daemon.cli("run", "-it", "--rm", "busybox", "true", input=b"", check=False)
    assert result.returncode == 125
    assert b"-t: the input device is not a terminal" in result.stderr


def test_attach_to_a_stopped_container_is_refused(daemon):
    daemon.cli("run", "--name", "stopped", "busybox", "true")
    result = daemon.cli("attach", "stopped", check=False)
    assert result.returncode == 125
    assert b"container stopped is not running" in result.stderr
    daemon.cli("rm", "stopped")


def test_a_detached_shell_survives_a_daemon_restart(daemon, terminals):
    cid = daemon.out("run", "-d", "-it", "--name", "survivor", "busybox", "sh")
    term = terminals(daemon, "attach", "survivor")
    term.send(b"SURVIVED=yes-$((1+1))\r")
    term.expect(PROMPT)
    daemon.stop()
    assert term.wait() != 0                  # its daemon went away under it
    daemon.start()
    again = terminals(daemon, "attach", cid)
    again.send(b"echo $SURVIVED\r")
    again.expect(b"yes-2")
    again.send(b"exit\r")
    assert again.wait() == 0
    daemon.cli("rm", "survivor")


def test_exec_it_gives_a_terminal_of_the_containers(daemon, terminals):
    daemon.cli("run", "-d", "--name", "host-of-exec", "busybox", "sleep", "600")
    try:
        term = terminals(daemon, "exec", "-it", "host-of-exec", "sh", rows=25, cols=90)
        term.expect(PROMPT)
        term.send(b"tty; stty size\r")
        shown = term.expect(b"25 90")
        assert b"/dev/pts/" in shown
        term.resize(31, 111)
        term.expect_size(31, 111)
        term.send(b"exit 4\r")
        assert term.wait() == 4
        piped = daemon.cli("exec", "-i", "host-of-exec", "sh", "-c", "cat; exit 2", input=b"through a pipe\n",
                           check=False)
        assert (piped.returncode, piped.stdout) == (2, b"through a pipe\n")
    finally:
        daemon.cli("rm", "-f", "host-of-exec")


def test_a_terminal_for_a_user_and_under_init_with_job_control(daemon, terminals):
    term = terminals(daemon, "run", "-it", "--rm", "--name", "jobs", "--init", "-u", "1000", "busybox", "sh")
    term.expect(b"$ ")                       # not root: the prompt says so
    term.send(b"echo uid=$(id -u) owner=$(stat -c %u $(tty))\r")
    term.expect(b"uid=1000 owner=1000")      # the terminal is the user's
    term.send(b"sleep 600\r")
    # Typed ahead, ctrl-C would reach the shell's line editor as a byte: wait for the job.
    deadline = time.monotonic() + 20
    while b"sleep 600" not in daemon.cli("exec", "jobs", "ps", "-o", "args").stdout:
        assert time.monotonic() < deadline, "sleep never started"
        time.sleep(0.1)
    term.send(b"\x03")                       # ctrl-C: the terminal signals its foreground job
    term.expect(b"$ ")
    term.send(b"echo back-$((2*21))\r")
    term.expect(b"back-42")
    term.send(b"exit 9\r")
    assert term.wait() == 9
