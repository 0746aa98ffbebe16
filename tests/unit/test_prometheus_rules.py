"""The shipped Prometheus and Alertmanager files pass their own tools' checks and rule tests."""
from __future__ import annotations

import subprocess
from pathlib import Path

import yaml

from tests.host import require_tool

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS = REPO / "deploy" / "prometheus"
ALERTMANAGER = REPO / "deploy" / "alertmanager"


tool = require_tool       # a skip without the tool, a failure under CI=true (tests/conftest.py)


def run(*args: str, cwd: Path = REPO) -> None:
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"{' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"


def test_alert_rules_are_valid():
    run(tool("promtool", "prometheus"), "check", "rules", "deploy/prometheus/alerts.yml")


def test_alert_rule_unit_tests_pass():
    run(tool("promtool", "prometheus"), "test", "rules", "deploy/prometheus/alerts_test.yml")


def test_prometheus_config_is_valid():
    run(tool("promtool", "prometheus"), "check", "config", "deploy/prometheus/prometheus.yml")


def test_alertmanager_config_is_valid():
    run(tool("amtool", "prometheus-alertmanager"), "check-config", "deploy/alertmanager/alertmanager.yml")


def test_every_rule_has_a_unit_test():
    rules = {rule["alert"] for group in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
             for rule in group["rules"]}
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())["tests"]
    tested = {case["alertname"] for test in tests for case in test.get("alert_rule_test", [])
              if case.get("exp_alerts")}
    assert rules - tested == set(), "rules without a test that shows them firing"


def test_every_rule_has_a_severity_the_alertmanager_routes():
    severities = {rule["labels"]["severity"]
                  for group in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
                  for rule in group["rules"]}
    routes = yaml.safe_load((ALERTMANAGER / "alertmanager.yml").read_text())["route"]["routes"]
    routed = {matcher.split("=", 1)[1].strip('"') for route in routes for matcher in route["matchers"]
              if matcher.startswith("severity=")}
    assert severities <= routed
