"""A container's seccomp filter linked into its state directory (agent/security/container_filter.py):
a first start links the cached filter, a start again with other deny rules replaces the link."""
from __future__ import annotations

import json
import os

from agent.security.container_filter import FILTER_FILE, RECORD_FILE, ContainerFilters
from agent.security.options import DEFAULT_PROFILE, UNCONFINED, Settings


def settings(seccomp: str = DEFAULT_PROFILE) -> Settings:
    return Settings(caps=frozenset({"CAP_CHOWN"}), privileged=False, seccomp=seccomp, read_only=False,
                    tmpfs=(), user=None)


def test_a_start_links_the_filter_and_a_start_again_replaces_it(tmp_path):
    filters = ContainerFilters(tmp_path / "cache")
    directory = tmp_path / "container"
    directory.mkdir()
    first = filters.install(settings(), [], directory)
    assert first == directory / FILTER_FILE
    source = filters.cache.path_for(*filters._profile(DEFAULT_PROFILE), frozenset({"CAP_CHOWN"}), [])
    assert os.path.samefile(first, source), "a hard link to the cached filter"
    second = filters.install(settings(), ["ptrace"], directory)
    assert second == first and not os.path.samefile(second, source)
    assert json.loads((directory / RECORD_FILE).read_text()) == {"profile": "default", "denied": ["ptrace"]}
    assert sorted(p.name for p in directory.iterdir()) == [FILTER_FILE, RECORD_FILE]
    assert filters.install(settings(UNCONFINED), [], directory) is None
    assert sorted(p.name for p in directory.iterdir()) == [RECORD_FILE]
