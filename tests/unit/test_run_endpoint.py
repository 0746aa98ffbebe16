"""`POST /v1/containers/run` (agent/api/run_endpoints.py) against a real ApiServer over the
in-memory runtime: refusals before the head, the output then the status frame, the error frame
after the head, `remove`, and the client's side (agent/api/run_client.py)."""
from __future__ import annotations

import json
import threading
import time

import pytest

from agent.api import frames
from agent.api.run_client import run_container
from agent.errors import Conflict, InvalidArgument, NotFound
from tests.unit.cli_support import daemon  # noqa: F401 - a fixture


def finish_with(daemon, code, *, out=b"", err=b""):
    def program(container):
        def go():
            if out:
                daemon.runtime.write_log(container.id, 1, out)
            if err:
                daemon.runtime.write_log(container.id, 2, err)
            daemon.runtime.finish(container.id, code)
        threading.Timer(0.05, go).start()
    daemon.runtime.on_start = program


def test_the_output_then_the_exit_code_in_one_answer(daemon):
    finish_with(daemon, 7, out=b"hello\n", err=b"oops\n")
    status, headers, body = daemon.raw("POST", "/v1/containers/run", body=json.dumps({"image": "busybox"}),
                                       headers={"Content-Type": "application/json"})
    assert status == 200 and headers["Content-Type"] == frames.MEDIA_TYPE
    cid = headers["Corral-Container-Id"]
    assert cid in daemon.runtime.containers                 # without remove it is kept
    assert frames.decode_all(body) == [(1, b"hello\n"), (2, b"oops\n"), (3, b"7")]
    assert [call[0] for call in daemon.runtime.calls] == ["run", "create", "start", "logs", "wait"]


def test_remove_takes_it_away_before_the_exit_code(daemon):
    finish_with(daemon, 0, out=b"x")
    cid, stream = run_container(daemon.client, {"image": "busybox"}, remove=True)
    assert list(stream) == [(1, b"x"), (3, b"0")]
    assert daemon.runtime.containers == {}
    assert ("remove", cid, False, "volumes") in daemon.runtime.calls


def test_remove_makes_it_a_rm_container_held_until_its_log_is_read(daemon):
    """A --rm container (docker's AutoRemove), which the exit path leaves to the route until
    its output has been sent: a fast exit loses none of it."""
    finish_with(daemon, 3, out=b"y")
    cid, stream = run_container(daemon.client, {"image": "busybox"}, remove=True)
    assert list(stream) == [(1, b"y"), (3, b"3")]
    assert daemon.runtime.calls[0][1].auto_remove is True
    assert daemon.runtime.containers == {} and daemon.runtime.held == set()
    assert ("release", cid) in daemon.runtime.calls


def test_a_client_gone_early_leaves_a_rm_container_to_be_removed_at_its_exit(daemon):
    daemon.runtime.on_start = lambda container: None          # runs until finished below
    cid, stream = run_container(daemon.client, {"image": "busybox"}, remove=True)
    stream.close()                                            # the client goes away
    assert cid in daemon.runtime.containers                   # still running
    daemon.runtime.finish(cid, 0)
    deadline = time.monotonic() + 10
    while (daemon.runtime.containers or daemon.runtime.held) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert daemon.runtime.containers == {} and daemon.runtime.held == set(), "removed at its exit"


def test_remove_with_a_restart_policy_is_refused_before_any_frame(daemon):
    with pytest.raises(InvalidArgument, match="--restart always and --rm") as caught:
        run_container(daemon.client, {"image": "busybox", "restart_policy": {"name": "always"}}, remove=True)
    assert caught.value.field == "restart_policy"
    assert daemon.runtime.containers == {}


@pytest.mark.parametrize("body, error, words", [
    ({"image": "nosuch"}, NotFound, "'nosuch' not found"),
    ({"image": "busybox", "workdir": "srv"}, InvalidArgument, "workdir"),
])
def test_a_refused_spec_is_an_error_answer_before_any_frame(daemon, body, error, words):
    with pytest.raises(error, match=words) as caught:
        run_container(daemon.client, body)
    if error is InvalidArgument:
        assert caught.value.field == "workdir"
    assert daemon.runtime.containers == {}


def test_a_failure_after_the_head_is_the_status_frame(daemon, monkeypatch):
    finish_with(daemon, 0, out=b"before\n")

    def lost(ref, **_kwargs):
        raise Conflict(f"container {ref} was lost")
    monkeypatch.setattr(daemon.runtime, "wait", lost)
    _cid, stream = run_container(daemon.client, {"image": "busybox"}, remove=True)
    received = list(stream)
    assert received[0] == (1, b"before\n") and received[-1][0] == frames.EXIT
    with pytest.raises(Conflict, match="was lost"):
        frames.decode_exit(received[-1][1])


def test_an_exit_frame_decodes_to_a_code_or_the_daemons_error():
    assert frames.decode_exit(b"137") == 137
    error = NotFound("no such container: x", hint="look")
    with pytest.raises(NotFound, match="no such container") as caught:
        frames.decode_exit(frames.decode_all(frames.encode_error(error.to_dict()))[0][1])
    assert caught.value.hint == "look"
    with pytest.raises(Exception, match="not an exit code"):
        frames.decode_exit(b"{broken")
