"""The one seccomp filter of each container: its profile, its capabilities and the policies'
deny rules, compiled through the shared cache and linked into the container's state directory.

The link (`seccomp.bpf`) is what the launcher installs at start and at every `exec`, and it
stays valid whatever happens to the cache. `seccomp.json` beside it records what the filter
was made of, for `inspect` and `policy explain`.
"""
from __future__ import annotations

import json
import os
import platform
import threading
from pathlib import Path
from typing import Iterable

from agent.errors import KernelError
from agent.security import default_profile
from agent.security.filters import FilterCache
from agent.security.options import DEFAULT_PROFILE, UNCONFINED, Settings
from agent.security.profile import Profile, digest, from_docker_json

FILTER_FILE = "seccomp.bpf"
RECORD_FILE = "seccomp.json"
# Unconfined still carries the policies' deny rules: a policy binds whatever the user asked.
ALLOW_ALL = Profile(name=UNCONFINED, default_action="allow", default_errno=None, architectures=("NATIVE",))


class ContainerFilters:
    def __init__(self, cache_dir: Path) -> None:
        self.cache = FilterCache(cache_dir)
        self._profiles: dict[str, Profile] = {}
        self._lock = threading.Lock()

    def install(self, settings: Settings, denied: Iterable[str], directory: Path) -> Path | None:
        """Link the container's filter into `directory`; None when it runs without one
        (unconfined or privileged, and no policy denies anything)."""
        denied = sorted(set(denied))
        path = directory / FILTER_FILE
        record = {"profile": settings.seccomp_name, "denied": denied}
        if settings.seccomp == UNCONFINED and not denied:
            path.unlink(missing_ok=True)
            _write_record(directory, record)
            return None
        profile, profile_digest = self._profile(settings.seccomp)
        source = self.cache.path_for(profile, profile_digest, settings.caps, denied)
        try:
            try:
                os.link(source, path)       # a hard link: no copy, and the cache may be pruned
            except FileExistsError:         # a start again: replaced in one step
                tmp = directory / f".{FILTER_FILE}.new"
                tmp.unlink(missing_ok=True)
                os.link(source, tmp)
                os.replace(tmp, path)
        except OSError as exc:
            raise KernelError(f"cannot link the seccomp filter into {directory}: {exc.strerror}") from None
        _write_record(directory, record)
        return path

    def _profile(self, choice: str) -> tuple[Profile, str]:
        key = choice if choice in (DEFAULT_PROFILE, UNCONFINED) else digest(choice)
        with self._lock:
            profile = self._profiles.get(key)
            if profile is None:
                if choice == DEFAULT_PROFILE:
                    profile = default_profile.for_machine(platform.machine())
                elif choice == UNCONFINED:
                    profile = ALLOW_ALL
                else:
                    profile = from_docker_json(choice)
                self._profiles[key] = profile
        return profile, key


def _write_record(directory: Path, record: dict) -> None:
    try:
        (directory / RECORD_FILE).write_text(json.dumps(record))
    except OSError as exc:
        raise KernelError(f"cannot write {directory / RECORD_FILE}: {exc.strerror}") from None


def in_force(directory: Path) -> dict | None:
    """What the container's filter was made of ({"profile", "denied"}), or None if unknown
    (a container started before profiles existed)."""
    try:
        data = json.loads((directory / RECORD_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
