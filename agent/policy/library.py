"""The policies in force, loaded from a folder and reloaded when its files change.

`reload()` is called at start and then every second or so by the daemon (polling: a folder
of a few small files costs microseconds to read, and polling also sees edits made through
bind mounts and editors' rename-over dances that inotify can miss). Each file is one unit:

- a new or changed file that checks clean replaces that file's policies;
- a changed file with any problem, or one that would reuse a policy name another file holds,
  is reported and the file's previous valid version stays in force: there is never a gap in
  enforcement because of a typo;
- a deleted file's policies are removed (deleting is a deliberate act).
"""
from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from typing import Callable

from agent.policy.check import LoadedFile, Problem, load_text, policy_files
from agent.policy.model import Policy


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
    """Thread-safe: `reload` runs on the daemon's watcher, `policies` on any thread."""

    def __init__(self, directory: str, syscall_known: Callable[[str], bool] | None = None) -> None:
        self.directory = directory
        if syscall_known is None:
            from agent.policy.syscall_table import known_syscall, load_syscall_table
            syscall_known = known_syscall(load_syscall_table())
        self._known = syscall_known
        self._files: dict[str, _FileState] = {}
        self._lock = threading.Lock()

    def policies(self) -> list[Policy]:
        with self._lock:
            return [p for state in self._files.values() if state.applied for p in state.applied.policies]

    def problems(self) -> dict[str, tuple[Problem, ...]]:
        """Files whose current content is invalid (their previous version, if any, in force)."""
        with self._lock:
            return {f: s.problems for f, s in self._files.items() if s.problems}

    def reload(self) -> ReloadReport:
        files, missing = policy_files([self.directory])
        loaded, removed = [], []
        failed: dict[str, tuple[Problem, ...]] = {}
        if missing:
            failed[self.directory] = tuple(missing)
        with self._lock:
            for path in sorted(set(self._files) - set(files)):
                if self._files.pop(path).applied is not None:
                    removed.append(path)
            for path in files:
                try:
                    with open(path, "rb") as handle:
                        raw = handle.read()
                except OSError:
                    continue   # vanished between listing and reading: the next reload sees it
                digest = hashlib.sha256(raw).hexdigest()
                state = self._files.get(path)
                if state is not None and state.digest == digest:
                    continue
                result = self._load(path, raw)
                problems = result.problems or self._name_clashes(path, result)
                previous = state.applied if state else None
                if problems:
                    self._files[path] = _FileState(digest, previous, tuple(problems))
                    failed[path] = tuple(problems)
                else:
                    self._files[path] = _FileState(digest, result)
                    loaded.append(path)
        return ReloadReport(tuple(loaded), tuple(removed), failed)

    def _load(self, path: str, raw: bytes) -> LoadedFile:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return LoadedFile(path, (), (Problem(path, 1, 1, "(file)", f"not UTF-8 text: {exc}"),))
        return load_text(text, path, self._known)

    def _name_clashes(self, path: str, result: LoadedFile) -> tuple[Problem, ...]:
        taken = {p.name: other for other, s in self._files.items() if other != path and s.applied
                 for p in s.applied.policies}
        problems = []
        for name, mark in result.name_marks.items():
            if name in taken:
                problems.append(Problem(path, mark.line, mark.col, "metadata.name",
                                        f"policy name {name!r} is already used in {taken[name]}"))
        return tuple(problems)
