"""The agent's budget for real (issue 21, item 7): containers making many distinct syscalls push
a daemon with a tiny --series-budget over it; it sheds the per-syscall series to top:10
(corral_budget_shed{what="syscall_series"} 1) and restores them when the storm's containers go.
"""
from __future__ import annotations

import re

import pytest

from agent.budget.budget import SHED_TOP
from tests.integration.corral_daemon import running_daemon, until
from tests.integration.test_policies import metric, scrape

pytestmark = pytest.mark.privileged

# Busybox applets that between them make several dozen distinct syscalls, over and over.
STORM = ("while true; do ls -la / >/dev/null; cat /proc/self/status >/dev/null; date >/dev/null; "
         "ps >/dev/null; df >/dev/null; uname -a >/dev/null; id >/dev/null; mkdir -p /tmp/x; "
         "rmdir /tmp/x; ln -sf /a /tmp/l; rm -f /tmp/l; touch /tmp/f; chmod 600 /tmp/f; "
         "stat /tmp/f >/dev/null; sync; sleep 0.2; done")
BUDGET = 200


def syscall_series(text: str, name: str) -> int:
    return len(re.findall(rf'^corral_syscalls_total{{name="{name}",', text, re.M))


def shed(daemon) -> float:
    return metric(daemon, "corral_budget_shed", what="syscall_series")


def test_a_syscall_storm_sheds_per_syscall_series_to_top_n_and_they_come_back():
    with running_daemon("--series-budget", str(BUDGET), "--no-observe") as daemon:
        for name in ("storm-1", "storm-2"):
            daemon.cli("run", "-d", "--name", name, "busybox", "sh", "-c", STORM)
        # Once both have made their calls, the full series are far over the budget.
        until(lambda: syscall_series(scrape(daemon), "storm-1") > 2 * SHED_TOP or shed(daemon) == 1,
              what="the storm's syscall series")
        until(lambda: shed(daemon) == 1, what="the per-syscall series to be shed")
        text = scrape(daemon)
        assert 0 < syscall_series(text, "storm-1") <= SHED_TOP
        assert 0 < syscall_series(text, "storm-2") <= SHED_TOP
        assert metric(daemon, "corral_budget_series") <= BUDGET
        assert metric(daemon, "corral_budget_shed", what="exec_events") == 0   # series never shed it
        daemon.cli("rm", "-f", "storm-1", "storm-2")
        until(lambda: shed(daemon) == 0, what="the per-syscall series to be restored")
        daemon.cli("run", "-d", "--name", "calm", "busybox", "sh", "-c", "ls / >/dev/null; exec sleep 600")
        until(lambda: syscall_series(scrape(daemon), "calm") > SHED_TOP, what="every syscall series of a calm container")
        assert shed(daemon) == 0


def test_a_daemon_over_its_cpu_budget_sheds_one_level_per_window_in_order():
    """A budget no daemon keeps (0.0001 CPU): each 10 s window sheds one more level."""
    with running_daemon("--cpu-budget", "0.0001", "--no-observe") as daemon:
        until(lambda: metric(daemon, "corral_budget_shed", what="latency_histograms") == 1,
              what="the first level to be shed", timeout=60, interval=0.2)
        assert metric(daemon, "corral_budget_cpu_ratio") > 0.0001
        assert metric(daemon, "corral_budget_shed", what="exec_events") == 0
        until(lambda: metric(daemon, "corral_budget_shed", what="exec_events") == 1,
              what="the last level to be shed", timeout=90, interval=0.5)
        assert metric(daemon, "corral_budget_shed", what="syscall_series") == 1
