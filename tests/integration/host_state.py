"""What Corral's containers hold on the host, read from the host itself (not from the daemon):
cgroup directories, mounts, host veths, nft rules, state directories, probe map entries and
the daemon's open fds and RSS. The crash and churn tests compare a snapshot against the
containers the daemon still lists: anything of any other container is a leak.

The corral cgroup parent, the bridge and the nft table are shared with other daemons on this
machine, so a snapshot taken before the test is subtracted: only what appeared since counts.
"""
from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

CONTAINER_ID = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class HostSnapshot:
    cgroups: frozenset[str]          # "<hierarchy dir>/<container id>" below the corral parents
    veths: frozenset[str]            # cv<short id>
    nft: frozenset[str]              # container ids named by a rule comment of table ip corral
    mounts: frozenset[str]           # mount points below the daemon's root
    state_dirs: frozenset[str]       # <root>/containers/<id>
    quarantined: frozenset[str] = field(default_factory=frozenset)


def cgroup_dirs() -> set[str]:
    return {path for path in glob.glob("/sys/fs/cgroup/*/corral/*") + glob.glob("/sys/fs/cgroup/corral/*")
            if CONTAINER_ID.match(os.path.basename(path))}


def host_veths() -> set[str]:
    links = json.loads(subprocess.run(["ip", "-j", "link", "show"], capture_output=True, text=True,
                                      check=True).stdout)
    return {link["ifname"] for link in links if re.fullmatch(r"cv[0-9a-f]{12}", link.get("ifname", ""))}


def nft_container_ids() -> set[str]:
    result = subprocess.run(["nft", "-j", "list", "table", "ip", "corral"], capture_output=True, text=True)
    if result.returncode != 0:
        return set()
    comments = [item["rule"].get("comment", "") for item in json.loads(result.stdout)["nftables"] if "rule" in item]
    return {c.split(":", 2)[2] for c in comments if c.startswith("corral:container:")}


def mounts_below(root: Path) -> set[str]:
    prefix = str(root) + "/"
    with open("/proc/self/mountinfo") as handle:
        return {line.split()[4] for line in handle if line.split()[4].startswith(prefix)}


def snapshot(root: Path) -> HostSnapshot:
    containers = root / "containers"
    quarantine = root / "quarantine"
    return HostSnapshot(
        cgroups=frozenset(cgroup_dirs()), veths=frozenset(host_veths()), nft=frozenset(nft_container_ids()),
        mounts=frozenset(mounts_below(root)),
        state_dirs=frozenset(p.name for p in containers.iterdir()) if containers.is_dir() else frozenset(),
        quarantined=frozenset(p.name for p in quarantine.iterdir()) if quarantine.is_dir() else frozenset())


def leaks(before: HostSnapshot, after: HostSnapshot, known: set[str]) -> list[str]:
    """What appeared since `before` and belongs to no container in `known` (ids)."""
    short = {i[:12] for i in known}
    found = [f"cgroup {p}" for p in sorted(after.cgroups - before.cgroups) if os.path.basename(p) not in known]
    found += [f"veth {v}" for v in sorted(after.veths - before.veths) if v[2:] not in short]
    found += [f"nft rule of {i}" for i in sorted(after.nft - before.nft) if i not in known]
    found += [f"mount {m}" for m in sorted(after.mounts - before.mounts)
              if not any(f"/containers/{i}/" in m for i in known)]
    found += [f"state dir {d}" for d in sorted(after.state_dirs) if d not in known]
    return found


def leaks_after(before: HostSnapshot, root: Path, known: set[str], settle: float = 5.0) -> list[str]:
    """`leaks` of a snapshot of `root`, taken again until there are none or `settle` seconds
    have passed: an exited container's veth goes with its network namespace in the kernel's own
    time, and the daemon deletes it and its rules off the exit path (agent/network/teardown.py)."""
    deadline = time.monotonic() + settle
    while (found := leaks(before, snapshot(root), known)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def cgroup_procs(container_id: str) -> list[int]:
    """Pids in a container's unified cgroup (none when it does not exist)."""
    pids: list[int] = []
    for path in glob.glob(f"/sys/fs/cgroup/unified/corral/{container_id}/cgroup.procs") + \
            glob.glob(f"/sys/fs/cgroup/corral/{container_id}/cgroup.procs"):
        with open(path) as handle:
            pids += [int(line) for line in handle if line.strip()]
    return pids


def metrics(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        return response.read().decode()


def map_entries(text: str) -> dict[str, float]:
    """corral_probe_map_entries by map."""
    found = {}
    for line in text.splitlines():
        match = re.match(r'corral_probe_map_entries\{map="([^"]+)"\} (\S+)', line)
        if match:
            found[match.group(1)] = float(match.group(2))
    return found


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def settled_fds(pid: int, baseline: int, timeout: float = 10.0) -> int:
    """The daemon's open fds once in-flight connections have closed (or the count at timeout)."""
    deadline = time.monotonic() + timeout
    count = open_fds(pid)
    while count > baseline and time.monotonic() < deadline:
        time.sleep(0.1)
        count = open_fds(pid)
    return count


def steady_fds(pid: int, quiet: float = 1.0, timeout: float = 15.0) -> int:
    """The daemon's open fds once the count has not changed for `quiet` seconds: a baseline
    taken while its network-namespace pool refills (agent/network/pool.py) is short of the items
    being made, which a later count then reads as a leak."""
    deadline = time.monotonic() + timeout
    count, since = open_fds(pid), time.monotonic()
    while time.monotonic() - since < quiet and time.monotonic() < deadline:
        time.sleep(0.1)
        now = open_fds(pid)
        if now != count:
            count, since = now, time.monotonic()
    return count


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0
