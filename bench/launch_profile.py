"""Launch, phase by phase: where an API run of `/bin/true` (--net none) spends its time.

One daemon of its own (`--no-network --no-probes`, own --root and socket, so it needs neither the
shared bridge nor the integration lock), and per round, in a shuffled order:
  phases    create (start=false), start, wait, remove: four API calls, each timed by the client
  cycle     create(start=true) + wait + remove: what `bench launch` times as api_none
  run       `POST /v1/containers/run?remove=true` read to its status frame: one request, what
            `bench launch` times as api_run_none (the --net none target's subject)
  launcher  `corral-launch run --net none` of /bin/true on a copy of the busybox rootfs, fed `go`
            on stdin: the C launcher alone (namespaces, mounts, pivot_root, exec, reap), no
            daemon, no cgroup, no overlay
  crun      `crun run` of the same rootfs (bench/launch.py's anchor, from its helper)

    .venv/bin/python -m bench.launch_profile [ROUNDS] [--spy FILE] [--net bridge] [--pool N] [--root-parent DIR]

`--net bridge` runs the API subjects on the default bridge network (veth, address, routes; the
daemon then has its network, so run it under the integration lock); the anchors stay as they are.

`--pool N` gives the daemon `--netns-pool N` (0: each bridge start makes its namespace, as before
the pool; agent/network/pool.py), so both can be measured alternately.

`--root-parent DIR` puts the daemon's --root below DIR (default /var/tmp, on the root filesystem as
/var/lib/corral is): `--root-parent /dev/shm` takes the filesystem out of the figure (bench/README.md,
"Launch and the filesystem").

`--spy FILE` runs `py-spy record -r 500 --format raw` on the daemon while extra `run` cycles run, and
prints the daemon's hottest frames (self and total) from the collapsed stacks.
"""
from __future__ import annotations

import collections
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.common import VENV_BIN, BenchDaemon, interleave, row_from
from bench.launch import BUSYBOX, OciAnchors, api_cycle, api_run_cycle


def spec(network: str) -> dict:
    return {"image": BUSYBOX, "command": ["/bin/true"], "network": network}


def phases(daemon: BenchDaemon, into: dict[str, list[float]], network: str = "none") -> float:
    """The cycle as four timed calls; appends each call's seconds to `into`, returns the sum."""
    client = daemon.client()
    marks = [time.perf_counter()]
    container = client.create_container(spec(network), start=False)
    daemon.created.add(container["id"])
    marks.append(time.perf_counter())
    client.start_container(container["id"])
    marks.append(time.perf_counter())
    result = client.wait_container(container["id"])
    marks.append(time.perf_counter())
    client.remove_container(container["id"])
    marks.append(time.perf_counter())
    if result.get("exit_code") != 0:
        raise RuntimeError(f"/bin/true exited {result}")
    for name, start, end in zip(("create", "start", "wait", "remove"), marks, marks[1:]):
        into.setdefault(name, []).append(end - start)
    return marks[-1] - marks[0]


def launcher_alone(rootfs: Path) -> float:
    argv = [str(VENV_BIN / "corral-launch"), "run", "--rootfs", str(rootfs), "--hostname", "bench",
            "--net", "none", "--workdir", "/", "--", "/bin/true"]
    start = time.perf_counter()
    result = subprocess.run(argv, input=b"go\n", capture_output=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0 or b"started" not in result.stdout:
        raise RuntimeError(f"corral-launch exited {result.returncode}: {result.stdout!r} {result.stderr[-400:]!r}")
    return elapsed


def hottest(raw: Path, top: int = 25) -> list[str]:
    """Self and total sample counts per frame from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        samples += n
        frames = stack.split(";")
        own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    lines = [f"{samples} samples"]
    lines += [f"self  {n:6d} {100 * n / samples:5.1f}%  {frame}" for frame, n in own.most_common(top)]
    lines += [f"total {n:6d} {100 * n / samples:5.1f}%  {frame}" for frame, n in total.most_common(top * 2)]
    return lines


def run(rounds: int = 30, spy: Path | None = None, network: str = "none", pool: int | None = None,
        root_parent: str = "/var/tmp") -> dict:
    split: dict[str, list[float]] = {}
    flags: tuple[str, ...] = ("--no-network", "--no-probes") if network == "none" else ("--no-probes",)
    if pool is not None:
        flags += ("--netns-pool", str(pool))
    with BenchDaemon(*flags, name="launchprof", parent=root_parent) as daemon:
        anchors = OciAnchors(daemon.root, daemon.root / "anchors")
        try:
            subjects = {"phases": lambda: phases(daemon, split, network), "cycle": lambda: api_cycle(daemon, network),
                        "run": lambda: api_run_cycle(daemon, network),
                        "launcher": lambda: launcher_alone(anchors.rootfs), "crun": anchors.crun}
            samples = interleave(subjects, rounds, warmup=2)
            for name in split:                       # drop the warm-up rounds' phases
                split[name] = split[name][2:]
            report = []
            if spy is not None:
                recorder = subprocess.Popen([str(VENV_BIN / "py-spy"), "record", "-r", "500", "--format", "raw",
                                             "-o", str(spy), "--pid", str(daemon.pid), "--threads"],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                time.sleep(1.0)
                for _ in range(rounds * 3):
                    api_run_cycle(daemon, network)
                recorder.send_signal(2)
                recorder.wait(timeout=60)
                report = hottest(spy)
        finally:
            anchors.close()
    ms = 1e3
    crun = samples["crun"]
    rows = [row_from("launch-profile", f"API {name}", "ms", values, scale=ms, anchor_name="crun", anchor_values=crun)
            for name, values in split.items()]
    rows += [row_from("launch-profile", name, "ms", samples[name], scale=ms, anchor_name="crun", anchor_values=crun)
             for name in ("phases", "cycle", "run", "launcher", "crun")]
    return {"rows": [r.to_dict() for r in rows], "spy": report}


def main(argv: list[str]) -> int:
    rounds = int(argv[0]) if argv and argv[0].isdigit() else 30
    spy = Path(argv[argv.index("--spy") + 1]) if "--spy" in argv else None
    if spy is not None and not (VENV_BIN / "py-spy").exists():
        sys.exit("bench.launch_profile --spy: py-spy is not in the venv (`.venv/bin/pip install py-spy`)")
    network = argv[argv.index("--net") + 1] if "--net" in argv else "none"
    pool = int(argv[argv.index("--pool") + 1]) if "--pool" in argv else None
    root_parent = argv[argv.index("--root-parent") + 1] if "--root-parent" in argv else "/var/tmp"
    result = run(rounds, spy, network, pool, root_parent)
    for row in result["rows"]:
        print(f"{row['figure']:<22} {row['median']:8.2f} ms  p25-p75 {row['p25']:.2f}-{row['p75']:.2f}"
              f"  {row['ratio']:.2f}x crun ({row['ratio_p25']:.2f}-{row['ratio_p75']:.2f})")
    for line in result["spy"]:
        print(line)
    print(json.dumps(result["rows"]), file=sys.stderr)
    return 0


if __name__ == "__main__":
    if shutil.which("crun") is None:
        sys.exit("bench.launch_profile: crun is not installed (bench/setup.sh installs it)")
    sys.exit(main(sys.argv[1:]))
