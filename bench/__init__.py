"""Corral's benchmarks: launch, probe cost, scrape, daemon footprint, reaction, churn.

`make bench` (or `.venv/bin/python -m bench`) runs them all, prints one table and writes
bench/results/latest.json. Every figure is timed against an anchor in the same run,
interleaved, with medians and spread: the machine is shared and noisy. Timings live here,
never in tests. Needs root. See bench/README.md for the latest results.
"""
