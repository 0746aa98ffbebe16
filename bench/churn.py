"""Churn: run/rm cycles of /bin/true through the API, two at a time, every other one on the
default bridge with a published port (the load of tests/integration/churn_load.py, whose 100-cycle
version is in `make test`), then what was left behind and what the daemon grew by.

Cycles run in chunks of CHUNK; after each chunk one `crun run` of the same rootfs is timed (the
anchor, as in bench/launch.py), so both see the same load. Containers per second is cycles over
the wall time of the chunks alone.

Measured after a warm-up of 20 cycles (the bridge, nft table and lazily opened files exist):
  leaks      cgroup dirs, mounts below the daemon's root, host veths, nft rules, state dirs
             that appeared since and belong to no container (tests/integration/host_state.py;
             other daemons share the corral/ cgroup parent and nft table: only new ones count)
  map        corral_probe_map_entries on /metrics, after minus before (per map)
  fds        the daemon's /proc/PID/fd count, after minus before
  rss        the daemon's VmRSS after minus before (target < 20 MiB), sampled every 100 cycles
"""
from __future__ import annotations

import sys
import time

from bench.common import BenchDaemon, Row, summary
from bench.launch import OciAnchors
from tests.integration import host_state
from tests.integration.churn_load import churn

CHUNK = 20
RSS_TARGET = 20 * 2**20


def run(cycles: int = 1000) -> dict:
    seconds, anchor, rss_curve = [], [], []
    with BenchDaemon(name="churn") as daemon:
        anchors = OciAnchors(daemon.root, daemon.root / "anchors")
        try:
            churn(daemon.socket, 20)     # warm-up
            anchors.crun()
            before = host_state.snapshot(daemon.root)
            entries_before = host_state.map_entries(host_state.metrics(daemon.metrics_port))
            fds_before = host_state.open_fds(daemon.pid)
            rss_before = host_state.rss_bytes(daemon.pid)
            wall = 0.0
            for done in range(0, cycles, CHUNK):
                started = time.perf_counter()
                seconds += [c.seconds for c in churn(daemon.socket, min(CHUNK, cycles - done))]
                wall += time.perf_counter() - started
                anchor.append(anchors.crun())
                if (done + CHUNK) % 100 == 0:
                    rss_curve.append(host_state.rss_bytes(daemon.pid))
                    print(f"churn: {done + CHUNK}/{cycles}, RSS {rss_curve[-1] / 2**20:.1f} MiB", file=sys.stderr)
            time.sleep(1)    # let exit handling and probe unwatch settle
            after = host_state.snapshot(daemon.root)
            listed = {c["id"] for c in daemon.client().list_containers(all=True)}
            entries_after = host_state.map_entries(host_state.metrics(daemon.metrics_port))
            fds_after = host_state.settled_fds(daemon.pid, fds_before)
            rss_after = host_state.rss_bytes(daemon.pid)
        finally:
            anchors.close()
    host_leaks = host_state.leaks(before, after, set())
    map_added = {k: entries_after.get(k, 0) - entries_before.get(k, 0) for k in set(entries_before) | set(entries_after)
                 if entries_after.get(k, 0) != entries_before.get(k, 0)}
    fds_added = max(0, fds_after - fds_before)
    leaks = {"host": host_leaks, "containers_listed": sorted(listed), "map_entries_added": map_added,
             "fds_added": fds_added}
    leak_count = len(host_leaks) + len(listed) + len(map_added) + fds_added
    per_second = cycles / wall
    anchor_rate = 1 / summary(anchor)["median"]
    cycle = summary([s * 1e3 for s in seconds])
    growth = rss_after - rss_before
    rows = [
        Row("churn", f"API run/rm cycles, 2 at a time, half bridge -p ({cycles})", "ctr/s", per_second,
            anchor="crun", ratio=per_second / anchor_rate,
            note=f"crun {anchor_rate:.1f}/s; cycle median {cycle['median']:.0f} ms "
                 f"(p25-p75 {cycle['p25']:.0f}-{cycle['p75']:.0f})").to_dict(),
        Row("churn", "leaks after the cycles", "items", leak_count, target="0", met=leak_count == 0,
            note=f"host {len(host_leaks)}; listed {len(listed)}; map {map_added}; "
                 f"fds {fds_before} -> {fds_after}").to_dict(),
        Row("churn", "daemon RSS growth", "MiB", growth / 2**20, target="< 20 MiB", met=growth < RSS_TARGET,
            note=f"{rss_before / 2**20:.1f} -> {rss_after / 2**20:.1f} MiB").to_dict(),
    ]
    return {"cycles": cycles, "containers_per_second": per_second, "crun_per_second": anchor_rate,
            "cycle_ms": [round(s * 1e3, 2) for s in seconds], "crun_ms": [round(s * 1e3, 2) for s in anchor],
            "leaks": leaks, "map_entries_before": entries_before, "fds": [fds_before, fds_after],
            "rss_bytes": [rss_before, *rss_curve, rss_after], "rows": rows}


if __name__ == "__main__":
    from bench.__main__ import main
    sys.exit(main(["churn", *sys.argv[1:]]))
