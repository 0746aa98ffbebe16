"""What this host can test, and the two kinds of skip (docs/testing.md).

A test that cannot run here skips for one of two reasons:

- The host has another shape than the test is about: hybrid or pure v2 cgroups, another CPU
  architecture. No set-up changes that, so these stay skips under CI=true, with their reason:
  `@pytest.mark.topology("hybrid")`, `@pytest.mark.arch("x86_64")`, or `skip_topology(reason)`
  inside a test or fixture.
- Something set-up provides is missing: root, a tool (`require_tool`), a Python package. Any
  such skip (every skip that is not a topology skip) is a failure under CI=true
  (tests/conftest.py), because scripts/setup.sh installs all of them.
"""
from __future__ import annotations

import platform
import shutil
from typing import NoReturn

import pytest

from agent.cgroups.detect import cgroup_mode

CGROUP_ROOT = "/sys/fs/cgroup"
CGROUP_MODE = cgroup_mode(CGROUP_ROOT)           # "v2", "hybrid", "v1" or "none"
# The cgroup2 tree: where ids, freeze, kill, PSI and BPF attachment live on either topology.
UNIFIED_ROOT: str | None = {"v2": CGROUP_ROOT, "hybrid": f"{CGROUP_ROOT}/unified"}.get(CGROUP_MODE)
ARCH = platform.machine()


class TopologySkip(pytest.skip.Exception):  # type: ignore[name-defined,misc]
    """A skip because of the host's shape; CI=true keeps it a skip."""


def skip_topology(reason: str) -> NoReturn:
    """Skip because this host has another cgroup topology or architecture than the test needs."""
    raise TopologySkip(reason, _use_item_location=True)


def topology_reason(modes: tuple[str, ...]) -> str | None:
    """Why a test for cgroup topologies `modes` cannot run here; None when it can."""
    if CGROUP_MODE in modes:
        return None
    return f"needs {' or '.join(modes)} cgroups; this host's are {CGROUP_MODE}"


def need_topology(*modes: str) -> None:
    """In a fixture or test: skip (a topology skip) unless the host's cgroups are one of `modes`."""
    if (reason := topology_reason(modes)) is not None:
        skip_topology(reason)


def arch_reason(arches: tuple[str, ...]) -> str | None:
    if ARCH in arches:
        return None
    return f"needs {' or '.join(arches)}; this host is {ARCH}"


def require_tool(name: str, package: str) -> str:
    """The path of tool `name`; skips (a failure under CI=true) when it is not installed."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian package {package}; scripts/setup.sh installs it)")
    return path
