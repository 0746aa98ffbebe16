"""deploy/kubernetes renders with kustomize and every object validates, strictly, against the
schemas of the Kubernetes versions users run (kubernetes-validate, offline). The Prometheus
Operator's ServiceMonitor and PrometheusRule have no schema there: their structure is checked
here, and the PrometheusRule must carry exactly the rules of deploy/prometheus/alerts.yml.

Rendering uses `kubectl kustomize` or `kustomize` when installed; without either, the resources
listed in kustomization.yaml are loaded and the config maps generated here (no name hashes).
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import kubernetes_validate as validate  # the test extra (pyproject.toml)
import pytest
import yaml

from agent.config import load_config
from agent.daemon_config import build_parser

REPO = Path(__file__).parents[2]
BASE = REPO / "deploy/kubernetes"
VERSIONS = ("1.28.0", "1.29.0", "1.30.0", "1.31.0")
CRDS = {"ServiceMonitor", "PrometheusRule"}


def kustomize(directory: Path) -> list[dict] | None:
    """Rendered objects, or None when no kustomize is installed."""
    if shutil.which("kubectl"):
        command = ["kubectl", "kustomize", str(directory)]
    elif shutil.which("kustomize"):
        command = ["kustomize", "build", str(directory)]
    else:
        return None
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def load_by_hand(directory: Path) -> list[dict]:
    """What kustomize would render, less the config maps' name hashes."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    objects = []
    for resource in kustomization["resources"]:
        objects += [doc for doc in yaml.safe_load_all((directory / resource).read_text()) if doc]
    for generator in kustomization.get("configMapGenerator", []):
        data = {Path(f).name: (directory / f).read_text() for f in generator.get("files", [])}
        data.update(dict(literal.split("=", 1) for literal in generator.get("literals", [])))
        objects.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]},
                        "data": data})
    common = {k: v for entry in kustomization.get("labels", []) for k, v in entry["pairs"].items()}
    for obj in objects:
        obj["metadata"]["labels"] = {**obj["metadata"].get("labels", {}), **common}
        if obj["kind"] != "Namespace":
            obj["metadata"].setdefault("namespace", kustomization["namespace"])
    return objects


@pytest.fixture(scope="module")
def rendered() -> list[dict]:
    return kustomize(BASE) or load_by_hand(BASE)


def by_kind(objects: list[dict], kind: str) -> dict:
    [found] = [o for o in objects if o["kind"] == kind and not o["metadata"]["name"].startswith("corral-policy")]
    return found


def test_every_object_validates_strictly_for_each_kubernetes_version(rendered):
    objects = [obj for obj in rendered if obj["kind"] not in CRDS]
    assert objects
    for version in VERSIONS:
        for obj in objects:
            validate.validate(obj, version, strict=True)   # raises ValidationError naming the field


def test_the_validator_can_fail():
    with pytest.raises(validate.ValidationError):
        validate.validate({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"},
                           "spec": {"ports": [{"port": "many"}]}}, VERSIONS[0], strict=True)
    with pytest.raises(validate.ValidationError):
        validate.validate({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "x"},
                           "automountToken": False}, VERSIONS[0], strict=True)


def test_everything_lives_in_its_namespace(rendered):
    kinds = sorted(o["kind"] for o in rendered)
    assert kinds == sorted(["Namespace", "ServiceAccount", "ConfigMap", "ConfigMap", "DaemonSet", "Service",
                            "ServiceMonitor", "PrometheusRule"])
    assert all(o["metadata"].get("namespace") == "corral-system" for o in rendered if o["kind"] != "Namespace")


def test_no_rbac_and_no_token_the_agent_needs_no_api(rendered):
    assert not [o for o in rendered if o["kind"] in ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")]
    assert by_kind(rendered, "ServiceAccount")["automountServiceAccountToken"] is False
    assert by_kind(rendered, "DaemonSet")["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


def test_the_daemonset_uses_capabilities_not_privileged_and_mounts_the_host(rendered):
    pod = by_kind(rendered, "DaemonSet")["spec"]["template"]["spec"]
    assert pod["hostPID"] is True
    agent = next(c for c in pod["containers"] if c["name"] == "corral")
    security = agent["securityContext"]
    assert security["privileged"] is False
    assert {"SYS_ADMIN", "BPF", "PERFMON", "NET_ADMIN", "SYS_RESOURCE", "SYS_PTRACE", "KILL"} <= set(
        security["capabilities"]["add"])
    mounts = {m["mountPath"]: m for m in agent["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for path in ("/sys/fs/cgroup", "/sys/fs/bpf", "/sys/kernel/tracing", "/sys/kernel/debug", "/var/lib/corral"):
        assert volumes[mounts[path]["name"]]["hostPath"]["path"] == path
    assert mounts["/run/containerd"]["readOnly"] is True
    assert agent["ports"][0]["containerPort"] == 9750


def test_git_sync_fills_the_policies_folder_the_agent_reads(rendered):
    pod = by_kind(rendered, "DaemonSet")["spec"]["template"]["spec"]
    sidecar = next(c for c in pod["containers"] if c["name"] == "git-sync")
    assert sidecar["image"].startswith("registry.k8s.io/git-sync/git-sync:v4.")
    env = {e["name"]: e["value"] for e in sidecar["env"]}
    agent = next(c for c in pod["containers"] if c["name"] == "corral")
    shared = {m["name"] for m in sidecar["volumeMounts"]} & {m["name"] for m in agent["volumeMounts"]}
    assert shared == {"policies"}
    config = yaml.safe_load(next(o for o in rendered if o["kind"] == "ConfigMap"
                                 and "corral.yaml" in o.get("data", {}))["data"]["corral.yaml"])
    assert config["policies"].startswith(f"{env['GITSYNC_ROOT']}/{env['GITSYNC_LINK']}/")
    assert any(c.get("env") and {"name": "GITSYNC_ONE_TIME", "value": "true"} in c["env"]
               for c in pod["initContainers"])


def test_the_config_map_is_a_valid_daemon_config(rendered, tmp_path):
    config_map = next(o for o in rendered if o["kind"] == "ConfigMap" and "corral.yaml" in o.get("data", {}))
    path = tmp_path / "corral.yaml"
    path.write_text(config_map["data"]["corral.yaml"])
    settings = load_config(path, build_parser())          # unknown keys would raise with file:line
    assert settings["metrics_addr"].endswith(":9750") and settings["observe"] is True


def test_prometheus_finds_the_agent(rendered):
    service, monitor = by_kind(rendered, "Service"), by_kind(rendered, "ServiceMonitor")
    annotations = service["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == "9750"
    assert service["metadata"]["name"] == "corral"        # job="corral", as the alert rules expect
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    labels = service["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in monitor["spec"]["selector"]["matchLabels"].items())
    port_names = {p["name"] for p in service["spec"]["ports"]}
    assert all(e["port"] in port_names and e["path"] == "/metrics" for e in monitor["spec"]["endpoints"])
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == ["corral-system"]


def test_the_prometheus_rule_carries_exactly_the_rules_of_alerts_yml(rendered):
    rule = by_kind(rendered, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    alerts = yaml.safe_load((REPO / "deploy/prometheus/alerts.yml").read_text())
    assert rule["spec"]["groups"] == alerts["groups"], (
        "deploy/kubernetes/prometheusrule.yaml is stale: run python deploy/kubernetes/render_prometheusrule.py")
    for group in rule["spec"]["groups"]:
        assert set(group) <= {"name", "interval", "rules", "limit"}
        for item in group["rules"]:
            assert set(item) <= {"alert", "record", "expr", "for", "keep_firing_for", "labels", "annotations"}
            assert ("alert" in item) != ("record" in item) and item["expr"]


def test_the_policies_configmap_component_replaces_git_sync(tmp_path):
    shutil.copytree(BASE, tmp_path / "corral")
    (tmp_path / "site").mkdir()
    (tmp_path / "site/kustomization.yaml").write_text(
        "resources: [../corral]\ncomponents: [../corral/components/policies-configmap]\n")
    objects = kustomize(tmp_path / "site")
    if objects is None:
        pytest.skip("no kustomize installed: components cannot be rendered by hand")
    pod = by_kind(objects, "DaemonSet")["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["corral"] and "initContainers" not in pod
    policies = next(v for v in pod["volumes"] if v["name"] == "policies")
    assert policies["configMap"]["name"].startswith("corral-policies")
    generated = next(o for o in objects if o["metadata"]["name"] == policies["configMap"]["name"])
    assert "default.yaml" in generated["data"]
    config = next(o for o in objects if o["kind"] == "ConfigMap" and "corral.yaml" in o.get("data", {}))
    assert yaml.safe_load(config["data"]["corral.yaml"])["policies"] == "/policies"
