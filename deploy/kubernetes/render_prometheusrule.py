"""Write prometheusrule.yaml (a Prometheus Operator PrometheusRule) from deploy/prometheus/alerts.yml.

The rules live in one place, alerts.yml (tested with promtool); this copies them into the
custom resource kustomize applies. tests/unit/test_kubernetes_manifests.py fails when the two
disagree, so after editing alerts.yml run:  python deploy/kubernetes/render_prometheusrule.py
"""
from __future__ import annotations

from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ALERTS = HERE.parent / "prometheus" / "alerts.yml"
OUTPUT = HERE / "prometheusrule.yaml"
HEADER = ("# GENERATED from deploy/prometheus/alerts.yml by render_prometheusrule.py; do not edit.\n"
          "# The rules expect job=\"corral\": the Service is named corral.\n")


def render(alerts_text: str) -> dict:
    groups = yaml.safe_load(alerts_text)["groups"]
    return {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": {"name": "corral", "labels": {"role": "alert-rules"}},
            "spec": {"groups": groups}}


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (PromQL expressions, descriptions) as `|` blocks, as alerts.yml has them."""


def _string(dumper: yaml.SafeDumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _string)


def main() -> None:
    rule = render(ALERTS.read_text())
    OUTPUT.write_text(HEADER + yaml.dump(rule, Dumper=_BlockDumper, sort_keys=False, width=100,
                                         allow_unicode=True))


if __name__ == "__main__":
    main()
