"""The Docker API's terminal inputs, without root: sizes, exec bodies and what is refused by
name. The relay itself is tested in test_attach.py and, with the docker CLI, in
tests/integration/test_docker_tty.py."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from agent.dockerapi.app import Parts
from agent.dockerapi.attach import console_size, terminal_size
from agent.dockerapi.containers import runc_words
from agent.dockerapi.execs import ExecRoutes
from agent.dockerapi.router import Request
from agent.errors import Conflict, InvalidArgument
from agent.runtime.model import PAUSED, RUNNING

CID = "c" * 64


def _request(method: str, path: str, body: dict | None = None, params: dict | None = None, **query) -> Request:
    return Request(method, path, params=params or {"id": CID}, query={k: [str(v)] for k, v in query.items()},
                   body=json.dumps(body).encode() if body is not None else b"")


def _execs(state: str = RUNNING, privileged: bool = False) -> ExecRoutes:
    container = SimpleNamespace(id=CID, state=state, spec=SimpleNamespace(privileged=privileged))
    runtime = SimpleNamespace(get=lambda ref: container)
    return ExecRoutes(Parts(runtime=runtime, events=None, images=None, cgroups=None, info=dict))


def test_sizes_are_rows_then_columns_and_zero_means_none():
    assert console_size([24, 80], "ConsoleSize") == (24, 80)
    assert console_size([0, 0], "ConsoleSize") is None and console_size(None, "ConsoleSize") is None
    assert terminal_size(_request("POST", "/", h=40, w=120)) == (40, 120)


@pytest.mark.parametrize("value", [[24], [24, 80, 1], ["24", "80"], [True, 80], [70000, 80], "24x80"])
def test_a_bad_console_size_is_named(value):
    with pytest.raises(InvalidArgument, match="HostConfig.ConsoleSize") as caught:
        console_size(value, "HostConfig.ConsoleSize")
    assert caught.value.field == "HostConfig.ConsoleSize"


@pytest.mark.parametrize(("query", "name"), [({"w": 80}, "h"), ({"h": 24, "w": -1}, "w"), ({"h": "x", "w": 1}, "h")])
def test_a_bad_resize_names_its_parameter(query, name):
    with pytest.raises(InvalidArgument, match=f"query parameter {name}"):
        terminal_size(_request("POST", "/", **query))


def test_exec_create_records_terminal_and_stdin_and_inspect_shows_them():
    routes = _execs()
    body = {"Cmd": ["sh"], "Tty": True, "AttachStdin": True, "User": "nobody", "WorkingDir": "/tmp",
            "Env": ["A=b"], "ConsoleSize": [30, 100], "DetachKeys": "ctrl-x", "Container": CID}
    exec_id = json.loads(routes.create(_request("POST", "/exec", body)).body)["Id"]
    view = json.loads(routes.inspect(_request("GET", "/", params={"id": exec_id})).body)
    assert view["ProcessConfig"] == {"entrypoint": "sh", "arguments": [], "privileged": False, "tty": True,
                                     "user": "nobody"}
    assert (view["OpenStdin"], view["Running"], view["ExitCode"], view["DetachKeys"]) == (True, False, None, "ctrl-x")
    with pytest.raises(Conflict, match="has not been started"):
        routes.resize(_request("POST", "/", params={"id": exec_id}, h=1, w=1))


@pytest.mark.parametrize(("body", "field"), [
    ({"Cmd": ["true"], "Privileged": True}, "Privileged"),
    ({"Cmd": []}, "Cmd"),
    ({"Cmd": [1]}, "Cmd"),
    ({"Cmd": ["true"], "Env": "A=b"}, "Env"),
    ({"Cmd": ["true"], "ConsoleSize": [1]}, "ConsoleSize"),
    ({"Cmd": ["true"], "Whatever": 1}, "Whatever"),
    ({"Cmd": ["true"], "DetachKeys": "ctrl-"}, "DetachKeys"),
])
def test_exec_create_refuses_by_name(body, field):
    with pytest.raises(InvalidArgument) as caught:
        _execs().create(_request("POST", "/exec", body))
    assert caught.value.field == field


def test_privileged_exec_only_in_a_privileged_container_and_not_when_paused():
    assert _execs(privileged=True).create(_request("POST", "/exec", {"Cmd": ["true"], "Privileged": True})).status == 201
    with pytest.raises(Conflict, match="paused"):
        _execs(state=PAUSED).create(_request("POST", "/exec", {"Cmd": ["true"]}))


def test_an_exec_without_a_terminal_is_not_resized():
    routes = _execs()
    exec_id = json.loads(routes.create(_request("POST", "/exec", {"Cmd": ["true"]})).body)["Id"]
    with pytest.raises(InvalidArgument, match="no terminal"):
        routes.resize(_request("POST", "/", params={"id": exec_id}, h=1, w=1))


def test_launch_errors_take_runcs_words_for_the_clis_exit_code():
    assert runc_words('exec "x": No such file or directory') == 'exec "x": no such file or directory'
    assert runc_words('exec "/etc": Permission denied') == 'exec "/etc": permission denied'
