"""`corral run` and `corral create`: every flag into the body of `POST /v1/containers`, bad
values refused naming the flag (in the CLI) or the field and the flag (by the daemon), and the
foreground run's output, exit code, Ctrl-C and --rm.

End-to-end cases run main() against a real ApiServer with an in-memory runtime."""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from agent.cli.main import build_parser, main
from agent.cli.run import body_from_args
from agent.errors import KernelError
from agent.runtime.model import ContainerSpec, Mount
from tests.unit.cli_support import NO_DAEMON, corral, daemon, spec_of  # noqa: F401 - daemon is a fixture


def test_every_run_flag_reaches_the_spec(monkeypatch):
    monkeypatch.setenv("FROM_SHELL", "yes")
    monkeypatch.delenv("NOT_SET", raising=False)
    spec = spec_of("--name", "web", "-e", "A=1", "--env", "FROM_SHELL", "-e", "NOT_SET", "-w", "/srv",
                   "-v", "/host:/data:ro", "--volume", "/a:/b", "--hostname", "pony", "--memory", "64m",
                   "--cpus", "0.5", "--pids-limit", "20", "--net", "backend", "--label", "tier=web",
                   "-p", "8080:80", "--publish", "127.0.0.1:5353:53/udp",
                   "-l", "team=", "--entrypoint", "/bin/sh", "busybox", "-c", "echo hi", "--rm")
    assert spec.name == "web" and spec.image == "busybox"
    assert spec.command == ["-c", "echo hi", "--rm"]     # everything after IMAGE is the command's
    assert spec.env == ["A=1", "FROM_SHELL=yes"]
    assert spec.workdir == "/srv" and spec.hostname == "pony"
    assert spec.mounts == [Mount(source="/host", target="/data", readonly=True), Mount(source="/a", target="/b")]
    assert (spec.memory, spec.cpus, spec.pids_limit) == (64 * 1024 * 1024, 0.5, 20)
    assert spec.network == "backend" and spec.labels == {"tier": "web", "team": ""}
    assert [str(port) for port in spec.ports] == ["0.0.0.0:8080:80/tcp", "127.0.0.1:5353:53/udp"]
    assert spec.entrypoint == ["/bin/sh"] and spec.auto_remove is False


def test_the_body_holds_only_what_the_flags_set():
    """The daemon's defaults stand for the rest, and it validates what is sent."""
    def body(*argv):
        return body_from_args(build_parser().parse_args(["run", *argv]), auto_remove=False)
    assert body("--rm", "--net", "none", "busybox", "true") == {"image": "busybox", "command": ["true"],
                                                                "network": "none"}
    assert body("-w", "srv", "--pids-limit", "0", "busybox") == {"image": "busybox", "workdir": "srv",
                                                                 "pids_limit": 0}
    assert body("-v", "/a:/b", "--restart", "on-failure:2", "busybox")["restart_policy"] == {
        "name": "on-failure", "maximum_retry_count": 2}


def test_run_defaults_and_short_flags():
    spec = spec_of("busybox")
    assert spec.command == [] and spec.entrypoint is None and spec.mounts == [] and spec.ports == []
    assert spec.network == ContainerSpec(image="x").network          # the spec's own default
    spec = spec_of("-m", "1g", "--network", "none", "--entrypoint", "", "busybox")
    assert spec.memory == 1 << 30 and spec.network == "none" and spec.entrypoint == []
    assert spec_of("--net", "host", "busybox").network == "host"
    args = build_parser().parse_args(["run", "-d", "--rm", "busybox", "true"])
    assert args.detach and args.rm


@pytest.mark.parametrize("argv, words", [
    (["--memory", "64x", "busybox"], ["--memory", "64x"]),
    (["--cpus", "lots", "busybox"], ["--cpus", "lots"]),
    (["-v", "rel/ative:/data", "busybox"], ["rel/ative", "volume name"]),
    (["-v", "data:relative", "busybox"], ["data:relative", "absolute"]),
    (["--label", "=x", "busybox"], ["--label", "=x"]),
    (["-p", "80", "busybox"], ["publish", "'80'"]),
    (["--restart", "sometimes", "busybox"], ["--restart", "sometimes"]),
    (["--rm", "--restart", "always", "busybox"], ["--restart always and --rm"]),
])
def test_bad_flags_of_their_own_syntax_fail_in_the_cli_naming_the_value(capsys, argv, words):
    assert main(["--host", NO_DAEMON, "run", *argv]) == 125   # no daemon needed to say so
    err = capsys.readouterr().err
    assert err.startswith("corral: ") and all(word in err for word in words)
    assert "cannot reach" not in err


@pytest.mark.parametrize("argv, words", [
    (["-w", "srv", "busybox"], ["corral: workdir: ", "'srv'", "hint: given by -w"]),
    (["--name", "bad name", "busybox"], ["corral: name: ", "'bad name'", "hint: given by --name"]),
    (["--net", "no such", "busybox"], ["corral: network: ", "'no such'", "hint: given by --net"]),
    (["--pids-limit", "0", "busybox"], ["corral: pids_limit: ", "0", "hint: given by --pids-limit"]),
    (["--cap-add", "FLY", "busybox"], ["--cap-add 'FLY': unknown capability", "hint: names as Docker"]),
    (["--net", "none", "-p", "80:80", "busybox"], ["ports: ", "--net none", "hint: use --net bridge"]),
])
def test_bad_values_are_refused_by_the_daemon_naming_the_field_and_flag(daemon, capsys, argv, words):
    """The CLI sends what it was given; the daemon's schema names the field, corral the flag."""
    for verb in ("run", "create"):
        assert corral(daemon, verb, *argv) == 125
        err = capsys.readouterr().err
        assert all(word in err for word in words), err
    assert daemon.runtime.containers == {}


def test_run_detached_prints_the_full_id_and_asks_the_daemon_to_remove(daemon, capsys):
    assert corral(daemon, "run", "-d", "--rm", "--name", "web", "busybox", "sleep", "9") == 0
    cid = capsys.readouterr().out.strip()
    assert len(cid) == 64 and daemon.runtime.containers[cid].spec.auto_remove is True
    assert daemon.runtime.containers[cid].spec.command == ["sleep", "9"]


def test_run_in_the_foreground_streams_output_and_exits_with_the_code(daemon, capfd):
    def program(container):
        def go():
            daemon.runtime.write_log(container.id, 1, b"hello\n")
            daemon.runtime.write_log(container.id, 2, b"oops\n")
            daemon.runtime.finish(container.id, 3)
        threading.Timer(0.1, go).start()

    daemon.runtime.on_start = program
    assert corral(daemon, "run", "--rm", "busybox", "sh", "-c", "...") == 3
    out, err = capfd.readouterr()
    assert (out, err) == ("hello\n", "oops\n")
    assert daemon.runtime.containers == {}    # --rm: removed by the daemon before it sent the code
    # The CLI asks the run route for `remove`, which makes it a --rm container on the daemon's side.
    create = next(call for call in daemon.runtime.calls if call[0] == "create")
    assert create[1].auto_remove is True


def test_a_foreground_run_is_one_request(daemon, capfd, monkeypatch):
    """create, start, the output, the exit code and the --rm in one POST /v1/containers/run."""
    from agent.api import transport
    sent = []

    def counted(path, method, target, **kwargs):
        sent.append(f"{method} {target}")
        return request(path, method, target, **kwargs)
    request = transport.request
    monkeypatch.setattr(transport, "request", counted)
    daemon.runtime.on_start = lambda c: threading.Timer(0.05, daemon.runtime.finish, (c.id, 0)).start()
    assert corral(daemon, "run", "--rm", "busybox", "true") == 0
    assert sent == ["POST /v1/containers/run?remove=true"]
    assert daemon.runtime.containers == {}


def test_a_daemon_failure_after_the_start_is_printed_and_exits_125(daemon, capfd, monkeypatch):
    def lost(ref, **_kwargs):
        raise KernelError(f"container {ref}: its exit could not be read")
    monkeypatch.setattr(daemon.runtime, "wait", lost)
    daemon.runtime.on_start = lambda c: threading.Timer(0.05, daemon.runtime.finish, (c.id, 0)).start()
    assert corral(daemon, "run", "--rm", "busybox", "true") == 125
    err = capfd.readouterr().err
    assert err.startswith("corral: container ") and "its exit could not be read" in err


@pytest.mark.parametrize("argv, hint", [
    (["-e", "=x"], "hint: given by -e\n"),
    (["--env-file", "/dev/null", "-e", "=x"], "hint: given by -e/--env-file\n"),
    (["--health-cmd", "true", "--health-retries", "0"], "hint: given by --health-cmd/--health-retries\n"),
])
def test_the_hint_names_the_flags_given_for_the_field(daemon, capsys, argv, hint):
    """The flags come from the parser's own definitions (agent/cli/run.py flag_table)."""
    assert corral(daemon, "run", *argv, "busybox") == 125
    assert capsys.readouterr().err.endswith(hint)


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_in_the_foreground_go_to_the_container(daemon, capsys, number):
    previous = signal.getsignal(number)

    def press_ctrl_c():
        deadline = time.monotonic() + 10
        while signal.getsignal(number) is previous and time.monotonic() < deadline:
            time.sleep(0.01)   # until the CLI's proxy is in place
        os.kill(os.getpid(), number)

    daemon.runtime.on_start = lambda c: threading.Thread(target=press_ctrl_c).start()
    assert corral(daemon, "run", "--rm", "busybox", "sleep", "60") == 128 + number   # from the container
    assert [call for call in daemon.runtime.calls if call[0] == "kill"][0][2] == number
    assert signal.getsignal(number) is previous
    assert daemon.runtime.containers == {}      # --rm after the signalled exit


def test_create_and_start(daemon, capsys):
    assert corral(daemon, "create", "--name", "web", "busybox") == 0
    cid = capsys.readouterr().out.strip()
    assert daemon.runtime.containers[cid].state == "created"
    assert corral(daemon, "start", "web") == 0
    assert capsys.readouterr().out == "web\n" and daemon.runtime.containers[cid].state == "running"
