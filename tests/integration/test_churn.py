"""Churn: 100 run/rm cycles, two at a time, half on the bridge with a published port, leave
nothing behind on the host or in the daemon (fds, probe map entries), and the daemon's RSS
grows by less than 20 MiB. `make bench churn` runs the same load 1000 times with timings."""
from __future__ import annotations

import pytest

from tests.integration import host_state
from tests.integration.churn_load import churn

pytestmark = pytest.mark.privileged

CYCLES = 100
RSS_GROWTH_LIMIT = 20 * 1024 * 1024


def test_churn_leaves_nothing_behind(daemon):
    pid = daemon.process.pid
    churn(daemon.socket, 10)      # warm-up: the bridge, nft table and lazily opened files exist
    before = host_state.snapshot(daemon.root)
    fds = host_state.steady_fds(pid)
    rss = host_state.rss_bytes(pid)
    entries = host_state.map_entries(host_state.metrics(daemon.metrics_port))
    cycles = churn(daemon.socket, CYCLES)
    assert len(cycles) == CYCLES and sum(c.bridge for c in cycles) == CYCLES // 2
    assert daemon.out("ps", "-a", "-q") == ""
    assert host_state.leaks_after(before, daemon.root, set()) == []
    assert not any(c.container_id in "".join(host_state.cgroup_dirs()) for c in cycles)
    assert host_state.map_entries(host_state.metrics(daemon.metrics_port)) == entries
    fds_after = host_state.settled_fds(pid, fds)
    assert fds_after <= fds, f"the daemon holds {fds_after - fds} more open fds after {CYCLES} cycles"
    growth = host_state.rss_bytes(pid) - rss
    print(f"churn {CYCLES} cycles: RSS {rss / 2**20:.1f} -> {(rss + growth) / 2**20:.1f} MiB, fds {fds} -> {fds_after}")
    assert growth < RSS_GROWTH_LIMIT, f"RSS grew by {growth / 2**20:.1f} MiB over {CYCLES} cycles"
