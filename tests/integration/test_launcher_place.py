"""The launcher places a container's init in its cgroups itself (launcher/place.h): born in the
cgroup2 directory (clone3 with CLONE_INTO_CGROUP), written into the v1 ones, all before it
reports the pid; and the init sets up its root meanwhile. Checked for real: /proc/PID/cgroup
of the init, the clone call strace sees, the error lines, what is left behind (nothing).
"""
from __future__ import annotations

import os
import re
import secrets
import signal
import subprocess
from pathlib import Path

import pytest

from tests.host import CGROUP_MODE, CGROUP_ROOT, UNIFIED_ROOT, require_tool, skip_topology
from tests.integration.cgroup_support import cgroup_lines
from tests.integration.launcher_support import process_gone, wait_until
from tests.integration.test_launcher import built, launcher  # noqa: F401  (the fixtures)

pytestmark = pytest.mark.privileged

FALLBACK = {"CORRAL_LAUNCH_NO_CLONE_INTO_CGROUP": "1"}


@pytest.fixture
def cgroups():
    """A cgroup of our own in the v1 pids hierarchy (hybrid hosts) and in the cgroup2 tree,
    {"pids"|"": directory}; removed afterwards with whatever is in them."""
    if UNIFIED_ROOT is None:
        skip_topology(f"no cgroup2 tree on this host ({CGROUP_MODE})")
    name = f"corral-test-place-{secrets.token_hex(4)}"
    made = {"": Path(UNIFIED_ROOT) / name}
    if CGROUP_MODE == "hybrid":
        made["pids"] = Path(CGROUP_ROOT) / "pids" / name
    for path in made.values():
        path.mkdir()
    yield made
    for path in made.values():
        for pid in (path / "cgroup.procs").read_text().split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass
        wait_until(lambda procs=path / "cgroup.procs": not procs.read_text().strip(), f"{path} to empty")
        path.rmdir()


def procs_options(cgroups: dict[str, Path]) -> list[str]:
    """v1 first, the cgroup2 one last, as the daemon passes them (CgroupDriver.placement)."""
    options = []
    for key in sorted(cgroups, key=lambda k: k == ""):
        options += ["--cgroup-procs", str(cgroups[key] / "cgroup.procs")]
    return options


@pytest.mark.parametrize("env", [{}, FALLBACK], ids=["clone-into-cgroup", "written"])
def test_the_init_is_in_its_cgroups_before_its_pid_is_reported(launcher, cgroups, env):
    shim = launcher.spawn(*procs_options(cgroups), command=["cat", "/proc/self/cgroup"], env=env)
    first = shim.read_line()
    assert first.startswith("pid "), first
    pid = int(first.split()[1])
    lines = cgroup_lines(pid)          # before `go`: placed by the launcher, not by us
    for key, path in cgroups.items():
        assert lines[key] == "/" + path.name, (key, lines)
    shim.send("go\n")
    assert shim.read_line() == "started"
    assert shim.exit_code() == 0
    # Inside, its cgroup namespace is rooted at the cgroups it was placed in.
    seen = dict(line.split(":", 2)[1:] for line in shim.stdout().splitlines())
    assert all(seen[key] == "/" for key in cgroups), seen


@pytest.mark.parametrize("env, call", [({}, "clone3"), (FALLBACK, "clone")], ids=["clone3", "fallback"])
def test_the_init_is_cloned_into_the_cgroup2_directory_where_the_kernel_allows(built, cgroups, tmp_path, env, call):
    strace = require_tool("strace", "strace")
    binary, rootfs = built
    trace = tmp_path / "trace"
    process = subprocess.run(
        [strace, "-f", "-qq", "-e", "trace=clone,clone3", "-o", str(trace), str(binary), "run",
         "--rootfs", str(rootfs), *procs_options(cgroups), "--", "true"],
        input=b"go\n", capture_output=True, timeout=30, env=env)
    assert process.stdout.splitlines()[1:] == [b"started"], process
    clones = [line for line in trace.read_text().splitlines() if "CLONE_NEWPID" in line]
    assert len(clones) == 1, clones
    assert re.search(rf"\b{call}\(", clones[0]), clones[0]
    assert ("CLONE_INTO_CGROUP" in clones[0]) == (call == "clone3"), clones[0]


def test_a_cgroup_that_cannot_be_joined_is_one_error_line_and_nothing_runs(launcher, cgroups, tmp_path):
    for procs in (tmp_path / "not-a-cgroup" / "cgroup.procs", tmp_path / "procs-file"):
        # A directory that is not there is refused before the clone; a file that is not a
        # cgroup.procs is written after it (the init, born in the cgroup2 one, is killed).
        shim = launcher.spawn(*procs_options(cgroups), "--cgroup-procs", str(procs), command=["true"])
        line = shim.read_line()
        assert line.startswith(f'error join cgroup "{procs}": '), line
        assert shim.wait() == 1
        for path in cgroups.values():
            assert (path / "cgroup.procs").read_text() == ""


def test_a_root_that_fails_before_go_reports_its_own_error(launcher, tmp_path):
    # The init sets up /proc, /dev and /sys before `go`; a failure there is reported at `go`
    # with the init's own words, not as a broken pipe.
    launcher.rootfs = tmp_path / "no-rootfs"
    shim = launcher.spawn(command=["true"])
    pid = int(shim.read_line().split()[1])
    shim.send("go\n")
    assert shim.read_line() == f'error bind rootfs "{tmp_path}/no-rootfs": No such file or directory'
    assert shim.wait() == 1
    assert process_gone(pid)


def test_a_container_of_the_daemon_is_in_every_cgroup_it_records(daemon):
    cid = daemon.out("run", "-d", "--memory", "32m", "--pids-limit", "20", "busybox", "sleep", "60")
    try:
        record = daemon.inspect(cid)
        lines = cgroup_lines(record["State"]["Pid"])
        cgroup = record["Cgroup"]["Paths"]
        if cgroup.get("unified"):
            assert lines[""] == cgroup["unified"].removeprefix(UNIFIED_ROOT or ""), lines
        for controller, directory in (cgroup.get("controllers") or {}).items():
            key = next(k for k in lines if controller in k.split(","))
            assert lines[key] == "/" + os.path.relpath(directory, Path(directory).parents[1]), (controller, lines)
        memory = (cgroup.get("controllers") or {}).get("memory")
        if memory:
            assert Path(memory, "memory.limit_in_bytes").read_text().strip() == str(32 * 1024 * 1024)
            assert Path(cgroup["controllers"]["pids"], "pids.max").read_text().strip() == "20"
    finally:
        daemon.cli("rm", "-f", cid)


def test_a_cgroup_killed_once_is_joined_by_writes_with_cgroup_write(launcher, cgroups):
    # Once cgroup.kill was written, this kernel SIGKILLs what is cloned into the directory with
    # CLONE_INTO_CGROUP; the daemon restarts a container in its last run's cgroup this way.
    (cgroups[""] / "cgroup.kill").write_text("1")
    shim = launcher.spawn(*procs_options(cgroups), "--cgroup-write", command=["cat", "/proc/self/cgroup"])
    first = shim.read_line()
    assert first.startswith("pid "), first
    lines = cgroup_lines(int(first.split()[1]))
    assert all(lines[key] == "/" + path.name for key, path in cgroups.items()), lines
    shim.send("go\n")
    assert shim.read_line() == "started"
    assert shim.exit_code() == 0


@pytest.mark.parametrize("net", ["none", "bridge"])
def test_a_container_killed_by_stop_starts_again_in_its_cgroup(daemon, net):
    cid = daemon.out("run", "-d", "--net", net, "busybox", "sleep", "60")
    try:
        unified = daemon.inspect(cid)["Cgroup"]["Paths"].get("unified")
        daemon.cli("stop", "-t", "0", cid)          # SIGKILL through cgroup.kill
        daemon.cli("start", cid)
        record = daemon.inspect(cid)
        assert record["State"]["Running"], record["State"]
        assert record["Cgroup"]["Paths"].get("unified") == unified      # the same cgroup, reused
        assert daemon.out("exec", cid, "echo", "alive") == "alive"
        daemon.cli("restart", "-t", "0", cid)
        assert daemon.out("exec", cid, "echo", "again") == "again"
    finally:
        daemon.cli("rm", "-f", cid)
