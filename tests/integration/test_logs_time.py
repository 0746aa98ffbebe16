"""Every line of a container's log has a time (the shim's side index, launcher/logfile.h):
`logs -t/--since/--until/--tail` with Corral's CLI, the real docker CLI and docker-py, and a
SIGKILLed daemon or shim leaves a log that still reads, times and all.

No timing assertions: the times are compared with each other (order) and with the times the
test itself read from `-t`, never with a duration.
"""
from __future__ import annotations

import os
import signal

import pytest

from agent.log_time import NS, format_log_time, parse_log_time
from tests.integration.corral_daemon import running_daemon, until
from tests.integration.docker_support import DockerCli

pytestmark = pytest.mark.privileged

# Three lines a second apart on stdout, one on stderr: --since/--until between them pick sides.
TALKER = "echo one; sleep 1; echo two >&2; sleep 1; echo three; echo four"


@pytest.fixture(scope="module")
def daemon():
    with running_daemon() as instance:
        yield instance


@pytest.fixture(autouse=True)
def clean(daemon):
    yield
    daemon.remove_all()


def stamped(output: str) -> list[tuple[int, str]]:
    """(UNIX ns, text) of each line of `logs -t` output; fails on a prefix that is not
    docker's RFC3339Nano (fixed nine digits, UTC)."""
    lines = []
    for line in output.splitlines():
        stamp, _, text = line.partition(" ")
        assert len(stamp) == 30 and stamp.endswith("Z") and stamp[19] == ".", stamp
        lines.append((parse_log_time(stamp), text))
    return lines


def unix(ns: int) -> str:
    return f"{ns // NS}.{ns % NS:09d}"


def finished(daemon, name: str) -> None:
    until(lambda: daemon.inspect(name)["State"]["Status"] == "exited", f"{name} to exit")


def test_corral_logs_timestamps_since_until_tail(daemon):
    daemon.cli("run", "-d", "--name", "talker", "busybox", "sh", "-c", TALKER)
    finished(daemon, "talker")
    lines = stamped(daemon.out("logs", "-t", "talker") + "\n" +
                    daemon.cli("logs", "-t", "talker").stderr.decode())
    lines.sort(key=lambda line: line[0])       # stable: three and four share a frame, so a time
    assert [text for _, text in lines] == ["one", "two", "three", "four"]
    times = [at for at, _ in lines]
    assert times == sorted(times) and times[0] < times[1] < times[2]
    one, two, three = times[:3]
    between = (one + two) // 2
    # --since between one and two: the later lines only (stderr on stderr); --until the earlier
    later = daemon.cli("logs", "--since", unix(between), "talker")
    assert (later.stdout, later.stderr) == (b"three\nfour\n", b"two\n")
    assert daemon.cli("logs", "--until", unix(between), "talker").stdout == b"one\n"
    # an RFC 3339 date, and a time printed by -t given back: inclusive at both ends
    assert daemon.out("logs", "--since", format_log_time((two + three) // 2), "talker") == "three\nfour"
    assert daemon.cli("logs", "--since", format_log_time(two), "--until", format_log_time(two),
                      "talker").stderr == b"two\n"
    assert daemon.out("logs", "--since", "1h", "talker") == "one\nthree\nfour"
    assert daemon.out("logs", "-n", "2", "talker") == "three\nfour"
    assert [text for _, text in stamped(daemon.out("logs", "-t", "--tail", "1", "talker"))] == ["four"]
    assert daemon.out("logs", "--tail", "0", "talker") == ""
    bad = daemon.cli("logs", "--since", "yesterday", "talker", check=False)
    assert bad.returncode != 0 and "--since" in bad.stderr.decode() and "yesterday" in bad.stderr.decode()


def test_follow_with_timestamps_and_tail(daemon):
    daemon.cli("run", "-d", "--name", "ticker", "busybox", "sh", "-c",
               "echo a; echo b; sleep 1; echo c; sleep 1; echo d")
    until(lambda: daemon.out("logs", "ticker").startswith("a\nb"), "the first lines")
    followed = daemon.cli("logs", "-f", "-t", "--tail", "1", "ticker", timeout=60)
    lines = stamped(followed.stdout.decode())
    texts = [text for _, text in lines]
    # the last line there was when it began (b, or a later one on a slow machine), then the rest
    assert texts[0] in ("b", "c", "d") and texts == ["a", "b", "c", "d"][["a", "b", "c", "d"].index(texts[0]):]
    times = [at for at, _ in lines]
    assert times == sorted(times)


def test_a_killed_shim_or_daemon_leaves_a_readable_log(daemon):
    daemon.cli("run", "-d", "--name", "survivor", "busybox", "sh", "-c",
               "i=0; while true; do i=$((i+1)); echo line$i; sleep 0.05; done")
    until(lambda: "line5" in daemon.out("logs", "survivor"), "some output")
    daemon.kill()
    daemon.start()
    until(lambda: "line40" in daemon.out("logs", "survivor"), "output after the daemon's restart")
    init = daemon.inspect("survivor")["State"]["Pid"]
    with open(f"/proc/{init}/status") as status:
        shim = int(next(line for line in status if line.startswith("PPid:")).split()[1])
    os.kill(shim, signal.SIGKILL)
    until(lambda: daemon.inspect("survivor")["State"]["Status"] != "running", "the container to end with its shim")
    lines = stamped(daemon.out("logs", "-t", "survivor"))
    numbers = [int(text[4:]) for _, text in lines]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= 40
    times = [at for at, _ in lines]
    assert times == sorted(times)
    middle = times[len(times) // 2]
    assert daemon.out("logs", "--since", unix(middle), "survivor").splitlines()[0] == f"line{numbers[len(times) // 2]}"


# The real docker CLI and docker-py, on the daemon's Docker API socket

@pytest.fixture(scope="module")
def docker(daemon, tmp_path_factory):
    return DockerCli(daemon, tmp_path_factory.mktemp("docker-config"))


def test_docker_cli_logs_timestamps_since_tail(daemon, docker):
    docker.run("run", "-d", "--name", "dtalker", "busybox", "sh", "-c", TALKER)
    finished(daemon, "dtalker")
    done = docker.run("logs", "-t", "dtalker")
    lines = sorted(stamped(done.stdout.decode() + done.stderr.decode()), key=lambda line: line[0])
    assert [text for _, text in lines] == ["one", "two", "three", "four"]
    one, two = lines[0][0], lines[1][0]
    since = unix((one + two) // 2)
    last = docker.run("logs", "-t", "--since", since, "--tail", "1", "dtalker")
    assert [text for _, text in stamped(last.stdout.decode())] == ["four"] and last.stderr == b""
    later = docker.run("logs", "--since", format_log_time((one + two) // 2), "dtalker")
    assert (later.stdout, later.stderr) == (b"three\nfour\n", b"two\n")
    assert docker.run("logs", "--until", since, "dtalker").stdout == b"one\n"
    assert docker.out("logs", "--tail", "all", "--since", "1h", "dtalker") == "one\nthree\nfour"
    # --details: Corral keeps no log attributes, so docker's output for none: a space
    assert docker.run("logs", "--details", "--tail", "1", "dtalker").stdout == b" four\n"


def test_docker_py_logs_timestamps_since(daemon):
    docker = pytest.importorskip("docker")
    client = docker.DockerClient(base_url=f"unix://{daemon.docker_socket}", version="auto", timeout=60)
    try:
        container = client.containers.run("busybox", ["sh", "-c", TALKER], detach=True, name="pytalker")
        assert container.wait()["StatusCode"] == 0
        lines = stamped(container.logs(timestamps=True).decode())
        assert sorted(text for _, text in lines) == sorted(["one", "two", "three", "four"])
        ordered = sorted(lines, key=lambda line: line[0])
        since = (ordered[0][0] + ordered[1][0]) / 2 / NS      # docker-py takes a float of seconds
        later = stamped(container.logs(timestamps=True, since=since, stderr=False).decode())
        assert [text for _, text in later] == ["three", "four"]
        assert container.logs(tail=1) == b"four\n"
        assert container.logs(stdout=False) == b"two\n"
    finally:
        client.close()
