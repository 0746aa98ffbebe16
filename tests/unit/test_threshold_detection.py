"""Which thresholds the kernel checks and which are sampled, as `policy explain` and `policy
prove` show it (agent/policy/detection.py): from the service's written rate levels and armed
watches for explain, from the rate levels read back from the kernel for prove; and the CLI text."""
from __future__ import annotations

from agent.cli.policy import explanation
from agent.cli.policy_prove import render
from agent.policy.detection import detect
from agent.policy.prove import Evidence, prove
from agent.probes.interface import KernelEnforcement
from tests.unit.test_kernel_rates import POLICY, effective, world  # noqa: F401 - the service fixture

LEVELS = """
    - {name: busy, signal: syscalls_per_second, above: 1000, actions: [alert]}
    - {name: per-read, signal: syscalls_per_second, syscall: read, above: 50, actions: [alert]}
    - {name: hot, signal: cpu_percent, above: 90, actions: [throttle]}
    - {name: big, signal: memory_bytes, above: 64Mi, actions: [kill]}
"""


def test_explain_says_which_thresholds_the_kernel_checks_and_why_the_others_are_sampled(world):  # noqa: F811
    service, folder, driver, probes, entry, events = world
    text = POLICY.replace("ABOVE", "5000").replace("name: storm,", "name: runaway,")
    (folder / "storm.yaml").write_text(text.replace("[alert, kill]", "[kill]") + LEVELS.lstrip("\n"))
    service.reload()
    service._sync_watches()
    answer = service.queries.explain(entry.id)
    seen = {d["rule"]: (d["checked"], d["by"], d["detail"]) for d in answer["detection"]}
    assert seen["storm/runaway"] == ("kernel", "rate_limits", "syscalls above 5000 in a 1 s window")
    assert seen["storm/busy"] == ("kernel", "rate_limits", "syscalls above 1000 in a 1 s window")
    assert seen["storm/per-read"] == ("kernel", "rate_limits", "syscalls of read above 50 in a 1 s window")
    assert seen["storm/hot"][:2] == ("sampled", "sampling") and "cpuacct" in seen["storm/hot"][2]
    assert seen["storm/big"] == ("kernel", "watch:memory", "a cgroup notification at the threshold")
    assert [d["rule"] for d in answer["detection"]] == [t["rule"] for t in answer["effective"]["thresholds"]]
    lines = explanation(answer)
    assert "    checked: kernel (rate_limits: syscalls above 5000 in a 1 s window)" in lines
    assert "    checked: kernel (rate_limits: syscalls of read above 50 in a 1 s window)" in lines
    assert any(line.startswith("    checked: sampled (sampling: no probe counts CPU time") for line in lines)


def test_explain_of_a_container_whose_probe_is_not_attached_says_sampled(world):  # noqa: F811
    service, folder, driver, probes, entry, events = world
    probes.probe_status = {"syscalls": False}
    service._sync_watches()
    [seen] = service.queries.explain(entry.id)["detection"]
    assert seen["checked"] == "sampled" and "does not hold its level 1000" in seen["detail"]


def test_a_stopped_container_is_sampled_by_nothing():
    policy = effective({"name": "busy", "signal": "syscalls_per_second", "above": 1000})
    seen = detect(policy.thresholds[0], policy, rate_level_held=True, watched=False, running=False,
                  number=lambda name: None)
    assert (seen.checked, seen.detail) == ("sampled", "the container is not running")


def test_prove_reads_each_rate_level_back_from_the_kernel():
    policy = effective({"name": "busy", "signal": "syscalls_per_second", "above": 1000, "actions": ["alert"]},
                       {"name": "runaway", "signal": "syscalls_per_second", "above": 5000, "actions": ["kill"]},
                       {"name": "hot", "signal": "cpu_percent", "above": 90, "actions": ["throttle"]})
    kernel = KernelEnforcement({}, False, (), {"syscalls": (1000,)})      # the 5000 level is lost
    proofs = prove("c1", "web-1", policy, Evidence(kernel), lambda name: None)
    rows = {p.rule: (p.kind, p.checked, p.enforced, p.applicable) for p in proofs}
    assert rows == {"busy": ("threshold", "kernel", True, False), "runaway": ("threshold", "sampled", False, False),
                    "hot": ("threshold", "sampled", False, False)}
    runaway = next(p for p in proofs if p.rule == "runaway")
    assert "does not hold its level 5000" in runaway.reason
    table = render([p.to_dict() for p in proofs])
    assert table.splitlines()[0].split() == ["CONTAINER", "POLICY", "RULE", "KIND", "ENFORCED", "REASON"]
    assert sorted(line.split()[2:5] for line in table.splitlines()[1:]) == [
        ["busy", "threshold", "kernel"], ["hot", "threshold", "sampled"], ["runaway", "threshold", "sampled"]]
    audit = effective({"name": "busy", "signal": "syscalls_per_second", "above": 1000}, mode="audit")
    assert prove("c1", "web-1", audit, Evidence(kernel), lambda name: None) == []


def test_prove_reads_a_per_syscall_level_back_from_the_kernel():
    policy = effective({"name": "reads", "signal": "syscalls_per_second", "syscall": "read", "above": 50},
                       {"name": "read-errors", "signal": "syscall_errors_per_second", "syscall": "read", "above": 5})
    kernel = KernelEnforcement({}, False, (), {("syscalls", 0): (50,)})      # the errors row is lost
    proofs = prove("c1", "web-1", policy, Evidence(kernel), {"read": 0}.get)
    assert {p.rule: p.checked for p in proofs} == {"reads": "kernel", "read-errors": "sampled"}


def test_prove_without_probes_says_why_the_rates_are_sampled():
    policy = effective({"name": "busy", "signal": "syscalls_per_second", "above": 1000})
    [proof] = prove("c1", "web-1", policy, Evidence(None, "the daemon runs without probes"), lambda name: None)
    assert proof.checked == "sampled" and proof.reason.endswith("(the daemon runs without probes)")


def test_prove_shows_an_armed_watch_as_kernel():
    policy = effective({"name": "big", "signal": "memory_bytes", "above": "64Mi", "actions": ["kill"]})
    [proof] = prove("c1", "web-1", policy, Evidence(None), lambda name: None, watched=lambda entry: True)
    assert (proof.checked, proof.reason) == ("kernel", "a cgroup notification at the threshold")

