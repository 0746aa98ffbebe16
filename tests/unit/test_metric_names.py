"""The exposition a scrape produces is valid and lint-clean for Prometheus, and matches the catalogue.

A scrape with fakes that fill every family (histogram and container labels included) is fed
to `promtool check metrics`, Prometheus's own parser and linter; the catalogue, describe() and
docs/metrics.md are checked against each other.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from agent.cgroups.driver import CgroupPaths, CgroupStats, Pressure
from agent.metrics.collector import ContainerCollector
from agent.metrics.model import FAMILIES, MetricsOptions, WatchedContainer
from agent.probes.double import ProbeDouble
from agent.probes.interface import NetCounters, ProcessCounters, TcpCounters
from tests.host import require_tool

DOCS = Path(__file__).resolve().parents[2] / "docs" / "metrics.md"


class Driver:
    def stats(self, paths):
        return CgroupStats(
            cpu_usage_seconds=1.5, cpu_user_seconds=1.0, cpu_system_seconds=0.5, cpu_periods=10,
            cpu_throttled_periods=1, cpu_throttled_seconds=0.01, cpu_quota_us=50_000,
            cpu_period_us=100_000, memory_usage_bytes=1 << 20, memory_max_usage_bytes=2 << 20,
            memory_working_set_bytes=1 << 19, memory_rss_bytes=1 << 18, memory_cache_bytes=1 << 18,
            memory_failcnt=0, memory_limit_bytes=64 << 20, oom_kills=0, oom_events=0, memory_high_events=2,
            pids_limit=100,
            pressure={r: Pressure(0.1, 0.05) for r in ("cpu", "memory", "io")})

    def pids(self, paths):
        return [1]


def probes() -> ProbeDouble:
    return ProbeDouble.with_readings(
        syscall_counts={7: {0: (10, 1), 1: (5, 0)}},
        syscall_latency={7: {0: [0] * 8 + [3, 4, 2, 1] + [0] * 20, 1: [1] * 32}},
        network={7: NetCounters(100, 2, 200, 3)}, tcp={7: TcpCounters(1, 0)},
        processes={7: ProcessCounters(1, 2, 1)}, status={"syscalls": True, "network": True},
        map_entries={"slots": 1, "watch_index": 1})


def full_registry(tmp_path, options: MetricsOptions | None = None) -> CollectorRegistry:
    """A private registry whose one collector fills every family."""
    proc = tmp_path / "proc" / "1"
    proc.mkdir(parents=True)
    (proc / "status").write_text("Name:\tinit\nThreads:\t3\n")
    watched = WatchedContainer(
        id="c0ffee", name="web-1", image="registry.example/app:1.2", cgroup_id=7,
        cgroup=CgroupPaths(unified="/sys/fs/cgroup/unified/corral/c0ffee"), started_at=1.7e9,
        labels={"com.example/role": 'front "edge"\nline', "tier": "web"})
    collector = ContainerCollector(lambda: [watched], Driver(), probes(), options,
                                   syscall_name={0: "read", 1: "write"}.get,
                                   proc_root=str(tmp_path / "proc"), clock=lambda: 1.7e9 + 60)
    registry = CollectorRegistry()
    registry.register(collector)
    return registry


def exposition(tmp_path, options: MetricsOptions | None = None) -> str:
    return generate_latest(full_registry(tmp_path, options)).decode()


def promtool_check(text: str) -> subprocess.CompletedProcess:
    return subprocess.run([require_tool("promtool", "prometheus"), "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=60)


def test_scrape_passes_promtool_check_metrics(tmp_path):
    text = exposition(tmp_path)
    result = promtool_check(text)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == ""


def test_every_family_has_samples_in_a_full_scrape(tmp_path):
    text = exposition(tmp_path)
    for family in FAMILIES:
        sample = family.name + ("_bucket" if family.type == "histogram" else "")
        assert re.search(rf"^{sample}[{{ ]", text, re.M), f"{family.name} has no sample"
        assert f"# TYPE {family.name} " in text


def test_top_n_scrape_also_passes_promtool(tmp_path):
    result = promtool_check(exposition(tmp_path, MetricsOptions(syscall_metrics="top:1",
                                                                drop_labels=("id",))))
    assert result.returncode == 0, result.stdout + result.stderr


def test_names_follow_prometheus_conventions():
    for family in FAMILIES:
        assert re.fullmatch(r"(container|corral)_[a-z0-9_]+", family.name), family.name
        assert family.name.endswith("_total") == (family.type == "counter"), family.name
        assert family.help.strip(), family.name


def test_docs_describe_every_family_and_nothing_else():
    documented = set(re.findall(r"^\| `((?:container|corral)_[a-z0-9_]+)` \|", DOCS.read_text(), re.M))
    assert documented == {family.name for family in FAMILIES}


def test_docs_give_each_family_its_type():
    rows = dict(re.findall(r"^\| `((?:container|corral)_[a-z0-9_]+)` \| (\w+) \|", DOCS.read_text(), re.M))
    shown = {"unknown": "untyped"}
    for family in FAMILIES:
        assert rows.get(family.name) == shown.get(family.type, family.type), family.name


def test_render_writes_what_generate_latest_writes():
    """The endpoint's encoder must be a drop-in for prometheus_client's, for every metric type."""
    from prometheus_client import Counter, Enum, Gauge, Histogram, Info, Summary
    from prometheus_client.core import GaugeMetricFamily

    from agent.metrics.server import render

    class Values:
        def collect(self):
            family = GaugeMetricFamily("odd_values", 'help with \\ and\nnewline', labels=["v"])
            for index, value in enumerate([0, 1, 999_999, 1_000_000, 123456789, -5, 2**53 + 1, 0.1,
                                           1e-9, 1.5e300, float("inf"), float("-inf"), float("nan"),
                                           True, 7.0, 999_999.9999, 1e6, 268435456, 1234567.5,
                                           9.999e15, 1e16, 2**62, 5e-324, 1.7e9, -1e7]):
                family.add_metric([f'{index} "q" \\ \n'], value)
            yield family

    registry = CollectorRegistry()
    registry.register(Values())
    Counter("jobs", "Jobs.", ["kind"], registry=registry).labels("a").inc(3)
    Gauge("temperature", "Temp.", registry=registry).set(21.5)
    Histogram("latency_seconds", "Latency.", registry=registry).observe(0.3)
    Summary("size_bytes", "Size.", registry=registry).observe(10)
    Info("build", "Build.", registry=registry).info({"version": "1.0"})
    Enum("state", "State.", states=["up", "down"], registry=registry).state("down")
    assert render(registry) == generate_latest(registry)


def test_render_matches_generate_latest_on_a_full_scrape(tmp_path):
    from agent.metrics.server import render
    registry = full_registry(tmp_path)
    assert render(registry) == generate_latest(registry)


def test_label_texts_kept_between_renders_never_change_the_output(tmp_path):
    """The endpoint reuses label texts from the last scrape; every scrape must still be exact,
    also once the containers or their labels change."""
    from agent.metrics.server import LabelTexts, render
    registry = full_registry(tmp_path)
    texts = LabelTexts()
    first = render(registry, texts)
    assert texts.last   # the collector's label dicts were remembered
    assert render(registry, texts) == first == generate_latest(registry)
    other = full_registry(tmp_path / "other", MetricsOptions(drop_labels=("id",)))
    assert render(other, texts) == generate_latest(other)


def test_a_fresh_daemon_exports_every_family_a_dashboard_or_alert_rule_names(tmp_path):
    """The daemon's registry, with no container, no policy folder and no alert target yet: every
    metric the shipped dashboards and alert rules query is described, and the unlabelled or
    pre-initialised counters read 0, so nothing shows "No data" on a fresh install."""
    from agent.daemon_metrics import metrics_registry
    from agent.metrics.server import build_registry
    from tests.unit.test_dashboards import PROMETHEUS_OWN, dashboard_queries, metric_names, rule_queries

    collector = ContainerCollector(lambda: [], Driver(), None, syscall_name=str,
                                   proc_root=str(tmp_path), clock=lambda: 1.7e9)
    registry, _ = metrics_registry(build_registry(collector), list)
    text = generate_latest(registry).decode()
    described = set(re.findall(r"^# TYPE (\w+) ", text, re.M))
    queries = rule_queries() + [q for board in sorted(DOCS.parents[1].joinpath("dashboards").glob("*.json"))
                                for q in dashboard_queries(board)]
    named = {name for _, expr in queries for name in metric_names(expr)} - PROMETHEUS_OWN
    missing = {name for name in named if re.sub(r"_(total|bucket|count|sum)$", "", name) not in described
               and name not in described}
    assert named and not missing, f"absent from a fresh daemon's first scrape: {sorted(missing)}"
    assert registry.get_sample_value("corral_policy_load_errors_total") == 0
    assert registry.get_sample_value("corral_policy_actions_total", {"action": "freeze", "result": "failed"}) == 0
