"""Terminals and stdin through the Docker Engine API: the real docker CLI in a pseudo-terminal
(as a person types into it), with piped stdin, and docker-py's exec and attach sockets.

What is checked is what a user sees: the shell's output, `stty size` after a resize, exit
codes, the container still running after a detach, and nothing left behind.
"""
from __future__ import annotations

import json
import socket
import time

import pytest

from tests.integration.corral_daemon import running_daemon
from tests.integration.docker_support import DockerCli
from tests.integration.pty_client import PtyClient

pytestmark = pytest.mark.privileged

PROMPT = b"# "          # busybox sh as root


@pytest.fixture(scope="module")
def daemon():
    with running_daemon() as instance:
        yield instance


@pytest.fixture(scope="module")
def docker(daemon, tmp_path_factory):
    return DockerCli(daemon, tmp_path_factory.mktemp("docker-config"))


@pytest.fixture(autouse=True)
def clean(daemon):
    yield
    daemon.remove_all()


@pytest.fixture
def terminal(daemon, docker):
    """The docker CLI in a terminal: terminal("run", "-it", ...)."""
    opened: list[PtyClient] = []

    def start(*args: str, rows: int = 24, cols: int = 80) -> PtyClient:
        client = PtyClient(daemon, *args, rows=rows, cols=cols, program=[docker.path], env=docker.env)
        opened.append(client)
        return client
    yield start
    for client in opened:
        client.close()


def _running(docker: DockerCli, name: str) -> bool:
    return json.loads(docker.out("inspect", name))[0]["State"]["Running"]


def test_run_it_gives_a_shell_and_its_exit_code(docker, terminal):
    shell = terminal("run", "--rm", "-it", "--name", "sh1", "busybox", "sh", rows=33, cols=101)
    shell.expect(PROMPT)
    shell.send(b"echo $((6 * 7)); tty\r")
    shell.expect(b"42")
    shell.expect(b"/dev/pts/")
    shell.send(b"stty size\r")
    shell.expect(b"33 101")                 # the size the CLI sent at create, then by resize
    shell.send(b"exit 3\r")
    assert shell.wait() == 3
    assert docker.out("ps", "-aq") == ""    # --rm: nothing left


def test_create_then_start_ai_and_a_command_that_cannot_start(docker, terminal):
    docker.run("create", "-it", "--name", "later", "busybox", "sh")
    shell = terminal("start", "-ai", "later")
    shell.expect(PROMPT)
    shell.send(b"echo started-$((3 * 3))\r")
    shell.expect(b"started-9")
    shell.send(b"exit 7\r")
    assert shell.wait() == 7
    missing = terminal("run", "--rm", "-it", "busybox", "no-such-command")
    assert missing.wait() == 127                  # docker's code for a command not found
    assert b"no-such-command" in missing.seen
    assert docker.out("ps", "-aq", "--filter", "status=created") == ""    # --rm: removed after the failed start


def test_piped_stdin_reaches_run_i_and_its_end_ends_the_container(docker):
    done = docker.run("run", "--rm", "-i", "busybox", "cat", input=b"hi\n")
    assert done.stdout == b"hi\n"
    many = b"".join(b"line %d\n" % n for n in range(20000))     # more than one pipe's worth
    done = docker.run("run", "--rm", "-i", "busybox", "sh", "-c", "wc -l; exit 4", input=many, check=False)
    assert (done.returncode, done.stdout.strip()) == (4, b"20000")
    assert docker.out("ps", "-aq") == ""


def test_exec_it_in_a_terminal_follows_its_size(docker, terminal):
    docker.run("run", "-d", "--name", "box", "busybox", "sleep", "300")
    shell = terminal("exec", "-it", "box", "sh", rows=30, cols=100)
    shell.expect(PROMPT)
    shell.send(b"stty size\r")
    shell.expect(b"30 100")
    shell.resize(40, 120)                   # SIGWINCH to the CLI, which resizes the exec
    shell.expect_size(40, 120)
    shell.send(b"exit 5\r")
    assert shell.wait() == 5
    assert _running(docker, "box")


def test_an_exec_outlives_its_detached_client_as_dockers_does(docker, terminal):
    docker.run("run", "-d", "--name", "box", "busybox", "sleep", "300")
    shell = terminal("exec", "-it", "box", "sh")
    shell.expect(PROMPT)
    # Output after the detach reaches no one: the shell must go on past it (not be hung up).
    shell.send(b"sleep 1; echo late; sleep 1; echo on > /tmp/marker\r")
    shell.send(b"\x10\x11")
    shell.wait()
    for _ in range(200):
        if docker.run("exec", "box", "test", "-e", "/tmp/marker", check=False).returncode == 0:
            break
        time.sleep(0.1)
    assert docker.out("exec", "box", "cat", "/tmp/marker") == "on"
    assert "sh" in docker.out("exec", "box", "ps", "-o", "args").splitlines()


def test_exec_i_with_piped_stdin_and_exec_options(docker):
    docker.run("run", "-d", "--name", "box", "busybox", "sleep", "300")
    assert docker.run("exec", "-i", "box", "cat", input=b"piped in\n").stdout == b"piped in\n"
    done = docker.run("exec", "-i", "box", "sh", "-c", "wc -c; exit 6", input=b"x" * 100000, check=False)
    assert (done.returncode, done.stdout.strip()) == (6, b"100000")
    assert docker.out("exec", "-u", "nobody", "-w", "/tmp", "-e", "A=b", "box",
                      "sh", "-c", "id -u; pwd; echo $A").split() == ["65534", "/tmp", "b"]
    refused = docker.run("exec", "--privileged", "box", "true", check=False)
    assert refused.returncode != 0 and b"Privileged" in refused.stderr


def test_attach_relays_the_terminal_and_detach_keys_leave_it_running(docker, terminal):
    docker.run("run", "-dit", "--name", "att", "busybox", "sh")
    shell = terminal("attach", "att", rows=25, cols=90)
    shell.send(b"echo attached-$((1 + 1))\r")
    shell.expect(b"attached-2")
    shell.expect_size(25, 90)               # docker attach resizes to its terminal
    shell.send(b"\x10\x11")                 # ctrl-p ctrl-q
    shell.wait()
    assert _running(docker, "att")
    again = terminal("attach", "--detach-keys", "ctrl-x", "att")
    again.send(b"echo still-$((2 + 2))\r")
    again.expect(b"still-4")
    again.send(b"\x18")
    again.wait()
    assert _running(docker, "att")


def test_run_it_detached_from_and_attached_again_with_its_log_raw(docker, terminal):
    shell = terminal("run", "-it", "--name", "back", "busybox", "sh")
    shell.expect(PROMPT)
    shell.send(b"echo before-$((5 + 5))\r")
    shell.expect(b"before-10")
    shell.send(b"\x10\x11")
    shell.wait()
    assert _running(docker, "back")
    again = terminal("attach", "back")
    again.send(b"echo after-$((5 + 6))\r")
    again.expect(b"after-11")
    again.send(b"exit 9\r")
    assert again.wait() == 9
    logs = docker.run("logs", "back").stdout     # a terminal's log is one raw stream, as dockerd's
    assert b"before-10\r\n" in logs and b"after-11\r\n" in logs and b"\x01\x00\x00\x00" not in logs


def test_debians_older_client_pipes_stdin_too(daemon, tmp_path):
    older = DockerCli(daemon, tmp_path, binary="docker-debian")      # docker.io 20.10: API 1.41
    assert older.run("run", "--rm", "-i", "busybox", "cat", input=b"from 20.10\n").stdout == b"from 20.10\n"
    older.run("run", "-d", "--name", "old", "busybox", "sleep", "300")
    assert older.run("exec", "-i", "old", "cat", input=b"exec 20.10\n").stdout == b"exec 20.10\n"


def test_debians_older_client_in_a_terminal(daemon, tmp_path):
    older = DockerCli(daemon, tmp_path, binary="docker-debian")
    older.run("run", "-d", "--name", "old", "busybox", "sleep", "300")
    shell = PtyClient(daemon, "exec", "-it", "old", "sh", rows=21, cols=77, program=[older.path], env=older.env)
    try:
        shell.expect(PROMPT)
        shell.expect_size(21, 77)                # API 1.41 sends no ConsoleSize: the CLI resizes after start
        shell.send(b"exit 2\r")
        assert shell.wait() == 2
    finally:
        shell.close()


def test_compose_exec_and_run_get_a_terminal(daemon, tmp_path):
    from tests.integration.test_compose import ComposeCli
    (tmp_path / "docker-compose.yml").write_text(
        'version: "3.8"\nservices:\n  box:\n    image: busybox\n    command: ["sleep", "300"]\n')
    compose = ComposeCli(daemon, tmp_path)
    argv = [*compose.argv, "--project-directory", str(tmp_path), "-f", str(tmp_path / "docker-compose.yml")]
    shells: list[PtyClient] = []
    try:
        compose.run("up", "-d")
        shells.append(shell := PtyClient(daemon, "exec", "box", "sh", rows=27, cols=88, program=argv, env=compose.env))
        shell.expect(PROMPT)
        shell.send(b"stty size\r")
        shell.expect(b"27 88")                  # compose (dockerpty) sizes the exec's terminal
        shell.send(b"exit 4\r")
        assert shell.wait() == 4
        # A one-off beside the running service (compose links it to the service's container).
        shells.append(one_off := PtyClient(daemon, "run", "--rm", "box", "sh", program=argv, env=compose.env))
        one_off.expect(PROMPT)
        one_off.send(b"ping -c 1 -W 5 box >/dev/null && echo one-off-$((4 * 4)); exit 5\r")
        one_off.expect(b"one-off-16")
        assert one_off.wait() == 5
    finally:
        for shell in shells:
            shell.close()
        compose.run("down", "-t", "1", check=False)


# docker-py

@pytest.fixture(scope="module")
def client(daemon):
    docker_py = pytest.importorskip("docker")
    client = docker_py.DockerClient(base_url=f"unix://{daemon.docker_socket}", version="auto", timeout=60)
    yield client
    client.close()


def _frames(sock) -> tuple[bytes, bytes]:
    from docker.utils.socket import consume_socket_output, demux_adaptor, frames_iter
    return consume_socket_output((demux_adaptor(*frame) for frame in frames_iter(sock, tty=False)), demux=True)


def test_docker_py_exec_with_stdin_socket_tty_and_demux(client):
    box = client.containers.run("busybox", ["sleep", "300"], detach=True)
    result = box.exec_run(["sh", "-c", "cat; echo done >&2"], stdin=True, socket=True)
    sock = result.output._sock
    sock.sendall(b"to stdin\n")
    sock.shutdown(socket.SHUT_WR)            # the end of input: cat reads end-of-file
    assert _frames(result.output) == (b"to stdin\n", b"done\n")
    code, output = box.exec_run(["sh", "-c", "tty; echo out"], tty=True)
    assert code == 0 and output.startswith(b"/dev/pts/") and output.endswith(b"out\r\n")
    code, (out, err) = box.exec_run(["sh", "-c", "echo out; echo err >&2; exit 3"], demux=True)
    assert (code, out, err) == (3, b"out\n", b"err\n")
    exec_id = client.api.exec_create(box.id, ["sh"], tty=True, stdin=True)["Id"]
    assert client.api.exec_inspect(exec_id)["ProcessConfig"]["tty"] is True


def test_docker_py_attach_socket_writes_to_stdin(client):
    box = client.containers.run("busybox", ["cat"], stdin_open=True, detach=True)
    sock = client.api.attach_socket(box.id, params={"stdin": 1, "stdout": 1, "stream": 1})
    sock._sock.sendall(b"echo me\n")
    from docker.utils.socket import next_frame_header, read_exactly
    stream, size = next_frame_header(sock)
    assert (stream, read_exactly(sock, size)) == (1, b"echo me\n")
    sock._sock.close()
    box.reload()
    assert box.status == "running"           # stdin not StdinOnce: the container goes on
