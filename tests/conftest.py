"""Shared test set-up.

Tests marked `privileged` need root and the real kernel. Without root they skip with the
reason; under CI=true any skip of a privileged test (for missing root or for any other reason
a test gives) is turned into a failure, so CI can never go green while hiding a missing feature.
"""
from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI") == "true"


def pytest_runtest_setup(item):
    if "privileged" in item.keywords and os.geteuid() != 0:
        pytest.skip("needs root: runs real containers, cgroups and BPF")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and "privileged" in item.keywords:
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"privileged test skipped under CI=true: {reason}"
