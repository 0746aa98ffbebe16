"""The policies in force, loaded from a folder and reloaded when its files change.

`reload()` is called at start and then every second or so by the daemon's policy thread
(polling: a folder of a few small files costs microseconds to read, and polling also sees
edits made through bind mounts and editors' rename-over dances that inotify can miss). Each
file is one unit:

- a new or changed file that checks clean replaces that file's policies;
- a changed file with any problem (not YAML, over a limit of agent.policy.yaml_source, empty,
  invalid), or one that would reuse a policy name another file holds, is reported and the
  file's previous valid version stays in force: there is never a gap in enforcement because
  of a typo or a truncated write;
- a deleted file's policies are removed (deleting is a deliberate act).

Parsing happens on the reloading thread with no lock held; readers (`policies()`, which the
runtime calls at every container create and start) get the last compiled set, swapped in as
one immutable tuple, so they never wait for a file being parsed. A file is parsed once per
content (its digest is remembered, valid or not), and nothing one file does (a bomb, a crash
in the checker) stops the files after it from loading.
"""
from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.policy.check import (
    LoadedFile,
    Problem,
    load_bytes,
    policy_files,
    read_capped,
)
from agent.policy.model import Policy
from agent.policy.yaml_source import DEFAULT_LIMITS, YamlLimits


@dataclass(frozen=True)
class ReloadReport:
    loaded: tuple[str, ...] = ()          # files (re)applied
    removed: tuple[str, ...] = ()         # files deleted, their policies gone
    failed: dict[str, tuple[Problem, ...]] = field(default_factory=dict)   # file -> problems (old version kept)

    @property
    def changed(self) -> bool:
        return bool(self.loaded or self.removed)


@dataclass
class _FileState:
    digest: str                           # of the last content seen, valid or not
    applied: LoadedFile | None            # the version in force (None: never valid)
    problems: tuple[Problem, ...] = ()    # of the last content seen


class PolicyLibrary:
    """`reload` runs on one thread at a time (the daemon's policy thread); `policies` and
    `problems` on any thread, without waiting for a reload."""

    def __init__(self, directory: str, syscall_known: Callable[[str], bool] | None = None,
                 limits: YamlLimits = DEFAULT_LIMITS) -> None:
        self.directory = directory
        self.limits = limits
        if syscall_known is None:
            from agent.syscall_table import known_syscall, load_syscall_table
            syscall_known = known_syscall(load_syscall_table())
        self._known = syscall_known
        self._files: dict[str, _FileState] = {}       # only the reloading thread touches it
        self._reload_lock = threading.Lock()
        self._policies: tuple[Policy, ...] = ()       # replaced whole, never changed in place
        self._problems: dict[str, tuple[Problem, ...]] = {}

    def policies(self) -> list[Policy]:
        return list(self._policies)

    def problems(self) -> dict[str, tuple[Problem, ...]]:
        """Files whose current content is invalid (their previous version, if any, in force)."""
        return dict(self._problems)

    def reload(self) -> ReloadReport:
        with self._reload_lock:
            report = self._reload()
            self._policies = tuple(p for state in self._files.values() if state.applied
                                   for p in state.applied.policies)
            self._problems = {f: s.problems for f, s in self._files.items() if s.problems}
        return report

    def _reload(self) -> ReloadReport:
        files, missing = policy_files([self.directory])
        loaded, removed = [], []
        failed: dict[str, tuple[Problem, ...]] = {}
        if missing:
            failed[self.directory] = tuple(missing)
        for path in sorted(set(self._files) - set(files)):
            if self._files.pop(path).applied is not None:
                removed.append(path)
        for path in files:
            try:
                raw = read_capped(path, self.limits)
            except OSError:
                continue   # vanished between listing and reading: the next reload sees it
            digest = hashlib.sha256(raw).hexdigest()
            state = self._files.get(path)
            if state is not None and state.digest == digest:
                continue
            result = load_bytes(raw, path, self._known, self.limits)
            problems = result.problems or self._name_clashes(path, result)
            previous = state.applied if state else None
            if problems:
                self._files[path] = _FileState(digest, previous, tuple(problems))
                failed[path] = tuple(problems)
            else:
                self._files[path] = _FileState(digest, result)
                loaded.append(path)
        return ReloadReport(tuple(loaded), tuple(removed), failed)

    def _name_clashes(self, path: str, result: LoadedFile) -> tuple[Problem, ...]:
        taken = {p.name: other for other, s in self._files.items() if other != path and s.applied
                 for p in s.applied.policies}
        problems = []
        for name, mark in result.name_marks.items():
            if name in taken:
                problems.append(Problem(path, mark.line, mark.col, "metadata.name",
                                        f"policy name {name!r} is already used in {taken[name]}"))
        return tuple(problems)
