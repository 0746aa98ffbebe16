"""`python -m bench [BENCH...] [--quick]`: run the benches, print one table, write latest.json.

Each bench module has `run(...) -> dict` with "rows" (bench.common.Row dicts) and its raw
figures. A bench that fails is reported in the table and the JSON and the others still run;
the exit code is then 1.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path

from bench.common import REPO, machine

RESULTS = REPO / "bench" / "results" / "latest.json"


def _benches(quick: bool) -> dict:
    """name -> a call running it; imports are lazy so one broken bench does not stop the rest."""
    def launch():
        from bench import launch
        return launch.run(rounds=6 if quick else 20)

    def probes():
        from bench import probe_cost
        return probe_cost.run(rounds=2 if quick else 5)

    def scrape():
        from bench import daemon_cost
        return daemon_cost.run(quick=quick)

    def reaction():
        from bench import reaction
        return reaction.run(trials=3 if quick else 5)

    def churn():
        from bench import churn
        return churn.run(cycles=100 if quick else 1000)

    def policies():
        from bench import policy_load
        return policy_load.run(rounds=5 if quick else 20)

    def api():
        from bench import api_validation
        return api_validation.run(rounds=5 if quick else 15)

    def state():
        from bench import state_save
        return state_save.run(rounds=100 if quick else 300)

    def history():
        from bench import policy_history
        return policy_history.run(rounds=50 if quick else 200)

    def seccomp():
        from bench import seccomp_cost
        return seccomp_cost.run(rounds=8 if quick else 30)

    def userns():
        from bench import userns_cost
        return userns_cost.run(rounds=8 if quick else 30)

    def pull():
        from bench import pull
        return pull.run(rounds=2 if quick else 3)

    def build():
        from bench import build
        return build.run(rounds=2 if quick else 3)

    def cli():
        from bench import cli_startup
        return cli_startup.run(rounds=5 if quick else 20)

    def daemon_start():
        from bench import cli_daemon_start
        return cli_daemon_start.run(rounds=3 if quick else 10)

    def footprint():
        from bench import footprint
        return footprint.run()

    return {"cli": cli, "launch": launch, "seccomp": seccomp, "probes": probes, "scrape": scrape, "reaction": reaction,
            "churn": churn, "policies": policies, "api": api, "state": state, "pull": pull,
            "build": build, "userns": userns, "history": history,
            "footprint": footprint, "daemon-start": daemon_start}


def _number(value) -> str:
    if value is None:
        return ""
    return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"


def format_table(results: dict) -> str:
    lines = [f"{'bench':9} {'figure':44} {'median':>8} {'p25-p75':>13} {'unit':5} {'x anchor (p25-p75)':>26} "
             f"{'target':>16} {'met':>4}"]
    for name, result in results.items():
        if "error" in result:
            lines.append(f"{name:9} FAILED: {result['error'].splitlines()[-1][:100]}")
            continue
        for row in result["rows"]:
            spread = f"{_number(row['p25'])}-{_number(row['p75'])}" if row.get("p25") is not None else ""
            ratio = ""
            if row.get("ratio") is not None:
                ratio = f"{row['ratio']:.2f}x {row['anchor']}"
                if row.get("ratio_p25") is not None:
                    ratio += f" ({row['ratio_p25']:.2f}-{row['ratio_p75']:.2f})"
            met = "" if row.get("met") is None else ("yes" if row["met"] else "NO")
            lines.append(f"{row['bench']:9} {row['figure'][:44]:44} {_number(row['median']):>8} {spread:>13} "
                         f"{row['unit']:5} {ratio:>26} {row.get('target') or '':>16} {met:>4}")
            if row.get("note"):
                lines.append(f"{'':9}   note: {row['note']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    benches = _benches(False)
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", choices=[*benches, []], metavar="BENCH",
                        help=f"benches to run (default all): {', '.join(benches)}")
    parser.add_argument("--quick", action="store_true", help="fewer rounds: a smoke run, not figures to quote")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench: needs root (containers, cgroups, BPF)", file=sys.stderr)
        return 2
    benches = _benches(args.quick)
    names = args.names or list(benches)
    started = machine()
    results: dict = {}
    for name in names:
        print(f"bench: {name} (load average {os.getloadavg()[0]:.2f})", file=sys.stderr)
        begun = time.monotonic()
        load_before = os.getloadavg()
        try:
            results[name] = benches[name]()
        except Exception:
            results[name] = {"error": traceback.format_exc()}
            print(results[name]["error"], file=sys.stderr)
        results[name]["seconds"] = round(time.monotonic() - begun, 1)
        results[name]["loadavg_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
    print(f"\n{started['description']}; {started['date']}; load average at start {started['loadavg']}")
    print(format_table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": started, "command": " ".join(["python -m bench", *(argv or sys.argv[1:])]),
                                    "quick": args.quick, "benches": results}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 1 if any("error" in r for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
