"""Loading policy files and checking them: every problem of every file, located.

`load_file` turns one file into its policies and its problems; `check_paths` does that for
files and folders and adds the problems only visible across files (a policy name used twice).
`corral policy check` prints the problems; the daemon uses `load_file` for (re)loading, so the
two can never disagree about what is valid.
"""
from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from agent.policy.build import parse_policy
from agent.policy.model import Policy
from agent.policy.validate import FieldError, format_path
from agent.policy.yaml_source import (
    DEFAULT_LIMITS,
    Mark,
    SourceDocument,
    SyntaxProblem,
    YamlLimits,
    decode,
    load_documents,
)

log = logging.getLogger("corral.policy")

POLICY_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong, printed the way compilers do so editors and CI can jump to it."""

    file: str
    line: int
    col: int
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.path}: {self.message}"

    def to_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "col": self.col, "path": self.path,
                "message": self.message}


@dataclass(frozen=True)
class LoadedFile:
    """What one file holds: its valid policies and its problems (a file with any problem is
    invalid as a whole, so a half-edited file never half-applies)."""

    file: str
    policies: tuple[Policy, ...] = ()
    problems: tuple[Problem, ...] = ()
    name_marks: dict[str, Mark] = field(default_factory=dict)   # policy name -> metadata.name position

    @property
    def valid(self) -> bool:
        return not self.problems


def policy_files(paths: Iterable[str]) -> tuple[list[str], list[Problem]]:
    """Files named on the command line as they are, and the *.yaml/*.yml files of folders
    (not recursing: a policy folder is flat, so a `drafts/` folder can sit beside it)."""
    files: list[str] = []
    problems: list[Problem] = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(os.path.join(path, n) for n in os.listdir(path)
                           if n.endswith(POLICY_SUFFIXES) and not n.startswith(".")
                           and os.path.isfile(os.path.join(path, n)))
            files.extend(found)
        elif os.path.exists(path):
            files.append(path)
        else:
            problems.append(Problem(path, 1, 1, "(file)", "no such file or folder"))
    return files, problems


def load_bytes(raw: bytes, file: str, syscall_known: Callable[[str], bool] | None = None,
               limits: YamlLimits = DEFAULT_LIMITS) -> LoadedFile:
    """Decode, parse and check one file's content. Never raises: whatever goes wrong is a
    problem of this file, so one file can never stop the others from loading."""
    text = decode(raw, file, limits)
    if isinstance(text, SyntaxProblem):
        return _refused(text)
    return load_text(text, file, syscall_known, limits)


def _refused(problem: SyntaxProblem) -> LoadedFile:
    return LoadedFile(problem.file, (), (Problem(problem.file, problem.mark.line, problem.mark.col,
                                                 "(file)", problem.message),))


def load_text(text: str, file: str, syscall_known: Callable[[str], bool] | None = None,
              limits: YamlLimits = DEFAULT_LIMITS) -> LoadedFile:
    """Parse and check the documents of one file's text."""
    try:
        return _load_text(text, file, syscall_known, limits)
    except Exception as exc:  # a bug here must cost one file, not the daemon's policy loop
        log.exception("policy file %s could not be checked", file)
        return LoadedFile(file, (), (Problem(file, 1, 1, "(file)",
                                             f"could not be checked: {type(exc).__name__}: {exc}"),))


def _load_text(text: str, file: str, syscall_known: Callable[[str], bool] | None,
               limits: YamlLimits) -> LoadedFile:
    documents, syntax = load_documents(text, file, limits)
    problems: list[Problem] = []
    policies: list[Policy] = []
    marks: dict[str, Mark] = {}
    for doc in documents:
        if doc.data is None:
            continue   # an empty document (a trailing `---`) is not an error
        for path, mark in doc.duplicates:
            problems.append(Problem(file, mark.line, mark.col, format_path(path),
                                    "field given twice in one mapping; YAML would keep only the last"))
        policy, errors = parse_policy(doc.data, source=file, syscall_known=syscall_known)
        problems.extend(_locate(doc, error) for error in errors)
        if policy is None:
            continue
        mark = doc.where(("metadata", "name"))
        if policy.name in marks:
            first = marks[policy.name]
            problems.append(Problem(file, mark.line, mark.col, "metadata.name",
                                    f"policy name {policy.name!r} is already used at "
                                    f"{file}:{first.line}:{first.col}"))
            continue
        marks[policy.name] = mark
        policies.append(policy)
    if syntax is not None:
        problems.append(Problem(file, syntax.mark.line, syntax.mark.col, "(yaml)", syntax.message))
    elif not documents:
        problems.append(Problem(file, 1, 1, "(file)", "no policy document in the file (only comments "
                                "or `---`); the previous version stays in force (delete the file "
                                "to remove its policies)"))
    problems.sort()
    if problems:
        return LoadedFile(file, (), tuple(problems), {})
    return LoadedFile(file, tuple(policies), (), marks)


def read_capped(path: str, limits: YamlLimits) -> bytes:
    """The file's bytes, but never more than one past the size limit (a 5 GB file costs the
    same as a 1 MiB one: it is refused for its size). Only a regular file is opened, without
    blocking: a FIFO or a device named `*.yaml` (or a symlink to one) would otherwise hang the
    reader or have a side effect on open. OSError when it cannot be read."""
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise OSError(errno.EINVAL, "not a regular file")
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):      # swapped since the stat above
            raise OSError(errno.EINVAL, "not a regular file")
        return handle.read(limits.max_bytes + 1)


def load_file(path: str, syscall_known: Callable[[str], bool] | None = None,
              limits: YamlLimits = DEFAULT_LIMITS) -> LoadedFile:
    try:
        raw = read_capped(path, limits)
    except OSError as exc:
        return LoadedFile(path, (), (Problem(path, 1, 1, "(file)", f"cannot read: {exc.strerror or exc}"),))
    return load_bytes(raw, path, syscall_known, limits)


def duplicate_names(files: Iterable[LoadedFile]) -> list[Problem]:
    """A policy name used in two files: reported at the later file (files in path order)."""
    seen: dict[str, tuple[str, Mark]] = {}
    problems = []
    for loaded in files:
        for name, mark in loaded.name_marks.items():
            if name in seen:
                other, first = seen[name]
                problems.append(Problem(loaded.file, mark.line, mark.col, "metadata.name",
                                        f"policy name {name!r} is already used at "
                                        f"{other}:{first.line}:{first.col}"))
            else:
                seen[name] = (loaded.file, mark)
    return problems


def check_files(paths: Iterable[str], syscall_known: Callable[[str], bool] | None = None,
                limits: YamlLimits = DEFAULT_LIMITS) -> tuple[list[LoadedFile], list[Problem]]:
    """Each file of the paths loaded, and every problem (sorted by file and position)."""
    if syscall_known is None:
        from agent.syscall_table import known_syscall, load_syscall_table
        syscall_known = known_syscall(load_syscall_table())
    files, problems = policy_files(paths)
    loaded = [load_file(f, syscall_known, limits) for f in files]
    for item in loaded:
        problems.extend(item.problems)
    problems.extend(duplicate_names(loaded))
    return loaded, sorted(problems)


def check_paths(paths: Iterable[str], syscall_known: Callable[[str], bool] | None = None,
                limits: YamlLimits = DEFAULT_LIMITS) -> list[Problem]:
    """Every problem in the files and folders given, sorted by file and position."""
    return check_files(paths, syscall_known, limits)[1]


def _locate(doc: SourceDocument, error: FieldError) -> Problem:
    mark = doc.where(error.path, key=error.at_key)
    return Problem(doc.file, mark.line, mark.col, error.dotted, error.message)
