"""The launcher config the probes get (probes/launcher.c): its layout and what it accepts."""
from __future__ import annotations

import ctypes as ct
import os
import re
from pathlib import Path

import pytest

from agent.errors import InvalidArgument
from agent.probes import setup_exemption
from agent.probes.source import PROBE_FILES, ProbeOptions, build_source, tracepoints

PROBES = Path(__file__).resolve().parents[2] / "probes"
SOURCE = (PROBES / "launcher.c").read_text()


def test_the_config_mirrors_struct_launcher_config():
    length = int(re.search(r"#define LAUNCHER_PATH_LEN (\d+)", SOURCE).group(1))
    assert length == setup_exemption.LAUNCHER_PATH_LEN
    assert ct.sizeof(setup_exemption.LauncherConfig) == 8 + 8 + 4 + 4 + length
    fields = re.search(r"struct launcher_config \{(.*?)\};", SOURCE, re.S).group(1)
    assert re.findall(r"(\w+)(?:\[\w+\])?;", fields) == [f[0] for f in setup_exemption.LauncherConfig._fields_]


def test_the_config_names_the_launcher_as_execve_sees_it_and_the_daemons_pid_namespace():
    config = setup_exemption.launcher_config("/usr/bin/corral-launch")
    namespace = os.stat("/proc/self/ns/pid")
    assert (config.pidns_dev, config.pidns_ino) == (namespace.st_dev, namespace.st_ino)
    assert config.armed == 1
    assert config.path == b"/usr/bin/corral-launch" and config.length == len(b"/usr/bin/corral-launch") + 1


@pytest.mark.parametrize("path", ["corral-launch", "/" + "x" * 300, "/bad\0path"])
def test_a_launcher_path_the_probe_cannot_match_is_refused(path):
    with pytest.raises(InvalidArgument, match="launcher path"):
        setup_exemption.launcher_config(path)


def test_launcher_c_is_compiled_before_the_syscall_counter_that_asks_it():
    assert PROBE_FILES.index("launcher.c") < PROBE_FILES.index("syscalls.c")
    source = build_source(PROBES)
    assert source.index("static __always_inline int in_setup(") < source.index("if (in_setup())")
    # Inside process.c's programs, first: one program per tracepoint (BCC detaches only one).
    process = (PROBES / "process.c").read_text()
    for call in ("launcher_exec((struct launcher_exec_args *)ctx);",
                 "launcher_fork((struct sched_process_fork_args *)ctx);", "launcher_exit();"):
        assert call in process
    targets = [p.target for p in tracepoints(ProbeOptions())]
    assert len(targets) == len(set(targets))
