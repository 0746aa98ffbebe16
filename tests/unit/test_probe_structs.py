"""The Python mirrors of probes/common.h match the C layout; events decode; dump is complete.

The C side is compiled by gcc from the real header (with -DCORRAL_STRUCTS_ONLY, which leaves
out the BCC maps), so a field added on one side only fails here.
"""
from __future__ import annotations

import ctypes as ct
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from agent.errors import KernelError
from agent.probes import structs
from agent.probes.egress import words
from agent.probes.events import DecodeError, EgressEvent, EventDecoder, ExecEvent, KillEvent, OomEvent, RateEvent
from agent.probes.loader import PROBE_FILES, ProbeOptions, ProbeSet

PROBES = Path(__file__).resolve().parents[2] / "probes"
needs_gcc = pytest.mark.skipif(shutil.which("gcc") is None,   # a failure under CI=true (tests/conftest.py)
                               reason="gcc is not installed (Debian package gcc; scripts/setup.sh installs it)")


def compile_and_run(tmp_path: Path, body: str, includes: str = "") -> str:
    source = tmp_path / "layout.c"
    source.write_text(
        "#include <stdio.h>\n#include <stddef.h>\n#include <linux/types.h>\n" + includes +
        f'#define CORRAL_STRUCTS_ONLY\n#include "common.h"\nint main(void) {{\n{body}\nreturn 0;\n}}\n')
    binary = tmp_path / "layout"
    subprocess.run(["gcc", "-I", str(PROBES), "-o", str(binary), str(source)], check=True,
                   capture_output=True)
    return subprocess.run([str(binary)], check=True, capture_output=True, text=True).stdout


@needs_gcc
def test_every_mirror_has_the_c_size_and_offsets(tmp_path):
    lines = []
    for cname, mirror in structs.MIRRORS.items():
        lines.append(f'printf("{cname} size %zu\\n", sizeof(struct {cname}));')
        for field, _ in mirror._fields_:
            lines.append(f'printf("{cname} {field} %zu\\n", offsetof(struct {cname}, {field}));')
    measured = {}
    for line in compile_and_run(tmp_path, "\n".join(lines)).splitlines():
        cname, what, value = line.split()
        measured[(cname, what)] = int(value)
    for cname, mirror in structs.MIRRORS.items():
        assert ct.sizeof(mirror) == measured[(cname, "size")], cname
        for field, _ in mirror._fields_:
            assert getattr(mirror, field).offset == measured[(cname, field)], f"{cname}.{field}"


def c_enum(name: str) -> dict[str, int]:
    text = (PROBES / "common.h").read_text()
    body = re.search(rf"enum {name} \{{(.*?)\}};", text, re.S).group(1)
    return {k: int(v) for k, v in re.findall(r"(\w+)\s*=\s*(\d+)", body)}


def test_error_names_follow_the_c_enum():
    enum = c_enum("probe_error")
    assert enum.pop("N_PROBE_ERRORS") == len(structs.PROBE_ERRORS)
    assert {f"ERR_{name.upper()}": index for index, name in enumerate(structs.PROBE_ERRORS)} == enum


def test_lost_reasons_follow_the_c_enum():
    enum = c_enum("lost_reason")
    assert enum.pop("N_LOST_REASONS") == len(structs.LOST_REASONS)
    assert {f"LOST_{name.upper()}": index for index, name in enumerate(structs.LOST_REASONS)} == enum


def test_event_types_follow_the_c_enum():
    assert c_enum("event_type") == {"EVENT_OOM": structs.EVENT_OOM, "EVENT_EXEC": structs.EVENT_EXEC,
                                     "EVENT_KILL": structs.EVENT_KILL, "EVENT_EGRESS": structs.EVENT_EGRESS,
                                     "EVENT_RATE": structs.EVENT_RATE}


def test_rate_signals_follow_the_c_enum():
    enum = c_enum("rate_signal")
    assert enum.pop("N_RATE_SIGNALS") == len(structs.RATE_SIGNALS)
    assert {f"RATE_{name.upper()}": index for index, name in enumerate(structs.RATE_SIGNALS)} == enum


def test_a_rate_event_decodes():
    raw = structs.RateEventC(type=structs.EVENT_RATE, pid=8, cgroup_id=99, time_ns=2_000_000_000, count=5001,
                             limit=5000, signal=structs.RATE_SIGNALS.index("tcp_connects"), generation=3,
                             nr=structs.RATE_ALL_SYSCALLS, comm=b"dd")
    event = EventDecoder(boot_offset=100.0).decode(bytes(raw))
    assert event == RateEvent(99, 8, "dd", "tcp_connects", 5001, 5000, 3, 102.0)
    raw.signal, raw.nr = structs.RATE_SIGNALS.index("syscalls"), 0          # a per-syscall limit: read
    assert EventDecoder(boot_offset=100.0).decode(bytes(raw)).nr == 0
    raw.signal = 9
    with pytest.raises(DecodeError, match="signal 9"):
        EventDecoder().decode(bytes(raw))


def test_array_lengths_follow_the_c_defaults():
    text = (PROBES / "common.h").read_text()
    assert f"#define LATENCY_BUCKETS {structs.LATENCY_BUCKETS}" in text
    assert f"#define EXEC_FILENAME_LEN {structs.EXEC_FILENAME_LEN}" in text
    assert f"#define NR_SYSCALLS {structs.NR_SYSCALLS}" in text
    assert f"#define EGRESS_MAX_RULES {structs.EGRESS_MAX_RULES}" in text
    assert f"#define EGRESS_MAX_POLICIES {structs.EGRESS_MAX_POLICIES}" in text
    assert f"#define RATE_LEVELS {structs.RATE_LEVELS}" in text
    assert f"#define EGRESS_ALLOW {structs.EGRESS_ALLOW}" in text
    assert f"#define EGRESS_DENY {structs.EGRESS_DENY}" in text
    assert f"#define EGRESS_DEFAULT_RULE {structs.EGRESS_DEFAULT_RULE:#X}".replace("0X", "0x") in text


@needs_gcc
@pytest.mark.arch("x86_64")     # the pt_regs offset below is x86_64's
def test_orig_ax_offset_is_the_uapi_pt_regs_layout(tmp_path):
    uapi = int(compile_and_run(tmp_path, 'printf("%zu", offsetof(struct pt_regs, orig_rax));',
                               includes="#include <asm/ptrace.h>\n"))
    declared = re.search(r"#define PT_REGS_ORIG_AX_OFFSET (\d+)",
                         (PROBES / "syscalls.c").read_text()).group(1)
    assert uapi == int(declared)


def test_oom_event_decodes_with_wall_clock_time():
    raw = structs.OomEventC(structs.EVENT_OOM, 4242, 777, 5_000_000_000, b"corral-oom")
    event = EventDecoder(boot_offset=1000.0).decode(bytes(raw))
    assert event == OomEvent(cgroup_id=777, pid=4242, comm="corral-oom", time=1005.0)


def test_exec_event_decodes_the_filename():
    raw = structs.ExecEventC(structs.EVENT_EXEC, 7, 9, 0, b"/bin/true")
    event = EventDecoder(boot_offset=0.0).decode(bytes(raw))
    assert event == ExecEvent(cgroup_id=9, pid=7, filename="/bin/true", time=0.0)


def test_kill_event_decodes_the_syscall_and_the_result():
    raw = structs.KillEventC(structs.EVENT_KILL, 31, 555, 2_000_000_000, 162, 9, 0, 0, b"busybox")
    event = EventDecoder(boot_offset=10.0).decode(bytes(raw))
    assert event == KillEvent(cgroup_id=555, pid=31, comm="busybox", nr=162, signal=9, result=0, time=12.0)


@pytest.mark.parametrize(("family", "packed", "text"), [
    (4, bytes([10, 213, 0, 7]), "10.213.0.7"),
    (6, bytes.fromhex("20010db8000000000000000000000001"), "2001:db8::1")])
def test_egress_event_decodes_the_destination(family, packed, text):
    raw = structs.EgressEventC(type=structs.EVENT_EGRESS, pid=8, cgroup_id=99, time_ns=0, port=8080,
                               protocol=6, family=family, blocked=1, policy=1,
                               rule=structs.EGRESS_DEFAULT_RULE, generation=3, comm=b"nc")
    raw.addr[:] = words(packed)
    event = EventDecoder(boot_offset=0.0).decode(bytes(raw))
    assert event == EgressEvent(cgroup_id=99, pid=8, comm="nc", address=text, port=8080, protocol="tcp",
                                blocked=True, policy_index=1, rule_index=None, generation=3, time=0.0)


@pytest.mark.parametrize("data", [b"", b"\x01\x00", (99).to_bytes(4, "little") + bytes(60),
                                  structs.EVENT_EXEC.to_bytes(4, "little") + bytes(20),
                                  structs.EVENT_KILL.to_bytes(4, "little") + bytes(20),
                                  structs.EVENT_EGRESS.to_bytes(4, "little") + bytes(60)])
def test_unknown_or_short_records_are_decode_errors(data):
    with pytest.raises(DecodeError):
        EventDecoder(boot_offset=0.0).decode(data)


def test_dump_is_every_probe_file_with_its_flags():
    text = ProbeSet(PROBES, ProbeOptions(syscall_latency=True, max_containers=64)).dump()
    assert text.startswith("/* cflags: ")
    assert "-DSYSCALL_LATENCY" in text.splitlines()[0]
    assert "-DMAX_CONTAINERS=64" in text.splitlines()[0]
    assert '#include "common.h"' not in text
    for name in PROBE_FILES:
        assert f"---- {name} ----" in text
    assert text.count("#define CORRAL_COMMON_H") == 1


def test_dump_without_latency_has_no_latency_flag():
    assert "-DSYSCALL_LATENCY" not in ProbeSet(PROBES, ProbeOptions()).dump().splitlines()[0]


def test_missing_probe_directory_names_the_file(tmp_path):
    with pytest.raises(KernelError) as caught:
        ProbeSet(tmp_path / "nowhere", ProbeOptions())
    assert "nowhere" in str(caught.value)
