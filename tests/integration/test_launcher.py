"""The C launcher for real: `corral-launch run` and `exec` against a busybox rootfs.

Each test drives the launcher the way the daemon does (fd 0 control, fd 1 status, fd 2 the
shim's log) and checks what a user would see: exit codes, output in the log, what the
container can see and do. Every container, shim and cgroup a test makes is gone afterwards.
"""
from __future__ import annotations

import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

import pytest

from agent.runtime.log_file import LogFile
from tests.host import skip_topology

try:
    from .launcher_support import Launcher, build_launcher, build_rootfs, process_gone, wait_until
except ImportError:  # tests/integration is not a package
    from launcher_support import Launcher, build_launcher, build_rootfs, process_gone, wait_until

pytestmark = pytest.mark.privileged

DOCKER_CAPS = "00000000a80425fb"
MASKED_FILES = ["/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                "/proc/timer_stats", "/proc/sched_debug"]
PIDS_CGROUP_ROOT = Path("/sys/fs/cgroup/pids")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    base = tmp_path_factory.mktemp("launcher")
    return build_launcher(base), build_rootfs(base / "rootfs")


@pytest.fixture
def launcher(built, tmp_path):
    binary, rootfs = built
    runner = Launcher(binary=binary, rootfs=rootfs, tmp=tmp_path)
    yield runner
    runner.cleanup()


@pytest.fixture
def test_cgroup():
    """A pids cgroup of our own (v1), removed afterwards with whatever we put in it."""
    if not (PIDS_CGROUP_ROOT / "cgroup.procs").exists():
        skip_topology("no v1 pids hierarchy at /sys/fs/cgroup/pids (the launcher joins v1 cgroups on hybrid hosts)")
    path = PIDS_CGROUP_ROOT / f"corral-test-launcher-{secrets.token_hex(4)}"
    path.mkdir()
    yield path
    for pid in (path / "cgroup.procs").read_text().split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
    wait_until(lambda: not (path / "cgroup.procs").read_text().strip(), "the test cgroup to empty")
    path.rmdir()


def sh(script: str) -> list[str]:
    return ["sh", "-c", script]


def test_version(built):
    binary, _ = built
    result = subprocess.run([str(binary), "--version"], capture_output=True, text=True)
    assert result.returncode == 0
    assert result.stdout.startswith("corral-launch ")


def test_exit_codes_are_recorded(launcher):
    assert launcher.run(command=["true"]).exit_code() == 0
    assert launcher.run(command=sh("exit 3")).exit_code() == 3


def test_sigkill_of_the_init_records_137(launcher):
    shim = launcher.start(command=["sleep", "100"])
    os.kill(shim.pid, signal.SIGKILL)
    assert shim.exit_code() == 137


def test_command_is_pid_1_with_the_hostname(launcher):
    shim = launcher.run("--hostname", "box", command=sh("echo $$; hostname"))
    assert shim.exit_code() == 0
    assert shim.stdout() == "1\nbox\n"


def test_only_the_containers_processes_are_visible(launcher):
    shim = launcher.run(command=sh("ps -o pid,comm; true"))  # `; true`: sh forks ps, not execs
    assert shim.exit_code() == 0
    rows = [line.split() for line in shim.stdout().splitlines()[1:]]
    # pid 1 is the shell and `ps` its child; none of the host's processes
    assert rows[0] == ["1", "sh"]
    assert [comm for _pid, comm in rows[1:]] == ["ps"]


def test_docker_masked_paths_are_hidden(launcher):
    on_host = [path for path in MASKED_FILES if os.path.exists(path)]
    assert on_host, "expected at least one of the masked files on the host"
    script = (f"for p in {' '.join(MASKED_FILES)}; do [ -e $p ] && echo \"$p $(cat $p | wc -c)\"; done; "
              "ls -A /sys/firmware | wc -l")
    shim = launcher.run(command=sh(script))
    assert shim.exit_code() == 0
    lines = shim.stdout().splitlines()
    sizes = dict(line.split() for line in lines[:-1])
    for path in on_host:
        assert sizes.get(path) == "0", f"{path} is readable in the container"
    assert lines[-1] == "0", "/sys/firmware is not masked"


def test_proc_sys_is_read_only(launcher):
    shim = launcher.run(command=sh("echo 1 > /proc/sys/kernel/ns_last_pid"))
    assert shim.exit_code() == 1
    assert "Read-only file system" in shim.stderr()


@pytest.mark.parametrize("net", ["none", "host"])
def test_sys_is_read_only(launcher, net):
    shim = launcher.run("--net", net, command=sh("touch /sys/kernel/corral-x"))
    assert shim.exit_code() == 1
    assert "Read-only file system" in shim.stderr()


def test_net_none_has_only_lo_and_it_is_up(launcher):
    shim = launcher.run("--net", "none", command=sh("ls /sys/class/net; cat /sys/class/net/lo/flags"))
    assert shim.exit_code() == 0
    names_and_flags = shim.stdout().split()
    assert names_and_flags[:-1] == ["lo"]
    assert int(names_and_flags[-1], 16) & 0x1, "lo is not up"


def test_net_join_puts_the_init_in_that_namespace_and_the_shim_back_in_its_own(launcher):
    holder = subprocess.Popen(["unshare", "-n", "sleep", "60"])
    try:
        wait_until(lambda: os.readlink(f"/proc/{holder.pid}/ns/net") != os.readlink("/proc/self/ns/net"),
                   "the holder's namespace")
        target = f"/proc/{holder.pid}/ns/net"
        subprocess.run(["nsenter", f"--net={target}", "ip", "link", "add", "joined0", "type", "veth",
                        "peer", "name", "joined1"], check=True)
        seen = {}

        def before_go(pid: int) -> None:      # born in it: the daemon configures it right after `pid`
            seen["init"] = os.readlink(f"/proc/{pid}/ns/net")
            seen["shim"] = os.readlink(f"/proc/{launcher.shims[-1].process.pid}/ns/net")

        shim = launcher.start("--net", f"join:{target}", command=sh("ls /sys/class/net"), before_go=before_go)
        shim.wait()
        assert shim.exit_code() == 0 and shim.stdout().split() == ["joined0", "joined1", "lo"]
        assert seen["init"] == os.readlink(target) and seen["shim"] == os.readlink("/proc/self/ns/net")
        bad = launcher.spawn("--net", "join:/nonexistent/netns", command=["true"])
        assert bad.read_line() == 'error --net join: open "/nonexistent/netns": No such file or directory'
    finally:
        holder.kill()
        holder.wait()


def test_environment_is_exactly_the_given_one_and_workdir_is_created(launcher):
    shim = launcher.start("--env", "GREETING=hello world", "--env", "PATH=/bin", "--workdir", "/work/here",
                          command=sh("pwd; env"), env={"CORRAL_TEST_LEAK": "1"})
    assert shim.exit_code() == 0
    lines = shim.stdout().splitlines()
    assert lines[0] == "/work/here"
    assert "GREETING=hello world" in lines
    assert not any(line.startswith("CORRAL_TEST_LEAK=") for line in lines)


def test_bind_mounts_read_only_and_read_write(launcher, tmp_path):
    ro_dir, rw_dir = tmp_path / "ro", tmp_path / "rw"
    ro_dir.mkdir()
    rw_dir.mkdir()
    (ro_dir / "data").write_text("from host\n")
    shim = launcher.run("--bind", f"{ro_dir}:/data:ro", "--bind", f"{rw_dir}:/out",
                        command=sh("cat /data/data; echo x > /data/new || echo refused; echo y > /out/new"))
    assert shim.exit_code() == 0
    assert shim.stdout() == "from host\nrefused\n"
    assert "Read-only file system" in shim.stderr()
    assert not (ro_dir / "new").exists()
    assert (rw_dir / "new").read_text() == "y\n"


def test_capabilities_are_dockers_and_no_new_privs(launcher):
    shim = launcher.run(command=sh("grep -E '^(Cap|NoNewPrivs)' /proc/self/status"))
    assert shim.exit_code() == 0
    status = dict(line.split(":\t") for line in shim.stdout().splitlines())
    assert status["CapBnd"] == DOCKER_CAPS
    assert status["CapEff"] == DOCKER_CAPS
    assert status["CapPrm"] == DOCKER_CAPS
    assert status["CapAmb"] == "0000000000000000"
    assert status["NoNewPrivs"] == "1"


def test_log_frames_keep_streams_apart_and_in_order(launcher):
    shim = launcher.run(command=sh("echo out1; sleep 0.1; echo err1 >&2; sleep 0.1; echo out2"))
    assert shim.exit_code() == 0
    assert shim.frames() == [(1, b"out1\n"), (2, b"err1\n"), (1, b"out2\n")]


def test_each_frame_has_its_time_in_the_log_index(launcher):
    before = time.time_ns()
    shim = launcher.run(command=sh("echo out1; sleep 0.1; echo err1 >&2; sleep 0.1; echo out2"))
    after = time.time_ns()
    assert shim.exit_code() == 0
    with LogFile.open(shim.log) as log:
        records = list(log.records())
    assert [(r.stream, r.data) for r in records] == [(1, b"out1\n"), (2, b"err1\n"), (1, b"out2\n")]
    times = [r.time for r in records]
    assert None not in times and times == sorted(times) and before <= times[0] and times[-1] <= after
    assert (shim.workdir / "log.idx").stat().st_size == 16 * len(records)


def test_a_killed_shim_leaves_a_readable_timed_log_and_a_restart_appends_to_it(launcher):
    shim = launcher.start(command=sh("i=0; while true; do i=$((i+1)); echo line$i; done"))
    wait_until(lambda: shim.log.exists() and shim.log.stat().st_size > 200000, "output in the log")
    shim.process.send_signal(signal.SIGKILL)
    shim.process.wait()
    os.kill(shim.pid, signal.SIGKILL)
    wait_until(lambda: process_gone(shim.pid), "the container's init to go")
    with open(shim.workdir / "log.idx", "ab") as index:
        index.write(b"\x07" * 5)                  # as if the machine died mid-record
    with LogFile.open(shim.log) as log:
        records = list(log.records())
    assert records and all(r.time is not None for r in records[:-1])
    text = b"".join(r.data for r in records).decode()
    numbers = [int(line[4:]) for line in text.split("\n")[:-1]]
    assert numbers == list(range(1, len(numbers) + 1))
    # the daemon starts the container again with the same log: the new shim cuts the torn
    # record and appends frames with times after the old ones
    again = launcher.run("--log", str(shim.log), command=sh("echo again"))
    assert again.exit_code() == 0
    with LogFile.open(shim.log) as log:
        after = list(log.records())
    assert after[-1].data == b"again\n" and after[-1].time is not None
    assert after[-1].time >= max(r.time for r in records if r.time is not None)


def test_large_output_is_drained_completely(launcher):
    shim = launcher.run(command=sh("head -c 1000000 /dev/zero; echo done >&2"))
    assert shim.exit_code() == 0
    assert sum(len(payload) for stream, payload in shim.frames() if stream == 1) == 1000000
    assert shim.stderr() == "done\n"


def test_seccomp_filter_is_installed(launcher, tmp_path):
    seccomp = pytest.importorskip("seccomp")
    rules = seccomp.SyscallFilter(seccomp.ALLOW)
    for name in ("mkdir", "mkdirat"):
        rules.add_rule(seccomp.ERRNO(1), name)
    path = tmp_path / "filter.bpf"
    with open(path, "wb") as out:
        rules.export_bpf(out)
    shim = launcher.run("--seccomp", str(path), command=sh("mkdir /tmp/x"))
    assert shim.exit_code() == 1
    assert "Operation not permitted" in shim.stderr()


def test_a_missing_command_is_one_error_line_and_nothing_runs(launcher):
    shim = launcher.spawn(command=["nosuchcmd"])
    pid = int(shim.read_line().split()[1])
    shim.send("go\n")
    assert shim.read_line() == 'error exec "nosuchcmd": No such file or directory'
    assert shim.wait() == 1
    assert process_gone(pid)
    assert not shim.exit_file.exists()


def test_a_bad_option_is_one_error_line(launcher):
    shim = launcher.spawn("--net", "bridge", command=["true"])
    assert shim.read_line() == 'error usage: --net "bridge": expected none, host, new or join:PATH'
    assert shim.wait() == 1


def test_a_missing_bind_source_names_it(launcher, tmp_path):
    shim = launcher.spawn("--bind", f"{tmp_path}/nope:/data", command=["true"])
    shim.read_line()
    shim.send("go\n")
    line = shim.read_line()
    assert line.startswith(f'error bind "{tmp_path}/nope" on "/data"')
    assert line.endswith("No such file or directory")
    assert shim.wait() == 1


@pytest.mark.parametrize("message", ["abort\n", ""])
def test_abort_or_a_closed_control_pipe_kills_the_child(launcher, message):
    shim = launcher.spawn(command=["true"])
    pid = int(shim.read_line().split()[1])
    assert not process_gone(pid)
    if message:
        shim.send(message)
    shim.process.stdin.close()
    assert shim.wait() == 1
    assert process_gone(pid)
    assert not shim.log.exists() or shim.frames() == []


def test_exec_joins_the_containers_namespaces(launcher):
    shim = launcher.start("--hostname", "box", command=["sleep", "100"])
    result = launcher.exec(shim.pid, "--env", "WHO=exec", "--workdir", "/tmp",
                           command=sh("hostname; cat /proc/1/comm; pwd; echo $WHO; echo oops >&2; exit 5"))
    assert result.returncode == 5
    assert result.stdout.split() == ["box", "sleep", "/tmp", "exec"]
    assert result.stderr == "oops\n"
    os.kill(shim.pid, signal.SIGKILL)
    assert shim.exit_code() == 137


def test_exec_errors_have_dockers_exit_codes(launcher):
    shim = launcher.start(command=["sleep", "100"])
    missing = launcher.exec(shim.pid, command=["nosuchcmd"])
    assert missing.returncode == 127
    assert missing.stderr == 'error exec "nosuchcmd": No such file or directory\n'
    not_executable = launcher.exec(shim.pid, command=["/etc"])
    assert not_executable.returncode == 126
    os.kill(shim.pid, signal.SIGKILL)
    shim.wait()
    wait_until(lambda: process_gone(shim.pid), "the container to go")
    gone = launcher.exec(shim.pid, command=["true"])
    assert gone.returncode == 125
    assert gone.stderr.startswith(f'error open namespace "/proc/{shim.pid}/ns/')


def test_init_and_exec_are_placed_in_the_cgroup(launcher, test_cgroup):
    procs = test_cgroup / "cgroup.procs"
    shim = launcher.start(command=["sleep", "100"], before_go=lambda pid: procs.write_text(f"{pid}\n"))
    assert str(shim.pid) in procs.read_text().split()
    # Inside the cgroup namespace the container's cgroup is "/"; an exec that did not move
    # itself there would see a path above it ("/..").
    result = launcher.exec(shim.pid, "--cgroup-procs", str(procs), command=["cat", "/proc/self/cgroup"])
    assert result.returncode == 0, result.stderr
    pids_line = next(line for line in result.stdout.splitlines() if ":pids:" in line)
    assert pids_line.endswith(":pids:/")
    os.kill(shim.pid, signal.SIGKILL)
    assert shim.exit_code() == 137
