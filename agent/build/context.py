"""The build context: the directory a build may copy from, less what `.dockerignore` leaves out.

`.dockerignore` as docker reads it: one pattern per line, `#` comments, Go's filepath.Match
syntax (`*`, `?`, `[...]`) plus `**` for any number of directories, `!` to take a path back in,
the last matching line winning; a directory left out takes everything under it.

COPY and ADD sources are paths or patterns relative to the context, never out of it: `..`,
absolute paths and symlinks are resolved inside the context root (a symlink pointing outside
copies as the link itself, never the file it points to).
"""
from __future__ import annotations

import fnmatch
import hashlib
import os
import posixpath
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from agent.errors import InvalidArgument


@dataclass(frozen=True)
class _Rule:
    pattern: re.Pattern[str]
    keep: bool                  # a `!` line


def _translate(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex over context-relative paths."""
    parts = []
    for segment in pattern.split("/"):
        if segment == "**":
            parts.append("(?:.*/)?")
        else:
            parts.append(fnmatch.translate(segment).replace("\\Z", "").replace("(?s:", "(?:").replace(".*", "[^/]*") + "/")
    regex = "".join(parts).rstrip("/")
    regex = regex.replace("(?:.*/)?/", "(?:.*/)?")
    if regex.endswith("(?:.*/)?"):
        regex += ".*"
    return re.compile(f"^{regex}$")


class Context:
    """A context directory with its ignore rules."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise InvalidArgument(f"build context {str(root)!r} is not a directory")
        self._rules: list[_Rule] = []
        ignore = self.root / ".dockerignore"
        if ignore.is_file():
            for raw in ignore.read_text(errors="replace").splitlines():
                line = raw.strip()
                if not line or line.startswith("#"):
                    continue
                keep = line.startswith("!")
                cleaned = posixpath.normpath(line[1:].strip() if keep else line).lstrip("/")
                if cleaned in (".", ""):
                    continue
                self._rules.append(_Rule(_translate(cleaned), keep))

    def ignored(self, relative: str) -> bool:
        """Whether a context-relative path is left out: as docker decides, the last rule that
        matches the path or one of its parent directories wins."""
        parts = relative.split("/")
        prefixes = ["/".join(parts[:depth]) for depth in range(1, len(parts) + 1)]
        result = False
        for rule in self._rules:
            if any(rule.pattern.match(prefix) for prefix in prefixes):
                result = not rule.keep
        return result

    def sources(self, patterns: list[str], where: str) -> list[str]:
        """Context-relative paths matching COPY/ADD sources (each must match at least one)."""
        found: list[str] = []
        for pattern in patterns:
            cleaned = posixpath.normpath("/" + pattern).lstrip("/") or "."
            if any(char in cleaned for char in "*?["):
                regex = _translate(cleaned)
                matches = [path for path in self.walk() if regex.match(path)]
                if not matches:
                    raise InvalidArgument(f"{where}: no file in the context matches {pattern!r}")
                found.extend(matches)
                continue
            if cleaned != "." and (self.ignored(cleaned) or not os.path.lexists(self.root / cleaned)):
                raise InvalidArgument(f"{where}: {pattern!r} is not in the build context"
                                      + (" (.dockerignore leaves it out)" if os.path.lexists(self.root / cleaned)
                                         else ""))
            found.append(cleaned)
        return found

    def walk(self, start: str = ".") -> list[str]:
        """Every context-relative path under `start` that is not ignored, sorted; symlinks not followed."""
        result = []
        base = self.root / start
        if not base.is_dir() or base.is_symlink():
            return [start] if start != "." else []
        for directory, subdirs, files in os.walk(base):
            relative_dir = os.path.relpath(directory, self.root)
            kept_dirs = []
            for name in sorted(subdirs):
                path = name if relative_dir == "." else f"{relative_dir}/{name}"
                if not self.ignored(path) or self._any_kept_under(path):
                    kept_dirs.append(name)
                    if not self.ignored(path):
                        result.append(path)
            subdirs[:] = [name for name in kept_dirs if not os.path.islink(os.path.join(directory, name))]
            for name in sorted(files):
                path = name if relative_dir == "." else f"{relative_dir}/{name}"
                if not self.ignored(path):
                    result.append(path)
        return sorted(result)

    def _any_kept_under(self, directory: str) -> bool:
        return any(rule.keep for rule in self._rules)

    def digest(self, paths: list[str]) -> str:
        """A hash of the named paths' names, modes, owners, link targets and contents (and of
        everything under directories): the cache key of a COPY or ADD."""
        hasher = hashlib.sha256()
        for top in paths:
            for path in ([top] + self.walk(top)) if (self.root / top).is_dir() else [top]:
                full = self.root / path
                status = full.lstat()
                hasher.update(f"{path}\0{status.st_mode:o}\0{status.st_uid}\0{status.st_gid}\0".encode())
                if stat.S_ISLNK(status.st_mode):
                    hasher.update(os.readlink(full).encode())
                elif stat.S_ISREG(status.st_mode):
                    with open(full, "rb") as handle:
                        while chunk := handle.read(1 << 20):
                            hasher.update(chunk)
                hasher.update(b"\0")
        return "sha256:" + hasher.hexdigest()
