"""Users and environment, pure parts: docker's env-file format, the flags reaching the spec,
bad values naming the flag, and the resolv.conf, hosts and /dev/shm the launcher is given."""
from __future__ import annotations

import pytest

from agent.cli.env_file import parse_env_file, read_env_files
from agent.errors import InvalidArgument
from agent.runtime import environment
from agent.runtime.model import ContainerSpec, Ulimit
from tests.unit.cli_support import spec_of

# --env-file

def test_env_file_reads_dockers_format():
    text = "\ufeff# comment\n\n  INDENTED=1\nQUOTED=\"kept\"\nSPACES=a b  \nEMPTY=\nFROM_SHELL\nUNSET\nEQ=a=b\n"
    assert parse_env_file(text, {"FROM_SHELL": "yes"}, "f") == [
        "INDENTED=1", 'QUOTED="kept"', "SPACES=a b  ", "EMPTY=", "FROM_SHELL=yes", "EQ=a=b"]


@pytest.mark.parametrize("line, message", [
    ("=value", "f:2: no variable name"),
    ("MY VAR=1", "f:2: variable 'MY VAR' contains whitespace"),
    ("A=\x00", "f:2: the line contains a NUL byte"),
])
def test_env_file_errors_name_the_file_and_line(line, message):
    with pytest.raises(InvalidArgument, match=message):
        parse_env_file("OK=1\n" + line + "\n", {}, "f")


def test_env_files_are_read_in_order_and_a_missing_one_names_itself(tmp_path):
    (tmp_path / "a").write_text("A=1\nB=1\n")
    (tmp_path / "b").write_text("B=2\n")
    assert read_env_files([str(tmp_path / "a"), str(tmp_path / "b")], {}) == ["A=1", "B=1", "B=2"]
    with pytest.raises(InvalidArgument, match="--env-file .*nope: No such file"):
        read_env_files([str(tmp_path / "nope")], {})
    (tmp_path / "bin").write_bytes(b"A=\xff\n")
    with pytest.raises(InvalidArgument, match="not UTF-8"):
        read_env_files([str(tmp_path / "bin")], {})
    (tmp_path / "big").write_bytes(b"A" * ((1 << 20) + 2))
    with pytest.raises(InvalidArgument, match="larger than"):
        read_env_files([str(tmp_path / "big")], {})


def test_env_file_comes_before_e(tmp_path):
    (tmp_path / "env").write_text("A=file\nB=file\n")
    spec = spec_of("--env-file", str(tmp_path / "env"), "-e", "B=flag", "busybox")
    assert spec.env == ["A=file", "B=file", "B=flag"]      # later wins when merged


# The flags reach the spec

def test_every_environment_flag_reaches_the_spec():
    spec = spec_of("--group-add", "audio", "--group-add", "50", "--init", "--ulimit", "nofile=1024:2048",
                   "--ulimit", "core=-1", "--shm-size", "128m", "--dns", "192.0.2.1", "--dns", "2001:db8::1",
                   "--dns-search", "corp.example", "--dns-option", "ndots:2", "--add-host", "db:192.0.2.10",
                   "--add-host", "v6:2001:db8::2", "--add-host", "gw:host-gateway", "busybox")
    assert spec.group_add == ["audio", "50"] and spec.init
    assert spec.ulimits == [Ulimit("nofile", 1024, 2048), Ulimit("core", -1, -1)]
    assert spec.shm_size == 128 << 20
    assert spec.dns == ["192.0.2.1", "2001:db8::1"] and spec.dns_search == ["corp.example"]
    assert spec.dns_options == ["ndots:2"]
    assert spec.extra_hosts == ["db:192.0.2.10", "v6:2001:db8::2", "gw:host-gateway"]
    assert ContainerSpec.from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize("argv, message", [
    (("--ulimit", "nofile"), "--ulimit 'nofile': expected NAME=SOFT"),
    (("--ulimit", "files=1"), "--ulimit 'files=1'"),
    (("--ulimit", "nofile=2:1"), "soft limit 2 is above the hard limit 1"),
    (("--ulimit", "nofile=1", "--ulimit", "nofile=2"), "ulimits: nofile is given twice"),
    (("--shm-size", "lots"), "--shm-size"),
    (("--dns", "one.one"), "dns\\[0\\]: expected an IPv4 or IPv6 address"),
    (("--dns", "1.2.3.999"), "dns\\[0\\]: '1.2.3.999' is not an IP address"),
    (("--add-host", "db:300.1.1.1"), "extra_hosts\\[0\\]: '300.1.1.1' is not an IP address"),
    (("--add-host", "nocolon"), "extra_hosts\\[0\\]"),
    (("--net", "none", "--add-host", "gw:host-gateway"), "host-gateway needs a network"),
    (("--group-add", "bad group"), "group_add\\[0\\]"),
])
def test_bad_values_name_the_flag(argv, message):
    with pytest.raises(InvalidArgument, match=message):
        spec_of(*argv, "busybox")


# What the launcher is given

def test_resolv_conf_replaces_only_what_the_flags_name():
    base = "# host\nnameserver 10.0.0.1\nnameserver 10.0.0.2\nsearch lan\noptions rotate\n"
    assert environment.resolv_conf(base, ["192.0.2.1"], [], []) == \
        "# host\nsearch lan\noptions rotate\nnameserver 192.0.2.1\n"
    assert environment.resolv_conf(base, [], ["corp.example", "example"], ["ndots:2"]) == \
        "# host\nnameserver 10.0.0.1\nnameserver 10.0.0.2\nsearch corp.example example\noptions ndots:2\n"


def test_extra_hosts_read_host_gateway_as_the_gateway():
    entries = ["db:192.0.2.10", "v6:2001:db8::2", "gw:host-gateway"]
    assert environment.extra_host_lines(entries, "10.213.0.1") == [
        "192.0.2.10\tdb", "2001:db8::2\tv6", "10.213.0.1\tgw"]
    assert environment.extra_host_lines(entries, None) == ["192.0.2.10\tdb", "2001:db8::2\tv6"]


def test_own_name_files_only_when_asked_for(tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "resolv.conf").write_text("nameserver 127.0.0.53\n")
    (etc / "hosts").write_text("127.0.0.1 localhost myhost\n")
    state = tmp_path / "state"
    state.mkdir()
    plain = ContainerSpec.checked(image="busybox", network="none")
    assert environment.own_name_files(plain, state, etc) == []
    host = ContainerSpec.checked(image="busybox", network="host", dns=["192.0.2.1"], extra_hosts=["gw:host-gateway"])
    binds = environment.own_name_files(host, state, etc)
    assert binds == [f"{state}/resolv.conf:/etc/resolv.conf", f"{state}/hosts:/etc/hosts"]
    assert (state / "resolv.conf").read_text() == "nameserver 192.0.2.1\n"
    assert (state / "hosts").read_text() == "127.0.0.1 localhost myhost\n# --add-host\n127.0.0.1\tgw\n"
    isolated = ContainerSpec.checked(image="busybox", network="none", dns_search=["corp.example"],
                                     extra_hosts=["db:192.0.2.10"])
    environment.own_name_files(isolated, state, etc)
    assert "search corp.example\n" in (state / "resolv.conf").read_text()
    assert (state / "hosts").read_text().startswith("127.0.0.1\tlocalhost\n")


def test_shm_size_becomes_a_tmpfs_unless_the_user_mounts_one():
    assert environment.shm_tmpfs(ContainerSpec.checked(image="busybox")) is None
    sized = ContainerSpec.checked(image="busybox", shm_size=1 << 27)
    assert environment.shm_tmpfs(sized) == f"/dev/shm:14:mode=1777,size={1 << 27}"
    both = ContainerSpec.checked(image="busybox", shm_size=1 << 27, tmpfs={"/dev/shm": "size=1m"})
    assert environment.shm_tmpfs(both) is None
