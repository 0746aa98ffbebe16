"""Docker's security flags for real: each --cap-add/--cap-drop changes exactly its capability,
seccomp rules follow the capabilities, a Docker-format profile loads and applies,
seccomp=unconfined lifts the profile, --read-only with --tmpfs, -u by number and by name,
and --privileged is loud in inspect and ps."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.security import capabilities
from tests.integration.test_escape import attempt, probe  # noqa: F401  (the module's probe fixture)

pytestmark = pytest.mark.privileged


def status_caps(daemon, *flags: str) -> dict[str, int]:
    result = daemon.cli("run", "--rm", "--net", "none", *flags, "busybox", "grep", "^Cap", "/proc/self/status")
    return {key: int(value, 16) for key, value in
            (line.split(":\t") for line in result.stdout.decode().splitlines())}


def _held() -> int:
    """What the daemon (root here) holds: --cap-add ALL and --privileged get that, as under Docker."""
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("CapBnd:"))
    return int(line.split()[1], 16)


DEFAULT = capabilities.mask(capabilities.DEFAULT)
ALL = capabilities.mask(capabilities.ALL) & _held()


def bit(name: str) -> int:
    return 1 << capabilities.NUMBER[name]


@pytest.mark.parametrize("flags, expected", [
    ((), DEFAULT),
    (("--cap-add", "NET_ADMIN"), DEFAULT | bit("NET_ADMIN")),
    (("--cap-add", "cap_sys_time"), DEFAULT | bit("SYS_TIME")),
    (("--cap-drop", "CHOWN"), DEFAULT & ~bit("CHOWN")),
    (("--cap-drop", "NET_RAW", "--cap-drop", "MKNOD"), DEFAULT & ~bit("NET_RAW") & ~bit("MKNOD")),
    (("--cap-drop", "ALL"), 0),
    (("--cap-drop", "ALL", "--cap-add", "NET_BIND_SERVICE"), bit("NET_BIND_SERVICE")),
    (("--cap-add", "ALL"), ALL),
    (("--cap-add", "ALL", "--cap-drop", "SYS_ADMIN"), ALL & ~bit("SYS_ADMIN")),
])
def test_each_cap_flag_changes_exactly_its_capability(daemon, flags, expected):
    caps = status_caps(daemon, *flags)
    assert caps["CapEff"] == caps["CapPrm"] == caps["CapBnd"] == expected
    assert caps["CapAmb"] == 0


def test_an_unknown_capability_is_refused_before_anything_is_made(daemon):
    result = daemon.cli("run", "--rm", "--cap-add", "NET_WIZARD", "busybox", "true", check=False)
    assert result.returncode == 125
    assert "NET_WIZARD" in result.stderr.decode()


def test_seccomp_rules_follow_the_capabilities(daemon, probe):  # noqa: F811
    assert attempt(daemon, probe, "mount-tmpfs") == ["EPERM"]
    assert attempt(daemon, probe, "mount-tmpfs", flags=("--cap-add", "SYS_ADMIN")) == ["ok"]
    assert attempt(daemon, probe, "reboot", flags=("--cap-drop", "ALL")) == ["EPERM"]


def test_a_docker_format_profile_loads_and_applies(daemon, probe, tmp_path):  # noqa: F811
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]}],
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 0, "value": 0x0040000, "op": "SCMP_CMP_EQ"}]},
            {"names": ["no_such_syscall_anywhere"], "action": "SCMP_ACT_ERRNO"},
        ]}))
    flags = ("--security-opt", f"seccomp={profile}")
    result = daemon.cli("run", "--rm", "--net", "none", *flags, "busybox", "sh", "-c", "mkdir /x", check=False)
    assert "Permission denied" in result.stderr.decode()          # errnoRet 13 = EACCES
    assert attempt(daemon, probe, "personality-no-aslr", flags=flags) == ["EPERM"]
    # The profile replaced the default one: what the default refuses is allowed here.
    assert attempt(daemon, probe, "unshare-user", flags=flags) == ["ok"]
    cid = daemon.out("create", "--net", "none", *flags, "busybox", "true")
    try:
        options = json.loads(daemon.out("inspect", cid))[0]["HostConfig"]["SecurityOpt"]
        assert options[0].startswith("seccomp=custom (sha256:")
    finally:
        daemon.cli("rm", "-f", cid)


def test_a_bad_profile_names_the_field(daemon, tmp_path):
    profile = tmp_path / "bad.json"
    profile.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW",
                                   "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                                                 "args": [{"index": 9, "value": 1, "op": "SCMP_CMP_EQ"}]}]}))
    result = daemon.cli("run", "--rm", "--security-opt", f"seccomp={profile}", "busybox", "true", check=False)
    assert result.returncode == 125
    assert "syscalls[0].args[0].index" in result.stderr.decode()


def test_unconfined_lifts_the_profile_and_inspect_says_which_applies(daemon, probe):  # noqa: F811
    flags = ("--security-opt", "seccomp=unconfined")
    assert attempt(daemon, probe, "personality-no-aslr", flags=flags) == ["ok"]
    result = daemon.cli("run", "--rm", "--net", "none", *flags, "busybox", "grep", "^Seccomp:", "/proc/self/status")
    assert result.stdout.decode().split() == ["Seccomp:", "0"]
    for given, shown in (((), "seccomp=default"), (flags, "seccomp=unconfined")):
        cid = daemon.out("run", "-d", "--net", "none", *given, "busybox", "sleep", "30")
        try:
            host = json.loads(daemon.out("inspect", cid))[0]["HostConfig"]
            assert host["SecurityOpt"] == [shown, "no-new-privileges"]
            assert host["Privileged"] is False
        finally:
            daemon.cli("rm", "-f", cid)


def test_read_only_root_with_tmpfs(daemon):
    result = daemon.cli("run", "--rm", "--net", "none", "--read-only", "--tmpfs", "/run:size=1m,mode=1777",
                        "-w", "/work", "busybox", "sh", "-c",
                        "touch /x 2>/dev/null; echo root=$?; touch /run/y; echo tmpfs=$?; pwd; "
                        "grep ' /run ' /proc/self/mountinfo", check=False)
    lines = result.stdout.decode().splitlines()
    assert lines[:3] == ["root=1", "tmpfs=0", "/work"]
    options = lines[3].split()[5].split(",")
    assert {"rw", "nosuid", "nodev", "noexec"} <= set(options)


def test_user_by_number_and_by_name(daemon):
    by_number = daemon.cli("run", "--rm", "--net", "none", "-u", "1000", "busybox", "sh", "-c",
                           "id -u; id -g; grep ^CapEff /proc/self/status")
    assert by_number.stdout.decode().split() == ["1000", "0", "CapEff:", "0000000000000000"]
    by_name = daemon.cli("run", "--rm", "--net", "none", "--user", "nobody", "busybox", "sh", "-c",
                         "id; echo $HOME")
    assert by_name.stdout.decode().splitlines() == ["uid=65534(nobody) gid=65534(nobody) groups=65534(nobody)",
                                                    "/nonexistent"]
    with_group = daemon.cli("run", "--rm", "--net", "none", "-u", "nobody:root", "busybox", "id", "-g")
    assert with_group.stdout.decode().strip() == "0"
    unknown = daemon.cli("run", "--rm", "--net", "none", "-u", "ghost", "busybox", "true", check=False)
    assert unknown.returncode != 0
    assert "unable to find user ghost" in unknown.stderr.decode()


def test_exec_runs_as_the_containers_user_with_its_capabilities(daemon):
    cid = daemon.out("run", "-d", "--net", "none", "-u", "nobody", "--cap-drop", "ALL", "busybox", "sleep", "30")
    try:
        result = daemon.cli("exec", cid, "sh", "-c", "id -u; grep ^CapBnd /proc/self/status")
        assert result.stdout.decode().split() == ["65534", "CapBnd:", "0000000000000000"]
    finally:
        daemon.cli("rm", "-f", cid)


def test_privileged_is_loud_in_inspect_and_ps(daemon):
    cid = daemon.out("run", "-d", "--net", "none", "--privileged", "busybox", "sleep", "30")
    try:
        info = json.loads(daemon.out("inspect", cid))[0]
        host = info["HostConfig"]
        assert host["Privileged"] is True
        assert host["SecurityOpt"][0] == "seccomp=unconfined"
        assert host["Warnings"] and "not isolated" in host["Warnings"][0]
        row = next(line for line in daemon.out("ps").splitlines() if line.startswith(cid[:12]))
        assert "(PRIVILEGED)" in row
        # /dev/kmsg (c 1:11) is outside Docker's device list: only a privileged container opens it.
        probe_kmsg = "mknod /tmp/k c 1 11 && dd if=/tmp/k of=/dev/null count=0 2>/dev/null && echo opened"
        inside = daemon.cli("exec", cid, "sh", "-c", "grep -E '^(CapEff|Seccomp):' /proc/self/status; "
                                                     f"grep ' /sys ' /proc/self/mountinfo; {probe_kmsg}")
        lines = inside.stdout.decode().splitlines()
        assert int(lines[0].split()[1], 16) == ALL and lines[1].split() == ["Seccomp:", "0"]
        assert lines[2].split()[5].startswith("rw")
        assert lines[3] == "opened"
        confined = daemon.cli("run", "--rm", "--net", "none", "busybox", "sh", "-c", probe_kmsg, check=False)
        assert "opened" not in confined.stdout.decode()
    finally:
        daemon.cli("rm", "-f", cid)


def test_filters_are_compiled_once_per_distinct_profile(daemon):
    cache = Path(daemon.root) / "seccomp"
    daemon.cli("run", "--rm", "--net", "none", "busybox", "true")
    first = set(cache.glob("*.bpf"))
    for _ in range(2):
        daemon.cli("run", "--rm", "--net", "none", "busybox", "true")
    assert set(cache.glob("*.bpf")) == first
    daemon.cli("run", "--rm", "--net", "none", "--cap-add", "SYS_ADMIN", "--cap-add", "SYS_NICE", "busybox", "true")
    assert len(set(cache.glob("*.bpf")) - first) == 1
