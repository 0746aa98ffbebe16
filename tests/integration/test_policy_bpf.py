"""Policy rules enforced in BPF, for real, through the daemon and the CLI: syscall `kill` rules
(the probe SIGKILLs the caller) and network egress rules (cgroup connect/sendmsg programs).

The daemon, the policy folder and the helpers are test_policies.py's (a module-scoped daemon of
this module's own). Egress tests talk only to a peer container this test starts on the
daemon's own bridge: nothing leaves the machine. Attachments are checked with BPF_PROG_QUERY on
the container's cgroup v2 directory, as a user with bpftool would.
"""
from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.probes import cgroup_programs
from agent.probes.egress import EgressPolicy, EgressRuleSpec
from agent.probes.loader import ProbeOptions, ProbeSet
from tests.integration.corral_daemon import running_daemon
from tests.integration.test_policies import (  # noqa: F401
    INTERVAL,
    container_id,
    containers,
    metric,
    pdaemon,
    policies_dir,
    policy_events,
    policy_files,
    wait_until,
)

pytestmark = pytest.mark.privileged

EGRESS_TYPES = (cgroup_programs.CGROUP_INET4_CONNECT, cgroup_programs.CGROUP_UDP4_SENDMSG,
                cgroup_programs.CGROUP_INET6_CONNECT, cgroup_programs.CGROUP_UDP6_SENDMSG)
PAGE = "hello-from-peer"


def unified_dir(name_or_id: str, daemon) -> str:
    ident = name_or_id if len(name_or_id) == 64 else container_id(daemon, name_or_id)
    found = [p for p in (f"/sys/fs/cgroup/unified/corral/{ident}", f"/sys/fs/cgroup/corral/{ident}")
             if os.path.isdir(p)]
    assert found, f"no cgroup v2 directory for {name_or_id}"
    return found[0]


def egress_programs(directory: str) -> list[int]:
    return [i for kind in EGRESS_TYPES for i in cgroup_programs.attached_programs(directory, kind)]


def address_of(daemon, name: str) -> str:
    address = json.loads(daemon.out("inspect", name))[0]["NetworkSettings"]["IPAddress"]
    assert address, f"container {name} has no address"
    return address


def fetch(daemon, name: str, peer: str, port: int):
    """An HTTP GET with nc from inside container `name` (busybox wget crashes on this host's
    static busybox): (exit code, output)."""
    request = "printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n'"
    result = daemon.cli("exec", name, "sh", "-c", f"{request} | nc -w 3 {peer} {port}", check=False)
    return result.returncode, (result.stdout + result.stderr).decode()


def served(daemon, name: str, peer: str, port: int) -> bool:
    code, output = fetch(daemon, name, peer, port)
    return code == 0 and PAGE in output


def probes_loaded(daemon) -> bool:
    return bool((json.loads(daemon.out("info", "--format", "json")).get("probes") or {}).get("syscalls"))


@pytest.fixture
def needs_probes(pdaemon):  # noqa: F811
    if not probes_loaded(pdaemon):
        pytest.fail("the daemon's probes are not loaded: BPF enforcement cannot be tested")


@pytest.fixture
def peer(pdaemon, containers):  # noqa: F811
    """A container serving PAGE over HTTP on ports 8080 and 9090: its address."""
    containers.append("bpf-peer")
    pdaemon.cli("run", "-d", "--name", "bpf-peer", "busybox", "sh", "-c",
                f"mkdir -p /www && echo {PAGE} > /www/index.html && httpd -p 8080 -h /www "
                "&& httpd -p 9090 -h /www && exec sleep 600")
    return address_of(pdaemon, "bpf-peer")


# --- syscall kill rules ---------------------------------------------------------------------

def test_a_kill_rule_kills_the_caller_and_records_the_violation(pdaemon, policy_files, containers,  # noqa: F811
                                                                needs_probes):
    started = time.time()
    policy_files.write("kill.yaml", "kill-sync", """
selector: {names: ["bpfkill-*"]}
syscalls:
  - {name: no-sync, names: [sync], action: kill}
""")
    containers.extend(["bpfkill-1", "bpfkill-2"])
    pdaemon.cli("run", "-d", "--name", "bpfkill-1", "busybox", "sleep", "600")
    # The path makes ash fork and exec the applet instead of running it in the shell itself.
    result = pdaemon.cli("exec", "bpfkill-1", "sh", "-c", "/bin/sync; echo status=$?")
    assert result.stdout.decode().split() == ["status=137"]
    assert json.loads(pdaemon.out("inspect", "bpfkill-1"))[0]["State"]["Running"] is True
    violations = wait_until(lambda: policy_events(pdaemon, started, "bpfkill-1", "violation"),
                            what="the kill to be recorded")
    attributes = violations[0]["attributes"]
    assert (attributes["policy"], attributes["rule"], attributes["syscall"]) == ("kill-sync", "no-sync", "sync")
    assert attributes["actions"] == ["kill"] and attributes["mode"] == "enforce"
    assert attributes["comm"] in ("sync", "busybox") and attributes["result"] == "ok"
    assert metric(pdaemon, "corral_policy_violations_total", policy="kill-sync", rule="no-sync",
                  action="kill", name="bpfkill-1") == 1
    # Pushed before the container's first instruction: a command that syncs at once dies too.
    pdaemon.cli("run", "-d", "--name", "bpfkill-2", "busybox", "sync")
    assert pdaemon.out("wait", "bpfkill-2") == "137"
    # Containers the policy does not select are left alone.
    ok = pdaemon.cli("run", "--rm", "--name", "other-sync", "busybox", "sh", "-c", "/bin/sync; echo status=$?")
    assert ok.stdout.decode().split() == ["status=0"]
    explained = json.loads(pdaemon.out("policy", "explain", "bpfkill-1", "--format", "json"))
    assert explained["enforcement"]["syscall_kill"] == {"syscalls": ["sync"], "state": "enforced"}


# --- egress rules --------------------------------------------------------------------------

def test_an_egress_deny_rule_refuses_one_port_and_lifting_it_restores_it(pdaemon, policy_files,
                                                                         containers, peer, needs_probes):  # noqa: F811
    started = time.time()
    path = policy_files.write("egress.yaml", "egress-guard", f"""
selector: {{names: ["bpfnet-*"]}}
network:
  egress:
    default: allow
    rules:
      - {{name: no-9090, action: deny, cidr: {peer}/32, ports: [9090], protocol: tcp}}
""")
    containers.append("bpfnet-1")
    pdaemon.cli("run", "-d", "--name", "bpfnet-1", "busybox", "sleep", "600")
    directory = unified_dir("bpfnet-1", pdaemon)
    assert len(egress_programs(directory)) == 4
    assert served(pdaemon, "bpfnet-1", peer, 8080)
    code, output = fetch(pdaemon, "bpfnet-1", peer, 9090)
    assert code != 0 and "Operation not permitted" in output
    violations = wait_until(lambda: policy_events(pdaemon, started, "bpfnet-1", "violation"),
                            what="the refused connection to be recorded")
    attributes = violations[0]["attributes"]
    assert (attributes["policy"], attributes["rule"]) == ("egress-guard", "network.no-9090")
    assert attributes["destination"] == f"{peer}:9090" and attributes["protocol"] == "tcp"
    assert attributes["actions"] == ["deny"] and attributes["comm"] == "nc"
    assert metric(pdaemon, "corral_policy_violations_total", policy="egress-guard",
                  rule="network.no-9090", action="deny", name="bpfnet-1") >= 1
    explained = json.loads(pdaemon.out("policy", "explain", "bpfnet-1", "--format", "json"))
    assert explained["enforcement"]["egress"] == {"policies": ["egress-guard"], "state": "enforced"}

    # The peer itself is not selected: it may still reach its own port.
    assert served(pdaemon, "bpf-peer", "127.0.0.1", 9090)

    path.write_text(path.read_text().replace("ports: [9090]", "ports: [7]"))   # the rule moves away
    wait_until(lambda: served(pdaemon, "bpfnet-1", peer, 9090), what="9090 to be reachable after the edit")
    path.write_text("".join(line for line in path.read_text().splitlines(keepends=True)
                            if "rules:" not in line and "no-9090" not in line))   # no rule left
    wait_until(lambda: egress_programs(directory) == [], what="the egress programs to be detached")
    assert served(pdaemon, "bpfnet-1", peer, 9090)


def test_default_deny_covers_the_container_from_its_first_connect(pdaemon, policy_files, containers,  # noqa: F811
                                                                  peer, needs_probes):
    policy_files.write("deny-all.yaml", "egress-deny-all", f"""
selector: {{names: ["bpfdeny-*"]}}
network:
  egress:
    default: deny
    rules:
      - {{action: allow, cidr: {peer}/32, ports: [8080], protocol: tcp}}
""")
    containers.append("bpfdeny-1")
    get = "printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n'"
    result = pdaemon.cli("run", "--name", "bpfdeny-1", "busybox", "sh", "-c",
                         f"{get} | nc -w 3 {peer} 9090; echo status=$?; "
                         f"{get} | nc -w 3 {peer} 8080 | grep {PAGE}; "
                         "nslookup corral 10.213.0.1; echo udp=$?", check=False)   # UDP, refused before sending
    out = result.stdout.decode().split()
    assert [out[0], out[1], out[-1]] == ["status=1", PAGE, "udp=1"], result
    assert result.stderr.decode().count("Operation not permitted") == 2


def test_audit_mode_records_the_same_and_blocks_nothing(pdaemon, policy_files, containers, peer,  # noqa: F811
                                                        needs_probes):
    started = time.time()
    policy_files.write("egress-audit.yaml", "egress-audit", f"""
selector: {{names: ["bpfaudit-*"]}}
mode: audit
network:
  egress:
    default: allow
    rules:
      - {{name: no-9090, action: deny, cidr: {peer}/32, ports: [9090], protocol: tcp}}
""")
    containers.append("bpfaudit-1")
    pdaemon.cli("run", "-d", "--name", "bpfaudit-1", "busybox", "sleep", "600")
    assert served(pdaemon, "bpfaudit-1", peer, 9090)
    violations = wait_until(lambda: policy_events(pdaemon, started, "bpfaudit-1", "violation"),
                            what="the audited connection to be recorded")
    attributes = violations[0]["attributes"]
    assert (attributes["policy"], attributes["rule"], attributes["mode"]) == ("egress-audit", "network.no-9090", "audit")
    assert attributes["actions"] == ["alert"] and attributes["suppressed"] == ["deny"]
    assert metric(pdaemon, "corral_policy_violations_total", policy="egress-audit",
                  rule="network.no-9090", action="alert", name="bpfaudit-1") >= 1
    assert served(pdaemon, "bpfaudit-1", peer, 8080)
    time.sleep(2 * INTERVAL)
    assert len(policy_events(pdaemon, started, "bpfaudit-1", "violation")) == 1   # 8080 broke no rule


UDP_AND_IPV6 = r"""
import socket, sys
def attempt(family, kind, address, connect):
    with socket.socket(family, kind) as s:
        try:
            s.connect(address) if connect else s.sendto(b"x", address)
            return "ok"
        except OSError as error:
            return error.strerror
print(attempt(socket.AF_INET, socket.SOCK_DGRAM, ("127.0.0.1", 5353), False),      # sendmsg4
      attempt(socket.AF_INET, socket.SOCK_DGRAM, ("127.0.0.1", 5354), False),
      attempt(socket.AF_INET6, socket.SOCK_STREAM, ("::1", 9), True),              # connect6
      attempt(socket.AF_INET6, socket.SOCK_DGRAM, ("::ffff:127.0.0.1", 5353), True), sep="|")
"""


def test_unconnected_udp_ipv6_and_v4_mapped_destinations_are_covered(tmp_path):
    """A ProbeSet of its own on a test cgroup: the paths busybox tools do not reach."""
    if os.geteuid() != 0:
        pytest.skip("needs root")
    path = Path("/sys/fs/cgroup/unified") / f"corral-test-{secrets.token_hex(4)}"
    path.mkdir()
    probes = ProbeSet(Path(__file__).resolve().parents[2] / "probes", ProbeOptions())
    try:
        probes.load()
        cgroup_id = path.stat().st_ino
        probes.watch(cgroup_id, str(path))
        probes.set_egress(cgroup_id, str(path), [EgressPolicy("p", "allow", (
            EgressRuleSpec("deny", "127.0.0.1/32", (5353,), "udp", "dns"),
            EgressRuleSpec("deny", "::1/128", name="v6")))])
        script = tmp_path / "attempt.py"
        script.write_text(UDP_AND_IPV6)
        out = subprocess.run(["sh", "-c", f'echo $$ > {path}/cgroup.procs && exec unshare -n sh -c '
                              f'"ip link set lo up && exec {sys.executable} {script}"'],
                             capture_output=True, text=True, check=True, timeout=30).stdout.strip()
        denied = "Operation not permitted"
        assert out.split("|") == [denied, "ok", denied, denied]
        reports = [e for e in probes.poll_events(200) if type(e).__name__ == "EgressEvent"]
        assert [(e.address, e.port, e.protocol, e.rule) for e in reports] == [
            ("127.0.0.1", 5353, "udp", "dns"), ("::1", 9, "tcp", "v6"), ("127.0.0.1", 5353, "udp", "dns")]
        probes.unwatch(cgroup_id, str(path))
        assert egress_programs(str(path)) == []
        assert probes.map_entries()["egress_tables"] == 0
    finally:
        probes.close()
        for _ in range(50):
            try:
                path.rmdir()
                break
            except OSError:
                time.sleep(0.1)


# --- nothing left behind -------------------------------------------------------------------

def test_stopping_an_unpinned_daemon_detaches_everything_and_a_restart_enforces_again(tmp_path):
    """A daemon of its own with --no-pin: stopped while an enforced container runs, then started
    again. (Pinned, the default, the rules stay: test_pinned_enforcement.py.)"""
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "deny.yaml").write_text(
        "apiVersion: corral/v1\nkind: Policy\nmetadata: {name: deny-all}\nspec:\n"
        "  syscalls: [{names: [sync], action: kill}]\n"
        "  network: {egress: {default: deny}}\n")
    with running_daemon("--policies", str(folder), "--policy-interval", str(INTERVAL), "--no-pin") as daemon:
        if not probes_loaded(daemon):
            pytest.fail("the daemon's probes are not loaded")
        daemon.cli("run", "-d", "--name", "survivor", "busybox", "sleep", "600")
        ident = container_id(daemon, "survivor")
        directory = unified_dir(ident, daemon)
        assert len(egress_programs(directory)) == 4
        assert daemon.stop() == 0
        assert egress_programs(directory) == []               # nothing left on the cgroup
        assert os.path.isdir(directory)                       # while the container runs on
        daemon.start()
        wait_until(lambda: len(egress_programs(directory)) == 4, what="the restarted daemon to enforce again")
        result = daemon.cli("exec", "survivor", "sh", "-c", "/bin/sync; echo status=$?")
        assert result.stdout.decode().split() == ["status=137"]
        daemon.remove_all()
        assert not os.path.isdir(directory)
