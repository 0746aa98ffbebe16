"""Unit tests of `corral doctor`: each check against fixture /proc, /sys and /lib/modules trees."""
from __future__ import annotations

import errno
import json
import os
import struct
from pathlib import Path

import pytest

from agent.doctor import filesystems, headers, isolation, kernel, software
from agent.doctor.report import _guarded, render_json, render_text
from agent.doctor.result import FAIL, OK, WARN, CheckResult, HostPaths, exit_code
from agent.mount_table import parse_mountinfo

RELEASE = "6.18.44-fc-v782"

MOUNTS_BASE = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
"""
MOUNTS_TRACING = """\
42 23 0:13 / /sys/kernel/tracing rw,relatime - tracefs tracefs rw
43 23 0:39 / /sys/fs/bpf rw,relatime - bpf bpf rw
"""
MOUNTS_V1 = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
"""
MOUNT_UNIFIED = "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
MOUNT_V2_ONLY = "31 23 0:28 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate\n"


def make_host(root: Path, *, release: str = RELEASE, mountinfo: str | None = None,
              filesystems_text: str = "nodev\tproc\nnodev\toverlay\n",
              status: str = "Name:\tpython3\nSeccomp:\t0\n",
              psi: str | None = "some avg10=0.00 avg60=0.00 avg300=0.00 total=1\n") -> HostPaths:
    """A fixture host; by default a healthy hybrid one with tracefs and bpffs mounted."""
    if mountinfo is None:
        mountinfo = MOUNTS_BASE + MOUNTS_V1 + MOUNT_UNIFIED + MOUNTS_TRACING
    files = {
        "proc/sys/kernel/osrelease": release + "\n",
        "proc/self/mountinfo": mountinfo,
        "proc/filesystems": filesystems_text,
        "proc/self/status": status,
    }
    if psi is not None:
        files["proc/pressure/cpu"] = psi
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (root / "sys").mkdir(exist_ok=True)
    (root / "lib/modules" / release).mkdir(parents=True)
    return HostPaths(proc=root / "proc", sys=root / "sys", lib_modules=root / "lib/modules",
                     busybox=root / "bin/busybox", launcher=root / "venv/bin/corral-launch")


def header_tree(path: Path, version: str | None) -> Path:
    (path / "include/generated").mkdir(parents=True)
    (path / "Makefile").write_text("# kernel headers\n")
    if version is not None:
        (path / "include/generated/utsrelease.h").write_text(f'#define UTS_RELEASE "{version}"\n')
    return path


def elf64(*program_types: int) -> bytes:
    """A minimal little-endian ELF64 header followed by its program header table."""
    phoff, phentsize = 64, 56
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", header, 32, phoff)
    struct.pack_into("<HH", header, 54, phentsize, len(program_types))
    table = b"".join(struct.pack("<I", t) + bytes(phentsize - 4) for t in program_types)
    return bytes(header) + table


# --- kernel -----------------------------------------------------------------------------

def test_root_ok_and_not_root_fails_with_sudo_fix():
    assert kernel.check_root(0).status == OK
    result = kernel.check_root(1000)
    assert result.status == FAIL and result.required
    assert "euid 1000" in result.found and "sudo" in result.fix


@pytest.mark.parametrize("release, status", [
    ("6.18.44-fc-v782", OK), ("5.8.0", OK), ("5.7.19-generic", FAIL), ("4.19.0-25-amd64", FAIL),
    ("weird", FAIL),
])
def test_kernel_version_needs_5_8(tmp_path, release, status):
    result = kernel.check_kernel(make_host(tmp_path, release=release))
    assert result.status == status
    assert release in result.found
    assert (result.fix is None) == (status == OK)


def test_bpf_reports_the_errno_and_a_fix():
    assert kernel.check_bpf(lambda: 0).status == OK
    result = kernel.check_bpf(lambda: errno.EPERM)
    assert result.status == FAIL and result.required
    assert "EPERM" in result.found and "sudo" in result.fix
    assert "CONFIG_BPF_SYSCALL" in kernel.check_bpf(lambda: errno.ENOSYS).fix


def test_btf_missing_only_warns(tmp_path):
    paths = make_host(tmp_path)
    assert kernel.check_btf(paths).status == WARN
    (paths.sys / "kernel/btf").mkdir(parents=True)
    (paths.sys / "kernel/btf/vmlinux").write_bytes(b"\x9f\xeb")
    assert kernel.check_btf(paths).status == OK


def test_tracefs_and_bpffs_mounted(tmp_path):
    paths = make_host(tmp_path)
    assert kernel.check_tracefs(paths).status == OK
    assert kernel.check_bpffs(paths).status == OK


def test_tracefs_unmounted_fails_with_mount_command(tmp_path):
    paths = make_host(tmp_path, mountinfo=MOUNTS_BASE + MOUNTS_V1 + MOUNT_UNIFIED)
    result = kernel.check_tracefs(paths)
    assert result.status == FAIL
    assert result.fix == "mount -t tracefs tracefs /sys/kernel/tracing"
    bpffs = kernel.check_bpffs(paths)
    assert bpffs.status == WARN and bpffs.fix == "mount -t bpf bpf /sys/fs/bpf"


def test_tracefs_under_debugfs_counts(tmp_path):
    line = "50 23 0:13 / /sys/kernel/debug/tracing rw - tracefs tracefs rw\n"
    paths = make_host(tmp_path, mountinfo=MOUNTS_BASE + line)
    assert kernel.check_tracefs(paths).status == OK


def test_psi_readable_missing_or_disabled(tmp_path):
    assert kernel.check_psi(make_host(tmp_path / "a")).status == OK
    missing = kernel.check_psi(make_host(tmp_path / "b", psi=None))
    assert missing.status == WARN and not missing.required and "psi=1" in missing.fix
    # psi=0 at boot: the file exists but says nothing useful
    assert kernel.check_psi(make_host(tmp_path / "c", psi="")).status == WARN


# --- headers ----------------------------------------------------------------------------

def test_headers_exact(tmp_path):
    paths = make_host(tmp_path)
    header_tree(paths.lib_modules / RELEASE / "build", RELEASE)
    result = headers.check_headers(paths)
    assert result.status == OK and RELEASE in result.found and result.fix is None


def test_headers_nearest_is_a_warning_naming_the_version(tmp_path):
    paths = make_host(tmp_path)
    target = header_tree(tmp_path / "usr/src/linux-headers-6.1.0-56-amd64", "6.1.0-56-amd64")
    (paths.lib_modules / RELEASE / "build").symlink_to(target)
    result = headers.check_headers(paths)
    assert result.status == WARN and result.required
    assert "nearest" in result.found and "6.1.0-56-amd64" in result.found
    assert "tracepoint args are still right" in result.found
    assert "struct layouts are not" in result.found
    assert exit_code([result]) == 0


def test_headers_nearest_version_from_link_name_when_tree_does_not_say(tmp_path):
    paths = make_host(tmp_path)
    target = header_tree(tmp_path / "usr/src/linux-headers-6.1.0-56-amd64", None)
    (paths.lib_modules / RELEASE / "build").symlink_to(target)
    result = headers.check_headers(paths)
    assert result.status == WARN and "6.1.0-56-amd64" in result.found


def test_headers_missing_fails_with_setup_fix(tmp_path):
    result = headers.check_headers(make_host(tmp_path))
    assert result.status == FAIL and result.required
    assert "make setup" in result.fix and "linux-headers-amd64" in result.fix


def test_headers_dangling_link_is_missing(tmp_path):
    paths = make_host(tmp_path)
    (paths.lib_modules / RELEASE / "build").symlink_to(tmp_path / "usr/src/gone")
    result = headers.check_headers(paths)
    assert result.status == FAIL and "gone" in result.found


# --- cgroups and overlay ----------------------------------------------------------------

def test_cgroups_v2(tmp_path):
    result = filesystems.check_cgroups(make_host(tmp_path, mountinfo=MOUNTS_BASE + MOUNT_V2_ONLY))
    assert result.status == OK and result.found.startswith("v2")


def test_cgroups_hybrid_is_ok_with_a_note(tmp_path):
    result = filesystems.check_cgroups(make_host(tmp_path))
    assert result.status == OK
    assert result.found.startswith("hybrid")
    assert "cpu, memory, pids" in result.found and "/sys/fs/cgroup/unified" in result.found
    assert "limits in v1" in result.found


def test_cgroups_systemd_name_hierarchy_alone_does_not_make_hybrid(tmp_path):
    named = "40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd\n"
    result = filesystems.check_cgroups(make_host(tmp_path, mountinfo=MOUNTS_BASE + MOUNT_V2_ONLY + named))
    assert result.found.startswith("v2")


def test_cgroups_v1_only_fails_and_says_how_to_mount_cgroup2(tmp_path):
    result = filesystems.check_cgroups(make_host(tmp_path, mountinfo=MOUNTS_BASE + MOUNTS_V1))
    assert result.status == FAIL and result.required
    assert "v1 only" in result.found and "cgroup2" in result.found
    assert "mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified" in result.fix


def test_cgroups_none_mounted_fails(tmp_path):
    result = filesystems.check_cgroups(make_host(tmp_path, mountinfo=MOUNTS_BASE))
    assert result.status == FAIL and "mount -t cgroup2" in result.fix


def test_mountinfo_unescapes_paths_and_skips_junk():
    entries = parse_mountinfo("garbage line\n"
                              "60 27 0:50 / /mnt/my\\040dir rw shared:1 - tmpfs tmpfs rw,size=4k\n")
    assert len(entries) == 1
    assert entries[0].mount_point == "/mnt/my dir"
    assert entries[0].fstype == "tmpfs" and entries[0].super_options == ("rw", "size=4k")


def test_overlay_not_root_reads_proc_filesystems(tmp_path):
    def must_not_mount():
        raise AssertionError("mounted without root")
    ok = filesystems.check_overlay(make_host(tmp_path / "a"), 1000, must_not_mount)
    assert ok.status == OK
    missing = filesystems.check_overlay(make_host(tmp_path / "b", filesystems_text="nodev\tproc\n"),
                                        1000, must_not_mount)
    assert missing.status == FAIL and missing.fix == "modprobe overlay"


def test_overlay_as_root_trusts_the_test_mount(tmp_path):
    paths = make_host(tmp_path, filesystems_text="nodev\tproc\n")
    assert filesystems.check_overlay(paths, 0, lambda: 0).status == OK
    failed = filesystems.check_overlay(paths, 0, lambda: errno.ENODEV)
    assert failed.status == FAIL and "ENODEV" in failed.found


# --- namespaces and seccomp ---------------------------------------------------------------

def test_namespace_unshare_ok():
    result = isolation.check_namespace("net", lambda flag: 0)
    assert result.name == "namespace net" and result.status == OK


def test_namespace_gets_the_right_flag():
    seen = []
    isolation.check_namespace("pid", lambda flag: seen.append(flag) or 0)
    assert seen == [0x20000000]          # CLONE_NEWPID in <linux/sched.h>


@pytest.mark.parametrize("code, fix_part", [
    (errno.EPERM, "sudo"), (errno.ENOSPC, "user.max_pid_namespaces"), (errno.EINVAL, "CONFIG_PID_NS"),
])
def test_required_namespace_failure(code, fix_part):
    result = isolation.check_namespace("pid", lambda flag: code)
    assert result.status == FAIL and result.required
    assert errno.errorcode[code] in result.found and fix_part in result.fix


def test_user_namespace_failure_only_warns():
    result = isolation.check_namespace("user", lambda flag: errno.ENOSPC)
    assert result.status == WARN and not result.required
    assert result.fix == "sysctl -w user.max_user_namespaces=10000"


def test_seccomp(tmp_path):
    paths = make_host(tmp_path / "a")
    assert isolation.check_seccomp(paths, lambda name: object()).status == OK

    def no_module(name):
        raise ImportError(f"No module named {name!r}")
    broken = isolation.check_seccomp(paths, no_module)
    assert broken.status == FAIL and broken.fix == "apt-get install python3-seccomp"
    no_kernel = isolation.check_seccomp(make_host(tmp_path / "b", status="Name:\tx\n"),
                                        lambda name: object())
    assert no_kernel.status == FAIL and "CONFIG_SECCOMP" in no_kernel.fix


# --- software -------------------------------------------------------------------------------

def test_bcc_import_failure_fails_with_apt_fix():
    def no_bcc(name):
        raise ImportError("No module named 'bcc'")
    result = software.check_bcc(no_bcc)
    assert result.status == FAIL and result.fix == "apt-get install python3-bpfcc"
    assert software.check_bcc(lambda name: type("bcc", (), {"__version__": "0.26.0"})).found \
        == "bcc 0.26.0 importable"


def test_launcher(tmp_path):
    paths = make_host(tmp_path)
    missing = software.check_launcher(paths)
    assert missing.status == FAIL and missing.required and missing.fix == "make setup"
    paths.launcher.parent.mkdir(parents=True)
    paths.launcher.write_bytes(b"\x7fELF")
    paths.launcher.chmod(0o644)
    if os.geteuid() != 0:           # root may execute any file with no x bit at all set
        assert "not executable" in software.check_launcher(paths).found
    paths.launcher.chmod(0o755)
    assert software.check_launcher(paths).status == OK


def test_busybox_static_dynamic_missing(tmp_path):
    paths = make_host(tmp_path)
    missing = software.check_busybox(paths)
    assert missing.status == WARN and missing.fix == "apt-get install busybox-static"
    paths.busybox.parent.mkdir(parents=True)
    paths.busybox.write_bytes(elf64(6, 1, 1))              # PHDR, LOAD, LOAD: static
    assert software.check_busybox(paths).status == OK
    paths.busybox.write_bytes(elf64(6, 3, 1))              # with PT_INTERP: dynamic
    dynamic = software.check_busybox(paths)
    assert dynamic.status == WARN and "dynamically linked" in dynamic.found
    paths.busybox.write_text("#!/bin/sh\n")
    assert software.check_busybox(paths).status == WARN


# --- verdict and rendering --------------------------------------------------------------------

def r(name, status, required=True, fix=None):
    return CheckResult(name, status, f"{name} found", fix, required)


def test_exit_code_is_1_only_for_a_failed_required_check():
    assert exit_code([r("root", OK), r("headers", WARN, fix="x"), r("psi", WARN, False, "y")]) == 0
    assert exit_code([r("root", OK), r("launcher", FAIL, fix="make setup")]) == 1
    assert exit_code([r("psi", FAIL, required=False, fix="y")]) == 0
    assert exit_code([]) == 0


def test_text_report_lines_and_verdict():
    text = render_text([r("root", OK), r("headers", WARN, fix="apt-get x"),
                        r("launcher", FAIL, fix="make setup")])
    lines = text.splitlines()
    assert lines[0].split() == ["ok", "root", "root", "found"]
    assert lines[1].startswith("warn") and lines[1].endswith("[fix: apt-get x]")
    assert lines[2].startswith("FAIL") and "[fix: make setup]" in lines[2]
    assert "required check(s) failed: launcher" in lines[-1]
    assert "Corral can run here (1 warning(s))" in render_text([r("root", OK), r("psi", WARN, False, "y")])


def test_json_report():
    data = json.loads(render_json([r("root", OK), r("launcher", FAIL, fix="make setup")]))
    assert data["ok"] is False and data["exit_code"] == 1
    assert data["checks"][1] == {"name": "launcher", "status": "fail", "found": "launcher found",
                                 "fix": "make setup", "required": True}


def test_a_crashing_check_becomes_a_failed_line():
    def boom():
        raise ValueError("bad fixture")
    [result] = _guarded("kernel", boom)
    assert result.status == FAIL and "ValueError: bad fixture" in result.found
