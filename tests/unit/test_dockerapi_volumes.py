"""The Docker API's volumes over Corral's volume store (a real store in a temp dir, a container
list double): docker's views, create's refusals by name, 404/409 in docker's words, prune's
filters and versions; and what a create body mounts (Binds, Mounts, Config.Volumes)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from agent.dockerapi.errors import body_of
from agent.dockerapi.mounts import mounts_of
from agent.dockerapi.router import Request
from agent.dockerapi.volumes import ANONYMOUS_LABEL, VolumeRoutes, volume_views
from agent.errors import Conflict, InvalidArgument, NotFound
from agent.events import EventLog
from agent.runtime.model import ContainerSpec
from agent.runtime.volumes import Volumes
from agent.volumes.store import VolumeStore


@dataclass
class _Containers:
    """The runtime's ContainerStore as Volumes reads it: every container."""

    items: list = field(default_factory=list)

    def all(self) -> list:
        return list(self.items)


@pytest.fixture
def world(tmp_path):
    containers = _Containers()
    volumes = Volumes(VolumeStore(tmp_path), containers, EventLog(tmp_path / "events.jsonl"))
    parts = SimpleNamespace(runtime=SimpleNamespace(volumes=volumes))
    return SimpleNamespace(routes=VolumeRoutes(parts), volumes=volumes, containers=containers, parts=parts)


def _request(method: str, path: str, body=None, version: str | None = None, **query) -> Request:
    params = {"name": path.rsplit("/", 1)[-1]}
    return Request(method, path, version=version, params=params, query={k: [v] for k, v in query.items()},
                   body=json.dumps(body).encode() if body is not None else b"")


def _json(reply) -> dict:
    return json.loads(reply.body)


def _uses(world, name: str, *volumes: str) -> None:
    spec = ContainerSpec.from_dict({"image": "busybox", "mounts": [
        {"type": "volume", "source": volume, "target": f"/{volume}"} for volume in volumes]})
    world.containers.items.append(SimpleNamespace(name=name, spec=spec))


def test_create_inspect_list_and_remove_in_dockers_shape(world):
    made = world.routes.create(_request("POST", "/volumes/create", {"Name": "data", "Driver": "local",
                                                                    "DriverOpts": {}, "Labels": {"team": "a"}}))
    assert made.status == 201
    view = _json(made)
    assert (view["Name"], view["Driver"], view["Scope"], view["Labels"]) == ("data", "local", "local", {"team": "a"})
    assert view["Mountpoint"].endswith("/volumes/data/_data") and view["CreatedAt"].endswith("Z")
    again = _json(world.routes.create(_request("POST", "/volumes/create", {"Name": "data"})))
    assert again["CreatedAt"] == view["CreatedAt"]                   # the existing one, as docker answers
    anonymous = _json(world.routes.create(_request("POST", "/volumes/create", {})))
    assert len(anonymous["Name"]) == 64
    assert _json(world.routes.inspect(_request("GET", "/volumes/data"))) == view
    listed = _json(world.routes.list(_request("GET", "/volumes")))
    assert sorted(v["Name"] for v in listed["Volumes"]) == sorted(["data", anonymous["Name"]])
    assert all("UsageData" not in v for v in listed["Volumes"])
    only = _json(world.routes.list(_request("GET", "/volumes", filters=json.dumps({"label": ["team=a"]}))))
    assert [v["Name"] for v in only["Volumes"]] == ["data"]
    assert world.routes.remove(_request("DELETE", "/volumes/data")).status == 204
    with pytest.raises(NotFound) as missing:
        world.routes.inspect(_request("GET", "/volumes/data"))
    assert body_of(missing.value) == {"message": "get data: no such volume"}
    with pytest.raises(NotFound):
        world.routes.remove(_request("DELETE", "/volumes/data"))
    assert world.routes.remove(_request("DELETE", "/volumes/data", force="1")).status == 204


@pytest.mark.parametrize("body, field", [
    ({"Name": "v1", "Driver": "nfs"}, "Driver"),
    ({"Name": "v1", "DriverOpts": {"type": "tmpfs"}}, "DriverOpts.type"),
    ({"Name": "v1", "ClusterVolumeSpec": {"Group": "g"}}, "ClusterVolumeSpec"),
    ({"Name": "v1", "Colour": "red"}, "Colour"),
    ({"Name": "v1", "Labels": ["a"]}, "Labels"),
    ({"Name": "-bad"}, "name"),
])
def test_create_refuses_what_it_cannot_honour_by_name_and_makes_nothing(world, body, field):
    with pytest.raises(InvalidArgument) as caught:
        world.routes.create(_request("POST", "/volumes/create", body))
    assert caught.value.field == field
    assert world.volumes.store.list() == []
    with pytest.raises(InvalidArgument):
        world.routes.create(_request("POST", "/volumes/create", ["not", "an", "object"]))


def test_a_volume_in_use_is_a_conflict_and_dangling_filters(world):
    world.volumes.create("used")
    world.volumes.create("free")
    _uses(world, "web", "used")
    with pytest.raises(Conflict) as caught:
        world.routes.remove(_request("DELETE", "/volumes/used", force="1"))
    assert caught.value.http_status == 409 and "in use" in caught.value.message and "web" in caught.value.message
    dangling = _json(world.routes.list(_request("GET", "/volumes", filters=json.dumps({"dangling": ["true"]}))))
    assert [v["Name"] for v in dangling["Volumes"]] == ["free"]
    with pytest.raises(InvalidArgument):
        world.routes.list(_request("GET", "/volumes", filters=json.dumps({"colour": ["red"]})))


def test_prune_takes_anonymous_unused_volumes_unless_all_or_an_old_client(world):
    world.volumes.store.create("named", {"keep": "no"})
    world.volumes.store.create("kept", {"keep": "yes"})
    anonymous, _ = world.volumes.store.create(anonymous=True)
    busy, _ = world.volumes.store.create(anonymous=True)
    _uses(world, "web", busy.name)
    assert ANONYMOUS_LABEL in _json(world.routes.inspect(_request("GET", f"/volumes/{anonymous.name}")))["Labels"]
    pruned = _json(world.routes.prune(_request("POST", "/volumes/prune", version="1.47")))
    assert pruned["VolumesDeleted"] == [anonymous.name]
    nothing = _json(world.routes.prune(_request("POST", "/volumes/prune")))
    assert nothing == {"VolumesDeleted": None, "SpaceReclaimed": 0}
    labelled = _json(world.routes.prune(_request("POST", "/volumes/prune", filters=json.dumps(
        {"all": ["true"], "label!": ["keep=yes"]}))))
    assert labelled["VolumesDeleted"] == ["named"]
    old = _json(world.routes.prune(_request("POST", "/volumes/prune", version="1.41",
                                            filters=json.dumps({"label": ["keep"]}))))
    assert old["VolumesDeleted"] == ["kept"]
    assert [v.name for v in world.volumes.store.list()] == [busy.name]


def test_system_df_sees_sizes_and_users(world):
    volume, _ = world.volumes.store.create("sized")
    with open(f"{volume.mountpoint}/file", "wb") as handle:
        handle.write(b"x" * 1000)
    _uses(world, "web", "sized")
    (view,) = volume_views(world.parts, usage=True)
    assert view["UsageData"] == {"RefCount": 1, "Size": 1000}
    assert "UsageData" not in volume_views(world.parts)[0]


def test_binds_mounts_and_config_volumes_become_corrals_mounts():
    found, tmpfs = mounts_of(
        ["/srv:/srv:ro,Z", "data:/data:nocopy", "logs:/logs:ro"],
        [{"Type": "volume", "Source": "", "Target": "/anon", "VolumeOptions": {"NoCopy": True,
                                                                              "DriverConfig": {"Name": "local"}}},
         {"Type": "volume", "Source": "cache", "Target": "/cache", "ReadOnly": True},
         {"Type": "tmpfs", "Target": "/t", "TmpfsOptions": {"SizeBytes": 1024}}],
        {"/data": {}, "/extra/": {}, "/t": {}})
    assert found == [
        {"source": "/srv", "target": "/srv", "readonly": True},
        {"source": "data", "target": "/data", "readonly": False, "type": "volume", "volume_nocopy": True},
        {"source": "logs", "target": "/logs", "readonly": True, "type": "volume", "volume_nocopy": False},
        {"type": "volume", "source": None, "target": "/anon", "readonly": False, "volume_nocopy": True},
        {"type": "volume", "source": "cache", "target": "/cache", "readonly": True, "volume_nocopy": False},
        {"type": "volume", "target": "/extra/"},
    ]
    assert tmpfs == {"/t": "size=1024"}
    assert mounts_of(None, None, None) == ([], {})


@pytest.mark.parametrize("binds, mounts, volumes, field", [
    (["/srv:/srv:nocopy"], [], None, "HostConfig.Binds[0]"),
    (["data"], [], None, "HostConfig.Binds[0]"),
    ("data:/d", [], None, "HostConfig.Binds"),
    ([], {"Type": "bind"}, None, "HostConfig.Mounts"),
    ([], ["bind"], None, "HostConfig.Mounts[0]"),
    ([], [{"Type": "volume", "Target": "/d", "VolumeOptions": {"Subpath": "x"}}], None,
     "HostConfig.Mounts[0].VolumeOptions.Subpath"),
    ([], [{"Type": "volume", "Target": "/d", "VolumeOptions": {"DriverConfig": {"Name": "nfs"}}}], None,
     "HostConfig.Mounts[0].VolumeOptions.DriverConfig"),
    ([], [], ["/d"], "Config.Volumes"),
])
def test_mounts_refuse_what_they_cannot_honour_by_name(binds, mounts, volumes, field):
    with pytest.raises(InvalidArgument) as caught:
        mounts_of(binds, mounts, volumes)
    assert caught.value.field == field


def test_archive_stat_header_and_paths():
    import base64

    from agent.dockerapi.archive import _path, stat_header
    stat = {"name": "f", "size": 3, "mode": 420, "mtime": "2026-01-01T00:00:00Z", "linkTarget": ""}
    assert json.loads(base64.b64decode(stat_header(stat))) == stat
    assert _path(Request("GET", "/containers/c/archive", query={"path": ["etc/motd"]})) == "/etc/motd"
    with pytest.raises(InvalidArgument) as caught:
        _path(_request("GET", "/containers/c/archive"))
    assert caught.value.field == "path"
