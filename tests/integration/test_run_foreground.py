"""The foreground `corral run` (one POST /v1/containers/run) with real containers: the output
as it comes, the exit code, --rm leaving nothing, signals passed on, and refusals naming the
flag and leaving nothing."""
from __future__ import annotations

import os
import select
import signal
import subprocess
import time

import pytest

from tests.integration.corral_daemon import CORRAL, leftovers

pytestmark = pytest.mark.privileged


def gone(daemon, name: str) -> bool:
    return daemon.cli("inspect", name, check=False).returncode != 0


def test_rm_streams_the_output_exits_with_the_code_and_leaves_nothing(daemon):
    result = daemon.cli("run", "--rm", "--name", "fg-rm", "--net", "none", "busybox", "sh", "-c",
                        "echo out; echo err >&2; exit 42", check=False)
    assert (result.returncode, result.stdout, result.stderr) == (42, b"out\n", b"err\n")
    assert gone(daemon, "fg-rm")


def test_without_rm_the_container_stays_with_its_code(daemon):
    result = daemon.cli("run", "--name", "fg-kept", "--net", "none", "busybox", "sh", "-c", "exit 3", check=False)
    try:
        assert result.returncode == 3
        assert daemon.inspect("fg-kept")["State"]["ExitCode"] == 3
    finally:
        daemon.cli("rm", "fg-kept")


def read_until(stream, marker: bytes, timeout: float = 30) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while marker not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([stream], [], [], 0.5)
        if ready:
            data = os.read(stream.fileno(), 4096)
            if not data:
                break
            seen += data
    return seen


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_corral_goes_to_the_container_and_rm_still_removes(daemon, spawn, number):
    name = f"fg-signal-{number}"
    script = f"trap 'echo got {number}; exit 7' {number}; echo ready; while :; do sleep 0.1; done"
    cli = spawn(CORRAL, "run", "--rm", "--name", name, "--net", "none", "busybox", "sh", "-c", script,
                env=daemon.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert b"ready" in read_until(cli.stdout, b"ready")
    cid = daemon.inspect(name)["Id"]
    cli.send_signal(number)
    assert cli.wait(timeout=30) == 7
    assert f"got {number}".encode() in cli.stdout.read()
    assert gone(daemon, name) and leftovers(cid) == []


def test_a_refused_flag_is_named_and_rm_leaves_nothing(daemon):
    before = set(os.listdir(daemon.root / "containers"))
    result = daemon.cli("run", "--rm", "-w", "srv", "busybox", "true", check=False)
    assert result.returncode == 125
    assert b"workdir" in result.stderr and b"hint: given by -w" in result.stderr
    result = daemon.cli("run", "--rm", "--net", "none", "busybox", "/no/such/command", check=False)
    assert result.returncode != 0 and b"/no/such/command" in result.stderr
    assert set(os.listdir(daemon.root / "containers")) == before
