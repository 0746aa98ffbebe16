"""Churn: run/rm cycles of /bin/true through the API, then count what was left behind.

Each cycle is create(start=true) + wait + remove on the default bridge network (veth, address,
nft rules, probe watch: everything a container makes). After every 4 Corral cycles one
`crun run` of the same rootfs is timed (the anchor, as in bench/launch.py), so both see the same
load. Containers per second is cycles over the wall time of the Corral cycles alone.

Leaks are counted after the last cycle, for the bench's own container ids only (other
engineers' daemons share the corral/ cgroup parent and nft table on this machine):
  cgroups    dirs named after a container id under /sys/fs/cgroup/*/corral/
  mounts     mount points below the daemon's root
  veths      host links cv<short id>
  nft        rules of `table ip corral` whose comment names a container id
  map        corral_probe_map_entries on /metrics, after minus before (per map)
"""
from __future__ import annotations

import json
import subprocess
import sys
import time

from bench.common import BenchDaemon, Row, corral_cgroups_of, mounts_below, summary
from bench.launch import OciAnchors, api_cycle

ANCHOR_EVERY = 4


def map_entries(daemon: BenchDaemon) -> dict[str, float]:
    _seconds, _size, text = daemon.metrics()
    entries = {}
    for line in text.splitlines():
        if line.startswith("corral_probe_map_entries{"):
            labels, value = line.rsplit(" ", 1)
            entries[labels[len("corral_probe_map_entries"):]] = float(value)
    return entries


def veths_of(ids: set[str]) -> list[str]:
    from agent.network.manager import host_veth_of
    wanted = {host_veth_of(i) for i in ids}
    links = json.loads(subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True, check=True).stdout)
    return [link["ifname"] for link in links if link.get("ifname") in wanted]


def nft_rules_of(ids: set[str]) -> list[str]:
    result = subprocess.run(["nft", "-j", "list", "table", "ip", "corral"], capture_output=True, text=True)
    if result.returncode != 0:
        return []
    comments = [item["rule"].get("comment", "") for item in json.loads(result.stdout)["nftables"] if "rule" in item]
    return [c for c in comments if any(i in c for i in ids)]


def run(cycles: int = 200) -> dict:
    corral, anchor = [], []
    with BenchDaemon(name="churn") as daemon:
        anchors = OciAnchors(daemon.root, daemon.root / "anchors")
        try:
            api_cycle(daemon, "bridge")      # warm-up: first use of the bridge, page cache
            anchors.crun()
            before = map_entries(daemon)
            wall = 0.0
            for number in range(cycles):
                seconds = api_cycle(daemon, "bridge")
                corral.append(seconds)
                wall += seconds
                if number % ANCHOR_EVERY == ANCHOR_EVERY - 1:
                    anchor.append(anchors.crun())
                if number % 50 == 49:
                    print(f"churn: {number + 1}/{cycles}", file=sys.stderr)
            time.sleep(1)    # let the daemon's exit handling and probe unwatch settle
            ids = set(daemon.created)
            leaks = {"cgroups": corral_cgroups_of(ids), "mounts": mounts_below(daemon.root / "containers"),
                     "veths": veths_of(ids), "nft_rules": nft_rules_of(ids),
                     "containers_listed": [c["id"] for c in daemon.client().list_containers(all=True)]}
            after = map_entries(daemon)
            leaks["map_entries_added"] = {k: after.get(k, 0) - before.get(k, 0) for k in set(before) | set(after)
                                          if after.get(k, 0) != before.get(k, 0)}
        finally:
            anchors.close()
    per_second = cycles / wall
    anchor_rate = 1 / summary(anchor)["median"]
    cycle = summary([s * 1e3 for s in corral])
    leak_count = sum(len(v) for v in leaks.values())
    rows = [
        Row("churn", f"API run/rm cycles, bridge ({cycles})", "ctr/s", per_second, anchor="crun",
            ratio=per_second / anchor_rate, note=f"crun {anchor_rate:.1f}/s; cycle median {cycle['median']:.0f} ms "
                                                  f"(p25-p75 {cycle['p25']:.0f}-{cycle['p75']:.0f})").to_dict(),
        Row("churn", "leaks after the cycles", "items", leak_count, target="0", met=leak_count == 0,
            note="; ".join(f"{k}: {len(v)}" for k, v in leaks.items())).to_dict(),
    ]
    return {"cycles": cycles, "containers_per_second": per_second, "crun_per_second": anchor_rate,
            "cycle_ms": [round(s * 1e3, 2) for s in corral], "crun_ms": [round(s * 1e3, 2) for s in anchor],
            "leaks": leaks, "map_entries_before": before, "rows": rows}


if __name__ == "__main__":
    from bench.__main__ import main
    sys.exit(main(["churn", *sys.argv[1:]]))
