"""What the syscall probe costs: ns added per getppid() in a watched container.

Configurations, interleaved in a shuffled order each round, each in a fresh worker process (BCC
never gives back the ~60 MiB a compile takes):
  none              no program attached
  empty_exit        an empty raw tracepoint program on sys_exit      (anchor of `probes`)
  probes            the probes, the loop's cgroup watched
  probes_unwatched  the probes, the loop's cgroup not watched        (what host processes pay)
  probes_kill_rule  the probes, watched, with a syscall kill rule (on sync, which the loop never
                    calls): what a container with kill rules pays over `probes`
  probes_rate_limit the probes, watched, with a syscall rate limit never reached (probes/rates.c):
                    what a container with a kernel-checked rate threshold pays over `probes`
  probes_syscall_rate_other  the probes, watched, with a per-syscall rate limit on `sync` (never
                    called): what the other syscalls of a container with per-syscall limits pay
  probes_syscall_rate  the probes, watched, with a per-syscall rate limit on getppid never
                    reached: what a limited syscall pays
  empty_enter_exit  empty programs on sys_enter and sys_exit         (anchor of `latency`)
  latency           the probes with syscall latency histograms, watched

The loop is a tiny C program (built here with gcc) pinned to one CPU, run inside a cgroup v2
directory /sys/fs/cgroup/unified/corral-bench-<rand>; each run reports its fastest of several
repetitions (VM noise only ever adds time), and the table shows the median and spread over
rounds. Ratios compare added ns against the anchor measured in the same run. "in prog" is the
kernel's own run-time statistic of the sys_exit program (a second, short run with statistics
on): less noisy than wall time on a shared VM, it shows what the program body costs.

Usage: probe_cost.py [--rounds 5] [--calls 500000] [--reps 5] [--out bench/results/probe_cost.json]
Needs root.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CONFIGS = ("none", "empty_exit", "probes", "probes_unwatched", "probes_kill_rule", "probes_rate_limit",
           "probes_syscall_rate_other", "probes_syscall_rate", "empty_enter_exit", "latency")
ANCHORS = {"probes": "empty_exit", "probes_unwatched": "empty_exit", "probes_kill_rule": "empty_exit",
           "probes_rate_limit": "empty_exit", "probes_syscall_rate_other": "empty_exit",
           "probes_syscall_rate": "empty_exit", "latency": "empty_enter_exit"}

LOOP = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(int argc, char **argv) {
    long n = atol(argv[1]);
    int reps = atoi(argv[2]);
    for (int r = 0; r < reps; r++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        for (long i = 0; i < n; i++) syscall(SYS_getppid);
        clock_gettime(CLOCK_MONOTONIC, &b);
        printf("%.3f\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / n);
    }
    return 0;
}
"""


def run_loop(cgroup: Path, loop: Path, calls: int, reps: int) -> float:
    """Fastest ns per getppid of `reps` repetitions, run inside `cgroup`."""
    pin = ["taskset", "-c", str(os.cpu_count() - 1)] if shutil.which("taskset") else []
    out = subprocess.run([*pin, "sh", "-c", f'echo $$ > {cgroup}/cgroup.procs && exec "$@"', "sh",
                          str(loop), str(calls), str(reps)], check=True, capture_output=True,
                         text=True).stdout
    return min(float(line) for line in out.split())


def program_ns(prog_fd: int, cgroup: Path, loop: Path, calls: int) -> float:
    """Mean ns inside the sys_exit program per run, from the kernel's own run-time statistics.

    BPF_ENABLE_STATS turns the statistics on only while its fd is open (the sysctl is left
    alone); timing each run adds ~2 clock reads, so compare these figures with each other.
    """
    import ctypes as ct

    from agent.probes.cgroup_programs import _bpf
    attr = (ct.c_uint8 * 16)()                 # enable_stats.type = BPF_STATS_RUN_TIME (0)
    stats_fd = _bpf(32, attr)                  # BPF_ENABLE_STATS
    try:
        run_loop(cgroup, loop, calls, 1)
        info = dict(line.split(":", 1) for line in Path(f"/proc/self/fdinfo/{prog_fd}").read_text().splitlines())
        return int(info["run_time_ns"]) / max(int(info["run_cnt"]), 1)
    finally:
        os.close(stats_fd)


def worker(config: str, cgroup: Path, loop: Path, calls: int, reps: int) -> tuple[float, float | None]:
    """Set up one configuration, measure (wall ns per call, ns in the program), tear it down."""
    if config == "none":
        return run_loop(cgroup, loop, calls, reps), None
    if config.startswith("empty"):
        from bcc import BPF
        bpf = BPF(text=(REPO / "probes" / "anchor.c").read_bytes())
        try:
            bpf.attach_raw_tracepoint(tp=b"sys_exit", fn_name=b"anchor_sys_exit")
            if config == "empty_enter_exit":
                bpf.attach_raw_tracepoint(tp=b"sys_enter", fn_name=b"anchor_sys_enter")
            wall = run_loop(cgroup, loop, calls, reps)
            return wall, program_ns(bpf.funcs[b"anchor_sys_exit"].fd, cgroup, loop, calls)
        finally:
            bpf.cleanup()
    from agent.probes.loader import ProbeOptions, ProbeSet
    probes = ProbeSet(REPO / "probes", ProbeOptions(syscall_latency=config == "latency"))
    probes.load()
    try:
        cgroup_id = cgroup.stat().st_ino
        if config != "probes_unwatched":
            probes.watch(cgroup_id, str(cgroup))
        if config == "probes_kill_rule":
            from agent.syscall_table import load_syscall_table
            probes.set_syscall_actions(cgroup_id, {load_syscall_table().require("sync")})
        if config == "probes_rate_limit":
            probes.set_rate_limits(cgroup_id, {"syscalls": 2**62})
        if config.startswith("probes_syscall_rate"):
            from agent.syscall_table import load_syscall_table
            name = "getppid" if config == "probes_syscall_rate" else "sync"
            probes.set_rate_limits(cgroup_id, {("syscalls", load_syscall_table().require(name)): 2**62})
        result = run_loop(cgroup, loop, calls, reps)
        inside = program_ns(probes.program_fds()["corral_sys_exit"], cgroup, loop, calls)
        if config != "probes_unwatched":
            counted = probes.syscall_counts()[cgroup_id].get(_getppid(), (0, 0))[0]
            if counted < calls * reps:
                raise SystemExit(f"probe counted {counted} getppid calls, expected {calls * reps}")
        return result, inside
    finally:
        probes.close()


def _getppid() -> int:
    from agent.syscall_table import load_syscall_table
    return load_syscall_table().require("getppid")


def summarize(samples: dict[str, list[float]]) -> dict[str, dict]:
    base = statistics.median(samples["none"])
    rows = {}
    for config in CONFIGS:
        values = samples[config]
        median = statistics.median(values)
        row = {"median_ns": round(median, 1), "min_ns": round(min(values), 1),
               "max_ns": round(max(values), 1), "added_ns": round(median - base, 1),
               "samples": [round(v, 1) for v in values]}
        anchor = ANCHORS.get(config)
        if anchor:
            anchor_added = statistics.median(samples[anchor]) - base
            row["anchor"] = anchor
            row["ratio_to_anchor"] = round((median - base) / anchor_added, 2) if anchor_added > 0 else None
        rows[config] = row
    return rows


def print_table(rows: dict[str, dict]) -> None:
    print(f"{'config':26} {'median ns':>10} {'spread':>15} {'added ns':>9} {'in prog':>8} {'x anchor':>9}")
    for config, row in rows.items():
        ratio = row.get("ratio_to_anchor")
        ratio_text = f"{ratio:.2f} ({row['anchor']})" if ratio is not None else ""
        spread = f"{row['min_ns']:.0f}-{row['max_ns']:.0f}"
        in_program = row.get("sys_exit_program_ns")
        in_text = f"{in_program:8.1f}" if in_program is not None else " " * 8
        print(f"{config:26} {row['median_ns']:10.1f} {spread:>15} {row['added_ns']:9.1f} {in_text} {ratio_text}")


def measure(rounds: int = 5, calls: int = 500_000, reps: int = 5) -> dict:
    """The whole measurement (needs root): every configuration in each of `rounds` shuffled
    rounds; returns what the JSON file holds, with the per-round samples of each config."""
    cgroup = Path("/sys/fs/cgroup/unified") / f"corral-bench-{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as build:
        loop = Path(build) / "getppid-loop"
        (Path(build) / "loop.c").write_text(LOOP)
        subprocess.run(["gcc", "-O2", "-o", str(loop), f"{build}/loop.c"], check=True)
        cgroup.mkdir()
        samples: dict[str, list[float]] = {config: [] for config in CONFIGS}
        inside: dict[str, list[float]] = {config: [] for config in CONFIGS}
        started = time.time()
        try:
            for round_number in range(rounds):
                order = list(CONFIGS)
                random.shuffle(order)
                for config in order:
                    out = subprocess.run(
                        [sys.executable, __file__, "--worker", config, "--cgroup", str(cgroup),
                         "--loop", str(loop), "--calls", str(calls), "--reps", str(reps)],
                        check=True, capture_output=True, text=True).stdout
                    wall, in_program = json.loads(out.splitlines()[-1])
                    samples[config].append(wall)
                    if in_program is not None:
                        inside[config].append(in_program)
                print(f"round {round_number + 1}/{rounds} done", file=sys.stderr)
        finally:
            cgroup.rmdir()
    rows = summarize(samples)
    for config, values in inside.items():
        if values:
            rows[config]["sys_exit_program_ns"] = round(statistics.median(values), 1)
    return {"kernel": platform.release(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "rounds": rounds, "calls": calls, "reps": reps,
            "seconds": round(time.time() - started, 1), "configs": rows}


def run(rounds: int = 5, calls: int = 500_000, reps: int = 5) -> dict:
    """`python -m bench`'s entry point: measure() plus result rows (bench.common.Row dicts).
    The ratio is the script's own (added ns over the anchor's added ns, from medians); the
    spread is that of the same ratio computed round by round."""
    from bench.common import Row, summary
    result = measure(rounds, calls, reps)
    configs = result["configs"]
    none = configs["none"]["samples"]
    rows = []
    labels = {"probes": "probes, container watched", "probes_unwatched": "probes, host process (unwatched)",
              "probes_kill_rule": "probes, container watched with a syscall kill rule",
              "probes_rate_limit": "probes, container watched with a syscall rate limit",
              "probes_syscall_rate_other": "probes, container watched with a per-syscall rate limit on another syscall",
              "probes_syscall_rate": "probes, container watched with a per-syscall rate limit on the called syscall",
              "latency": "probes + latency histograms, watched", "empty_exit": "anchor: empty sys_exit program",
              "empty_enter_exit": "anchor: empty sys_enter+sys_exit"}
    for config, label in labels.items():
        row = configs[config]
        added = [v - n for v, n in zip(row["samples"], none)]
        s = summary(added)
        item = Row("probes", f"{label}: ns added per getppid", "ns", row["added_ns"], s["p25"], s["p75"],
                   note=f"in program {row.get('sys_exit_program_ns')} ns" if row.get("sys_exit_program_ns") else "")
        anchor = ANCHORS.get(config)
        if anchor:
            anchor_added = [v - n for v, n in zip(configs[anchor]["samples"], none)]
            per_round = summary([a / b for a, b in zip(added, anchor_added) if b > 0] or [float("nan")])
            item.anchor, item.ratio = anchor, row.get("ratio_to_anchor")
            item.ratio_p25, item.ratio_p75 = per_round["p25"], per_round["p75"]
            inside, anchor_inside = row.get("sys_exit_program_ns"), configs[anchor].get("sys_exit_program_ns")
            if inside and anchor_inside:
                # The kernel's own run time of the programs: steadier than wall time under load.
                item.note += f" = {inside / anchor_inside:.2f}x the anchor's {anchor_inside} ns"
            if config == "probes":
                item.target = "<= 1.2x empty"
                item.met = item.ratio is not None and item.ratio <= 1.2
        rows.append(item.to_dict())
    return {**result, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=500_000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "probe_cost.json")
    parser.add_argument("--worker", choices=CONFIGS, help=argparse.SUPPRESS)
    parser.add_argument("--cgroup", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--loop", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.cgroup, args.loop, args.calls, args.reps)))
        return 0
    if os.geteuid() != 0:
        print("probe_cost: needs root (BPF and cgroups)", file=sys.stderr)
        return 2

    result = measure(args.rounds, args.calls, args.reps)
    print_table(result["configs"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
