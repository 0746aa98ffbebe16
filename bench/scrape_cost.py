"""What one /metrics scrape costs for 10, 50 and 200 containers.

The containers' cgroups are either real (`--cgroups real`, the default when run as root on a
hybrid host: N cgroups made with the hybrid driver under a `corral-bench-<random>` parent, one
sleeping process with a few threads in each, all removed afterwards even on failure) or a
fixture tree (`--cgroups fixture`: the same layout in a temp dir, with file contents in the
formats this kernel writes, copied from a real corral cgroup). Either way the real
HybridDriver reads them, as the daemon would, and fake probes give ~40 syscalls per container.
It then times, on a private registry, collect() alone, collect() + generate_latest()
(prometheus_client's encoder) and collect() + render() + gzip level 1 (what the /metrics
endpoint does, with the label texts it keeps between scrapes), in the default mode (every
syscall), with `top:10`, with `none`, and with the latency histogram enabled.

The anchor, measured in the same run, is the cost of the file reads alone (the driver's stats()
and the process listing for every container, plus /proc status reads where the collector
still makes them): the "x io" column is the whole served scrape divided by that, so the figure
means the same on a fast or a slow machine. Times are the best of the runs: the machine is
shared and the best run is the one least disturbed; the medians are in the JSON.

    .venv/bin/python bench/scrape_cost.py [--repeat 15] [--sizes 10,50,200] [--cgroups real|fixture]

Prints a table and writes bench/results/scrape_cost.json.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client import CollectorRegistry, generate_latest  # noqa: E402

from agent.metrics import server  # noqa: E402
from agent.metrics.collector import ContainerCollector  # noqa: E402
from agent.metrics.model import MetricsOptions, WatchedContainer  # noqa: E402
from bench.scrape_containers import (  # noqa: E402
    build_tree,
    busy,
    can_use_real_cgroups,
    fake_probes,
    make_driver,
    real_cgroups,
)


def io_anchor(driver, collector: ContainerCollector, containers: list[WatchedContainer],
              proc: str) -> float:
    """Seconds to do only the file reads a scrape makes: stats(), the process listing the
    collector uses and, where the collector still reads them, /proc/<pid>/status."""
    # Collectors before the one-file process listing also read /proc/<pid>/status.
    list_pids = getattr(collector, "_list_pids", None)
    reads_proc = list_pids is None
    list_pids = list_pids or driver.pids
    start = time.perf_counter()
    for c in containers:
        driver.stats(c.cgroup)
        for pid in list_pids(c.cgroup):
            if reads_proc:
                try:
                    with open(f"{proc}/{pid}/status", "rb") as handle:
                        handle.read()
                except FileNotFoundError:
                    pass
    return time.perf_counter() - start


def _best(times: list[float]) -> float:
    return min(times) * 1e3


def measure(containers, driver, proc, options, latency, repeat, rng) -> dict:
    probes = fake_probes(containers, rng, latency)
    collector = ContainerCollector(lambda: containers, driver, probes, options,
                                   syscall_name=lambda nr: f"sys{nr}", proc_root=proc)
    registry = CollectorRegistry()
    registry.register(collector)
    # What the endpoint keeps between scrapes (older servers have none).
    texts = server.LabelTexts() if hasattr(server, "LabelTexts") else None
    if hasattr(server, "scrape_body"):
        def serve() -> bytes:
            return server.scrape_body(registry, texts, True)
    else:   # servers before scrape_body gzipped with zlib's level 1
        def serve() -> bytes:
            body = server.render(registry, texts) if texts is not None else server.render(registry)
            return gzip.compress(body, compresslevel=1)
    times: dict[str, list[float]] = {"io": [], "collect": [], "generate_latest": [], "served": []}
    body = b""
    samples = 0
    for _ in range(repeat):
        times["io"].append(io_anchor(driver, collector, containers, proc))
        start = time.perf_counter()
        families = list(collector.collect())
        times["collect"].append(time.perf_counter() - start)
        start = time.perf_counter()
        body = generate_latest(registry)          # collects again, then formats
        times["generate_latest"].append(time.perf_counter() - start)
        busy(probes, rng)       # every container made a few syscalls since the last scrape
        start = time.perf_counter()
        served = serve()        # what /metrics does
        times["served"].append(time.perf_counter() - start)
        samples = sum(len(f.samples) for f in families)
    best = {key: _best(value) for key, value in times.items()}
    return {"containers": len(containers), "syscall_metrics": options.syscall_metrics,
            "latency_histogram": latency, "samples": samples, "bytes": len(body),
            "gzip_bytes": len(served),
            "io_anchor_ms": round(best["io"], 2), "collect_ms": round(best["collect"], 2),
            "generate_latest_ms": round(best["generate_latest"], 2),
            "served_ms": round(best["served"], 2),
            "served_per_io": round(best["served"] / best["io"], 2) if best["io"] else None,
            "median_ms": {key: round(statistics.median(value) * 1e3, 2) for key, value in times.items()}}


def measure_sizes(sizes: list[int], repeat: int, cgroups: str) -> list[dict]:
    """Every size in every syscall-metrics mode (and with the latency histogram up to 50
    containers) on `cgroups` ("real" or "fixture"): one measure() dict each."""
    rng = random.Random(42)
    rows = []
    modes = [("all", False), ("top:10", False), ("none", False), ("all", True)]
    with tempfile.TemporaryDirectory(prefix="corral-scrape-bench-") as tmp:
        if cgroups == "real":
            tree = real_cgroups(max(sizes))
            proc = "/proc"
        else:
            everything = build_tree(Path(tmp), max(sizes), rng)
            tree = _fixture(make_driver(str(Path(tmp) / "cgroup"), "corral", keep_files_open=True),
                            everything)
            proc = str(Path(tmp) / "proc")
        with tree as (driver, everything):
            for size in sizes:
                for mode, latency in modes:
                    if latency and size > 50:
                        continue  # the histogram is opt-in; 200 containers x 40 syscalls x 34 buckets is not a default
                    rows.append(measure(everything[:size], driver, proc,
                                        MetricsOptions(syscall_metrics=mode), latency, repeat, rng))
    return rows


def slopes(measured: list[dict]) -> list[dict]:
    """Per syscall-metrics mode, the served scrape's cost per added container between the
    smallest and the largest size (medians), beside the file reads' own slope: a scrape that
    grows linearly has the same slope whichever pair of sizes is taken."""
    out = []
    modes = sorted({(r["syscall_metrics"], r["latency_histogram"]) for r in measured})
    for mode, latency in modes:
        rows = sorted((r for r in measured if (r["syscall_metrics"], r["latency_histogram"]) == (mode, latency)),
                      key=lambda r: r["containers"])
        if len(rows) < 2:
            continue
        low, high = rows[0], rows[-1]
        added = high["containers"] - low["containers"]
        served = (high["median_ms"]["served"] - low["median_ms"]["served"]) / added
        io = (high["median_ms"]["io"] - low["median_ms"]["io"]) / added
        out.append({"syscall_metrics": mode, "latency_histogram": latency,
                    "from": low["containers"], "to": high["containers"],
                    "served_ms_per_container": round(served, 4), "io_ms_per_container": round(io, 4),
                    "per_io": round(served / io, 2) if io > 0 else None})
    return out


def run(sizes: tuple[int, ...] = (10, 50, 200), repeat: int = 15, cgroups: str | None = None) -> dict:
    """`python -m bench`'s entry point: measure_sizes() as result rows (bench.common.Row dicts),
    one per size and mode: the served scrape, best and median of `repeat`, and its ratio to
    the file reads alone (the io anchor), measured in the same runs."""
    from bench.common import Row
    cgroups = cgroups or ("real" if can_use_real_cgroups() else "fixture")
    measured = measure_sizes(list(sizes), repeat, cgroups)
    rows = []
    for r in measured:
        mode = r["syscall_metrics"] + (" + latency" if r["latency_histogram"] else "")
        median = r["median_ms"]["served"]
        row = Row("scrape", f"served /metrics, {r['containers']} ctrs, syscalls {mode}", "ms", median,
                  note=f"best {r['served_ms']} ms; {r['samples']} samples, {r['bytes'] // 1024} KiB, "
                       f"{r['gzip_bytes'] // 1024} KiB gzip; {cgroups} cgroups")
        row.anchor = "io"
        row.ratio = round(median / r["median_ms"]["io"], 2) if r["median_ms"]["io"] else None
        if r["containers"] == 200 and mode == "all":
            row.target, row.met = "<= 50 ms", median <= 50
        rows.append(row.to_dict())
    for slope in slopes(measured):
        mode = slope["syscall_metrics"] + (" + latency" if slope["latency_histogram"] else "")
        row = Row("scrape", f"served /metrics per added container, syscalls {mode}", "ms",
                  slope["served_ms_per_container"],
                  note=f"slope between {slope['from']} and {slope['to']} containers (medians)")
        row.anchor, row.ratio = "io slope", slope["per_io"]
        rows.append(row.to_dict())
    return {"cgroups": cgroups, "repeat": repeat, "statistic": "median of repeat, ms (best in note)",
            "measured": measured, "rows": rows}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--sizes", default="10,50,200")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "scrape_cost.json"))
    parser.add_argument("--cgroups", choices=("real", "fixture"),
                        default="real" if can_use_real_cgroups() else "fixture",
                        help="real cgroups (root on a hybrid host) or a fixture tree in a temp dir")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = measure_sizes(sizes, args.repeat, args.cgroups)
    print(f"cgroups: {args.cgroups}; best of {args.repeat} runs (medians in the JSON)")
    print("io: the file reads alone (anchor); collect: collect(); generate_latest: collect + "
          "prometheus_client's text encoder; served: collect + render() + gzip -1, what /metrics costs")
    print(f"{'containers':>10} {'syscalls':>8} {'latency':>7} {'samples':>8} {'KiB':>6} {'gz KiB':>6} "
          f"{'io ms':>7} {'collect':>8} {'gen_latest':>10} {'served':>7} {'x io':>5}")
    for r in rows:
        print(f"{r['containers']:>10} {r['syscall_metrics']:>8} {'on' if r['latency_histogram'] else 'off':>7} "
              f"{r['samples']:>8} {r['bytes'] / 1024:>6.0f} {r['gzip_bytes'] / 1024:>6.0f} "
              f"{r['io_anchor_ms']:>7.2f} {r['collect_ms']:>8.2f} {r['generate_latest_ms']:>10.2f} "
              f"{r['served_ms']:>7.2f} {r['served_per_io']:>5.1f}")
    print("per added container (medians, smallest to largest size): served ms, io ms, x io")
    for slope in slopes(rows):
        print(f"{slope['syscall_metrics']:>8} {'on' if slope['latency_histogram'] else 'off':>7} "
              f"{slope['from']:>4}->{slope['to']:<4} {slope['served_ms_per_container']:>8.3f} "
              f"{slope['io_ms_per_container']:>8.3f} {slope['per_io'] or 0:>5.1f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"python": platform.python_version(), "machine": platform.machine(),
                               "cpus": os.cpu_count(), "cgroups": args.cgroups,
                               "repeat": args.repeat, "statistic": "best of repeat, ms", "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


@contextmanager
def _fixture(driver, containers):
    yield driver, containers


if __name__ == "__main__":
    sys.exit(main())
