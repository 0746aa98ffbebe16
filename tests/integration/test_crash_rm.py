"""The daemon SIGKILLed in the windows of a --rm container's life that save nothing: a create's
reserved name and directory before its one (durable) save, an exit that is not saved, a removal
whose commit point is the rename into the trash. After the restart nothing of such a container
is left (no cgroup, mount, state directory, record or anonymous volume), and a --rm container
whose removal was cut short is gone (docker's AutoRemove at its restart).

Seeded as tests/integration/test_crash.py: CORRAL_CRASH_SEED=<seed> replays the same kill times.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from functools import partial

import pytest

from agent.api.client import ApiClient
from agent.api.frames import decode_exit
from agent.api.run_client import run_container
from tests.integration import host_state
from tests.integration.corral_daemon import running_daemon, until

pytestmark = pytest.mark.privileged

SEED = int(os.environ.get("CORRAL_CRASH_SEED") or random.SystemRandom().randrange(1 << 31))
ROUNDS = 16
SLEEPER = ["sh", "-c", "trap 'exit 0' TERM; sleep 300 & wait"]
# --net none: nothing of the bridge is involved; an anonymous volume, which --rm removes too.
RM_SPEC = {"image": "busybox", "network": "none", "auto_remove": True, "mounts": [{"type": "volume", "target": "/data"}]}


@pytest.fixture(scope="module")
def crashing():
    with running_daemon() as daemon:
        yield daemon


def run_to_exit(client: ApiClient, spec: dict) -> int:
    """The run route with remove, read to its status frame."""
    _cid, stream = run_container(client, spec, remove=True)
    codes = [decode_exit(data) for number, data in stream if number == 3]
    return codes[-1]


def volumes(daemon) -> set[str]:
    return {v["Name"] for v in daemon.client().list_volumes()}


def nothing_left(daemon, before: host_state.HostSnapshot, volumes_before: set[str] | None, where: str) -> None:
    """No container listed but created ones that never ran, nothing of any other on the host;
    with `volumes_before`, no new volume either."""
    listed = {c["id"]: c["state"] for c in daemon.client().list_containers(all=True)}
    assert set(listed.values()) <= {"created"}, f"{where}: left listed: {listed}"
    assert host_state.leaks_after(before, daemon.root, set(listed)) == [], where
    for container_id in listed:
        daemon.client().remove_container(container_id, volumes=True)
    assert host_state.leaks_after(before, daemon.root, set()) == [], f"{where}: after removing the created ones"
    if volumes_before is not None:
        until(lambda: volumes(daemon) <= volumes_before, f"{where}: anonymous volumes of --rm containers removed")


def started_rm_container(client: ApiClient) -> tuple[str, int]:
    created = client.create_container({**RM_SPEC, "command": SLEEPER}, start=True)["id"]
    return created, client.inspect_container(created)["State"]["Pid"]


def test_a_rm_container_whose_exit_and_removal_were_cut_short_is_gone_after_restart(crashing):
    """Each --rm container exits while the daemon is down, its record as each window leaves it:
    `created` (its start and exit are not saved), the same with its root already unmounted and
    its cgroup already removed (the removal cut short before the trash rename), `running` (saved
    by a rename or a stop) and `exited` (an earlier version's). A --rm container created and
    never started stays; a plain container keeps running."""
    client = crashing.client()
    before, volumes_before = host_state.snapshot(crashing.root), volumes(crashing)
    rm_containers = {name: started_rm_container(client) for name in ("created", "half removed", "running", "exited")}
    never_started = client.create_container({**RM_SPEC, "command": SLEEPER})["id"]
    kept = client.create_container({"image": "busybox", "command": SLEEPER, "network": "none"}, start=True)["id"]
    assert "volatile" in _mount_options(crashing.root, never_started), "a --rm root is never synced"
    assert "volatile" not in _mount_options(crashing.root, kept)
    crashing.kill()
    # As after a reboot: its root unmounted; mounted again at the restart despite the mark a
    # volatile overlay leaves in its work directory.
    subprocess.run(["umount", str(crashing.root / "containers" / never_started / "rootfs")], check=True)
    for _container_id, pid in rm_containers.values():
        os.kill(pid, signal.SIGKILL)
    for container_id, _pid in rm_containers.values():
        exit_file = crashing.root / "containers" / container_id / "exit"
        until(exit_file.exists, f"the shim's exit file {exit_file}")
        assert _state_on_disk(crashing.root, container_id)["state"] == "created"
    half_removed = rm_containers["half removed"][0]
    subprocess.run(["umount", str(crashing.root / "containers" / half_removed / "rootfs")], check=True)
    for path in host_state.cgroup_dirs():
        if path.endswith(half_removed):       # empty once the kernel has killed the rest of its pid namespace
            until(partial(_rmdir, path), f"rmdir {path}")
    for state in ("running", "exited"):
        _rewrite_state(crashing.root, rm_containers[state][0], state=state)
    crashing.start()
    listed = {c["id"]: c["state"] for c in crashing.client().list_containers(all=True)}
    assert listed == {kept: "running", never_started: "created"}
    assert "volatile" in _mount_options(crashing.root, never_started), "its root was mounted again"
    assert host_state.leaks_after(before, crashing.root, set(listed)) == []
    crashing.client().remove_container(kept, force=True)
    crashing.client().remove_container(never_started, volumes=True)
    assert host_state.leaks_after(before, crashing.root, set()) == []
    until(lambda: volumes(crashing) <= volumes_before, "the --rm containers' anonymous volumes removed")


def _mount_options(root, container_id: str) -> str:
    """The super options of the mount at the container's root ("" when none)."""
    target = str(root / "containers" / container_id / "rootfs")
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            fields = line.split()
            if fields[4] == target:
                return fields[-1]
    return ""


def _state_on_disk(root, container_id: str) -> dict:
    directory = root / "containers" / container_id
    newest = max(directory.glob("state.*.json"), key=lambda p: int(p.name.split(".")[1]))
    return json.loads(newest.read_text())


def _rewrite_state(root, container_id: str, **changes) -> None:
    """Write a newer state generation with `changes`, as a daemon would have saved it."""
    directory = root / "containers" / container_id
    newest = max(int(p.name.split(".")[1]) for p in directory.glob("state.*.json"))
    data = {**_state_on_disk(root, container_id), **changes}
    (directory / f"state.{newest + 1}.json").write_text(json.dumps(data))


def test_a_run_rm_containers_record_emptied_by_a_machine_crash_leaves_nothing(crashing):
    """`run` does not sync a --rm container's record: a machine crash ends the container, and
    reconcile removes whatever of it is found. As a reboot leaves it (its processes and root
    gone, the unsynced record empty), the restarted daemon removes its directory and cgroup."""
    client = crashing.client()
    before = host_state.snapshot(crashing.root)
    container_id, _stream = run_container(client, {"image": "busybox", "network": "none", "command": SLEEPER},
                                          remove=True)
    directory = crashing.root / "containers" / container_id
    pid = client.inspect_container(container_id)["State"]["Pid"]
    crashing.kill()
    os.kill(pid, signal.SIGKILL)
    until((directory / "exit").exists, "the shim's exit file")
    subprocess.run(["umount", str(directory / "rootfs")], check=True)
    for state in directory.glob("state.*.json"):
        state.write_bytes(b"")
    crashing.start()
    assert crashing.client().list_containers(all=True) == []
    assert not directory.exists()
    quarantine = crashing.root / "quarantine"       # an empty record is a create cut short, not unreadable
    assert not (quarantine / container_id).exists() and container_id not in str(list(quarantine.glob("*")))
    assert host_state.leaks_after(before, crashing.root, set()) == []


def test_a_kill_right_after_the_run_routes_answer_leaves_nothing(crashing):
    """The status frame comes once the removal's commit point (the trash rename) is passed: a
    kill at once leaves the trash to the next start, and no record."""
    before, volumes_before = host_state.snapshot(crashing.root), volumes(crashing)
    for _ in range(3):
        assert run_to_exit(crashing.client(), {**RM_SPEC, "command": ["true"]}) == 0
        crashing.kill()
        crashing.start()
        nothing_left(crashing, before, volumes_before, "killed right after the answer")


def test_sigkill_at_random_points_of_the_run_route_leaves_nothing(crashing):
    """Kills spread over the run route with remove (create, start, exit, removal) of /bin/true.
    Not checked here: an anonymous volume made by a create killed before its save, or by a
    removal killed between the trash rename and the volume's release, stays (no record names it
    any more; dangling, `corral volume prune` removes it), as before these windows changed."""
    rng = random.Random(SEED)
    before = host_state.snapshot(crashing.root)
    durations = []
    for _ in range(3):
        started = time.perf_counter()
        run_to_exit(crashing.client(), {**RM_SPEC, "command": ["true"]})
        durations.append(time.perf_counter() - started)
    window = 1.25 * sorted(durations)[1]
    for number in range(ROUNDS):
        delay = rng.uniform(0, window)
        where = f"seed {SEED} (CORRAL_CRASH_SEED={SEED} replays the kill times), round {number}: " \
                f"killed {delay * 1e3:.1f} ms after the request (window {window * 1e3:.0f} ms)"
        request = threading.Thread(target=_ignoring_errors, args=(run_to_exit, crashing.client(),
                                                                  {**RM_SPEC, "command": ["true"]}), daemon=True)
        request.start()
        time.sleep(delay)
        crashing.kill()
        request.join(timeout=30)
        crashing.start()
        nothing_left(crashing, before, None, where)


def _rmdir(path: str) -> bool:
    try:
        os.rmdir(path)
    except OSError:
        return False
    return True


def _ignoring_errors(action, *args) -> None:
    try:
        action(*args)
    except Exception:  # the daemon died under the request: whatever it answered does not matter
        pass
