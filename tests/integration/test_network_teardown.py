"""A bridge container's network after its exit: the waiters are told at once and the detach
runs off the exit path (agent/network/teardown.py), and yet the container starts again with
its address, a host port it published is free for the next container, and nothing is left."""
from __future__ import annotations

import json

import pytest

from tests.integration.corral_daemon import free_port
from tests.integration.test_container_network import nft_rules, settled, veths, wait_http

pytestmark = pytest.mark.privileged


def lease_of(daemon, container_id: str) -> str | None:
    addresses = json.loads((daemon.root / "networks" / "corral0" / "addresses.json").read_text())["addresses"]
    return addresses.get(container_id)


def test_a_quick_exit_starts_again_with_its_address_and_rm_leaves_nothing(daemon):
    before_veths = veths()
    daemon.cli("run", "-d", "--name", "quick", "busybox", "ip", "-o", "-4", "addr", "show", "eth0")
    container_id = daemon.inspect("quick")["Id"]
    try:
        assert daemon.out("wait", "quick").strip() == "0"
        daemon.cli("start", "quick")           # right after the exit: its detach may be queued still
        assert daemon.out("wait", "quick").strip() == "0"
        lines = [line.split()[3] for line in daemon.out("logs", "quick").splitlines()]
        assert len(lines) == 2 and lines[0] == lines[1] and lines[0].startswith("10.213.")
    finally:
        daemon.cli("rm", "-f", "quick")
    settled(daemon)
    assert lease_of(daemon, container_id) is None
    assert not (daemon.root / "networks" / "corral0" / "endpoints" / f"{container_id}.json").exists()
    assert veths() == before_veths


def test_a_port_published_by_an_exited_container_is_free_for_the_next(daemon, tmp_path):
    (tmp_path / "index.html").write_text("second\n")
    port = free_port()
    rules = nft_rules().count("corral:container:")
    daemon.cli("run", "--rm", "-p", f"{port}:80", "busybox", "true")
    daemon.cli("run", "-d", "--name", "second", "-p", f"{port}:80", "-v", f"{tmp_path}:/www:ro",
               "busybox", "httpd", "-f", "-p", "80", "-h", "/www")
    try:
        assert wait_http(f"http://127.0.0.1:{port}/") == b"second\n"
    finally:
        daemon.cli("rm", "-f", "second")
    settled(daemon)
    assert nft_rules().count("corral:container:") == rules
