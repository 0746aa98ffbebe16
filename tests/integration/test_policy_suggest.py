"""`corral policy suggest` for real: a busybox workload with a known set of syscalls and one
TCP destination (a server on the container's own loopback) runs under a daemon that keeps its
history; the suggested policy passes `corral policy check`; applied (the file in the policy
folder, the profile with --security-opt seccomp=), the same workload runs unchanged, while a
syscall it never used (chroot, mkdir) and a destination it never reached are refused.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

from tests.integration.corral_daemon import running_daemon, until

pytestmark = pytest.mark.privileged

INTERVAL = 0.5
NAME = "sg-learn"
# Serves /tmp over HTTP on the container's own loopback (busybox httpd), then six times over
# ~5 s (several policy ticks) writes a file, lists / and fetches the file from the server;
# prints "finished" when every step went well.
WORKLOAD = ("echo hi > /tmp/index.html && httpd -p 127.0.0.1:8080 -h /tmp || exit 2; i=0; "
            "while [ $i -lt 6 ]; do echo hi > /tmp/f && cat /tmp/f > /dev/null && ls / > /dev/null || exit 3; "
            "wget -q -O /tmp/got http://127.0.0.1:8080/index.html && grep -q hi /tmp/got || exit 4; "
            "i=$((i+1)); sleep 0.5; done; echo finished")


@pytest.fixture(scope="module")
def folder():
    if os.geteuid() != 0:
        pytest.skip("needs root: runs a real daemon")
    directory = Path(tempfile.mkdtemp(prefix="corral-suggest-", dir="/var/tmp"))
    yield directory
    for path in directory.iterdir():
        path.unlink()
    directory.rmdir()


@pytest.fixture(scope="module")
def daemon(folder):
    with running_daemon("--policies", str(folder), "--policy-interval", str(INTERVAL)) as instance:
        yield instance


def policy_names(daemon) -> set[str]:
    return {p["name"] for p in json.loads(daemon.out("policy", "ls", "--format", "json"))["policies"]}


def run(daemon, *args: str, check: bool = False):
    return daemon.cli("run", "--name", NAME, *args, check=check, timeout=120)


def test_suggest_learns_a_workload_and_the_policy_lets_it_run_unchanged(daemon, folder, tmp_path):
    first = run(daemon, "busybox", "sh", "-c", WORKLOAD)
    assert first.returncode == 0 and b"finished" in first.stdout, first.stderr
    policy, profile = tmp_path / "suggested.yaml", tmp_path / "profile.json"

    suggested = daemon.cli("policy", "suggest", NAME, "--since", "10m", "-o", str(policy), "--seccomp", str(profile))
    report = suggested.stdout.decode()
    assert f"policy suggested-{NAME}" in report and "held-out check" in report
    assert daemon.cli("policy", "check", str(policy)).returncode == 0
    text = policy.read_text()
    assert f'names: ["{NAME}"]' in text
    assert "cidr: 127.0.0.1/32, ports: [8080], protocol: tcp" in text      # the one destination reached
    assert "chroot" in text and "action: deny" in text                       # never used: denied
    allowed = set(json.loads(profile.read_text())["syscalls"][0]["names"])
    assert {"connect", "execve"} <= allowed and "mkdir" not in allowed and "chroot" not in allowed

    # Applied: the file in the folder (in force for containers named sg-learn), the profile.
    daemon.cli("rm", "-f", NAME)
    (folder / "suggested.yaml").write_text(text)
    until(lambda: f"suggested-{NAME}" in policy_names(daemon), "the suggested policy to load")
    try:
        again = run(daemon, "--rm", "--security-opt", f"seccomp={profile}", "busybox", "sh", "-c", WORKLOAD)
        assert again.returncode == 0 and b"finished" in again.stdout, again.stderr

        # A syscall it never used, denied by the policy's rule (without the profile)...
        chroot = run(daemon, "--rm", "busybox", "chroot", "/", "true")
        assert chroot.returncode != 0 and b"Operation not permitted" in chroot.stderr + chroot.stdout
        # ... one outside the profile's allow-list...
        mkdir = run(daemon, "--rm", "--security-opt", f"seccomp={profile}", "busybox", "mkdir", "/tmp/x")
        assert mkdir.returncode != 0 and b"Operation not permitted" in mkdir.stderr + mkdir.stdout
        # ... and a destination it never reached, refused by the egress rules.
        other = run(daemon, "--rm", "busybox", "sh", "-c",
                    "nc -l -p 9090 & sleep 0.2; echo ping | nc -w 1 127.0.0.1 9090")
        assert other.returncode != 0 and b"Operation not permitted" in other.stderr + other.stdout
    finally:
        (folder / "suggested.yaml").unlink()
        until(lambda: f"suggested-{NAME}" not in policy_names(daemon), "the suggested policy to unload")


def test_the_history_survives_a_restart_and_the_container(daemon):
    result = daemon.cli("run", "--name", "sg-gone", "busybox", "sh", "-c", "ls / > /dev/null; sleep 2")
    assert result.returncode == 0
    daemon.cli("rm", "-f", "sg-gone")
    daemon.stop()
    daemon.start()
    answer = json.loads(daemon.out("policy", "suggest", "sg-gone", "--format", "json"))
    assert answer["containers"] == ["sg-gone"] and answer["samples"] >= 1
    assert "getdents64" in answer["seccomp"]["syscalls"][0]["names"]         # what ls did
    missing = daemon.cli("policy", "suggest", "sg-never-ran", check=False)
    assert missing.returncode != 0 and b"no history of container sg-never-ran" in missing.stderr


def test_the_held_out_check_lists_what_only_the_end_of_the_run_did(daemon):
    # ~6 s of listing and fetching, then, at the very end, a mkdir and a connect to a new port:
    # the policy from the first part of the window would have refused both.
    late = ("echo hi > /tmp/index.html && httpd -p 127.0.0.1:8080 -h /tmp && httpd -p 127.0.0.1:8081 -h /tmp "
            "|| exit 2; i=0; while [ $i -lt 12 ]; do ls / > /dev/null; wget -q -O /dev/null "
            "http://127.0.0.1:8080/index.html || exit 3; i=$((i+1)); sleep 0.5; done; mkdir /tmp/late && "
            "wget -q -O /dev/null http://127.0.0.1:8081/index.html && echo finished")
    result = daemon.cli("run", "--name", "sg-late", "busybox", "sh", "-c", late, timeout=120)
    assert b"finished" in result.stdout
    answer = json.loads(daemon.out("policy", "suggest", "sg-late", "--format", "json", "--holdout", "0.3"))
    findings = {(f["what"], f["detail"].split(":")[0]) for f in answer["holdout"]["findings"]}
    assert ("syscall", "mkdir") in findings
    assert ("egress", "tcp 127.0.0.1") in findings
    assert not any(f["what"] == "syscall" and f["detail"].startswith(("getdents64", "connect"))
                   for f in answer["holdout"]["findings"])            # seen early: allowed
    # The policy printed is built from the whole run: both are in it.
    assert "ports: [8080, 8081]" in answer["policy"]
    assert "mkdir" in answer["seccomp"]["syscalls"][0]["names"]
    # The text report says the same.
    text = daemon.cli("policy", "suggest", "sg-late", "--holdout", "0.3")
    assert b"syscall mkdir: not in the seccomp allow-list -> deny (with the profile)" in text.stderr
    daemon.cli("rm", "-f", "sg-late")
