"""CPU per API launch cycle, `--net none` against the bridge: where a back-to-back loop's floor is.

    flock /tmp/corral-itest.lock .venv/bin/python -m bench.launch_cpu [CYCLES]

For each network, a daemon of its own (`--no-probes`; `--no-network` for none), 20 warm-up
cycles (create+start, wait, remove of /bin/true, as bench.launch's api cycle), then CYCLES
cycles (default 200) back to back; per cycle: the wall time, the daemon's CPU with its reaped
children (utime, stime, cutime, cstime of /proc/PID/stat: the launcher, shim and container are
its children), those children alone, and the machine's busy and system+irq time (/proc/stat,
all CPUs: the kernel's own workers too, and whatever else runs). Two rounds, alternated.
"""
from __future__ import annotations

import os
import sys
import time

from bench.common import BenchDaemon
from bench.launch import api_cycle

HZ = os.sysconf("SC_CLK_TCK")
FLAGS = {"none": ("--no-network", "--no-probes"), "bridge": ("--no-probes",)}


def _process(pid: int) -> tuple[float, float]:
    """(own + children, children) CPU seconds of process `pid`."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    own, children = int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])
    return (own + children) / HZ, children / HZ


def _machine() -> tuple[float, float]:
    """(busy, system + irq + softirq) CPU seconds of the machine."""
    values = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return (sum(values) - values[3] - values[4]) / HZ, (values[2] + values[5] + values[6]) / HZ


def measure(network: str, cycles: int) -> dict[str, float]:
    with BenchDaemon(*FLAGS[network], name="launchcpu") as daemon:
        for _ in range(20):
            api_cycle(daemon, network)
        time.sleep(1.5)                       # the pool's first fill and the warm-up's clean-up
        (total0, kids0), (busy0, system0), start = _process(daemon.pid), _machine(), time.perf_counter()
        for _ in range(cycles):
            api_cycle(daemon, network)
        wall = time.perf_counter() - start
        time.sleep(0.3)                       # the last exit's detach and clean-up
        (total1, kids1), (busy1, system1) = _process(daemon.pid), _machine()
    ms = 1e3 / cycles
    return {"wall": wall * ms, "daemon+children": (total1 - total0) * ms, "children": (kids1 - kids0) * ms,
            "machine busy": (busy1 - busy0) * ms, "machine system+irq": (system1 - system0) * ms}


def main(argv: list[str]) -> int:
    cycles = int(argv[0]) if argv else 200
    for _ in range(2):
        for network in ("none", "bridge"):
            figures = measure(network, cycles)
            print(f"{network:6s} per cycle: " + ", ".join(f"{name} {value:.2f} ms" for name, value in figures.items()),
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
