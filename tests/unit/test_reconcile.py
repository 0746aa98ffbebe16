"""The reconciler's reading of /proc, against a fixture tree."""
from pathlib import Path

from agent.runtime.reconcile import child_in, live_shims


def _process(proc: Path, pid: int, argv: list[str], ppid: int = 1) -> None:
    (proc / str(pid)).mkdir(parents=True)
    (proc / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (proc / str(pid) / "status").write_text(f"Name:\tx\nPPid:\t{ppid}\n")


def test_live_shims_are_the_launchers_of_this_root_only(tmp_path):
    proc, ours = tmp_path / "proc", Path("/var/lib/corral/containers")
    _process(proc, 10, ["/venv/bin/corral-launch", "run", "--rootfs", f"{ours}/abc/rootfs", "--", "sh"])
    _process(proc, 11, ["/venv/bin/corral-launch", "run", "--rootfs", "/elsewhere/containers/def/rootfs"])
    _process(proc, 12, ["/venv/bin/corral-launch", "exec", "--rootfs", f"{ours}/ghi/rootfs"])
    _process(proc, 13, ["sleep", "--rootfs", f"{ours}/jkl/rootfs"])
    (proc / "self").mkdir()
    assert live_shims(ours, proc) == {"abc": 10}


def test_the_init_is_the_shims_child_in_the_cgroup(tmp_path):
    proc = tmp_path / "proc"
    _process(proc, 20, ["sh"], ppid=10)
    _process(proc, 21, ["sleep"], ppid=20)
    assert child_in([21, 20, 99], 10, proc) == 20
    assert child_in([21], 10, proc) is None
