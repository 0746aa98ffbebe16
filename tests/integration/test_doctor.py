"""`corral doctor` on the real host, checked against what the host really has: its cgroup mode
(agent.cgroups.detect), and exact or nearest headers (where /lib/modules/$(uname -r)/build
points). Tests run after `make setup`, so every required check must pass.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.cgroups.detect import cgroup_mode
from agent.doctor import main

pytestmark = pytest.mark.privileged

REPO = Path(__file__).resolve().parents[2]
NAMESPACES = ("pid", "mnt", "net", "ipc", "uts", "user", "cgroup")


@pytest.fixture
def report(capsys):
    code = main(["--format", "json"])
    data = json.loads(capsys.readouterr().out)
    return code, {c["name"]: c for c in data["checks"]}, data


def test_json_report_of_this_host(report):
    code, checks, data = report
    assert checks["root"]["status"] == "ok"
    assert checks["kernel"]["status"] == "ok" and os.uname().release in checks["kernel"]["found"]
    assert checks["bpf"]["status"] == "ok"
    assert checks["tracefs"]["status"] == "ok"
    assert checks["overlay"]["status"] == "ok"
    assert checks["bcc"]["status"] == "ok"
    for name in NAMESPACES:
        assert checks[f"namespace {name}"]["status"] == "ok", checks[f"namespace {name}"]


def exact_headers() -> bool:
    build = Path("/lib/modules") / os.uname().release / "build"
    return os.uname().release in os.path.realpath(build)


def test_cgroup_mode_and_headers_are_this_hosts(report):
    _, checks, _ = report
    cgroups = checks["cgroups"]
    assert cgroups["status"] == "ok" and cgroups["found"].startswith(cgroup_mode())
    if cgroup_mode() == "hybrid":
        assert "/sys/fs/cgroup/unified" in cgroups["found"]
    headers = checks["headers"]
    if exact_headers():
        assert headers["status"] == "ok"
    else:
        assert headers["status"] == "warn" and "nearest headers:" in headers["found"]
        assert os.uname().release in headers["found"]


def test_exit_code_follows_the_required_checks(report):
    code, checks, data = report
    failed_required = [c["name"] for c in checks.values() if c["status"] == "fail" and c["required"]]
    assert code == (1 if failed_required else 0) == data["exit_code"]
    assert failed_required == [], "make setup should have provided every required piece"


def test_python_dash_m_text_report_leaves_no_mounts_behind():
    before = Path("/proc/self/mountinfo").read_text().count("corral-doctor-")
    proc = subprocess.run([sys.executable, "-m", "agent.doctor"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    lines = proc.stdout.splitlines()
    by_name = {line.split()[1] + (" " + line.split()[2] if line.split()[1] == "namespace" else ""): line
               for line in lines[:-1]}
    assert by_name["cgroups"].split()[0] == "ok" and f" {cgroup_mode()}" in by_name["cgroups"]
    if not exact_headers():
        assert by_name["headers"].startswith("warn") and "[fix: apt-get install linux-headers-" in by_name["headers"]
    assert by_name["bpf"].startswith("ok")
    assert all(by_name[f"namespace {n}"].startswith("ok") for n in NAMESPACES)
    assert lines[-1].startswith("Corral can")
    assert proc.returncode == (0 if lines[-1].startswith("Corral can run here") else 1)
    assert proc.stderr == ""
    assert Path("/proc/self/mountinfo").read_text().count("corral-doctor-") == before == 0
    assert not list(Path("/tmp").glob("corral-doctor-*"))
