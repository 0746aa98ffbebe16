"""Foreign containers recognised from cgroup paths and named from runtime state fixtures."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.discovery.classify import CgroupMatch, HostState, classify, describe

ID = "3f" + "a1" * 31
UID = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
UID_ESCAPED = UID.replace("-", "_")


@pytest.mark.parametrize("path, runtime, pod_uid", [
    (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_ESCAPED}.slice/cri-containerd-{ID}.scope",
     "containerd", UID),
    (f"/kubepods.slice/kubepods-pod{UID_ESCAPED}.slice/cri-containerd-{ID}.scope", "containerd", UID),
    (f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UID_ESCAPED}.slice/crio-{ID}.scope",
     "cri-o", UID),
    (f"/kubepods/burstable/pod{UID}/{ID}", "kubernetes", UID),
    (f"/kubepods/pod{UID}/{ID}", "kubernetes", UID),
    (f"/system.slice/docker-{ID}.scope", "docker", None),
    (f"/docker/{ID}", "docker", None),
    (f"/machine.slice/libpod-{ID}.scope", "podman", None),
    (f"/libpod_parent/libpod-{ID}", "podman", None),
])
def test_container_layouts_are_recognised(path, runtime, pod_uid):
    match = classify(path)
    assert match == CgroupMatch(runtime, ID, path, pod_uid=pod_uid)


def test_systemd_services_are_recognised_by_unit_name():
    assert classify("/system.slice/nginx.service") == CgroupMatch("systemd", "nginx.service",
                                                                   "/system.slice/nginx.service")
    assert classify("/system.slice/getty@tty1.service").id == "getty@tty1.service"


@pytest.mark.parametrize("path", [
    "/", "", "/system.slice", "/kubepods.slice", "/kubepods.slice/kubepods-burstable.slice",
    f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_ESCAPED}.slice",   # the pod itself
    f"/kubepods/burstable/pod{UID}",
    f"/system.slice/docker-{ID}.scope/init.scope",        # a child of a container is the container's
    "/corral/" + ID, "/user.slice/user-1000.slice/session-1.scope",
    "/system.slice/docker.socket", "/init.scope", f"/{ID}",
    f"/machine.slice/libpod-conmon-{ID}.scope",            # podman's monitor, not the container
    f"/system.slice/docker-{ID[:12]}.scope",               # ids are 64 hex digits
    "/user.slice/foo.service",                              # only system.slice units
])
def test_other_cgroups_are_not_containers(path):
    assert classify(path) is None


def test_paths_are_classified_relative_to_any_prefix_left_off():
    assert classify(f"system.slice/docker-{ID}.scope/").id == ID


# --- names from the runtimes' state --------------------------------------------------------------

def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def test_containerd_kubernetes_names_come_from_the_cri_annotations(tmp_path):
    write_json(tmp_path / f"run/containerd/io.containerd.runtime.v2.task/k8s.io/{ID}/config.json",
               {"ociVersion": "1.1.0", "annotations": {
                   "io.kubernetes.cri.container-type": "container",
                   "io.kubernetes.cri.container-name": "nginx",
                   "io.kubernetes.cri.sandbox-name": "web-7d4b9c",
                   "io.kubernetes.cri.sandbox-namespace": "shop",
                   "io.kubernetes.cri.sandbox-uid": UID,
                   "io.kubernetes.cri.image-name": "docker.io/library/nginx:1.25"}})
    match = classify(f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UID_ESCAPED}.slice/"
                     f"cri-containerd-{ID}.scope")
    found = describe(match, HostState(root=str(tmp_path)))
    assert (found.name, found.runtime, found.image) == ("k8s_nginx_web-7d4b9c_shop", "containerd",
                                                         "docker.io/library/nginx:1.25")
    assert (found.pod, found.namespace, found.container) == ("web-7d4b9c", "shop", "nginx")
    assert found.labels == {"io.kubernetes.pod.name": "web-7d4b9c", "io.kubernetes.pod.namespace": "shop",
                            "io.kubernetes.container.name": "nginx", "io.kubernetes.pod.uid": UID}


def test_the_pause_container_of_a_pod_is_named_pod(tmp_path):
    write_json(tmp_path / f"run/containerd/io.containerd.runtime.v2.task/k8s.io/{ID}/config.json",
               {"annotations": {"io.kubernetes.cri.container-type": "sandbox",
                                "io.kubernetes.cri.sandbox-name": "web-7d4b9c",
                                "io.kubernetes.cri.sandbox-namespace": "shop"}})
    found = describe(classify(f"/kubepods/besteffort/pod{UID}/{ID}"), HostState(root=str(tmp_path)))
    assert (found.runtime, found.container, found.name) == ("containerd", "POD", "k8s_POD_web-7d4b9c_shop")


def test_cri_o_names_come_from_its_userdata_config(tmp_path):
    write_json(tmp_path / f"run/containers/storage/overlay-containers/{ID}/userdata/config.json",
               {"annotations": {"io.kubernetes.pod.name": "api-0", "io.kubernetes.pod.namespace": "prod",
                                "io.kubernetes.container.name": "api",
                                "io.kubernetes.cri-o.ImageName": "quay.io/acme/api:2"}})
    found = describe(classify(f"/kubepods/burstable/pod{UID}/{ID}"), HostState(root=str(tmp_path)))
    assert (found.runtime, found.name, found.image) == ("cri-o", "k8s_api_api-0_prod", "quay.io/acme/api:2")
    assert (found.pod, found.namespace, found.container) == ("api-0", "prod", "api")


def test_docker_names_images_and_labels_come_from_config_v2(tmp_path):
    write_json(tmp_path / f"var/lib/docker/containers/{ID}/config.v2.json",
               {"ID": ID, "Name": "/web", "Config": {"Image": "nginx:latest",
                                                     "Labels": {"com.example.team": "shop"}}})
    for path in (f"/system.slice/docker-{ID}.scope", f"/docker/{ID}"):
        found = describe(classify(path), HostState(root=str(tmp_path)))
        assert (found.name, found.runtime, found.image, found.cgroup) == ("web", "docker", "nginx:latest", path)
        assert found.labels == {"com.example.team": "shop"}
        assert found.pod is None


def test_dockershim_kubernetes_labels_give_pod_namespace_container(tmp_path):
    write_json(tmp_path / f"var/lib/docker/containers/{ID}/config.v2.json",
               {"Name": "/k8s_app_web-1_default_x_0", "Config": {"Image": "app:1", "Labels": {
                   "io.kubernetes.pod.name": "web-1", "io.kubernetes.pod.namespace": "default",
                   "io.kubernetes.container.name": "app"}}})
    found = describe(classify(f"/kubepods.slice/kubepods-pod{UID_ESCAPED}.slice/docker-{ID}.scope"),
                     HostState(root=str(tmp_path)))
    assert (found.pod, found.namespace, found.container) == ("web-1", "default", "app")
    assert found.labels["io.kubernetes.pod.uid"] == UID


def test_podman_names_come_from_containers_json(tmp_path):
    image_id = "9e" * 32
    storage = tmp_path / "var/lib/containers/storage"
    write_json(storage / "overlay-containers/containers.json",
               [{"id": "00" * 32, "names": ["other"]}, {"id": ID, "names": ["db"], "image": image_id}])
    write_json(storage / "overlay-images/images.json", [{"id": image_id, "names": ["docker.io/library/postgres:16"]}])
    for path in (f"/machine.slice/libpod-{ID}.scope", f"/libpod_parent/libpod-{ID}"):
        found = describe(classify(path), HostState(root=str(tmp_path)))
        assert (found.name, found.runtime, found.image) == ("db", "podman", "docker.io/library/postgres:16")


def test_podman_rootful_state_under_run_is_read_too(tmp_path):
    write_json(tmp_path / "run/containers/storage/overlay-containers/containers.json",
               [{"id": ID, "names": ["cache"], "image": "ab" * 32}])
    found = describe(classify(f"/machine.slice/libpod-{ID}.scope"), HostState(root=str(tmp_path)))
    assert (found.name, found.image) == ("cache", "ab" * 6)


def test_systemd_units_are_named_by_the_unit(tmp_path):
    found = describe(classify("/system.slice/nginx.service"), HostState(root=str(tmp_path)))
    assert (found.id, found.name, found.runtime, found.image) == ("nginx.service", "nginx.service", "systemd", "")


@pytest.mark.parametrize("path", [
    f"/system.slice/docker-{ID}.scope", f"/machine.slice/libpod-{ID}.scope",
    f"/kubepods/burstable/pod{UID}/{ID}",
    f"/kubepods.slice/kubepods-pod{UID_ESCAPED}.slice/cri-containerd-{ID}.scope"])
def test_without_readable_state_the_short_id_is_the_name(tmp_path, path):
    found = describe(classify(path), HostState(root=str(tmp_path)))
    assert found.name == ID[:12] and found.id == ID and found.image == ""


def test_broken_state_files_fall_back_to_the_id(tmp_path):
    bad = tmp_path / f"var/lib/docker/containers/{ID}/config.v2.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    (tmp_path / "run/containerd/io.containerd.runtime.v2.task/k8s.io" / ID).mkdir(parents=True)
    (tmp_path / f"run/containerd/io.containerd.runtime.v2.task/k8s.io/{ID}/config.json").write_text("[1, 2]")
    assert describe(classify(f"/docker/{ID}"), HostState(root=str(tmp_path))).name == ID[:12]
    assert describe(classify(f"/kubepods/pod{UID}/{ID}"), HostState(root=str(tmp_path))).name == ID[:12]
