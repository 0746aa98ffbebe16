"""The one syscall table (agent/syscall_table.py): parsing unistd headers, both lookups, the
policies' exact-name check, and the fallback without headers."""
from __future__ import annotations

import platform
from pathlib import Path

import pytest

from agent.errors import InvalidArgument
from agent.syscall_table import OTHER, SyscallTable, known_syscall, load_syscall_table, parse_unistd, syscall_name

X86_HEADER = """\
#ifndef _ASM_UNISTD_64_H
#define _ASM_UNISTD_64_H
#define __NR_read 0
#define __NR_write 1
#define __NR_close 3
#define __NR_getppid 110
#define __NR_ptrace 101
#endif /* _ASM_UNISTD_64_H */
"""

GENERIC_HEADER = """\
#define __NR_io_setup 0
__SC_COMP(__NR_io_setup, sys_io_setup, compat_sys_io_setup)
#define __NR3264_fcntl 25
__SC_COMP_3264(__NR3264_fcntl, sys_fcntl64, sys_fcntl, compat_sys_fcntl64)
#define __NR_openat 56
#define __NR_read 63
#undef __NR_syscalls
#define __NR_syscalls 463
#define __NR_arch_specific_syscall 244
#define __NR_fcntl __NR3264_fcntl
"""


def write_header(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return root


def test_parse_x86_header():
    assert parse_unistd(X86_HEADER) == {0: "read", 1: "write", 3: "close", 110: "getppid",
                                        101: "ptrace"}


def test_parse_generic_header_resolves_3264_aliases_and_skips_bookkeeping():
    names = parse_unistd(GENERIC_HEADER)
    assert names == {0: "io_setup", 25: "fcntl", 56: "openat", 63: "read"}


def test_table_from_header_both_directions(tmp_path):
    root = write_header(tmp_path, "x86_64-linux-gnu/asm/unistd_64.h", X86_HEADER)
    table = load_syscall_table("x86_64", [root])
    assert table.source == str(root / "x86_64-linux-gnu/asm/unistd_64.h")
    assert table.name(110) == "getppid"
    assert table.number("getppid") == 110
    assert table.number("sys_close") == 3
    assert table.number("  PTRACE ") == 101
    assert table.name(999) == "syscall_999"
    assert table.number("syscall_999") == 999
    assert table.name(OTHER) == "other"


def test_generic_architecture_reads_asm_generic(tmp_path):
    root = write_header(tmp_path, "asm-generic/unistd.h", GENERIC_HEADER)
    table = load_syscall_table("aarch64", [root])
    assert table.number("read") == 63
    assert table.name(25) == "fcntl"


def test_unknown_name_suggests_the_closest(tmp_path):
    root = write_header(tmp_path, "asm/unistd_64.h", X86_HEADER)
    table = load_syscall_table("x86_64", [root])
    assert table.number("getpid") is None
    with pytest.raises(InvalidArgument) as caught:
        table.require("getpid")
    assert "'getpid'" in str(caught.value)
    assert "getppid" in str(caught.value)


def test_without_headers_numbers_still_have_names(tmp_path):
    table = load_syscall_table("x86_64", [tmp_path], libseccomp=False)
    assert len(table) == 0
    assert table.source is None
    assert table.name(110) == "syscall_110"
    assert table.number("syscall_110") == 110
    assert table.number("read") is None
    with pytest.raises(InvalidArgument) as caught:
        table.require("read")
    assert "linux-libc-dev" in str(caught.value)


def test_unknown_architecture_falls_back(tmp_path):
    assert len(load_syscall_table("pdp11", [tmp_path])) == 0


@pytest.mark.arch("x86_64")     # the numbers below are x86_64's
def test_host_table_when_linux_libc_dev_is_installed():
    table = load_syscall_table()
    if table.source is None:
        pytest.skip("no asm/unistd_64.h on this host (linux-libc-dev)")
    assert table.number("getppid") == 110
    assert table.number("close") == 3
    assert table.name(59) == "execve"
    assert len(table) > 300


def test_syscall_name_for_the_collector():
    assert syscall_name(OTHER) == "other"
    assert syscall_name(10**6) is None
    if platform.machine() == "x86_64" and load_syscall_table().source:
        assert syscall_name(110) == "getppid"


def test_policies_check_names_exactly_and_pass_everything_without_a_table(tmp_path):
    root = write_header(tmp_path, "asm/unistd_64.h", X86_HEADER)
    known = known_syscall(load_syscall_table("x86_64", [root]))
    assert known("ptrace") and not known("sys_ptrace") and not known("syscall_101") and not known("PTRACE")
    anything = known_syscall(SyscallTable("pdp11"))
    assert anything("whatever")


def test_without_headers_libseccomp_names_this_hosts_syscalls(tmp_path):
    pytest.importorskip("seccomp", reason="libseccomp's Python binding is not installed")
    table = load_syscall_table(platform.machine(), [tmp_path])
    assert table.source == f"libseccomp ({platform.machine()})"
    assert table.name(table.require("getppid")) == "getppid" and len(table) > 300
