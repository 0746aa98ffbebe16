"""Dashboards and alert rules name only metrics Corral exports, and pass Grafana's own schema."""
from __future__ import annotations

import functools
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from agent.alerting.metrics import AlertCollector
from agent.metrics.model import FAMILIES
from agent.services.metrics import ServiceCollector

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((REPO / "dashboards").glob("*.json"))
RULES = REPO / "deploy" / "prometheus" / "alerts.yml"
SCHEMA_CHECK = REPO / "deploy" / "grafana" / "schema-check"
SCHEMA_MODULES = REPO / "build" / "grafana-schema"
PROVISIONED_UID = "corral-prometheus"
IN_CI = os.environ.get("CI") == "true"

# Series Prometheus itself makes, not Corral: the scrape's health and the rules' alert state.
PROMETHEUS_OWN = {"up", "ALERTS", "ALERTS_FOR_STATE"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless",
            "bool", "offset", "inf", "nan", "atan2"}


@functools.lru_cache(maxsize=1)
def exported_names() -> frozenset[str]:
    """Every series name Corral's /metrics can show: the collector's catalogue, the policy
    metrics (agent/policy/service.py), the alert senders' (agent/alerting/metrics.py) and the
    services' (agent/services/metrics.py)."""
    names = set()
    for family in FAMILIES:
        names.add(family.name)
        if family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_count", "_sum"))
    from agent.policy.metrics import PolicyMetrics
    registry = CollectorRegistry()
    PolicyMetrics(registry)
    registry.register(AlertCollector(lambda: []))
    registry.register(ServiceCollector(lambda: []))
    for metric in registry.collect():
        names.add(metric.name + "_total" if metric.type == "counter" else metric.name)
    return frozenset(names)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, labels, keywords left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)                 # label values, strings
    text = re.sub(r"\{[^}]*\}", "", text)                           # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)                          # ranges, subqueries
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    found = set()
    for match in re.finditer(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", text):
        name = match.group(1)
        if name.lower() not in KEYWORDS:
            found.add(name)
    return found


def dashboard_queries(path: Path) -> list[tuple[str, str]]:
    """(where, expr) for every panel target and query variable of a dashboard."""
    board = json.loads(path.read_text())
    queries = []
    for panel in board["panels"]:
        for target in panel.get("targets", []):
            queries.append((f"{path.name}: panel {panel['title']!r} {target['refId']}", target["expr"]))
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"]
            inner = re.match(r"label_values\((.*),\s*\w+\)$", query)
            queries.append((f"{path.name}: variable {variable['name']}", inner.group(1) if inner else query))
    return queries


def rule_queries() -> list[tuple[str, str]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [(f"alerts.yml: {rule['alert']}", rule["expr"]) for group in groups for rule in group["rules"]]


def test_the_name_extraction_sees_through_promql():
    assert metric_names('sum by (name) (rate(a_total{job="x", name=~"b.*"}[$__rate_interval])) '
                        '/ on(name) group_left(image) (c > 0) or vector(0)') == {"a_total", "c"}
    assert metric_names('topk(10, sum by (le) (rate(h_bucket{name="$container"}[5m])))') == {"h_bucket"}


def test_there_are_the_three_dashboards():
    assert [p.name for p in DASHBOARDS] == ["container.json", "host-overview.json", "policies.json"]


@pytest.mark.parametrize("where, expr", [q for path in DASHBOARDS for q in dashboard_queries(path)] + rule_queries())
def test_every_metric_named_is_exported(where, expr):
    unknown = metric_names(expr) - exported_names() - PROMETHEUS_OWN
    assert not unknown, f"{where}: {sorted(unknown)} is not a metric Corral exports"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_structure(path):
    board = json.loads(path.read_text())
    assert board["schemaVersion"] >= 39
    assert board["uid"].startswith("corral-") and "corral" in board["tags"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"
    assert variables["DS_PROMETHEUS"]["current"]["value"] == PROVISIONED_UID
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, f"{panel['title']} is wider than the dashboard"
        if panel["type"] == "row":
            continue
        assert panel.get("description"), f"{panel['title']}: every panel says what it shows"
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}"
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${DS_PROMETHEUS}"
            assert 'job="corral"' in target["expr"] or "ALERTS" in target["expr"], target["expr"]


def test_container_dashboard_queries_follow_the_container_variable():
    board = json.loads((REPO / "dashboards" / "container.json").read_text())
    assert any(v["name"] == "container" for v in board["templating"]["list"])
    queries = [(panel["title"], target["expr"]) for panel in board["panels"] for target in panel.get("targets", [])]
    assert queries
    for title, expr in queries:
        assert 'name="$container"' in expr, f"{title}: {expr}"


def test_provisioning_loads_the_data_source_the_dashboards_default_to():
    datasources = yaml.safe_load((REPO / "deploy/grafana/provisioning/datasources/corral.yml").read_text())
    [source] = datasources["datasources"]
    assert (source["uid"], source["type"]) == (PROVISIONED_UID, "prometheus")
    providers = yaml.safe_load((REPO / "deploy/grafana/provisioning/dashboards/corral.yml").read_text())
    assert providers["providers"][0]["type"] == "file"


def schema_modules() -> Path:
    """build/grafana-schema with @grafana/schema and TypeScript, installed from the committed
    package-lock.json when missing or stale (scripts/setup.sh does the same)."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            if IN_CI:
                pytest.fail(f"{tool} is missing under CI=true: the dashboards cannot be checked against @grafana/schema")
            pytest.skip(f"{tool} is not installed: cannot check the dashboards against @grafana/schema "
                        "(install Debian's nodejs and npm)")
    wanted = (SCHEMA_CHECK / "package-lock.json").read_text()
    installed = SCHEMA_MODULES / "package-lock.json"
    if not (SCHEMA_MODULES / "node_modules" / "@grafana" / "schema").is_dir() or \
            not installed.exists() or installed.read_text() != wanted:
        SCHEMA_MODULES.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(SCHEMA_CHECK / name, SCHEMA_MODULES / name)
        result = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--prefix", str(SCHEMA_MODULES)],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"npm ci in {SCHEMA_MODULES} failed:\n{result.stdout}\n{result.stderr}"
    return SCHEMA_MODULES


def test_dashboards_pass_the_official_grafana_schema():
    modules = schema_modules()
    result = subprocess.run(["node", str(SCHEMA_CHECK / "check-dashboards.mjs"), "--modules", str(modules),
                             *map(str, DASHBOARDS)], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode == 0, f"dashboards do not match @grafana/schema:\n{result.stdout}\n{result.stderr}"


def _misspelt_field(board):
    board["refreshh"] = board.pop("refresh")


def _wrong_type(board):
    board["panels"][1]["gridPos"]["h"] = "tall"


def _value_outside_an_enum(board):
    board["panels"][1]["fieldConfig"]["defaults"]["thresholds"] = {"mode": "absolut", "steps": []}


def _missing_required_field(board):
    del board["schemaVersion"]


BREAKAGES = [(_misspelt_field, "refreshh"), (_wrong_type, "number"), (_value_outside_an_enum, "absolut"),
             (_missing_required_field, "schemaVersion")]


def test_the_schema_check_rejects_broken_dashboards(tmp_path):
    modules = schema_modules()
    broken = []
    for breakage, said in BREAKAGES:          # one tsc run for all: each file reports its own error
        board = json.loads(DASHBOARDS[0].read_text())
        breakage(board)
        path = tmp_path / f"{breakage.__name__.strip('_')}.json"
        path.write_text(json.dumps(board, indent=2))
        broken.append((path, said))
    result = subprocess.run(["node", str(SCHEMA_CHECK / "check-dashboards.mjs"), "--modules", str(modules),
                             *(str(path) for path, _ in broken)], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert result.returncode != 0
    for path, said in broken:
        assert f"{path}(" in result.stdout, f"{path.name}: no error reported:\n{result.stdout}"
        message = result.stdout.split(f"{path}(", 1)[1].split(f"\n{tmp_path}", 1)[0]   # with continuation lines
        assert said in message, f"{path.name}: expected an error about {said!r} in:\n{result.stdout}"
