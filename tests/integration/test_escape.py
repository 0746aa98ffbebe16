"""The escape battery: each attempt is made from INSIDE a container started with default flags
(issue 13), and each test asserts that the attempt fails and that the host is unchanged. The
whole battery runs twice: with the host's ids and under a daemon default of --userns auto.

Busybox lacks most of the syscalls tried here, so a small static program (escape_probe.c,
compiled by the module fixture with the host's gcc) is bind-mounted read-only at /escape.
The flags tests (capabilities, profiles, --read-only, --user, --privileged) are in
test_security_flags.py.
"""
from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.security import capabilities
from tests.integration.corral_daemon import running_daemon

pytestmark = pytest.mark.privileged

SOURCE = Path(__file__).with_name("escape_probe.c")
GiB = 1 << 30


@pytest.fixture(scope="module", params=["host", "auto"], ids=["userns-host", "userns-auto"])
def daemon(request):
    """The battery runs twice: with the host's ids (the default) and under a daemon whose
    default is --userns auto, where container root is an unprivileged host uid."""
    with running_daemon(*(("--userns", "auto") if request.param == "auto" else ())) as instance:
        instance.userns = request.param
        yield instance


@pytest.fixture(scope="module")
def probe() -> Iterator[Path]:
    # Under /var/tmp and searchable: a user-namespace container's root must reach the volume.
    directory = Path(tempfile.mkdtemp(prefix="corral-escape-", dir="/var/tmp"))
    directory.chmod(0o755)
    subprocess.run(["gcc", "-O1", "-static", "-Wall", "-Werror", "-o", str(directory / "escape_probe"), str(SOURCE)],
                   check=True, capture_output=True)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def refused_write(daemon) -> set[str]:
    """How a write to a read-only host file fails: EROFS for host root (DAC passes, then the
    read-only mount refuses); in a user namespace the file is nobody's, so EACCES may come first."""
    return {"EROFS"} if daemon.userns == "host" else {"EROFS", "EACCES"}


def test_the_battery_runs_in_the_mode_it_says(daemon):
    uid_map = shell(daemon, "cat /proc/self/uid_map").stdout.decode().split()
    assert uid_map[:2] == ["0", "0"] if daemon.userns == "host" else (uid_map[0] == "0" and int(uid_map[1]) >= 65536)


def attempt(daemon, probe: Path, what: str, *args: str, flags: tuple[str, ...] = ()) -> list[str]:
    """Run one attempt in a fresh container; its output lines ("ok" or an errno's name first)."""
    result = daemon.cli("run", "--rm", "--net", "none", "-v", f"{probe}:/escape:ro", *flags, "busybox",
                        "/escape/escape_probe", what, *args)
    return result.stdout.decode().split()


def shell(daemon, script: str, *flags: str) -> subprocess.CompletedProcess:
    return daemon.cli("run", "--rm", "--net", "none", *flags, "busybox", "sh", "-c", script, check=False)


# ---- namespaces and cgroups ----------------------------------------------------------------

def test_user_namespace_creation_is_refused(daemon, probe):
    result = shell(daemon, "unshare -U -r id -u")
    assert result.returncode != 0 and result.stdout.decode().strip() != "0"
    assert attempt(daemon, probe, "unshare-user") == ["EPERM"]
    assert attempt(daemon, probe, "clone-user") == ["EPERM"]
    # clone3's flags are in memory seccomp cannot read: ENOSYS sends libc back to clone.
    assert attempt(daemon, probe, "clone3") == ["ENOSYS"]
    assert attempt(daemon, probe, "unshare-cgroup") == ["EPERM"]


def test_the_cgroup_limit_cannot_be_raised_from_inside(daemon, probe):
    """The issue's escape: a user namespace, then cgroup v1 memory mounted in a new cgroup
    namespace, then memory.limit_in_bytes raised. Every step is tried; the host's limit stays."""
    script = ("unshare -U -r -C sh -c 'mkdir -p /tmp/cg && mount -t cgroup -o memory cgroup /tmp/cg && "
              f"echo {GiB} > /tmp/cg/memory.limit_in_bytes'; echo chain=$?; "
              f"echo {GiB} > /sys/fs/cgroup/memory/memory.limit_in_bytes; echo direct=$?; "
              "/escape/escape_probe mount-cgroup-memory; "
              f"/escape/escape_probe write /sys/fs/cgroup/memory/memory.limit_in_bytes={GiB}; "
              "cat /sys/fs/cgroup/memory/memory.limit_in_bytes; echo done; sleep 60")
    cid = daemon.out("run", "-d", "--net", "none", "-m", "64m", "-v", f"{probe}:/escape:ro", "busybox",
                     "sh", "-c", script)
    try:
        lines = _wait_for_output(daemon, cid, "done")
        assert lines[:3] == ["chain=1", "direct=1", "EPERM"] and lines[4] == str(64 << 20)
        assert lines[3] in refused_write(daemon)
        info = json.loads(daemon.out("inspect", cid))[0]
        host_file = Path(info["Cgroup"]["Paths"]["controllers"]["memory"]) / "memory.limit_in_bytes"
        assert int(host_file.read_text()) == 64 << 20
    finally:
        daemon.cli("rm", "-f", cid)


def test_cgroup_files_are_the_containers_own_and_read_only(daemon):
    result = shell(daemon, "grep ' /sys/fs/cgroup' /proc/self/mountinfo; echo 5 > /sys/fs/cgroup/pids/pids.max; "
                           "echo rc=$?; cat /sys/fs/cgroup/pids/pids.max", "--pids-limit", "50")
    mounts = [line.split() for line in result.stdout.decode().splitlines() if "/sys/fs/cgroup" in line]
    assert {m[4] for m in mounts} >= {"/sys/fs/cgroup", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids",
                                       "/sys/fs/cgroup/unified"}
    assert all(m[5].split(",")[0] == "ro" for m in mounts), mounts
    # Its own cgroup namespace: the root of the view is the container's cgroup, with its limit.
    assert result.stdout.decode().split()[-2:] == ["rc=1", "50"]


# ---- kernel-global state -------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_SYS_ADD_KEY, _SYS_KEYCTL, _SYS_REQUEST_KEY = 248, 250, 249
_KEY_SPEC_USER_KEYRING, _KEYCTL_READ, _KEYCTL_INVALIDATE = -4, 11, 21


def _host_key_payload(serial: int) -> bytes | None:
    buffer = ctypes.create_string_buffer(256)
    size = _libc.syscall(_SYS_KEYCTL, _KEYCTL_READ, ctypes.c_long(serial), buffer, 255)
    return buffer.raw[:size] if size >= 0 else None


@pytest.fixture
def host_key():
    """A key host root holds in its user keyring (keyrings are not namespaced)."""
    description, payload = f"corral-escape-test-{os.getpid()}".encode(), b"host-secret"
    serial = _libc.syscall(_SYS_ADD_KEY, b"user", description, payload, len(payload),
                           ctypes.c_long(_KEY_SPEC_USER_KEYRING))
    if serial < 0:
        pytest.skip(f"cannot add a key on this host: errno {ctypes.get_errno()}")
    yield serial, description.decode(), payload
    _libc.syscall(_SYS_KEYCTL, _KEYCTL_INVALIDATE, ctypes.c_long(serial))


def test_the_hosts_keyring_is_out_of_reach(daemon, probe, host_key):
    serial, description, payload = host_key
    assert attempt(daemon, probe, "read-key", str(serial)) == ["EPERM"]
    assert attempt(daemon, probe, "request-key", description) == ["EPERM"]
    assert attempt(daemon, probe, "add-key") == ["EPERM"]
    assert _host_key_payload(serial) == payload
    found = _libc.syscall(_SYS_REQUEST_KEY, b"user", b"corral-escape", None, ctypes.c_long(_KEY_SPEC_USER_KEYRING))
    assert found < 0, "the container added a key to host root's keyring"


def test_mounting_is_refused(daemon, probe):
    assert attempt(daemon, probe, "mount-tmpfs") == ["EPERM"]
    assert attempt(daemon, probe, "umount-proc") == ["EPERM"]
    assert attempt(daemon, probe, "pivot-root") == ["EPERM"]
    assert shell(daemon, "mount -t tmpfs none /mnt").returncode != 0


def test_kernel_modules_cannot_be_loaded(daemon, probe):
    modules = Path("/proc/modules")      # absent on a kernel built without module support
    before = modules.read_text() if modules.exists() else None
    assert attempt(daemon, probe, "init-module") == ["EPERM"]
    assert attempt(daemon, probe, "finit-module") == ["EPERM"]
    assert (modules.read_text() if modules.exists() else None) == before


def test_bpf_perf_and_userfaultfd_are_refused(daemon, probe):
    assert attempt(daemon, probe, "bpf") == ["EPERM"]
    assert attempt(daemon, probe, "perf-event-open") == ["EPERM"]
    assert attempt(daemon, probe, "userfaultfd") == ["EPERM"]


def test_host_processes_cannot_be_killed_or_traced(daemon, probe):
    victim = subprocess.Popen(["sleep", "120"])
    try:
        # Invisible from the container's pid namespace: no such process, not "not allowed".
        assert attempt(daemon, probe, "kill", str(victim.pid)) == ["ESRCH"]
        assert attempt(daemon, probe, "ptrace", str(victim.pid)) == ["ESRCH"]
        assert victim.poll() is None
        assert "\tT (" not in Path(f"/proc/{victim.pid}/status").read_text()   # not stopped by a tracer
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait()


def test_proc_sys_and_sys_are_read_only(daemon, probe):
    swappiness = Path("/proc/sys/vm/swappiness").read_text()
    thp = Path("/sys/kernel/mm/transparent_hugepage/enabled")
    thp_before = thp.read_text() if thp.exists() else None
    other = "13" if swappiness.strip() != "13" else "14"
    refused = [[name] for name in refused_write(daemon)]
    assert attempt(daemon, probe, "write", f"/proc/sys/vm/swappiness={other}") in refused
    if Path("/proc/sysrq-trigger").exists():
        assert attempt(daemon, probe, "write", "/proc/sysrq-trigger=h") in refused
    if thp_before is not None:
        assert attempt(daemon, probe, "write", f"{thp}=never") in refused
        assert thp.read_text() == thp_before
    assert Path("/proc/sys/vm/swappiness").read_text() == swappiness


def test_open_by_handle_at_is_refused(daemon, probe):
    assert attempt(daemon, probe, "open-by-handle") == ["EPERM"]


def test_raw_sockets_follow_net_raw(daemon, probe):
    assert attempt(daemon, probe, "raw-socket") == ["ok"]          # Docker's default set has NET_RAW
    assert attempt(daemon, probe, "raw-socket", flags=("--cap-drop", "NET_RAW")) == ["EPERM"]


def test_the_clock_cannot_be_set(daemon, probe):
    assert attempt(daemon, probe, "settimeofday") == ["EPERM"]
    assert attempt(daemon, probe, "clock-settime") == ["EPERM"]


def test_reboot_is_refused(daemon, probe):
    assert attempt(daemon, probe, "reboot") == ["EPERM"]


def test_personality_cannot_switch_off_address_randomisation(daemon, probe):
    assert attempt(daemon, probe, "personality-no-aslr") == ["EPERM"]


def test_default_capabilities_are_dockers(daemon):
    result = shell(daemon, "grep -E '^Cap(Eff|Bnd)' /proc/self/status")
    values = dict(line.split(":\t") for line in result.stdout.decode().splitlines())
    assert int(values["CapEff"], 16) == int(values["CapBnd"], 16) == capabilities.mask(capabilities.DEFAULT)


def _wait_for_output(daemon, cid: str, last: str, timeout: float = 20.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        lines = daemon.cli("logs", cid).stdout.decode().split()
        if last in lines:
            return lines
        assert time.monotonic() < deadline, f"container said only {lines}"
        time.sleep(0.1)
