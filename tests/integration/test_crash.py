"""The daemon SIGKILLed at random points of create, start, stop, rm and network set-up loses
nothing: a container running throughout keeps running, keeps its id and every line of its log,
the restarted daemon reconciles what was half-done, and the host holds nothing of a container
the daemon no longer lists (cgroups, processes, mounts, veths, nft rules, map entries, state).

Seeded: the failure message names the seed; CORRAL_CRASH_SEED=<seed> replays the same kill times (what they hit depends on timing).
"""
from __future__ import annotations

import json
import os
import random
import re
import shutil
import threading
import time

import pytest

from agent.api.client import ApiClient
from tests.integration import host_state
from tests.integration.corral_daemon import free_port, running_daemon

pytestmark = pytest.mark.privileged

SEED = int(os.environ.get("CORRAL_CRASH_SEED") or random.SystemRandom().randrange(1 << 31))
ROUNDS_PER_VERB = 11
VERBS = ("create", "start", "stop", "rm", "run bridge -p")
# A shell that exits on SIGTERM (a plain `sleep` as pid 1 ignores it and stop would wait).
SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; sleep 300 & wait"]
COUNTER = ["sh", "-c", "i=0; while :; do echo line $i; i=$((i+1)); sleep 0.02; done"]


@pytest.fixture(scope="module")
def crashing():
    with running_daemon() as daemon:
        yield daemon


def kill_and_restart(daemon) -> None:
    daemon.kill()
    daemon.start()


def prepare(verb: str, client: ApiClient) -> str | None:
    """The container the verb acts on, in the state the verb needs."""
    if verb == "start":
        return client.create_container({"image": "busybox", "command": SLEEPER, "network": "none"})["id"]
    if verb in ("stop", "rm"):
        return client.create_container({"image": "busybox", "command": SLEEPER, "network": "bridge"},
                                       start=True)["id"]
    return None


def act(verb: str, client: ApiClient, subject: str | None) -> None:
    if verb in ("start", "stop", "rm"):
        assert subject is not None
    if verb == "create":
        client.create_container({"image": "busybox", "command": SLEEPER, "network": "none"})
    elif verb == "start":
        client.start_container(str(subject))
    elif verb == "stop":
        client.stop_container(str(subject), timeout=5)
    elif verb == "rm":
        client.remove_container(str(subject), force=True)
    else:
        client.create_container({"image": "busybox", "command": SLEEPER, "network": "bridge",
                                 "ports": [{"host_port": free_port(), "container_port": 80}]}, start=True)


def check(daemon, before: host_state.HostSnapshot, survivor: str, where: str) -> None:
    """Every invariant, against the host."""
    containers = daemon.client().list_containers(all=True)
    by_id = {c["id"]: c for c in containers}
    assert by_id.get(survivor, {}).get("state") == "running", f"{where}: the survivor is {by_id.get(survivor)}"
    running = 0
    for container in containers:
        procs = host_state.cgroup_procs(container["id"])
        if container["state"] == "running":
            running += 1
            pid = container["pid"]
            assert pid and pid in procs, f"{where}: running container {container['id'][:12]} has no " \
                                         f"process (pid {pid}, cgroup holds {procs})"
        else:
            assert procs == [], f"{where}: {container['state']} container {container['id'][:12]} " \
                                f"still has processes {procs}"
    leaked = host_state.leaks_after(before, daemon.root, set(by_id))
    assert leaked == [], f"{where}: left behind: {leaked}"
    assert not (daemon.root / "quarantine").exists(), f"{where}: something was quarantined"
    text = host_state.metrics(daemon.metrics_port)
    entries = host_state.map_entries(text)
    if entries:   # probes loaded: after a restart exactly the running containers are watched
        assert entries.get("slots") == running, f"{where}: map entries {entries}, {running} running"
    assert f'id="/corral/{survivor}"' in text, f"{where}: no metrics for the survivor after the restart"


def calibrate(client: ApiClient) -> dict[str, float]:
    """How long after sending the request the kill may come: 1.25 times the verb's median
    duration, measured here and now (3-35 ms on an idle machine), so the kills spread over
    every step of the verb and a few land just after it."""
    windows = {}
    for verb in VERBS:
        durations = []
        for _ in range(3):
            subject = prepare(verb, client)
            started = time.perf_counter()
            act(verb, client, subject)
            durations.append(time.perf_counter() - started)
        windows[verb] = 1.25 * sorted(durations)[1]
    for container in client.list_containers(all=True):
        client.remove_container(container["id"], force=True)
    return windows


def log_lines(daemon, container_id: str) -> list[int]:
    out = daemon.out("logs", container_id)
    return [int(m.group(1)) for m in re.finditer(r"^line (\d+)$", out, re.MULTILINE)]


def test_sigkill_at_random_points_loses_nothing(crashing):
    rng = random.Random(SEED)
    before = host_state.snapshot(crashing.root)
    windows = calibrate(crashing.client())
    survivor = crashing.client().create_container(
        {"image": "busybox", "command": COUNTER, "network": "bridge",
         "ports": [{"host_port": free_port(), "container_port": 8080}]}, start=True)["id"]
    rounds = [verb for verb in VERBS for _ in range(ROUNDS_PER_VERB)]
    rng.shuffle(rounds)
    kills = 0
    for number, verb in enumerate(rounds):
        client = crashing.client()
        subject = prepare(verb, client)
        delay = rng.uniform(0, windows[verb])
        where = f"seed {SEED} (CORRAL_CRASH_SEED={SEED} replays the same kill times), round {number}: {verb} " \
                f"killed {delay * 1e3:.1f} ms after the request (window {windows[verb] * 1e3:.0f} ms)"
        request = threading.Thread(target=_ignoring_errors, args=(act, verb, client, subject), daemon=True)
        request.start()
        time.sleep(delay)
        kill_and_restart(crashing)
        kills += 1
        request.join(timeout=30)
        check(crashing, before, survivor, where)
        client = crashing.client()
        for container in client.list_containers(all=True):     # rm after a restart cleans too
            if container["id"] != survivor:
                client.remove_container(container["id"], force=True)
    assert kills >= 50
    reconciled = re.findall(r"reconciled at start: (.*)", crashing.log.read_text())
    steps = sorted({step.split(":")[0] for line in reconciled for step in line.split("; ")})
    print(f"seed {SEED}: {kills} kills; reconcile steps taken: {steps}")
    if os.environ.get("CORRAL_CRASH_KEEP_LOG"):
        shutil.copy(crashing.log, os.environ["CORRAL_CRASH_KEEP_LOG"])
    check(crashing, before, survivor, f"seed {SEED}: after the last removal")
    assert host_state.leaks_after(before, crashing.root, {survivor}) == []
    lines = log_lines(crashing, survivor)
    assert lines == list(range(len(lines))) and len(lines) > 100, \
        f"seed {SEED}: the survivor's log lost lines across {kills} daemon kills: {_gaps(lines)}"
    crashing.client().remove_container(survivor, force=True)
    assert host_state.leaks_after(before, crashing.root, set()) == []
    assert host_state.map_entries(host_state.metrics(crashing.metrics_port)).get("slots", 0) == 0


def test_a_create_that_answered_survives_a_kill_at_once(crashing):
    """The create's record is durable before create (and create with start, whose fsyncs run
    beside the launch) answer: a daemon SIGKILLed as soon as the answer is in knows the
    container after its restart. The same client goes on across the restarts: its kept
    connection is found closed and replaced."""
    client = crashing.client()
    known = {}
    for start in (False, True):
        created = client.create_container({"image": "busybox", "command": SLEEPER, "network": "none"},
                                          start=start)["id"]
        kill_and_restart(crashing)
        known[created] = "running" if start else "created"
    try:
        states = {c["id"]: c["state"] for c in client.list_containers(all=True)}
        assert {ref: states.get(ref) for ref in known} == known
    finally:
        for ref in known:
            client.remove_container(ref, force=True)
        client.close()


def _ignoring_errors(action, *args) -> None:
    try:
        action(*args)
    except Exception:  # the daemon died under the request: whatever it answered does not matter
        pass


def _gaps(lines: list[int]) -> list[tuple[int, int]]:
    return [(a, b) for a, b in zip(lines, lines[1:]) if b != a + 1][:10]


def test_torn_state_files_are_reported_and_never_stop_the_start(crashing):
    """Garbage in a container's every state generation, a network's address and endpoint files
    and an image record: the daemon starts, names each file in its log, quarantines the
    container (its process killed, nothing of it left) and keeps working."""
    client = crashing.client()
    before = host_state.snapshot(crashing.root)
    torn = client.create_container({"image": "busybox", "command": SLEEPER, "network": "bridge",
                                    "ports": [{"host_port": free_port(), "container_port": 80}]}, start=True)["id"]
    kept = client.create_container({"image": "busybox", "command": SLEEPER, "network": "bridge"}, start=True)["id"]
    torn_pid = client.inspect_container(torn)["State"]["Pid"]
    root = crashing.root
    crashing.kill()
    for state in (root / "containers" / torn).glob("state.*.json"):
        state.write_bytes(b'{"id": "' + torn.encode() + b'", "na')           # torn mid-write
    network = root / "networks" / "corral0"
    (network / "addresses.json").write_bytes(b"\0" * 64)
    (network / "endpoints" / f"{kept}.json").write_text("not json")
    junk = root / "images" / "repositories" / "junk" / "latest.json"
    junk.parent.mkdir(parents=True)
    junk.write_text("{")
    log_start = crashing.log.stat().st_size
    try:
        crashing.start()
        log = crashing.log.read_text()[log_start:]
        for path in (f"containers/{torn}/state.", "addresses.json", f"endpoints/{kept}.json", "junk/latest.json"):
            assert path in log, f"the daemon's log does not name {path}:\n{log}"
        assert not os.path.exists(f"/proc/{torn_pid}"), "the quarantined container's process lives on"
        quarantined = list((root / "quarantine").iterdir())
        assert [p.name.split(".")[0] for p in quarantined] == [torn]
        ids = {c["id"]: c["state"] for c in crashing.client().list_containers(all=True)}
        assert torn not in ids and ids[kept] == "running"
        assert host_state.leaks_after(before, root, set(ids)) == []
        # still fully working: a new bridge container with a published port, the image list
        fresh = crashing.client().create_container(
            {"image": "busybox", "command": ["true"], "network": "bridge",
             "ports": [{"host_port": free_port(), "container_port": 80}]}, start=True)["id"]
        assert crashing.client().wait_container(fresh)["exit_code"] == 0
        addresses = json.loads((network / "addresses.json").read_text())["addresses"]
        assert kept in addresses
        assert "busybox" in crashing.out("images")
    finally:
        shutil.rmtree(root / "quarantine", ignore_errors=True)
        shutil.rmtree(junk.parent, ignore_errors=True)
        crashing.remove_all()


def _rewrite_state(root, container_id: str, **changes) -> None:
    """Write a newer state generation with `changes`, as the daemon would have saved it."""
    directory = root / "containers" / container_id
    generations = sorted(directory.glob("state.*.json"), key=lambda p: int(p.name.split(".")[1]))
    data = json.loads(generations[-1].read_text())
    data.update(changes)
    newest = int(generations[-1].name.split(".")[1])
    (directory / f"state.{newest + 1}.json").write_text(json.dumps(data))


def test_each_half_done_verb_is_finished_or_undone(crashing):
    """Deterministic versions of the kills the random test may or may not hit: the state each
    verb leaves when the daemon dies between two of its steps, written into the state files of
    real containers while the daemon is down."""
    client = crashing.client()
    before = host_state.snapshot(crashing.root)
    spec = {"image": "busybox", "command": SLEEPER, "network": "bridge",
            "ports": [{"host_port": free_port(), "container_port": 80}]}
    started = client.create_container(spec, start=True)["id"]          # start: `running` never saved
    started_pid = client.inspect_container(started)["State"]["Pid"]
    removing = client.create_container({**spec, "ports": []}, start=True)["id"]   # rm: killed half-way
    removing_pid = client.inspect_container(removing)["State"]["Pid"]
    half_created = client.create_container({**spec, "ports": []})["id"]     # create: record incomplete
    no_state = client.create_container({**spec, "ports": []})["id"]         # create: before the 1st save
    crashing.kill()
    _rewrite_state(crashing.root, started, state="created", pid=None, shim_pid=None, started_at=None, network=None)
    _rewrite_state(crashing.root, removing, state="removing")
    _rewrite_state(crashing.root, half_created, cgroup=None, cgroup_id=None, rootfs=None)
    for state in (crashing.root / "containers" / no_state).glob("state.*.json"):
        state.unlink()
    crashing.start()
    client = crashing.client()
    by_id = {c["id"]: c for c in client.list_containers(all=True)}
    assert set(by_id) == {started}, f"only the started container remains: {by_id}"
    adopted = by_id[started]
    assert adopted["state"] == "running" and adopted["pid"] == started_pid
    assert adopted["network"] and adopted["network"]["ports"], "its network attachment was recovered"
    assert not os.path.exists(f"/proc/{removing_pid}"), "the half-removed container's process lives on"
    assert host_state.leaks_after(before, crashing.root, {started}) == []
    entries = host_state.map_entries(host_state.metrics(crashing.metrics_port))
    assert not entries or entries.get("slots") == 1
    client.stop_container(started, timeout=5)           # under control: its exit is seen
    assert client.inspect_container(started)["State"]["Status"] == "exited"
    client.remove_container(started)
    assert host_state.leaks_after(before, crashing.root, set()) == []
