"""deploy/systemd/corral.service passes `systemd-analyze verify`, and its exposure score is the
one docs/deployment.md records. Skips only where systemd-analyze is not installed."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]
UNIT = REPO / "deploy/systemd/corral.service"
INSTALLED = "/opt/corral/bin/corral"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")


def unit_here(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's `corral` when it is not installed
    (verify checks that the command exists); nothing else changes."""
    text = UNIT.read_text()
    if not Path(INSTALLED).exists():
        text = text.replace(INSTALLED, str(Path(sys.executable).parent / "corral"))
    copy = tmp_path / "corral.service"
    copy.write_text(text)
    return copy


@needs_analyze
def test_the_unit_passes_systemd_analyze_verify(tmp_path):
    result = subprocess.run([ANALYZE, "verify", str(unit_here(tmp_path))], capture_output=True, text=True)
    assert result.returncode == 0 and (result.stdout + result.stderr).strip() == "", result.stderr


@needs_analyze
def test_verify_would_catch_a_mistake(tmp_path):
    broken = unit_here(tmp_path)
    broken.write_text(broken.read_text().replace("KillMode=process", "KillMode=process\nProtectSytem=strict"))
    result = subprocess.run([ANALYZE, "verify", str(broken)], capture_output=True, text=True)
    assert "Unknown key" in result.stderr


@needs_analyze
def test_the_exposure_score_is_the_one_the_deployment_guide_records(tmp_path):
    result = subprocess.run([ANALYZE, "security", "--offline=true", str(unit_here(tmp_path))],
                            capture_output=True, text=True)
    score = re.search(r"Overall exposure level for corral.service: ([0-9.]+)", result.stdout)
    assert score, result.stdout[-500:] + result.stderr
    guide = (REPO / "docs/deployment.md").read_text()
    assert f"exposure level {score.group(1)}" in guide


def test_the_unit_keeps_containers_running_and_lists_its_capabilities():
    text = UNIT.read_text()
    settings = dict(re.findall(r"^(\w+)=(.*)$", text, flags=re.M))
    assert settings["KillMode"] == "process"          # stopping the daemon must not kill containers
    assert settings["ProtectSystem"] == "strict"
    caps = re.search(r"^CapabilityBoundingSet=((?:.*\\\n)*.*)$", text, flags=re.M).group(1)
    caps = set(caps.replace("\\\n", " ").split())
    for needed in ("CAP_SYS_ADMIN", "CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN", "CAP_KILL", "CAP_SYS_PTRACE"):
        assert needed in caps
    for cap in caps:                                  # each one is justified in a comment
        assert re.search(rf"^#.*\b{cap}\b", text, flags=re.M), cap


def test_tmpfiles_makes_the_daemons_directories():
    lines = [line.split() for line in (REPO / "deploy/systemd/corral.conf").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert {fields[1] for fields in lines if fields[0] == "d"} == {"/var/lib/corral", "/run/corral", "/etc/corral"}
