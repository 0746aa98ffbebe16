"""`corral doctor`: the command line around the checks; it needs no daemon."""
from __future__ import annotations

import argparse
import sys

from agent.doctor.report import render_json, render_text, run_checks
from agent.doctor.result import HostPaths, exit_code


def main(argv: list[str] | None = None, *, paths: HostPaths | None = None,
         euid: int | None = None) -> int:
    """Print the report and return 1 when a required check failed, else 0."""
    parser = argparse.ArgumentParser(
        prog="corral doctor", description="Check that this host can run Corral.")
    parser.add_argument("--format", choices=("text", "json"), default="text",
                        help="output format (default: text)")
    args = parser.parse_args(argv)
    results = run_checks(paths, euid)
    sys.stdout.write(render_json(results) if args.format == "json" else render_text(results))
    return exit_code(results)
