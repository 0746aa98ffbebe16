"""The real ApiServer on a UNIX socket in a temp dir, backed by an in-memory runtime."""
from __future__ import annotations

import json
import logging
import os
import socket
import stat
import threading

import pytest

from agent.api import frames
from agent.api.client import ApiClient
from agent.api.routes import Response
from agent.api.server import ApiServer
from agent.errors import Conflict, CorralError, DaemonUnavailable, InvalidArgument, NotFound
from agent.events import Event
from tests.unit.fake_runtime import FakeDaemon


@pytest.fixture
def daemon():
    with FakeDaemon() as running:
        yield running


def run_busybox(daemon, **spec) -> dict:
    return daemon.client.create_container({"image": "busybox", "command": ["sh"], **spec}, start=True)


# The socket

def test_socket_is_created_0660_with_its_directory_and_removed_on_stop(daemon):
    mode = os.stat(daemon.socket).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o660
    daemon.server.stop()
    assert not daemon.socket.exists()
    with pytest.raises(DaemonUnavailable) as caught:
        daemon.client.version()
    assert caught.value.message == f"cannot reach the Corral daemon at unix://{daemon.socket}"
    assert "sudo corral daemon" in caught.value.hint and "CORRAL_HOST" in caught.value.hint


def test_a_stale_socket_file_is_replaced(daemon):
    daemon.server.stop()
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(daemon.socket))   # bound, never listening: what a crashed daemon leaves
    stale.close()
    daemon.server.start()
    assert daemon.client.version()["api_version"] == "v1"


def test_a_second_daemon_on_the_same_socket_is_refused(daemon):
    other = ApiServer(daemon.socket, daemon.runtime, daemon.events, dict)
    with pytest.raises(Conflict, match="another Corral daemon is already listening on"):
        other.start()
    assert daemon.client.version()["version"]   # the first one is untouched


def test_a_file_that_is_not_a_socket_is_left_alone(daemon):
    daemon.server.stop()
    daemon.socket.write_text("mine")
    with pytest.raises(CorralError, match="exists and is not a socket"):
        daemon.server.start()
    assert daemon.socket.read_text() == "mine"


def test_a_socket_path_too_long_is_named():
    server = ApiServer(__import__("pathlib").Path("/tmp/" + "x" * 120 + "/s.sock"), None, None, dict)
    with pytest.raises(InvalidArgument, match="longer than 107 bytes"):
        server.start()


# The daemon

def test_version_and_info(daemon):
    version = daemon.client.version()
    assert version["version"] and version["api_version"] == "v1" and version["os"] == "linux"
    assert daemon.client.info() == daemon.info


# Containers

def test_create_answers_201_and_start_is_optional(daemon):
    status, headers, body = daemon.raw("POST", "/v1/containers", json.dumps({"image": "busybox", "name": "web"}),
                                       {"Content-Type": "application/json"})
    assert status == 201 and headers["Content-Type"] == "application/json"
    created = json.loads(body)
    assert created["state"] == "created" and created["name"] == "web"
    running = run_busybox(daemon, name="db", memory=64 * 1024 * 1024, labels={"tier": "db"})
    assert running["state"] == "running" and running["spec"]["labels"] == {"tier": "db"}
    assert [call[0] for call in daemon.runtime.calls] == ["create", "run", "create", "start"]


def test_list_shows_running_unless_all(daemon):
    daemon.client.create_container({"image": "busybox", "name": "idle"})
    run_busybox(daemon, name="busy")
    assert [c["name"] for c in daemon.client.list_containers()] == ["busy"]
    assert sorted(c["name"] for c in daemon.client.list_containers(all=True)) == ["busy", "idle"]


def test_start_stop_kill_wait_inspect_remove(daemon):
    cid = daemon.client.create_container({"image": "busybox", "name": "web"})["id"]
    assert daemon.client.start_container("web")["state"] == "running"
    assert daemon.client.inspect_container(cid[:6])["State"]["Running"] is True
    stopped = daemon.client.stop_container("web", timeout=2.5)
    assert stopped["state"] == "exited" and stopped["exit_code"] == 143
    assert ("stop", "web", 2.5) in daemon.runtime.calls
    assert daemon.client.wait_container("web") == {"exit_code": 143, "oom_killed": False}
    status, headers, body = daemon.raw("DELETE", f"/v1/containers/{cid}")
    assert (status, body) == (204, b"")
    with pytest.raises(NotFound, match="no such container: web"):
        daemon.client.inspect_container("web")


def test_stop_leaves_the_timeout_to_the_container(daemon):
    run_busybox(daemon, name="web")
    daemon.client.stop_container("web")
    assert ("stop", "web", None) in daemon.runtime.calls     # its --stop-timeout, else 10


@pytest.mark.parametrize("given, number", [(None, 9), ("TERM", 15), ("SIGINT", 2), ("1", 1)])
def test_kill_parses_signal_names_and_numbers(daemon, given, number):
    run_busybox(daemon, name="web")
    target = "/v1/containers/web/kill" + (f"?signal={given}" if given else "")
    status, _, body = daemon.raw("POST", target)
    assert status == 200 and json.loads(body)["exit_code"] == 128 + number
    assert ("kill", "web", number) in daemon.runtime.calls


def test_kill_with_a_bad_signal_names_it(daemon):
    run_busybox(daemon, name="web")
    with pytest.raises(InvalidArgument, match="unknown signal 'NOPE'"):
        daemon.client.kill_container("web", signal="NOPE")


def test_remove_of_a_running_container_is_a_conflict_unless_forced(daemon):
    run_busybox(daemon, name="web")
    with pytest.raises(Conflict, match="container web is running") as caught:
        daemon.client.remove_container("web")
    assert caught.value.hint == "stop it first, or use `corral rm -f`"
    daemon.client.remove_container("web", force=True)
    assert daemon.client.list_containers(all=True) == []


def test_wait_blocks_until_exit(daemon):
    cid = run_busybox(daemon)["id"]
    threading.Timer(0.2, daemon.runtime.finish, args=(cid, 7)).start()
    assert daemon.client.wait_container(cid) == {"exit_code": 7, "oom_killed": False}


# Errors

def test_errors_are_json_with_the_class_status_and_hint(daemon):
    status, headers, body = daemon.raw("GET", "/v1/containers/nope")
    assert status == 404 and headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"error": "NotFound", "message": "no such container: nope", "hint": None,
                                "field": None}
    status, _, body = daemon.raw("POST", "/v1/containers", json.dumps({"image": "alpine"}))
    assert status == 404 and json.loads(body)["hint"] == "`corral images` lists the images"
    run_busybox(daemon, name="dup")
    with pytest.raises(Conflict, match="'dup' is already used"):
        run_busybox(daemon, name="dup")


def test_unknown_body_keys_are_rejected_naming_the_key(daemon):
    status, _, body = daemon.raw("POST", "/v1/containers", json.dumps({"image": "busybox", "memroy": 1}))
    assert status == 400
    error = json.loads(body)
    assert error["error"] == "InvalidArgument" and "'memroy'" in error["message"] and error["field"] == "memroy"
    run_busybox(daemon, name="web")
    with pytest.raises(InvalidArgument, match="unknown field 'cmd'"):
        daemon.client._json("POST", "/v1/containers/web/exec", body={"cmd": ["ls"]})
    with pytest.raises(InvalidArgument, match="unknown field 'tag'"):
        daemon.client._json("POST", "/v1/images/import", body={"path": "/x.tar", "reference": "a", "tag": "1"})


def test_bad_values_in_bodies_are_named(daemon):
    cases = [
        ("/v1/containers", {"image": "busybox", "name": "no spaces"}, "name: .*, got 'no spaces'"),
        ("/v1/containers", ["busybox"], "expected object, got array"),
        ("/v1/images/import", {"path": "relative.tar", "reference": "a"}, "path: .*got 'relative.tar'"),
        ("/v1/images/import", {"path": "/a.tar"}, "field 'reference' is required"),
    ]
    for path, body, message in cases:
        with pytest.raises(InvalidArgument, match=message):
            daemon.client._json("POST", path, body=body)


def test_bad_json_unknown_query_routes_and_methods(daemon):
    status, _, body = daemon.raw("POST", "/v1/containers", "{not json")
    assert status == 400 and "not valid JSON" in json.loads(body)["message"]
    status, _, body = daemon.raw("POST", "/v1/containers", "")
    assert status == 400 and "JSON request body is required" in json.loads(body)["message"]
    status, _, body = daemon.raw("GET", "/v1/containers?al=true")
    assert status == 400 and json.loads(body)["message"] == \
        "query parameter 'al' is not known for GET /v1/containers (known: all, filters)"
    status, _, body = daemon.raw("GET", "/v1/containers?all=maybe")
    assert status == 400 and "expected true or false, got 'maybe'" in json.loads(body)["message"]
    status, _, body = daemon.raw("GET", "/v2/containers")
    assert status == 404 and json.loads(body)["message"] == "no API route /v2/containers"
    status, _, body = daemon.raw("PUT", "/v1/containers")
    assert status == 405 and json.loads(body)["message"] == \
        "PUT is not allowed on /v1/containers (allowed: GET, HEAD, OPTIONS, POST)"


def test_other_exceptions_are_500_with_the_message_and_logged(daemon, caplog):
    daemon.runtime.boom = RuntimeError("state file is torn")
    with caplog.at_level(logging.ERROR, logger="agent.api.server"):
        status, _, body = daemon.raw("GET", "/v1/containers")
    assert status == 500
    assert json.loads(body)["message"] == "internal error: state file is torn"
    record = next(r for r in caplog.records if r.name == "agent.api.server")
    assert record.exc_info and "GET /v1/containers" in record.getMessage()
    with pytest.raises(CorralError, match="state file is torn"):
        daemon.client.list_containers()


# Streams

def test_logs_are_docker_frames(daemon):
    cid = run_busybox(daemon)["id"]
    daemon.runtime.write_log(cid, 1, b"out\n")
    daemon.runtime.write_log(cid, 2, b"err\n")
    status, headers, body = daemon.raw("GET", f"/v1/containers/{cid}/logs")
    assert status == 200 and headers["Content-Type"] == frames.MEDIA_TYPE
    assert headers["Transfer-Encoding"] == "chunked"
    assert frames.decode_all(body) == [(1, b"out\n"), (2, b"err\n")]
    assert list(daemon.client.logs(cid)) == [(1, b"out\n"), (2, b"err\n")]


def test_logs_follow_until_the_container_exits(daemon):
    cid = run_busybox(daemon)["id"]
    daemon.runtime.write_log(cid, 1, b"first\n")
    stream = daemon.client.logs(cid, follow=True)
    assert next(stream) == (1, b"first\n")
    daemon.runtime.write_log(cid, 2, b"second\n")
    assert next(stream) == (2, b"second\n")
    daemon.runtime.finish(cid, 0)
    assert list(stream) == []


def test_logs_of_a_missing_container_is_a_clean_404(daemon):
    with pytest.raises(NotFound, match="no such container: ghost"):
        list(daemon.client.logs("ghost", follow=True))


def test_exec_streams_output_then_the_exit_code(daemon):
    run_busybox(daemon, name="web")
    got = list(daemon.client.exec("web", ["sh", "-c", "echo out; echo err >&2; echo $GREETING; exit 3"],
                                  env=["GREETING=hi"], workdir="/tmp"))
    assert got[-1] == (frames.EXIT, b"3")
    assert b"".join(data for stream, data in got if stream == 1) == b"out\nhi\n"
    assert b"".join(data for stream, data in got if stream == 2) == b"err\n"
    assert ("exec", "web", ["sh", "-c", "echo out; echo err >&2; echo $GREETING; exit 3"],
            ["GREETING=hi"], "/tmp") in daemon.runtime.calls


def test_exec_with_much_output_on_both_streams(daemon):
    run_busybox(daemon, name="web")
    script = "i=0; while [ $i -lt 2000 ]; do echo line$i; echo err$i >&2; i=$((i+1)); done"
    got = list(daemon.client.exec("web", ["sh", "-c", script]))
    out = b"".join(data for stream, data in got if stream == 1).splitlines()
    err = b"".join(data for stream, data in got if stream == 2).splitlines()
    assert len(out) == len(err) == 2000 and out[-1] == b"line1999"
    assert got[-1] == (3, b"0")


def test_exec_in_a_stopped_container_is_a_conflict(daemon):
    cid = daemon.client.create_container({"image": "busybox"})["id"]
    with pytest.raises(Conflict, match="is not running"):
        list(daemon.client.exec(cid, ["ls"]))
    with pytest.raises(InvalidArgument, match="command: expected array of length >= 1"):
        list(daemon.client.exec(cid, []))


# Images

def test_images_list_import_and_remove(daemon):
    assert [(i["name"], i["tag"]) for i in daemon.client.list_images()] == [("busybox", "latest")]
    status, _, body = daemon.raw("POST", "/v1/images/import",
                                 json.dumps({"path": "/srv/app.tar", "reference": "app:1.0"}))
    assert status == 201 and (json.loads(body)["name"], json.loads(body)["tag"]) == ("app", "1.0")
    assert ("import_image", "/srv/app.tar", "app:1.0") in daemon.runtime.calls
    status, _, body = daemon.raw("DELETE", "/v1/images/app%3A1.0")
    assert (status, body) == (204, b"")
    assert ("remove_image", "app:1.0") in daemon.runtime.calls
    with pytest.raises(NotFound, match="no such image: app:1.0"):
        daemon.client.remove_image("app:1.0")


# Events

def test_events_since_a_time(daemon):
    daemon.events.emit(Event("container", "create", "a", "one", time=100.0))
    daemon.events.emit(Event("container", "start", "a", "one", time=200.0))
    status, headers, body = daemon.raw("GET", "/v1/events?since=150")
    assert status == 200 and headers["Content-Type"] == "application/x-ndjson"
    assert [json.loads(line)["action"] for line in body.splitlines()] == ["start"]
    assert [e["action"] for e in daemon.client.events()] == ["create", "start"]


def test_events_follow_sees_new_events_and_ends_when_the_server_stops(daemon):
    daemon.events.emit(Event("container", "create", "a", "one", time=100.0))
    stream = daemon.client.events(since=0, follow=True)
    assert next(stream)["action"] == "create"
    run_busybox(daemon, name="web")
    assert [next(stream)["action"], next(stream)["action"]] == ["create", "start"]
    daemon.server.stop()
    assert list(stream) == []


# Extension

def test_more_routes_can_be_registered(tmp_path):
    def stats_routes(router):
        router.add("GET", "/v1/stats", lambda request: Response.json({"containers": 0}))

    with FakeDaemon(extra_routes=[stats_routes]) as daemon:
        assert daemon.client._json("GET", "/v1/stats") == {"containers": 0}
        with pytest.raises(ValueError, match="already registered"):
            stats_routes(daemon.server.router)


def test_client_refuses_hosts_that_are_not_unix_sockets():
    with pytest.raises(InvalidArgument, match="only UNIX sockets are supported"):
        ApiClient("tcp://127.0.0.1:2375")
    assert ApiClient("/run/x.sock").host == "/run/x.sock"
