"""The reconciler's reading of /proc, against a fixture tree, and its reading of records."""
from pathlib import Path
from types import SimpleNamespace

import pytest

from agent.runtime.launch import SHIM_LOG
from agent.runtime.model import Container, ContainerSpec
from agent.runtime.reconcile import Reconciler, child_in, live_shims
from agent.runtime.state import ContainerStore


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


@pytest.mark.parametrize("state, auto_remove, shim_log, shim, step", [
    ("removing", False, False, None, "removal finished"),
    ("exited", True, True, None, "removal finished"),             # a --rm container's removal cut short
    ("exited", False, True, None, "unchanged"),
    ("created", True, True, 40, "start cut short (adopted)"),     # a --rm container's start is not saved
    ("created", True, True, None, "exited while down"),           # ... nor its exit
    ("created", True, False, None, "created"),                    # `create --rm`, never started
    ("created", False, True, None, "created"),                    # a start cut short: made again
    ("running", True, True, None, "exited while down"),
    ("running", False, True, 40, "adopted"),
])
def test_each_record_is_classified_by_what_its_verb_leaves(tmp_path, state, auto_remove, shim_log, shim, step):
    """The table at the top of agent/runtime/reconcile.py, for the records a --rm container's
    unsaved start, exit and removal leave beside the others."""
    store = ContainerStore(tmp_path)
    container = Container(id="abc", name="one", spec=ContainerSpec(image="busybox", auto_remove=auto_remove),
                          image_id="i", created_at=1.0, cgroup={"unified": "/x"}, rootfs="/r", state=state,
                          shim_pid=40 if state == "running" else None)
    store.add(container)
    store.save(container, durable=True)
    if shim_log:
        (store.directory("abc") / SHIM_LOG).write_text("")
    reconciler = Reconciler(SimpleNamespace(store=store, cgroups=None))     # type: ignore[arg-type]
    assert reconciler._classify(container, {"abc": shim} if shim else {}) == step
