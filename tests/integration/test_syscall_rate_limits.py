"""Per-syscall rate thresholds and many levels checked in the kernel (probes/rates.c), and limits
written again when the probes give a container its slot anew.

A per-syscall rule (`syscall: read`) is a (signal, syscall number) row of the container's
syscall_rate_limits: a storm of reads crosses it, the probes send one event naming the syscall,
and the daemon acts on it at once, with `--policy-interval 30` (each test's daemon is new and
every wait is bounded below the first periodic evaluation, so the sampled path cannot be what
acted; the violation also says `trigger: kernel`). A container storming writes, whose reads stay
few, is left alone. Eight levels of one signal are each reported once, and a policy with five
levels fires five rules from the kernel. A reloaded probe object starts with empty rows: the
policy side's next sync writes the levels again (the slot's watch epoch changed), and so does a
container restart."""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.corral_daemon import until
from tests.integration.test_policy_events import policy_events
from tests.integration.test_rate_limits import (
    BEFORE_TICK,
    killed_before_the_tick,
    policy_daemon,
    running,
    unified_cgroup,  # noqa: F401 - the fixture
)

pytestmark = pytest.mark.privileged

REPO = Path(__file__).resolve().parents[2]
READS = 20000           # read calls per second
FIVE = (20000, 40000, 60000, 80000, 100000)
POLICY = f"""\
apiVersion: corral/v1
kind: Policy
metadata: {{name: reads}}
spec:
  selector: {{names: ["reads-*"]}}
  thresholds:
    - {{name: reads, signal: syscalls_per_second, syscall: read, above: {READS}, actions: [alert, kill]}}
---
apiVersion: corral/v1
kind: Policy
metadata: {{name: five}}
spec:
  selector: {{names: ["five-*"]}}
  thresholds:
""" + "".join(f"    - {{name: l{n}, signal: syscalls_per_second, above: {level}, actions: [alert]}}\n"
              for n, level in enumerate(FIVE, 1))
# One read and one write per byte: a read storm far above READS per second for a few seconds.
READ_STORM = "dd if=/dev/zero of=/dev/null bs=1 count=4000000 2>/dev/null"
# 64 KiB reads, 1-byte writes: ~2.6 million writes, 40 reads.
WRITE_STORM = "dd if=/dev/zero of=/dev/null ibs=65536 obs=1 count=40 2>/dev/null"


def storm_in(cgroup: Path, *command: str) -> None:
    subprocess.run(["sh", "-c", f'echo $$ > {cgroup}/cgroup.procs && exec "$@"', "sh", *command], check=True,
                   capture_output=True, timeout=120)


def rate_events(probes, seen: list, wanted: int):
    seen.extend(e for e in probes.poll_events(100) if type(e).__name__ == "RateEvent")
    return seen if len(seen) >= wanted else []


def test_a_per_syscall_limit_is_reported_with_its_syscall_once_per_level(unified_cgroup):  # noqa: F811
    from agent.probes.loader import ProbeOptions, ProbeSet
    cgroup_id = os.stat(unified_cgroup).st_ino
    with ProbeSet(REPO / "probes", ProbeOptions(), pin=False) as probes:
        probes.watch(cgroup_id, str(unified_cgroup))
        limits = {("syscalls", 0): (READS, 50000), ("syscalls", 1): 10**9, ("syscall_errors", 0): 5}
        assert probes.set_rate_limits(cgroup_id, limits) == (("syscalls", 0), ("syscall_errors", 0),
                                                             ("syscalls", 1))
        assert probes.rate_limits_in_kernel(cgroup_id) == {("syscalls", 0): (READS, 50000), ("syscalls", 1): (10**9,),
                                                          ("syscall_errors", 0): (5,)}
        storm_in(unified_cgroup, "dd", "if=/dev/zero", "of=/dev/null", "bs=1", "count=200000")
        seen: list = []
        until(lambda: rate_events(probes, seen, 2), "a crossing of each read level", timeout=10)
        time.sleep(0.5)                                 # a third report would be here by now
        rate_events(probes, seen, 0)
        assert sorted((e.signal, e.nr, e.limit, e.count, e.comm) for e in seen) == [
            ("syscalls", 0, READS, READS + 1, "dd"), ("syscalls", 0, 50000, 50001, "dd")]
        probes.unwatch(cgroup_id, str(unified_cgroup))


# 300 failing openat calls (ENOENT), far fewer successful ones.
FAILING_OPENS = """
import os
for _ in range(300):
    try:
        os.open("/nonexistent-corral-test", os.O_RDONLY)
    except FileNotFoundError:
        pass
"""


def test_the_errors_of_one_syscall_are_counted_apart_from_its_calls(unified_cgroup):  # noqa: F811
    from agent.probes.loader import ProbeOptions, ProbeSet
    from agent.syscall_table import load_syscall_table
    openat = load_syscall_table().require("openat")
    cgroup_id = os.stat(unified_cgroup).st_ino
    with ProbeSet(REPO / "probes", ProbeOptions(), pin=False) as probes:
        probes.watch(cgroup_id, str(unified_cgroup))
        probes.set_rate_limits(cgroup_id, {("syscall_errors", openat): 200, ("syscalls", openat): 10**6})
        storm_in(unified_cgroup, "python3", "-c", FAILING_OPENS)
        seen: list = []
        until(lambda: rate_events(probes, seen, 1), "the openat errors' crossing", timeout=10)
        time.sleep(0.5)
        rate_events(probes, seen, 0)
        # One event: the errors' level (the shell's and python's own failed opens count too).
        assert [(e.signal, e.nr, e.limit, e.count) for e in seen] == [("syscall_errors", openat, 200, 201)]
        probes.unwatch(cgroup_id, str(unified_cgroup))


def test_eight_levels_of_one_signal_are_each_reported_once(unified_cgroup):  # noqa: F811
    from agent.probes.loader import ProbeOptions, ProbeSet
    cgroup_id = os.stat(unified_cgroup).st_ino
    levels = tuple(range(10000, 90000, 10000))
    with ProbeSet(REPO / "probes", ProbeOptions(), pin=False) as probes:
        probes.watch(cgroup_id, str(unified_cgroup))
        assert probes.set_rate_limits(cgroup_id, {"syscalls": levels}) == ("syscalls",)
        assert probes.rate_limits_in_kernel(cgroup_id) == {"syscalls": levels}
        storm_in(unified_cgroup, "dd", "if=/dev/zero", "of=/dev/null", "bs=1", "count=200000")
        seen: list = []
        until(lambda: rate_events(probes, seen, 8), "a crossing of each of eight levels", timeout=10)
        time.sleep(0.5)
        rate_events(probes, seen, 0)
        assert sorted((e.limit, e.count, e.nr) for e in seen) == [(level, level + 1, None) for level in levels]
        probes.unwatch(cgroup_id, str(unified_cgroup))


def test_a_reloaded_probe_gets_its_levels_written_again(unified_cgroup):  # noqa: F811
    from agent.policy.kernel_rates import KernelRates
    from agent.probes.loader import ProbeOptions, ProbeSet
    cgroup_id = os.stat(unified_cgroup).st_ino
    wanted = {"c1": (cgroup_id, {"syscalls": (READS, 50000), ("syscalls", 0): (READS,)})}
    probes = ProbeSet(REPO / "probes", ProbeOptions(), pin=False)
    rates = KernelRates(probes)
    try:
        probes.load()
        probes.watch(cgroup_id, str(unified_cgroup))
        rates.sync(wanted)
        assert probes.rate_limits_in_kernel(cgroup_id) == wanted["c1"][1]
        probes.close()                                  # a reload: new maps, every row empty
        probes.load()
        probes.watch(cgroup_id, str(unified_cgroup))
        assert probes.rate_limits_in_kernel(cgroup_id) == {}
        rates.sync(wanted)                              # the same thresholds: written again all the same
        assert probes.rate_limits_in_kernel(cgroup_id) == wanted["c1"][1]
        storm_in(unified_cgroup, "dd", "if=/dev/zero", "of=/dev/null", "bs=1", "count=100000")
        seen: list = []
        until(lambda: rate_events(probes, seen, 3), "the reloaded levels crossed", timeout=10)
        assert sorted((e.nr is None, e.limit) for e in seen) == [(False, READS), (True, READS), (True, 50000)]
        probes.unwatch(cgroup_id, str(unified_cgroup))
    finally:
        probes.close()


@pytest.fixture
def daemon(tmp_path):
    with policy_daemon(tmp_path, "reads.yaml", POLICY) as running_one:
        yield running_one


def test_a_read_storm_is_killed_from_the_kernel_crossing_of_its_syscall(daemon):
    attributes = killed_before_the_tick(daemon, "reads-1", READ_STORM)
    assert (attributes["rule"], attributes["syscall"], attributes["trigger"]) == ("reads", "read", "kernel")
    assert attributes["value"] > READS and attributes["actions"] == ["alert", "kill"]
    assert "syscalls of read crossed in the kernel" in daemon.log.read_text()


def test_a_write_storm_with_few_reads_is_untouched(daemon, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    cid = daemon.out("run", "-d", "--name", "reads-2", "-v", f"{marks}:/marks", "busybox", "sh", "-c",
                     f"sleep 1; {WRITE_STORM}; touch /marks/done; sleep 600")
    until(lambda: (marks / "done").exists(), "the write storm finished", timeout=90)
    assert running(daemon, cid)
    assert policy_events(daemon, cid, "violation") == []
    assert "syscalls of read crossed" not in daemon.log.read_text()


def test_five_levels_fire_five_rules_from_the_kernel(daemon):
    cid = daemon.out("run", "-d", "--name", "five-1", "busybox", "sh", "-c", f"sleep 1; {READ_STORM}; sleep 600")

    def five() -> list:
        found = policy_events(daemon, cid, "violation")
        return found if len(found) >= len(FIVE) else []
    violations = until(five, "five violations", timeout=BEFORE_TICK - (time.monotonic() - daemon.started))
    fired = {v["attributes"]["rule"]: v["attributes"] for v in violations}
    assert sorted(fired) == [f"l{n}" for n in range(1, 6)] and len(violations) == 5
    assert {a["trigger"] for a in fired.values()} == {"kernel"}
    for n, level in enumerate(FIVE, 1):
        assert level < fired[f"l{n}"]["value"] <= level + 1 + 1000    # at its own crossing
    detection = json.loads(daemon.out("policy", "explain", cid, "--format", "json"))["detection"]
    assert {d["rule"]: d["checked"] for d in detection} == {f"five/l{n}": "kernel" for n in range(1, 6)}


def test_a_restarted_container_has_its_per_syscall_level_in_the_kernel_again(daemon):
    cid = daemon.out("run", "-d", "--name", "reads-3", "busybox", "sleep", "600")

    def proved() -> list:
        rows = [line.split() for line in daemon.out("policy", "prove", cid).splitlines()[1:]]
        return [r for r in rows if r[2:5] == ["reads", "threshold", "kernel"]]
    until(proved, "the read level in the kernel", timeout=10)
    daemon.out("restart", "-t", "0", cid)
    until(lambda: running(daemon, cid), "restarted", timeout=30)
    until(proved, "the read level in the kernel after the restart", timeout=10)
