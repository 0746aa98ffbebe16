"""Shared test set-up: markers, the skip policy, and what this host could not test.

- `privileged`: needs root and the real kernel; skips without root.
- `topology("hybrid")` / `topology("v2")`: needs that cgroup layout; skips on another one.
- `arch("x86_64")`: needs that CPU architecture.

Under CI=true every skip is turned into a failure (set-up installs every tool, and CI runs as
root), except topology and architecture skips (tests/host.py): those describe the host, not
a missing piece, so a pure v2 host can pass the suite. Either way the last line of the run
lists what this host could not test and why.
"""
from __future__ import annotations

import os
from collections import Counter

import pytest

from tests.host import TopologySkip, arch_reason, need_topology, skip_topology

IN_CI = os.environ.get("CI") == "true"
_NOT_TESTED = pytest.StashKey[Counter]()


def pytest_configure(config):
    config.stash[_NOT_TESTED] = Counter()
    for line in (
            "topology(*modes): needs one of these cgroup layouts (hybrid, v2); a skip elsewhere, also under CI=true",
            "arch(*machines): needs one of these CPU architectures; a skip elsewhere, also under CI=true"):
        config.addinivalue_line("markers", line)


def pytest_runtest_setup(item):
    for mark in item.iter_markers("topology"):
        need_topology(*mark.args)
    for mark in item.iter_markers("arch"):
        if (reason := arch_reason(mark.args)) is not None:
            skip_topology(reason)
    if "privileged" in item.keywords and os.geteuid() != 0:
        pytest.skip("needs root: runs real containers, cgroups and BPF")


def _reason(report) -> str:
    return str(report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    topology = call.excinfo is not None and call.excinfo.errisinstance(TopologySkip)
    reason = call.excinfo.value.msg if topology else _reason(report).removeprefix("Skipped: ")
    if topology and isinstance(report.longrepr, tuple):
        report.longrepr = (*report.longrepr[:2], f"Skipped (host topology): {reason}")
    if IN_CI and not topology:
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, where set-up provides everything but the host's shape: {reason}"
        return
    item.config.stash[_NOT_TESTED][reason] += 1


def _least_covered(config, count: int = 10) -> list[str]:
    """The coverage table cut to its `count` least-covered modules and the total, when this run
    measured coverage (`make test`; pytest-cov's own full table is turned off there)."""
    plugin = config.pluginmanager.getplugin("_cov")
    if plugin is None or getattr(plugin, "cov_controller", None) is None:
        return []
    import io

    import coverage
    cov = coverage.Coverage(config_file=str(config.rootpath / "pyproject.toml"))
    cov.load()
    table = io.StringIO()
    cov.report(file=table, sort="cover", skip_covered=True, show_missing=False)
    lines = table.getvalue().splitlines()
    rows = [line for line in lines[2:] if line and not line.startswith(("-", "TOTAL")) and "skipped due to" not in line]
    total = next(line for line in lines if line.startswith("TOTAL"))
    return [f"coverage: the {min(count, len(rows))} least-covered modules, and the total",
            *lines[:2], *rows[:count], total]


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    yield                  # after pytest's own summary (-ra's list), just before the counts
    for line in _least_covered(config):
        terminalreporter.write_line(line)
    not_tested = config.stash[_NOT_TESTED]
    if not_tested:
        parts = "; ".join(f"{reason} ({count})" for reason, count in not_tested.most_common())
        count = sum(not_tested.values())
        line = f"not tested on this host: {count} test{'s' if count != 1 else ''}: {parts}"
    else:
        line = "not tested on this host: nothing (every collected test ran)"
    terminalreporter.write_line(line)
