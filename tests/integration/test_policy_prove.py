"""`corral policy prove` and the daemon's live self-check, for real: every enforcing rule of a
running container is read back from the kernel (the kill table, the egress programs on its
cgroup v2 directory, its processes' seccomp filter, its cgroup limits). A test detaches the
egress programs behind Corral's back, as a careless admin or another agent would: prove says
so (exit 1, the reason, `corral_policy_enforced` 0, an `enforcement_lost` event), `--repair`
or the periodic check puts them back, and the daemon alerts (CorralPolicyNotEnforced).
"""
from __future__ import annotations

import http.server
import json
import os
import threading
import time

import pytest

from agent.probes import cgroup_programs
from tests.integration.corral_daemon import running_daemon
from tests.integration.test_policies import (  # noqa: F401
    INTERVAL,
    container_id,
    containers,
    policies_dir,
    policy_events,
    policy_files,
    scrape,
    wait_until,
)
from tests.integration.test_policy_bpf import egress_programs, probes_loaded, unified_dir

pytestmark = pytest.mark.privileged

GUARD = """
selector: {names: ["prove-*"]}
limits: {memory: 64Mi, pids: 40, killOrder: first}
syscalls:
  - {names: [ptrace], action: kill}
  - {names: [mount], action: deny}
network:
  egress:
    default: allow
    rules:
      - {name: no-metadata, action: deny, cidr: 169.254.169.254/32, ports: [80], protocol: tcp}
"""


@pytest.fixture(scope="module")
def pdaemon(policies_dir):  # noqa: F811
    """This module's daemon: no periodic proof, so only the test's `prove` calls look and repair."""
    with running_daemon("--policies", str(policies_dir), "--policy-interval", str(INTERVAL),
                        "--prove-interval", "0") as instance:
        if not probes_loaded(instance):
            pytest.fail("the daemon's probes are not loaded: BPF enforcement cannot be proved")
        yield instance


def detach_egress(directory: str) -> int:
    """Take every egress program off the directory with bpf(BPF_PROG_DETACH), as bpftool would."""
    detached = 0
    for kind in (cgroup_programs.CGROUP_INET4_CONNECT, cgroup_programs.CGROUP_UDP4_SENDMSG,
                 cgroup_programs.CGROUP_INET6_CONNECT, cgroup_programs.CGROUP_UDP6_SENDMSG):
        for prog_id in cgroup_programs.attached_programs(directory, kind):
            fd = cgroup_programs._program_fd(prog_id)
            try:
                detached += cgroup_programs.detach(directory, fd, kind)
            finally:
                os.close(fd)
    return detached


def cgroup_procs(name: str, daemon) -> list[str]:
    return open(f"{unified_dir(name, daemon)}/cgroup.procs").read().split()


def oom_score_adj(pid: int) -> int:
    return int(open(f"/proc/{pid}/oom_score_adj").read())


def proofs(daemon, *args: str) -> tuple[int, list[dict]]:
    result = daemon.cli("policy", "prove", *args, "--format", "json", check=False)
    return result.returncode, json.loads(result.stdout)


def enforced_series(daemon, name: str) -> dict[str, float]:
    """kind -> value of corral_policy_enforced for the container (any reason)."""
    found = {}
    for line in scrape(daemon).splitlines():
        if line.startswith("corral_policy_enforced{") and f'name="{name}"' in line:
            kind = line.split('kind="', 1)[1].split('"', 1)[0]
            found[kind] = min(found.get(kind, 1.0), float(line.split()[-1]))
    return found


def test_prove_reads_every_rule_back_and_finds_a_detached_egress_program(pdaemon, policy_files, containers):  # noqa: F811
    policy_files.write("guard.yaml", "prove-guard", GUARD)
    containers.append("prove-1")
    pdaemon.cli("run", "-d", "--name", "prove-1", "busybox", "sh", "-c", "sleep 600 & sleep 600")
    code, found = proofs(pdaemon, "prove-1")
    assert code == 0, found
    assert {(p["kind"], p["rule"]) for p in found if p["policy"] == "prove-guard"} == {
        ("syscall_kill", "syscalls[0]"), ("syscall_deny", "syscalls[1]"), ("egress", "network.egress"),
        ("limits", "limits.memory"), ("limits", "limits.pids"), ("limits", "limits.killOrder")}
    assert all(p["enforced"] and p["reason"] == "" for p in found)
    # The kill order was written on the init before it ran anything: both sleeps inherited it.
    pids = [int(p) for p in cgroup_procs("prove-1", pdaemon)]
    assert len(pids) >= 2 and {oom_score_adj(pid) for pid in pids} == {1000}
    assert enforced_series(pdaemon, "prove-1") == {"syscall_kill": 1, "syscall_deny": 1, "egress": 1, "limits": 1}
    table = pdaemon.out("policy", "prove")
    assert "prove-1" in table and "NO" not in table

    started = time.time()
    directory = unified_dir("prove-1", pdaemon)
    assert detach_egress(directory) == 4 and egress_programs(directory) == []
    code, found = proofs(pdaemon, "prove-1")
    assert code == 1
    egress = next(p for p in found if p["kind"] == "egress")
    assert not egress["enforced"] and egress["reason"].startswith("egress programs not attached to its cgroup: ")
    assert all(p["enforced"] for p in found if p["kind"] != "egress")
    assert enforced_series(pdaemon, "prove-1")["egress"] == 0
    lost = wait_until(lambda: policy_events(pdaemon, started, "prove-1", "enforcement_lost"),
                      what="the enforcement_lost event")
    assert lost[0]["attributes"]["kind"] == "egress" and lost[0]["attributes"]["policy"] == "prove-guard"

    os.system(f"echo 0 > /proc/{pids[-1]}/oom_score_adj")      # a kill order undone by hand, too
    code, found = proofs(pdaemon, "prove-1")
    assert [p["reason"] for p in found if p["rule"] == "limits.killOrder"] == [
        f"process {pids[-1]} has oom_score_adj 0, the kill order wants 1000"]

    code, found = proofs(pdaemon, "--repair", "prove-1")
    assert code == 0 and all(p["enforced"] for p in found)
    assert len(egress_programs(directory)) == 4 and oom_score_adj(pids[-1]) == 1000
    assert enforced_series(pdaemon, "prove-1")["egress"] == 1
    wait_until(lambda: policy_events(pdaemon, started, "prove-1", "enforcement_restored"),
               what="the enforcement_restored event")


def test_a_process_without_the_seccomp_filter_is_not_proved(pdaemon, policy_files, containers):  # noqa: F811
    """A rule added after the container started is not in its filter: prove says it applies at the next start."""
    containers.append("prove-2")
    pdaemon.cli("run", "-d", "--name", "prove-2", "busybox", "sleep", "600")
    policy_files.write("late.yaml", "prove-late", 'selector: {names: ["prove-2"]}\nsyscalls: [{names: [chroot], action: deny}]\n')
    code, found = proofs(pdaemon, "prove-2")
    assert code == 1
    deny = next(p for p in found if p["policy"] == "prove-late")
    assert deny["kind"] == "syscall_deny" and "next start" in deny["reason"]
    pdaemon.cli("restart", "-t", "1", "prove-2")
    code, found = proofs(pdaemon, "prove-2")
    assert code == 0, found


class Webhook(http.server.BaseHTTPRequestHandler):
    received: list[bytes] = []

    def do_POST(self):  # noqa: N802 - http.server's name
        self.received.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_the_daemon_finds_the_loss_itself_puts_the_rule_back_and_alerts(tmp_path):
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "guard.yaml").write_text("apiVersion: corral/v1\nkind: Policy\nmetadata: {name: auto-guard}\n"
                                       "spec:\n  network: {egress: {default: deny}}\n")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with running_daemon("--policies", str(folder), "--policy-interval", str(INTERVAL),
                            "--prove-interval", "0.3",
                            "--alert-webhook", f"http://127.0.0.1:{server.server_port}/hook") as daemon:
            if not probes_loaded(daemon):
                pytest.fail("the daemon's probes are not loaded")
            daemon.cli("run", "-d", "--name", "guarded", "busybox", "sleep", "600")
            directory = unified_dir(container_id(daemon, "guarded"), daemon)
            wait_until(lambda: len(egress_programs(directory)) == 4, what="the egress programs")
            started = time.time() - 1
            assert detach_egress(directory) == 4
            wait_until(lambda: len(egress_programs(directory)) == 4, what="the daemon to put the programs back")
            wait_until(lambda: policy_events(daemon, started, "guarded", "enforcement_restored"),
                       what="the enforcement_restored event")
            assert policy_events(daemon, started, "guarded", "enforcement_lost")
            wait_until(lambda: any(b"CorralPolicyNotEnforced" in body for body in Webhook.received),
                       what="the CorralPolicyNotEnforced alert")
    finally:
        server.shutdown()


def test_the_canary_tries_each_rule_for_real(pdaemon, policy_files, containers):  # noqa: F811
    """--net none: the canary's connect never leaves (EPERM when enforced, no route when not)."""
    policy_files.write("canary.yaml", "prove-canary", """
selector: {names: ["canary-*"]}
syscalls:
  - {names: [syslog], action: kill}
network:
  egress: {default: deny}
""")
    containers.append("canary-1")
    pdaemon.cli("run", "-d", "--net", "none", "--name", "canary-1", "busybox", "sleep", "600")
    started = time.time()
    code, found = proofs(pdaemon, "--canary", "canary-1")
    tried = {(p["policy"], p["rule"]): (p["enforced"], p["reason"]) for p in found if p["kind"] == "canary"}
    assert code == 0 and tried == {("prove-canary", "network.egress"): (True, ""),
                                   ("prove-canary", "syscalls[0]"): (True, "")}, \
        [(p["kind"], p["rule"], p["reason"]) for p in found if not p["enforced"]]
    # The canary's own kill and refused connect are not the container's violations.
    time.sleep(1.5)
    violations = policy_events(pdaemon, started, "canary-1", "violation")
    assert not violations, [v["attributes"] for v in violations]
    assert len(cgroup_procs("canary-1", pdaemon)) == 1           # the canaries are gone

    directory = unified_dir("canary-1", pdaemon)
    assert detach_egress(directory) == 4
    code, found = proofs(pdaemon, "--canary", "canary-1")
    egress = [p for p in found if p["kind"] == "canary" and p["rule"] == "network.egress"]
    assert code == 1 and not egress[0]["enforced"]
    assert "connect to 192.0.2.1:9 was not stopped" in egress[0]["reason"]
    assert proofs(pdaemon, "--repair", "--canary", "canary-1")[0] == 0
