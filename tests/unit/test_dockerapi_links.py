"""HostConfig.Links on a user network as /etc/hosts entries (agent/dockerapi/links.py)."""
from __future__ import annotations

import pytest

from agent.dockerapi.links import links_as_hosts
from agent.errors import InvalidArgument, NotFound
from agent.runtime.model import EXITED, RUNNING, Container, ContainerSpec


def _container(name: str, state: str = RUNNING, networks: tuple[tuple[str, str], ...] = ()) -> Container:
    attachments = [{"network": network, "address": address, "interface": f"eth{i}"}
                   for i, (network, address) in enumerate(networks)]
    return Container(id=name[0] * 64, name=name, spec=ContainerSpec(image="busybox", network="proj_back"),
                     image_id="sha256:" + "b" * 64, created_at=1.0, state=state,
                     network=attachments[0] if attachments else None, extra_attachments=attachments[1:])


CONTAINERS = {c.name: c for c in (
    _container("proj_web_1", networks=(("proj_back", "10.214.0.2"),)),
    _container("other", networks=(("proj_front", "10.214.1.2"), ("proj_back", "10.214.0.9"))),
    _container("stopped", state=EXITED),
    _container("elsewhere", networks=(("proj_front", "10.214.1.3"),)),
)}


def find(ref: str) -> Container:
    if ref not in CONTAINERS:
        raise NotFound(f"container {ref} not found")
    return CONTAINERS[ref]


def test_each_alias_resolves_to_the_linked_containers_address_on_the_network():
    # what Compose's `run` sends: the service's containers under the service name, their short
    # name and their own name (which resolves anyway, so it adds nothing)
    links = ["proj_web_1:web", "/proj_web_1:/web_1", "proj_web_1:proj_web_1", "other"]
    assert links_as_hosts(links, "proj_back", find) == ["web:10.214.0.2", "web_1:10.214.0.2"]
    assert links_as_hosts(["other:o"], "proj_back", find) == ["o:10.214.0.9"]   # its second network
    assert links_as_hosts(None, "bridge", find) == []


@pytest.mark.parametrize(("links", "mode", "words"), [
    (["proj_web_1:web"], "bridge", "user-defined networks only"),
    (["proj_web_1:web"], "", "user-defined networks only"),
    (["proj_web_1:web"], "container:abc", "user-defined networks only"),
    (["nothere:x"], "proj_back", "no such container nothere"),
    (["stopped:x"], "proj_back", "not running"),
    (["elsewhere:x"], "proj_back", "not on network proj_back"),
    ("proj_web_1:web", "proj_back", "expected a list"),
])
def test_what_cannot_be_honoured_is_refused_naming_the_field(links, mode, words):
    with pytest.raises(InvalidArgument) as caught:
        links_as_hosts(links, mode, find)
    assert caught.value.field == "HostConfig.Links" and words in caught.value.message
