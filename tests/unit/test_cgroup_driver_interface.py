"""The cgroup driver interface is complete: every driver (v2, hybrid, the foreign ones of
observed containers, and HostCgroups that routes between them) implements every method of
`CgroupDriver` with its signature (so does CgroupDouble, the in-memory one unit tests use), and
what the daemon, runtime, policy and metrics call on a driver is on the interface."""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from agent.cgroups.double import CgroupDouble
from agent.cgroups.driver import CgroupDriver
from agent.cgroups.hybrid import HybridDriver
from agent.cgroups.v2 import V2Driver
from agent.discovery.foreign_cgroups import ForeignCgroups, HostCgroups
from agent.errors import InvalidArgument

AGENT = Path(__file__).resolve().parents[2] / "agent"
INTERFACE = sorted(name for name, value in vars(CgroupDriver).items()
                   if callable(value) and not name.startswith("_"))


def drivers(tmp_path) -> dict[str, CgroupDriver]:
    v2 = V2Driver(str(tmp_path / "v2"), keep_files_open=False)
    hybrid = HybridDriver(str(tmp_path / "hybrid"), keep_files_open=False, user_hz=100)
    foreign_v2 = ForeignCgroups("v2", lambda paths: True, str(tmp_path / "v2"), keep_files_open=False)
    foreign_hybrid = ForeignCgroups("hybrid", lambda paths: True, str(tmp_path / "hybrid"),
                                    keep_files_open=False, user_hz=100)
    return {"v2": v2, "hybrid": hybrid, "foreign v2": foreign_v2, "foreign hybrid": foreign_hybrid,
            "host": HostCgroups(hybrid, foreign_hybrid, lambda paths: False), "double": CgroupDouble()}


def test_the_interface_names_what_callers_need():
    assert {"procs", "close", "paths_for", "list_names", "parent_dirs", "remove_parent", "cgroup_id",
            "stats", "read_limits", "set_limits"} <= set(INTERFACE)


def test_every_driver_implements_every_method_with_the_interfaces_signature(tmp_path):
    for label, driver in drivers(tmp_path).items():
        assert not inspect.isabstract(type(driver)), label
        assert driver.mode in ("v2", "hybrid") and driver.parent == "corral", label
        for name in INTERFACE:
            implementation = getattr(type(driver), name)
            assert not getattr(implementation, "__isabstractmethod__", False), f"{label}: {name}"
            assert inspect.signature(implementation) == inspect.signature(getattr(CgroupDriver, name)), \
                f"{label}: {name}{inspect.signature(implementation)}"


def test_what_the_callers_call_on_a_driver_is_on_the_interface():
    """Calls like `self.cgroups.x(`, `cgroups.x(` or `driver.x(` outside agent/cgroups."""
    call = re.compile(r"\b(?:cgroups|host_cgroups|driver)\.([a-z_]+)\(")
    called = set()
    for path in AGENT.rglob("*.py"):
        if path.parent.name != "cgroups":
            called.update(call.findall(path.read_text()))
    called -= {"detect"}                    # agent.cgroups.detect (a module, not a driver)
    assert called and called <= set(INTERFACE) | {"mode", "parent"}, sorted(called - set(INTERFACE))


def test_foreign_drivers_refuse_to_name_or_remove_a_parent(tmp_path):
    foreign = drivers(tmp_path)["foreign hybrid"]
    assert foreign.list_names() == [] and foreign.parent_dirs() == []
    with pytest.raises(InvalidArgument, match="never creates"):
        foreign.remove_parent()
    with pytest.raises(InvalidArgument, match="not named by Corral"):
        foreign.paths_for("web")


def test_host_cgroups_names_cgroups_with_corrals_own_driver(tmp_path):
    host = drivers(tmp_path)["host"]
    assert host.paths_for("web") == drivers(tmp_path)["hybrid"].paths_for("web")
    assert host.parent_dirs() == drivers(tmp_path)["hybrid"].parent_dirs()
