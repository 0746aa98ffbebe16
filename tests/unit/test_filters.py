"""docker's --filter rules (agent/runtime/filters.py) over runtime objects, without a daemon."""
from __future__ import annotations

import pytest

from agent.errors import InvalidArgument, NotFound
from agent.events import Event
from agent.images.model import Image, ImageConfig
from agent.runtime import filters
from agent.runtime.model import Container, ContainerSpec, Mount


def container(name, created, state="running", labels=None, image="busybox", exit_code=None, **extra):
    spec = ContainerSpec.checked(image=image, name=name, labels=labels or {}, **extra)
    return Container(id=f"{name:x<8}" + "0" * 56, name=name, spec=spec, image_id="sha256:" + "ab12" * 16,
                     created_at=created, state=state, exit_code=exit_code)


def names(items):
    return [item.name for item in items]


@pytest.fixture
def boxes():
    web = container("web", 1, labels={"tier": "web", "team": "blue"}, mounts=[Mount("/srv/data", "/data")])
    db = container("db", 2, labels={"tier": "db"}, image="alpine:3.19", network="backend")
    old = container("old", 3, state="exited", exit_code=3, network="none")
    db.network = {"network": "backend"}
    return [web, db, old]


def test_parse_takes_both_of_dockers_shapes():
    assert filters.parse(None, filters.CONTAINER_KEYS, "containers") == {}
    assert filters.parse('{"label":["a=b"],"status":[]}', filters.CONTAINER_KEYS, "containers") == {"label": ["a=b"]}
    assert filters.parse('{"label":{"a=b":true,"c":false}}', filters.CONTAINER_KEYS, "c") == {"label": ["a=b"]}


@pytest.mark.parametrize("text, field, message", [
    ("{", "filters", "expected a JSON object like"),
    ("[1]", "filters", "expected a JSON object, got '[1]'"),
    ('{"colour":["red"]}', "filters.colour", "invalid filter 'colour' for containers (known: ancestor,"),
    ('{"label":"a=b"}', "filters.label", "expected a list of strings, got 'a=b'"),
    ('{"label":[1]}', "filters.label", "expected a list of strings"),
    ('{"health":["ok"]}', "filters.health", "'health=ok': expected one of starting, healthy, unhealthy, none"),
    ('{"exited":["-"]}', "filters.exited", "'exited=-': expected an exit code"),
])
def test_parse_names_what_is_wrong(text, field, message):
    with pytest.raises(InvalidArgument) as error:
        filters.parse(text, filters.CONTAINER_KEYS, "containers")
    assert error.value.field == field and message in error.value.message and error.value.http_status == 400
    with pytest.raises(InvalidArgument, match="'dangling=maybe': expected true or false"):
        filters.parse('{"dangling":["maybe"]}', filters.IMAGE_KEYS, "images")


def test_containers(boxes):
    def kept(**wanted):
        return names(filters.containers(boxes, wanted))
    assert kept() == ["web", "db", "old"]
    assert kept(label=["tier"]) == ["web", "db"] and kept(label=["tier=web", "team=blue"]) == ["web"]
    assert kept(label=["tier=web", "team=red"]) == []
    assert kept(name=["^d", "ol"]) == ["db", "old"] and kept(name=["[bad"]) == []
    assert kept(status=["exited"]) == ["old"] and kept(exited=["3"]) == ["old"] and kept(exited=["0"]) == []
    assert kept(ancestor=["busybox"]) == ["web", "old"] and kept(ancestor=["busybox:latest"]) == ["web", "old"]
    assert kept(ancestor=["alpine:3.19"]) == ["db"] and kept(ancestor=["alpine"]) == []
    assert kept(ancestor=["sha256:ab12ab"]) == ["web", "db", "old"] and kept(ancestor=["ab1"]) == []
    assert kept(network=["backend"]) == ["db"] and kept(network=["bridge", "none"]) == ["web", "old"]
    assert kept(volume=["/data"]) == ["web"] and kept(volume=["/srv/data"]) == ["web"]
    assert kept(before=["old"]) == ["web", "db"] and kept(since=["web"]) == ["db", "old"]
    assert kept(since=["dbxx"]) == ["old"]                       # an id prefix
    assert kept(health=["none"]) == ["web", "db", "old"] and kept(health=["healthy"]) == []
    assert kept(id=["^webx"]) == ["web"]
    with pytest.raises(NotFound, match="before=ghost: no such container"):
        kept(before=["ghost"])


def test_health_comes_from_the_health_checks(boxes):
    status = {boxes[0].id: "unhealthy", boxes[1].id: "starting"}
    assert names(filters.containers(boxes, {"health": ["unhealthy"]}, status.get)) == ["web"]
    assert names(filters.containers(boxes, {"health": ["none", "starting"]}, status.get)) == ["db", "old"]


def test_images():
    def image(name, tag, created, digit, labels=None):
        return Image(id="sha256:" + digit * 64, name=name, tag=tag, layers=[], created=created, size=1,
                     config=ImageConfig(labels=labels or {}))
    items = [image("busybox", "latest", 1, "b"), image("alpine", "3.19", 2, "a", {"maintainer": "me"}),
             image("", "", 3, "c")]

    def kept(**wanted):
        return [i.id[7:8] for i in filters.images(items, wanted)]
    assert kept() == ["b", "a", "c"]
    assert kept(reference=["busy*"]) == ["b"] and kept(reference=["*:3.*"]) == ["a"] and kept(reference=["x"]) == []
    assert kept(label=["maintainer=me"]) == ["a"] and kept(label=["maintainer=you"]) == []
    assert kept(dangling=["true"]) == ["c"] and kept(dangling=["false"]) == ["b", "a"]
    assert kept(before=["alpine:3.19"]) == ["b"] and kept(since=["busybox"]) == ["a", "c"]
    assert kept(since=["sha256:bbbb"]) == ["a", "c"]
    with pytest.raises(NotFound, match="since=nothing: no such image"):
        kept(since=["nothing"])


def test_events():
    start = Event("container", "start", "c0ffee" + "0" * 58, "web", attributes={"image": "busybox"})
    imported = Event("image", "import", "sha256:1234", "alpine:3.19")
    labels = {start.id: {"tier": "web"}}

    def matches(item, **wanted):
        return filters.event_matches(item, wanted, lambda ref: labels.get(ref, {}))
    assert matches(start) and matches(start, type=["container"]) and not matches(imported, type=["container"])
    assert matches(start, event=["start", "die"]) and not matches(start, event=["die"])
    assert matches(start, scope=["local"]) and not matches(start, scope=["swarm"])
    assert matches(start, container=["web"]) and matches(start, container=["c0ff"]) and not matches(
        start, container=["c0"])
    assert not matches(imported, container=["web"])
    assert matches(start, image=["busybox"]) and matches(start, image=["busybox:latest"])
    assert matches(imported, image=["alpine:3.19"]) and not matches(start, image=["alpine"])
    assert matches(start, label=["tier=web"]) and not matches(start, label=["tier=db"])
    assert not matches(imported, label=["tier"])
    assert filters.event_matches(start, {"label": ["image=busybox"]})    # attributes are labels too


def test_volumes():
    items = [{"Name": "data", "Driver": "local", "Labels": {"backup": "yes"}, "UsageData": {"RefCount": 1}},
             {"Name": "cache", "Driver": "local", "Labels": {}, "UsageData": {"RefCount": 0}},
             {"Name": "scratch"}]

    def kept(users_of=None, **wanted):
        return [v["Name"] for v in filters.volumes(items, wanted, users_of)]
    assert kept() == ["data", "cache", "scratch"]
    assert kept(name=["c"]) == ["cache", "scratch"] and kept(name=["^data$"]) == ["data"]
    assert kept(label=["backup=yes"]) == ["data"] and kept(driver=["nfs"]) == []
    assert kept(dangling=["true"]) == ["cache", "scratch"] and kept(dangling=["0"]) == ["data"]
    assert kept({"data": 0, "cache": 2, "scratch": 0}.get, dangling=["true"]) == ["data", "scratch"]
    assert filters.parse('{"dangling":["true"],"name":["x"]}', filters.VOLUME_KEYS, "volumes") == \
        {"dangling": ["true"], "name": ["x"]}


def test_networks():
    items = [{"name": "corral0", "driver": "bridge"}, {"name": "backend", "driver": "bridge"},
             {"name": "front", "driver": "bridge", "labels": {"tier": "web"}}]

    def kept(**wanted):
        return [n["name"] for n in filters.networks(items, wanted, builtin="corral0")]
    assert kept() == ["corral0", "backend", "front"]
    assert kept(type=["custom"]) == ["backend", "front"] and kept(type=["builtin"]) == ["corral0"]
    assert kept(name=["^b"]) == ["backend"] and kept(id=["front"]) == ["front"]
    assert kept(driver=["macvlan"]) == [] and kept(scope=["swarm"]) == [] and kept(scope=["local"]) == kept()
    assert kept(label=["tier=web"]) == ["front"]
    with pytest.raises(InvalidArgument, match="'type=overlay': expected custom or builtin"):
        kept(type=["overlay"])
    assert filters.parse('{"type":["custom"]}', filters.NETWORK_KEYS, "networks") == {"type": ["custom"]}
