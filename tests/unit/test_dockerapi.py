"""Pure logic of the Docker API layer: create's translation and refusals, filters, views,
versions, routing, framing helpers. The real clients drive it in tests/integration/test_docker_*."""
from __future__ import annotations

import base64
import io
import json

import pytest

from agent.dockerapi import filters, version
from agent.dockerapi.create import spec_of
from agent.dockerapi.errors import NotModified, Unavailable, body_of, no_such_container, no_such_image
from agent.dockerapi.images import registry_credentials
from agent.dockerapi.router import Reply, Router
from agent.dockerapi.server import ChunkedReader
from agent.dockerapi.streams import top_table
from agent.dockerapi.system import _timestamp, docker_event
from agent.dockerapi.views import status_text, timestamp
from agent.errors import CorralError, InvalidArgument, MethodNotAllowed, NotFound
from agent.events import Event
from agent.runtime.model import Container, ContainerSpec

# What `docker run busybox echo hi` (CLI 28, API 1.47) sends, zero values and all.
CLI_BODY = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": True,
    "AttachStderr": True, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": [],
    "Cmd": ["echo", "hi"], "Image": "busybox", "Volumes": {}, "WorkingDir": "", "Entrypoint": None,
    "OnBuild": None, "Labels": {},
    "HostConfig": {"Binds": None, "ContainerIDFile": "", "LogConfig": {"Type": "", "Config": {}},
                   "NetworkMode": "default", "PortBindings": {}, "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
                   "AutoRemove": True, "VolumeDriver": "", "VolumesFrom": None, "ConsoleSize": [24, 80],
                   "CapAdd": None, "CapDrop": None, "CgroupnsMode": "", "Dns": [], "DnsOptions": [], "DnsSearch": [],
                   "ExtraHosts": None, "GroupAdd": None, "IpcMode": "", "Cgroup": "", "Links": None,
                   "OomScoreAdj": 0, "PidMode": "", "Privileged": False, "PublishAllPorts": False,
                   "ReadonlyRootfs": False, "SecurityOpt": None, "UTSMode": "", "UsernsMode": "", "ShmSize": 0,
                   "Isolation": "", "CpuShares": 0, "Memory": 0, "NanoCpus": 0, "CgroupParent": "",
                   "BlkioWeight": 0, "CpuPeriod": 0, "CpuQuota": 0, "CpusetCpus": "", "Devices": [],
                   "MemorySwap": 0, "MemorySwappiness": None, "OomKillDisable": False, "PidsLimit": None,
                   "Ulimits": None, "MaskedPaths": None, "ReadonlyPaths": None},
    "NetworkingConfig": {"EndpointsConfig": {"default": {}}},
}


def _body(**host):
    body = json.loads(json.dumps(CLI_BODY))
    body["HostConfig"].update(host)
    return body


def test_the_clis_zero_values_are_ignored():
    spec = spec_of(CLI_BODY, "")
    assert (spec.image, spec.command, spec.network, spec.auto_remove) == ("busybox", ["echo", "hi"], "bridge", True)
    assert spec.memory is None and spec.ports == [] and spec.mounts == []


def test_honoured_fields_are_translated():
    body = _body(Memory=64 << 20, MemorySwap=64 << 20, NanoCpus=500_000_000, PidsLimit=50,
                 PortBindings={"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]},
                 Binds=["/tmp:/data:ro"], CapDrop=["NET_RAW"], ReadonlyRootfs=True,
                 Mounts=[{"Type": "tmpfs", "Target": "/scratch", "TmpfsOptions": {"SizeBytes": 1 << 20, "Mode": 0o1777}}],
                 Devices=[{"PathOnHost": "/dev/null", "PathInContainer": "/dev/mynull", "CgroupPermissions": "rw"}])
    body.update(Env=["A=1"], Labels={"team": "a"}, WorkingDir="/srv", Hostname="box", Entrypoint="/bin/sh")
    spec = spec_of(body, "/web")
    assert spec.name == "web" and spec.memory == 64 << 20 and spec.cpus == 0.5 and spec.pids_limit == 50
    assert str(spec.ports[0]) == "127.0.0.1:8080:80/tcp"
    assert (spec.mounts[0].source, spec.mounts[0].target, spec.mounts[0].readonly) == ("/tmp", "/data", True)
    assert spec.tmpfs == {"/scratch": "size=1048576,mode=1777"} and spec.read_only
    assert spec.entrypoint == ["/bin/sh"] and spec.env == ["A=1"] and spec.labels == {"team": "a"}
    assert spec.devices[0].target == "/dev/mynull" and spec.cap_drop == ["NET_RAW"]
    assert spec_of(_body(CpuQuota=50000, CpuPeriod=100000), "").cpus == 0.5
    more = spec_of(_body(GroupAdd=["audio"], Init=True, ShmSize=1 << 20, Dns=["10.0.0.1"], DnsSearch=["example.com"],
                         DnsOptions=["ndots:2"], ExtraHosts=["db:10.0.0.2"], UsernsMode="host",
                         Ulimits=[{"Name": "nofile", "Soft": 1024, "Hard": 2048}]), "")
    assert (more.group_add, more.init, more.shm_size, more.dns, more.extra_hosts, more.userns) == \
        (["audio"], True, 1 << 20, ["10.0.0.1"], ["db:10.0.0.2"], "host")
    assert (more.ulimits[0].name, more.ulimits[0].soft, more.ulimits[0].hard) == ("nofile", 1024, 2048)
    none = _body(NetworkMode="none")
    none["NetworkingConfig"] = {"EndpointsConfig": {"none": {}}}
    assert spec_of(none, "").network == "none"


@pytest.mark.parametrize(("host", "config", "field"), [
    ({"OomScoreAdj": 500}, {}, "HostConfig.OomScoreAdj"),
    ({"RestartPolicy": {"Name": "sometimes", "MaximumRetryCount": 0}}, {}, "HostConfig.RestartPolicy"),
    ({"Ulimits": [{"Name": "nofile", "Soft": 2, "Hard": 1}]}, {}, "HostConfig.Ulimits"),
    ({"UsernsMode": "private"}, {}, "HostConfig.UsernsMode"),
    ({"CpuShares": 512}, {}, "HostConfig.CpuShares"),
    ({"MemorySwap": 1 << 30, "Memory": 64 << 20}, {}, "HostConfig.MemorySwap"),
    ({"NetworkMode": "container:other"}, {}, "HostConfig.NetworkMode"),
    ({"Binds": ["data:/data:shared"]}, {}, "HostConfig.Binds[0]"),
    ({"Binds": ["/tmp:/data:shared"]}, {}, "HostConfig.Binds[0]"),
    ({"Mounts": [{"Type": "npipe", "Source": "v", "Target": "/v"}]}, {}, "HostConfig.Mounts[0].Type"),
    ({"Mounts": [{"Type": "volume", "Source": "v1", "Target": "/v", "VolumeOptions": {"Labels": {"a": "b"}}}]}, {},
     "HostConfig.Mounts[0].VolumeOptions.Labels"),
    ({"PortBindings": {"80/tcp": [{"HostPort": ""}]}}, {}, "HostConfig.PortBindings.80/tcp"),
    ({"CpuPeriod": 100000}, {}, "HostConfig.CpuPeriod"),
    ({"NanoCpus": 1, "CpuQuota": 1}, {}, "HostConfig.NanoCpus"),
    ({"ConsoleSize": [24, -1]}, {"Tty": True}, "HostConfig.ConsoleSize"),
    ({"ConsoleSize": "24x80"}, {}, "HostConfig.ConsoleSize"),
    ({}, {"Healthcheck": {"Test": ["BOGUS", "true"]}}, "Config.Healthcheck"),
    ({"Memory": 1024}, {}, "HostConfig.Memory"),
    ({}, {"Image": ""}, "Config.Image"),
    ({"NetworkMode": "none"}, {"NetworkingConfig": {"EndpointsConfig": {"other": {}}}}, "NetworkingConfig"),
    ({}, {"NetworkingConfig": {"EndpointsConfig": {"a": {"IPAMConfig": {"IPv6Address": "fd00::2"}}}}},
     "NetworkingConfig.EndpointsConfig.a.IPAMConfig.IPv6Address"),
    ({}, {"NetworkingConfig": {"EndpointsConfig": {"default": {"Aliases": ["db"]}}}},
     "NetworkingConfig.EndpointsConfig.default.Aliases"),
])
def test_a_non_zero_field_corral_cannot_honour_is_refused_by_name(host, config, field):
    body = _body(**host)
    body.update(config)
    with pytest.raises(InvalidArgument) as caught:
        spec_of(body, "")
    assert caught.value.field == field and caught.value.message.startswith(field.split("[")[0])


def test_terminal_fields_reach_the_spec():
    interactive = spec_of({**_body(ConsoleSize=[30, 100]), "Tty": True, "OpenStdin": True, "StdinOnce": True,
                           "AttachStdin": True}, "")
    assert (interactive.tty, interactive.open_stdin, interactive.stdin_once, interactive.console_size) == (
        True, True, True, [30, 100])
    piped = spec_of({**_body(ConsoleSize=[30, 100]), "OpenStdin": True}, "")
    assert (piped.tty, piped.open_stdin, piped.console_size) == (False, True, None)   # no terminal to size


def test_endpoints_config_gives_further_networks_aliases_and_addresses():
    body = _body(NetworkMode="front")
    body["NetworkingConfig"] = {"EndpointsConfig": {
        "front": {"Aliases": ["web", "app"], "DNSNames": None},
        "back": {"Aliases": None, "IPAMConfig": {"IPv4Address": "10.214.9.5", "IPv6Address": ""}}}}
    spec = spec_of(body, "/web")
    assert spec.network == "front"
    assert [e.to_dict() for e in spec.networks] == [
        {"network": "front", "aliases": ["app"], "ip": None}, {"network": "back", "aliases": [], "ip": "10.214.9.5"}]
    assert spec_of(CLI_BODY, "").networks == []


def test_default_values_pass():
    body = _body(RestartPolicy={"Name": "no"}, LogConfig={"Type": "json-file", "Config": {}}, Isolation="default",
                 MemorySwappiness=-1, PidsLimit=-1)
    body.update(StopSignal="SIGTERM", Healthcheck={"Test": ["NONE"]})
    assert spec_of(body, "").healthcheck.test == ["NONE"]
    lifecycle = spec_of({**_body(RestartPolicy={"Name": "on-failure", "MaximumRetryCount": 3}, AutoRemove=False),
                         "StopSignal": "SIGQUIT", "StopTimeout": 5}, "")
    assert (str(lifecycle.restart_policy), lifecycle.stop_signal, lifecycle.stop_timeout) == ("on-failure:3", "SIGQUIT", 5)
    check = spec_of({**CLI_BODY, "Healthcheck": {"Test": ["CMD", "true"], "Interval": 2_000_000_000, "Retries": 2}},
                    "").healthcheck
    assert (check.test, check.interval, check.retries) == (["CMD", "true"], 2.0, 2)
    with pytest.raises(InvalidArgument):
        spec_of([], "")


def test_filters_parse_with_corrals_parser_and_match_network_listings():
    assert filters.parse('{"label": ["a=b"], "status": {"running": true}}', ("label", "status"), "containers") == \
        {"label": ["a=b"], "status": ["running"]}
    with pytest.raises(InvalidArgument):
        filters.parse('{"nope": ["x"]}', ("label",), "networks")
    assert filters.any_match(None, "x") and filters.any_match(["ab"], "abc", prefix=True)
    assert filters.any_match(["b"], "abc", substring=True) and not filters.any_match(["z"], "abc")
    assert filters.truthy(["true"]) is True and filters.truthy(None) is None
    with pytest.raises(InvalidArgument):
        filters.truthy(["maybe"])


def _container(**fields):
    spec = ContainerSpec.checked(image="busybox")
    return Container(id="a" * 64, name="c", spec=spec, image_id="sha256:" + "b" * 64, created_at=100.0, **fields)


def test_status_is_formatted_as_docker_formats_it():
    assert status_text(_container(state="running", started_at=100.0), now=105) == "Up 5 seconds"
    assert status_text(_container(state="paused", started_at=100.0), now=190) == "Up About a minute (Paused)"
    assert status_text(_container(state="exited", exit_code=3, finished_at=100.0), now=400) == "Exited (3) 5 minutes ago"
    assert status_text(_container(state="created")) == "Created"
    assert status_text(_container(state="removing")) == "Removal In Progress"
    assert timestamp(None) == "0001-01-01T00:00:00Z" and timestamp(0.5).endswith("500000000Z")


def test_versions():
    assert version.split_path("/v1.44/containers/json") == ("1.44", "/containers/json")
    assert version.split_path("/containers/json") == (None, "/containers/json")
    version.check(None)
    version.check("1.44")
    for bad in ("1.99", "1.12"):
        with pytest.raises(InvalidArgument):
            version.check(bad)


def test_router_matches_image_names_with_slashes_and_says_what_is_allowed():
    router = Router()
    router.add("GET", "/images/{name*}/json", lambda r: Reply.json(r.params))
    router.add("DELETE", "/images/{name*}", lambda r: Reply.empty())
    route, request = router.resolve("GET", "/images/localhost:5000/team/app:1/json?x=1&x=2")
    assert request.params == {"name": "localhost:5000/team/app:1"} and request.text("x") == "2"
    with pytest.raises(MethodNotAllowed):
        router.resolve("POST", "/images/a/json")
    with pytest.raises(NotFound):
        router.resolve("GET", "/nothing")
    with pytest.raises(ValueError):
        router.add("GET", "/images/{name*}/json", lambda r: Reply.empty())
    _, request = router.resolve("GET", "/images/a/json?all=1&n=5&bad=x&flag=no")
    assert request.flag("all") and not request.flag("flag") and request.integer("n") == 5
    for call in (lambda: request.flag("bad"), lambda: request.integer("bad"), lambda: request.json()):
        with pytest.raises(InvalidArgument):
            call()
    assert request.json(required=False) == {} and request.header("X") == ""
    assert Reply.text("OK").body == b"OK"


def test_errors_take_dockers_words():
    assert body_of(NotModified("x")) == {"message": "x"} and NotModified.http_status == 304
    assert Unavailable.http_status == 503
    assert body_of(CorralError("boom", hint="look")) == {"message": "boom (look)"}

    def missing():
        raise NotFound("no")
    for lookup, words in ((no_such_container, "No such container: x"), (no_such_image, "No such image: x")):
        with pytest.raises(NotFound, match=words):
            lookup("x", missing)


def test_chunked_request_bodies_are_read_as_a_stream():
    reader = ChunkedReader(io.BufferedReader(io.BytesIO(b"3\r\nabc\r\n2;ext\r\nde\r\n0\r\nTrailer: x\r\n\r\n")))
    assert reader.read(2) + reader.read() + reader.read() == b"abcde" and reader.read() == b""
    with pytest.raises(InvalidArgument):
        ChunkedReader(io.BufferedReader(io.BytesIO(b"zz\r\n"))).read()
    cut = ChunkedReader(io.BufferedReader(io.BytesIO(b"5\r\nab")))
    assert cut.read(5) == b"ab"
    with pytest.raises(InvalidArgument):
        cut.read(5)


def test_top_keeps_the_containers_processes():   # tail: tests/unit/test_log_times.py
    table = top_table("UID PID CMD\nroot 10 sleep 30\nroot 11 other\n", {10})
    assert table == {"Titles": ["UID", "PID", "CMD"], "Processes": [["root", "10", "sleep 30"]]}
    assert top_table("", set()) == {"Titles": [], "Processes": []}
    with pytest.raises(InvalidArgument):
        top_table("A B\n1 2\n", {1})


def test_registry_auth_header():
    header = base64.urlsafe_b64encode(json.dumps({"username": "u", "password": "p"}).encode()).decode().rstrip("=")
    credentials = registry_credentials(header)
    assert (credentials.username, credentials.password) == ("u", "p")
    assert registry_credentials("") is None
    assert registry_credentials(base64.urlsafe_b64encode(b"{}").decode()) is None
    for bad in ("!!!", base64.urlsafe_b64encode(b"[1]").decode()):
        with pytest.raises(InvalidArgument):
            registry_credentials(bad)


def test_events_in_dockers_shape():
    event = Event("container", "die", "c" * 64, "web", time=12.5, attributes={"exitCode": 3, "image": "busybox"})
    shaped = docker_event(event, lambda _id: {"team": "a"})
    assert shaped["Type"] == "container" and shaped["Action"] == "die" and shaped["timeNano"] == 12_500_000_000
    assert shaped["Actor"]["Attributes"] == {"team": "a", "exitCode": "3", "image": "busybox", "name": "web"}
    assert shaped["status"] == "die" and shaped["from"] == "busybox"
    exec_start = docker_event(Event("container", "exec_start", "c", "web", attributes={"command": ["ls", "-l"]}),
                              lambda _id: {})
    assert exec_start["Action"] == "exec_start: ls -l"
    assert docker_event(Event("policy", "violation", "x"), lambda _id: {})["Type"] == "corral"
    assert docker_event(Event("image", "pull", "sha256:x", "busybox:latest"), lambda _id: {})["id"] == "sha256:x"
    assert _timestamp("12.5", "since") == 12.5 and _timestamp("1970-01-01T00:00:10Z", "since") == 10.0
    assert _timestamp("", "since") is None
    with pytest.raises(InvalidArgument):
        _timestamp("yesterday", "since")
