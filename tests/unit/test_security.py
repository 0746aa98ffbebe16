"""Pure logic of agent/security: capability resolution, security options, Docker-format
profiles, rules resolved for a capability set, the default profile, and the filter cache."""
from __future__ import annotations

import json

import pytest

from agent.errors import InvalidArgument
from agent.security import capabilities, default_profile
from agent.security.options import MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, parse_tmpfs, settings
from agent.security.profile import Arg, Profile, Rule, for_container, from_docker_json

# ---- capabilities -------------------------------------------------------------------------

def test_default_set_is_dockers_mask():
    assert capabilities.mask(capabilities.DEFAULT) == 0xA80425FB


@pytest.mark.parametrize("add, drop, expected", [
    ([], [], capabilities.DEFAULT),
    (["net_admin"], [], capabilities.DEFAULT | {"NET_ADMIN"}),
    (["CAP_SYS_TIME"], ["CHOWN"], (capabilities.DEFAULT | {"SYS_TIME"}) - {"CHOWN"}),
    ([], ["ALL"], set()),
    (["NET_BIND_SERVICE"], ["all"], {"NET_BIND_SERVICE"}),
    (["ALL"], ["SYS_ADMIN"], capabilities.ALL - {"SYS_ADMIN"}),
    (["NET_ADMIN"], ["NET_ADMIN"], capabilities.DEFAULT),
])
def test_cap_add_and_drop_resolve_as_docker_does(add, drop, expected):
    assert capabilities.resolve(add, drop) == frozenset(expected)


def test_privileged_gets_every_capability_and_unknown_names_are_refused():
    assert capabilities.resolve(["x"] * 0, ["ALL"], privileged=True) == capabilities.ALL
    with pytest.raises(InvalidArgument, match="--cap-add 'NET_WIZARD'"):
        capabilities.resolve(["NET_WIZARD"])
    assert capabilities.names(capabilities.mask({"KILL", "CHOWN"})) == ["CHOWN", "KILL"]


# ---- options ------------------------------------------------------------------------------

def test_tmpfs_options_become_flags_and_data():
    default = parse_tmpfs("/run", "")
    assert (default.flags, default.data) == (MS_NOSUID | MS_NODEV | MS_NOEXEC, "")
    custom = parse_tmpfs("/tmp", "ro,exec,size=64m,mode=1777")
    assert custom.flags == MS_RDONLY | MS_NOSUID | MS_NODEV and custom.data == "size=64m,mode=1777"
    assert custom.launcher_arg() == f"/tmp:{custom.flags}:size=64m,mode=1777"
    for target, options in (("run", ""), ("/", ""), ("/a/../b", ""), ("/run", "huge"), ("/run", "size=1m:x")):
        with pytest.raises(InvalidArgument):
            parse_tmpfs(target, options)


def test_security_opt_choices():
    assert settings().seccomp == "default" and settings().seccomp_name == "default"
    assert settings(security_opt=["seccomp=unconfined"]).seccomp == "unconfined"
    assert settings(security_opt=["seccomp:unconfined", "no-new-privileges"]).seccomp == "unconfined"
    assert settings(security_opt=["no-new-privileges:true"]).seccomp == "default"
    profile = json.dumps({"defaultAction": "SCMP_ACT_ALLOW"})
    custom = settings(security_opt=[f"seccomp={profile}"])
    assert custom.seccomp == profile and custom.seccomp_name.startswith("custom (sha256:")
    assert settings(privileged=True).seccomp == "unconfined"
    for bad in ("apparmor=unconfined", "no-new-privileges=false", "seccomp=/etc/profile.json"):
        with pytest.raises(InvalidArgument, match=r"security_opt\[0\]"):
            settings(security_opt=[bad])


def test_user_syntax():
    assert settings(user="1000:1000").user == "1000:1000"
    assert settings(user="www-data").user == "www-data"
    for bad in ("", "a:b:c", "../x", "x y"):
        with pytest.raises(InvalidArgument, match="user"):
            settings(user=bad)


# ---- Docker-format profiles ---------------------------------------------------------------

def test_docker_profile_parses_with_arch_map_and_conditions():
    profile = from_docker_json(json.dumps({
        "defaultAction": "SCMP_ACT_ERRNO",
        "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
                    {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
        "syscalls": [
            {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
            {"name": "socket", "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 40, "op": "SCMP_CMP_NE"}]},
            {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
            {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38, "excludes": {"caps": ["CAP_SYS_ADMIN"]}},
        ]}), machine="x86_64")
    assert profile.default_errno == 1 and profile.architectures == ("X86_64", "X86")
    assert profile.rules[1] == Rule(names=("socket",), action="allow", args=(Arg(0, "NE", 40),))
    plain = for_container(profile, capabilities.DEFAULT, machine="x86_64", kernel=(6, 1))
    assert [r.names for r in plain.rules] == [("read", "write"), ("socket",), ("clone3",)]
    admin = for_container(profile, capabilities.DEFAULT | {"SYS_ADMIN"}, machine="x86_64", kernel=(6, 1))
    assert [r.names for r in admin.rules] == [("read", "write"), ("socket",), ("mount",)]


@pytest.mark.parametrize("document, path", [
    ({"defaultAction": "SCMP_ACT_NOTIFY"}, "defaultAction"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": [], "action": "SCMP_ACT_ALLOW"}]}, "syscalls[0].names"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "X"}]}, "syscalls[0].action"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                                                       "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]}]},
     "syscalls[0].args[0].value"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW",
                                                       "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_XX"}]}]},
     "syscalls[0].args[0].op"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}, "architecture"),
])
def test_a_bad_profile_names_the_field(document, path):
    with pytest.raises(InvalidArgument, match=path.replace("[", r"\[").replace("]", r"\]")):
        from_docker_json(json.dumps(document), machine="x86_64")


def test_not_json_and_too_large_are_refused():
    with pytest.raises(InvalidArgument, match="not JSON"):
        from_docker_json("{")
    with pytest.raises(InvalidArgument, match="larger"):
        from_docker_json(" " * (1 << 21))


def test_policy_deny_rules_override_the_profile():
    profile = Profile("p", "errno", 1, ("NATIVE",), (Rule(("mkdir", "read"), "allow"),))
    resolved = for_container(profile, (), denied=["mkdir", "mkdir"])
    assert resolved.rules == (Rule(("read",), "allow"), Rule(("mkdir",), "errno", 1))


# ---- the default profile ------------------------------------------------------------------

def _allowed(caps) -> set[str]:
    resolved = for_container(default_profile.build(), caps, machine="x86_64", kernel=(6, 1))
    return {name for rule in resolved.rules if rule.action == "allow" and not rule.args for name in rule.names}


def test_default_profile_blocks_what_the_issue_lists():
    allowed = _allowed(capabilities.DEFAULT)
    for name in ("unshare", "setns", "add_key", "keyctl", "request_key", "bpf", "perf_event_open", "userfaultfd",
                 "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "mount",
                 "umount2", "pivot_root", "open_by_handle_at", "io_uring_setup", "reboot", "settimeofday",
                 "clock_settime", "swapon", "acct", "personality", "clone", "clone3"):
        assert name not in allowed, name
    assert {"read", "execve", "chown", "ptrace"} <= allowed     # ptrace: the kernel's own checks apply
    assert "socket" not in allowed                               # only with a condition: no AF_VSOCK


def test_capabilities_lift_their_rules():
    assert {"mount", "umount2", "pivot_root", "unshare", "setns", "clone", "clone3"} <= _allowed(
        capabilities.DEFAULT | {"SYS_ADMIN"})
    assert {"settimeofday", "clock_settime"} <= _allowed(capabilities.DEFAULT | {"SYS_TIME"})
    assert "open_by_handle_at" in _allowed(capabilities.DEFAULT | {"DAC_READ_SEARCH"})
    # Nothing lifts the keyrings or userfaultfd.
    assert not {"add_key", "keyctl", "userfaultfd"} & _allowed(capabilities.ALL)


def test_default_profile_names_are_known_to_libseccomp():
    seccomp = pytest.importorskip("seccomp")
    profile = default_profile.build()
    names = {name for rule in profile.rules for name in rule.names}
    unknown = sorted(n for n in names if all(seccomp.resolve_syscall(getattr(seccomp.Arch, a), n) == -1
                                            for a in ("X86_64", "X86", "X32")))
    # Only syscalls newer than this libseccomp: they are skipped until it knows them.
    assert set(unknown) <= {"getxattrat", "setxattrat", "listxattrat", "removexattrat", "fchmodat2",
                            "map_shadow_stack", "mseal", "cachestat", "futex_wake", "futex_wait",
                            "futex_requeue"}, unknown


# ---- compiling and caching ----------------------------------------------------------------

def test_cache_compiles_each_distinct_input_once(tmp_path, monkeypatch):
    pytest.importorskip("seccomp")
    from agent.security import filters

    calls = []
    real = filters.compile_filter
    monkeypatch.setattr(filters, "compile_filter", lambda *a, **k: calls.append(1) or real(*a, **k))
    cache = filters.FilterCache(tmp_path)
    profile = default_profile.for_machine("x86_64")
    first = cache.path_for(profile, "default", capabilities.DEFAULT)
    assert cache.path_for(profile, "default", set(capabilities.DEFAULT)) == first
    assert len(calls) == 1 and first.stat().st_size % 8 == 0
    denied = cache.path_for(profile, "default", capabilities.DEFAULT, ["mkdir"])
    admin = cache.path_for(profile, "default", capabilities.DEFAULT | {"SYS_ADMIN"})
    assert len({first, denied, admin}) == 3 and len(calls) == 3
    # A fresh cache (a daemon restart) finds the files by their content key.
    assert filters.FilterCache(tmp_path).path_for(profile, "default", capabilities.DEFAULT) == first
    assert len(calls) == 3
    with pytest.raises(InvalidArgument, match="no_such_call"):
        cache.path_for(profile, "default", capabilities.DEFAULT, ["no_such_call"])
