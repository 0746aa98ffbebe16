"""Seccomp: what the default profile adds to a launch, and that it is compiled once.

Subjects, interleaved in one daemon: API create(start) + wait + remove of `/bin/true` with
`--net none`, under the default profile and under `seccomp=unconfined` (no filter at all),
which is the launch as it was before profiles. The target (issue 13): within 10 %.
"""
from __future__ import annotations

import sys
import time

from bench.common import BenchDaemon, interleave, row_from
from bench.launch import BUSYBOX


def cycle(daemon: BenchDaemon, security_opt: list[str]) -> float:
    client = daemon.client()
    start = time.perf_counter()
    container = client.create_container({"image": BUSYBOX, "command": ["/bin/true"], "network": "none",
                                         "security_opt": security_opt}, start=True)
    daemon.created.add(container["id"])
    result = client.wait_container(container["id"])
    client.remove_container(container["id"])
    elapsed = time.perf_counter() - start
    if result.get("exit_code") != 0:
        raise RuntimeError(f"/bin/true exited {result}")
    return elapsed


def run(rounds: int = 30) -> dict:
    with BenchDaemon(name="seccomp") as daemon:
        samples = interleave({"default": lambda: cycle(daemon, []),
                              "unconfined": lambda: cycle(daemon, ["seccomp=unconfined"])},
                             rounds, warmup=3, progress="seccomp")
        compiled = len(list((daemon.root / "seccomp").glob("*.bpf")))
    rows = [row_from("seccomp", "API run /bin/true, default profile", "ms", samples["default"], scale=1e3,
                     anchor_name="unconfined", anchor_values=samples["unconfined"], target="<= 1.1x unconfined",
                     limit=1.1),
            row_from("seccomp", "API run /bin/true, seccomp=unconfined", "ms", samples["unconfined"], scale=1e3)]
    return {"rows": [r.to_dict() for r in rows], "rounds": rounds, "filters_compiled": compiled,
            "samples_ms": {k: [round(v * 1e3, 3) for v in vs] for k, vs in samples.items()}}


if __name__ == "__main__":
    from bench.__main__ import main
    sys.exit(main(["seccomp", *sys.argv[1:]]))
