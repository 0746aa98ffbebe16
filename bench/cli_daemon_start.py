"""Daemon start-up (issue 20 items 3 and 5): `corral daemon` from exec to its API answering.

Subjects, one of each per round in a shuffled order, each a daemon on its own root (--config
none, own socket and metrics port), stopped with SIGTERM after it answered:
  restart_0      a restart on a root that exists, no containers, `--no-probes --no-network`, no
                 Docker socket (bench/footprint.py's daemon)
  restart_20     the same with 20 running `sleep` containers (`--net none`) to adopt
  restart_full   networking (the default bridge) and the Docker API socket on, probes off
  restart_probes probes on, from the probe cache a previous start of that root compiled
  first          a first start on an empty root (it builds the busybox image)
  python         the venv's `python -c pass` (anchor: the interpreter alone)
"Ready" is exec to the first 200 of GET /v1/version, polled every 5 ms over the socket.
Profile with `python -X importtime -m agent.cli daemon ...` and py-spy (bench/README.md).
"""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import CORRAL, BenchDaemon, interleave, row_from, timed_command
from bench.launch import BUSYBOX

CONTAINERS = 20
TARGET_S = 0.5            # restart to ready with probes (issue 20 item 5)
NO_PROBE_TARGET_S = 0.35  # the part without probes, leaving the probes' load its share


def answers(path: Path) -> bool:
    """One GET /v1/version over the socket; True on a 200."""
    try:
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(1)
            client.connect(str(path))
            client.sendall(b"GET /v1/version HTTP/1.1\r\nHost: corral\r\nConnection: close\r\n\r\n")
            return client.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


class Restarted(BenchDaemon):
    """A BenchDaemon whose start() polls every 5 ms and says how long the API took to answer."""

    def start(self, timeout: float = 90.0) -> None:
        self.ready_seconds = self.timed_start(timeout)

    def timed_start(self, timeout: float = 90.0) -> float:
        self.socket.unlink(missing_ok=True)
        args = [CORRAL, "daemon", "--config", "none", "--root", str(self.root), "--socket", str(self.socket),
                "--metrics-addr", f"127.0.0.1:{self.metrics_port}", *self.extra]
        with open(self.log, "ab") as log:
            started = time.perf_counter()
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        while time.perf_counter() - started < timeout:
            if answers(self.socket):
                return time.perf_counter() - started
            if self.process.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.process.returncode}:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.005)
        raise RuntimeError(f"daemon did not answer in {timeout:.0f}s:\n{self.log.read_text()[-3000:]}")

    def restart(self) -> float:
        self.stop()
        return self.timed_start()


def first_start(extra: list[str]) -> Callable[[], float]:
    def once() -> float:
        daemon = Restarted(*extra, name="first-start")
        try:
            daemon.start()
            return daemon.ready_seconds
        finally:
            daemon.close()
    return once


def run(rounds: int = 10) -> dict:
    quiet = ["--no-network", "--docker-socket", ""]
    daemons = {"restart_0": Restarted("--no-probes", *quiet, name="restart-0"),
               "restart_20": Restarted("--no-probes", *quiet, name="restart-20"),
               "restart_full": Restarted("--no-probes", name="restart-full"),
               "restart_probes": Restarted(*quiet, name="restart-probes")}
    full = daemons["restart_full"]
    full.extra += ["--docker-socket", str(full.root / "docker.sock")]
    try:
        for daemon in daemons.values():
            daemon.start()
        for number in range(CONTAINERS):
            daemons["restart_20"].run({"image": BUSYBOX, "command": ["sleep", "3600"], "network": "none",
                                       "name": f"bench-restart-{number}"})
        subjects: dict[str, Callable[[], float]] = {name: daemon.restart for name, daemon in daemons.items()}
        subjects["first"] = first_start(["--no-probes", *quiet])
        subjects["python"] = lambda: timed_command([sys.executable, "-c", "pass"])
        samples = interleave(subjects, rounds, warmup=1, progress="daemon start")
        compiled = [line for line in daemons["restart_probes"].log.read_text().splitlines() if "probes " in line]
    finally:
        for daemon in daemons.values():
            daemon.close()
    python = samples["python"]
    rows = []
    for name, figure, target in (
            ("restart_0", "restart to ready, --no-probes, 0 containers", NO_PROBE_TARGET_S),
            ("restart_20", f"restart to ready, --no-probes, {CONTAINERS} containers", NO_PROBE_TARGET_S),
            ("restart_full", "restart to ready, --no-probes, bridge + Docker API", NO_PROBE_TARGET_S),
            ("restart_probes", "restart to ready, probes from the cache", TARGET_S),
            ("first", "first start (empty root: busybox image built)", None)):
        row = row_from("daemon-start", figure, "s", samples[name], anchor_name="python -c pass",
                       anchor_values=python, target=f"<= {target} s" if target else None)
        if target:
            row.met = row.median <= target
        rows.append(row)
    rows.append(row_from("daemon-start", "venv `python -c pass` (anchor)", "s", python))
    return {"rows": [r.to_dict() for r in rows], "rounds": rounds, "probe_log": compiled[-2:],
            "samples_ms": {name: [round(v * 1e3, 1) for v in values] for name, values in samples.items()}}


if __name__ == "__main__":
    from bench.__main__ import main
    sys.exit(main(["daemon-start", *sys.argv[1:]]))
