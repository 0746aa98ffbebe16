"""Where each policy file comes from: the git commit that last touched it and whether the file
differs from it, when the policy folder is a git checkout (`corral policy ls`, reload events).

Asked once per load of a file, never per tick: git runs in a subprocess with a timeout.
"""
from __future__ import annotations

import os
import subprocess

GIT_TIMEOUT = 2.0


class Provenance:
    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._commits: dict[str, tuple[str | None, bool]] = {}   # file -> (commit, modified)
        self._git: bool | None = None           # whether the folder is a git checkout; asked once

    def record(self, file: str) -> str | None:
        """Look up `file` (just loaded) now; returns its commit."""
        self._commits[file] = self._commit_of(file)
        return self._commits[file][0]

    def forget(self, file: str) -> None:
        self._commits.pop(file, None)

    def of(self, file: str) -> tuple[str | None, bool]:
        """(commit, modified since that commit), (None, False) outside git."""
        return self._commits.get(file, (None, False))

    def _commit_of(self, file: str) -> tuple[str | None, bool]:
        if self._git is None:
            self._git = _git(self.directory, "rev-parse", "--is-inside-work-tree") == "true"
        if not self._git:
            return None, False
        commit = _git(self.directory, "log", "-1", "--format=%h", "--", os.path.abspath(file)) or None
        status = _git(self.directory, "status", "--porcelain", "--", os.path.abspath(file))
        return commit, bool(status)


def _git(directory: str, *args: str) -> str | None:
    try:
        result = subprocess.run(["git", "-C", directory, *args], capture_output=True, text=True,
                                timeout=GIT_TIMEOUT, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() if result.returncode == 0 else None
