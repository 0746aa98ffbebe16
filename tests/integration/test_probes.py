"""The probes on the real kernel: counts in a watched cgroup, events, and a clean close.

Each test makes its own cgroup under /sys/fs/cgroup/unified/corral-test-<rand> (and, for the
OOM test, a v1 memory cgroup of the same name) and removes it, even on failure. The BPF is
compiled once for the module (with latency histograms on, so that path is exercised too).
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.probes import cgroup_programs
from agent.probes.events import ExecEvent, OomEvent
from agent.probes.loader import ProbeOptions, ProbeSet
from agent.syscall_table import load_syscall_table
from tests.host import UNIFIED_ROOT, skip_topology

pytestmark = pytest.mark.privileged

REPO = Path(__file__).resolve().parents[2]
UNIFIED = Path(UNIFIED_ROOT or "/sys/fs/cgroup/unified")     # the cgroup2 tree, hybrid or pure v2
MEMORY_V1 = Path("/sys/fs/cgroup/memory")
STARTUP_SYSCALLS = 200          # what sh's exec and the C runtime's start-up may add

SYSCALL_LOOP = r"""
#include <stdlib.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(int argc, char **argv) {
    long n = atol(argv[1]);
    for (long i = 0; i < n; i++) syscall(SYS_getppid);
    for (long i = 0; i < n; i++) syscall(SYS_close, -1);
    return 0;
}
"""

SPAWN = r"""
#include <stdlib.h>
#include <unistd.h>
#include <sys/wait.h>
int main(int argc, char **argv) {
    int n = atoi(argv[1]);
    for (int i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0) { execl("/bin/true", "/bin/true", (char *)0); _exit(127); }
        waitpid(pid, 0, 0);
    }
    return 0;
}
"""

HOG = r"""
#include <stdlib.h>
#include <string.h>
int main(void) {
    for (;;) { char *p = malloc(1 << 20); if (p) memset(p, 1, 1 << 20); }
}
"""

TRANSFER = r"""
import socket, sys, threading
size = int(sys.argv[1])
server = socket.socket(); server.bind(("127.0.0.1", 0)); server.listen(1)
received = []
def serve():
    conn, _ = server.accept()
    total = 0
    while True:
        chunk = conn.recv(1 << 16)
        if not chunk: break
        total += len(chunk)
    received.append(total); conn.close()
thread = threading.Thread(target=serve); thread.start()
client = socket.create_connection(server.getsockname())
client.sendall(b"x" * size); client.shutdown(socket.SHUT_WR); thread.join(); client.close()
assert received == [size], received
# The kernel's own counters of this private network namespace (/proc/net is the caller's):
# every IP byte that left and arrived, and every TCP segment sent again.
def table(path, prefix):
    names, values = [line.split()[1:] for line in open(path) if line.startswith(prefix)]
    return dict(zip(names, map(int, values)))
ip, tcp = table("/proc/net/netstat", "IpExt:"), table("/proc/net/snmp", "Tcp:")
print(ip["OutOctets"], ip["InOctets"], tcp["RetransSegs"])
"""


@pytest.fixture(scope="module")
def probes():
    probe_set = ProbeSet(REPO / "probes", ProbeOptions(syscall_latency=True))
    probe_set.load()
    try:
        yield probe_set
    finally:
        probe_set.close()


@pytest.fixture(scope="module")
def binaries(tmp_path_factory):
    build = tmp_path_factory.mktemp("probe-programs")
    paths = {}
    for name, source in (("syscall-loop", SYSCALL_LOOP), ("spawn", SPAWN), ("corral-oom", HOG)):
        (build / f"{name}.c").write_text(source)
        subprocess.run(["gcc", "-O1", "-o", str(build / name), str(build / f"{name}.c")],
                       check=True, capture_output=True)
        paths[name] = build / name
    return paths


def _remove_cgroup(path: Path) -> None:
    if not path.exists():
        return
    if (path / "cgroup.kill").exists():
        (path / "cgroup.kill").write_text("1")
    else:
        for pid in (path / "cgroup.procs").read_text().split():
            os.kill(int(pid), signal.SIGKILL)
    for _ in range(100):
        try:
            path.rmdir()
            return
        except OSError:
            time.sleep(0.05)         # killed tasks leave the cgroup asynchronously
    path.rmdir()


@pytest.fixture
def cgroup(probes):
    """A watched v2 cgroup: (directory, id). Unwatched and removed afterwards."""
    path = UNIFIED / f"corral-test-{secrets.token_hex(4)}"
    path.mkdir()
    cgroup_id = path.stat().st_ino
    try:
        probes.watch(cgroup_id, str(path))
        yield path, cgroup_id
    finally:
        try:
            probes.unwatch(cgroup_id, str(path))
        finally:
            _remove_cgroup(path)


def run_in(procs_files: list[Path], argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Run argv with its process already in the given cgroups: a shell joins them, then execs."""
    joins = " && ".join(f"echo $$ > {f}" for f in procs_files)
    return subprocess.run(["sh", "-c", f'{joins} && exec "$@"', "sh", *argv], **kwargs)


def test_every_probe_is_attached(probes):
    assert probes.status() == {
        "syscalls": True, "syscall_latency": True, "oom": True, "network": True,
        "tcp_connect": True, "tcp_retransmit": True, "process_exec": True,
        "process_fork": True, "process_exit": True}
    assert set(probes.errors()) >= set(probes.status())


def test_syscalls_and_errors_are_counted_per_cgroup(probes, cgroup, binaries):
    path, cgroup_id = cgroup
    table = load_syscall_table()
    getppid, close = table.number("getppid"), table.number("close")
    n = 5000
    run_in([path / "cgroup.procs"], [str(binaries["syscall-loop"]), str(n)], check=True)
    counts = probes.syscall_counts()[cgroup_id]
    assert n <= counts[getppid][0] <= n + STARTUP_SYSCALLS
    assert counts[getppid][1] == 0
    calls, errors = counts[close]
    assert n <= calls <= n + STARTUP_SYSCALLS
    assert n <= errors <= calls
    assert sum(calls for calls, _ in counts.values()) <= 2 * n + STARTUP_SYSCALLS
    histogram = probes.syscall_latency()[cgroup_id][getppid]
    assert n <= sum(histogram) <= n + STARTUP_SYSCALLS


def test_unwatch_forgets_the_cgroup(probes, cgroup, binaries):
    path, cgroup_id = cgroup
    procs = [path / "cgroup.procs"]
    run_in(procs, [str(binaries["syscall-loop"]), "100"], check=True)
    assert probes.syscall_counts()[cgroup_id]
    probes.unwatch(cgroup_id, str(path))
    assert cgroup_id not in probes.syscall_counts()
    assert cgroup_id not in probes.syscall_latency()
    assert cgroup_programs.attached_programs(str(path), cgroup_programs.CGROUP_INET_EGRESS) == []
    run_in(procs, [str(binaries["syscall-loop"]), "100"], check=True)   # not counted
    probes.watch(cgroup_id, str(path))
    assert probes.syscall_counts()[cgroup_id] == {}
    assert probes.syscall_latency()[cgroup_id] == {}
    assert probes.processes()[cgroup_id].execs == 0


def test_loopback_transfer_bytes_and_connects(probes, cgroup):
    path, cgroup_id = cgroup
    size = 8 << 20
    done = run_in([path / "cgroup.procs"],
                  ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$0" -c "$1" "$2"',
                   sys.executable, TRANSFER, str(size)], check=True, timeout=60, capture_output=True, text=True)
    out_octets, in_octets, retransmitted = map(int, done.stdout.split()[-3:])
    net, tcp = probes.network()[cgroup_id], probes.tcp()[cgroup_id]
    assert tcp.connects == 1
    # Both ends are in the cgroup and alone in their network namespace, so every packet is
    # counted once leaving and once arriving: at least the payload, at most every IP byte the
    # namespace's own counters saw (retransmissions included: loopback's GSO segments are now
    # and then sent again, and one retransmit event can carry more than 64 KiB).
    for direction, counted, packets, kernel in (("tx", net.tx_bytes, net.tx_packets, out_octets),
                                                ("rx", net.rx_bytes, net.rx_packets, in_octets)):
        assert size <= counted <= kernel, (direction, net, tcp, kernel)
        assert size // 65536 <= packets <= size // 1000
    assert tcp.retransmits <= retransmitted


def test_exec_fork_exit_counts_and_exec_events(probes, cgroup, binaries):
    path, cgroup_id = cgroup
    probes.poll_events()
    run_in([path / "cgroup.procs"], [str(binaries["spawn"]), "3"], check=True)
    counters = probes.processes()[cgroup_id]
    assert (counters.execs, counters.forks, counters.exits) == (4, 3, 4)
    execs = [e for e in probes.poll_events(100) if isinstance(e, ExecEvent)
             and e.cgroup_id == cgroup_id]
    assert [e.filename for e in execs] == [str(binaries["spawn"])] + ["/bin/true"] * 3
    assert abs(execs[0].time - time.time()) < 60


@pytest.fixture
def memory_cgroup(cgroup):
    """The v1 memory cgroup of the same test container, limited to 32 MiB."""
    if not MEMORY_V1.is_dir():
        skip_topology("no v1 memory controller on this host (the OOM test limits memory through v1)")
    path = MEMORY_V1 / cgroup[0].name
    path.mkdir()
    try:
        (path / "memory.limit_in_bytes").write_text(str(32 << 20))
        yield path
    finally:
        for pid in (path / "cgroup.procs").read_text().split() if path.exists() else ():
            os.kill(int(pid), signal.SIGKILL)
        for _ in range(100):
            try:
                path.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError:
                time.sleep(0.05)


def test_oom_kill_gives_one_event_with_the_victim(probes, cgroup, memory_cgroup, binaries):
    path, cgroup_id = cgroup
    probes.poll_events()
    child = subprocess.Popen(["sh", "-c", f'echo $$ > {path}/cgroup.procs && '
                              f'echo $$ > {memory_cgroup}/cgroup.procs && exec "$0"',
                              str(binaries["corral-oom"])])
    assert child.wait(timeout=60) == -signal.SIGKILL
    events: list = []
    for _ in range(20):
        events += [e for e in probes.poll_events(100) if isinstance(e, OomEvent)]
        if events:
            break
    assert [(e.cgroup_id, e.pid, e.comm) for e in events] == [(cgroup_id, child.pid, "corral-oom")]
    assert probes.oom_kills()[cgroup_id] == 1


def test_colliding_ids_are_all_counted(binaries):
    """With one filter cell every id collides: the second goes to the overflow hash, and takes
    the cell over when the first is unwatched."""
    paths = [UNIFIED / f"corral-test-{secrets.token_hex(4)}" for _ in range(2)]
    probe_set = ProbeSet(REPO / "probes", ProbeOptions(), watch_index_size=1)
    try:
        for path in paths:
            path.mkdir()
        ids = [path.stat().st_ino for path in paths]
        probe_set.load()
        for path, cgroup_id in zip(paths, ids):
            probe_set.watch(cgroup_id, str(path))
        getppid = load_syscall_table().require("getppid")

        def run_both() -> None:
            for path in paths:
                run_in([path / "cgroup.procs"], [str(binaries["syscall-loop"]), "100"], check=True)

        run_both()
        assert [probe_set.syscall_counts()[i][getppid][0] >= 100 for i in ids] == [True, True]
        probe_set.unwatch(ids[0], str(paths[0]))
        probe_set.unwatch(ids[1], str(paths[1]))
        probe_set.watch(ids[1], str(paths[1]))
        probe_set.watch(ids[0], str(paths[0]))   # now ids[1] holds the cell
        probe_set.unwatch(ids[1], str(paths[1]))  # ids[0] moves from the overflow into the cell
        run_both()
        counts = probe_set.syscall_counts()
        assert list(counts) == [ids[0]]
        assert 100 <= counts[ids[0]][getppid][0] <= 100 + STARTUP_SYSCALLS
    finally:
        probe_set.close()
        for path in paths:
            _remove_cgroup(path)


def _program_exists(prog_id: int) -> bool:
    try:
        os.close(cgroup_programs._program_fd(prog_id))
        return True
    except OSError:
        return False


def test_close_leaves_nothing_attached(probes):
    """A ProbeSet of its own (latency off), so closing does not disturb the module's.

    The module's programs, attached to the same directory behind its back, stand in for the
    leftovers of a crashed daemon: watch() must replace them.
    """
    path = UNIFIED / f"corral-test-{secrets.token_hex(4)}"
    path.mkdir()
    kinds = {"corral_skb_in": cgroup_programs.CGROUP_INET_INGRESS,
             "corral_skb_out": cgroup_programs.CGROUP_INET_EGRESS}
    probe_set = ProbeSet(REPO / "probes", ProbeOptions())
    try:
        for name, kind in kinds.items():
            cgroup_programs.attach(str(path), probes.program_fds()[name], kind)
        probe_set.load()
        assert "syscall_latency" not in probe_set.status()
        assert all(probe_set.status().values())
        probe_set.watch(path.stat().st_ino, str(path))
        for name, kind in kinds.items():
            own = cgroup_programs.program_id(probe_set.program_fds()[name])
            assert cgroup_programs.attached_programs(str(path), kind) == [own]
        program_ids = [cgroup_programs.program_id(fd) for fd in probe_set.program_fds().values()]
        probe_set.close()
        for kind in kinds.values():
            assert cgroup_programs.attached_programs(str(path), kind) == []
        assert not any(probe_set.status().values())
        for _ in range(50):          # program memory is freed after an RCU grace period
            if not any(_program_exists(i) for i in program_ids):
                break
            time.sleep(0.05)
        assert [i for i in program_ids if _program_exists(i)] == []
        if shutil.which("bpftool"):
            shown = subprocess.run(["bpftool", "cgroup", "show", str(path)], capture_output=True,
                                   text=True, check=True).stdout
            assert "corral" not in shown
    finally:
        probe_set.close()
        for name, kind in kinds.items():
            if path.exists():
                cgroup_programs.detach(str(path), probes.program_fds()[name], kind)
        _remove_cgroup(path)
