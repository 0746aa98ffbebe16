"""What one doctor check reports, where the host's files are, and what the verdict means.

Checks read /proc, /sys and /lib/modules through `HostPaths` so unit tests can point
them at fixture trees; each returns a frozen `CheckResult`.
"""
from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

OK = "ok"
WARN = "warn"
FAIL = "fail"


def default_launcher() -> Path:
    # The launcher is installed next to the interpreter of the venv (`make setup`); the
    # path is not resolved because .venv/bin/python is a symlink to /usr/bin/python3.
    return Path(sys.executable).parent / "corral-launch"


@dataclass(frozen=True)
class HostPaths:
    """Roots of the host files the checks read; tests replace them with fixture trees."""

    proc: Path = Path("/proc")
    sys: Path = Path("/sys")
    lib_modules: Path = Path("/lib/modules")
    busybox: Path = Path("/bin/busybox")
    launcher: Path = field(default_factory=default_launcher)

    @property
    def mountinfo(self) -> Path:
        return self.proc / "self" / "mountinfo"


@dataclass(frozen=True)
class CheckResult:
    """One line of the doctor's report.

    `status` is ok, warn or fail; `fix` is a command (or the one step) that repairs a
    check that is not ok; `required` says whether a fail makes Corral unusable.
    """

    name: str
    status: str
    found: str
    fix: str | None = None
    required: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


def passed(name: str, found: str, *, required: bool = True) -> CheckResult:
    return CheckResult(name, OK, found, None, required)


def problem(name: str, found: str, fix: str, *, required: bool = True) -> CheckResult:
    """A check that is not ok: fail when Corral needs it, warn when it only loses a feature."""
    return CheckResult(name, FAIL if required else WARN, found, fix, required)


def warning(name: str, found: str, fix: str | None, *, required: bool = True) -> CheckResult:
    """Works, with a limit the user should know about; never changes the exit code."""
    return CheckResult(name, WARN, found, fix, required)


def exit_code(results: list[CheckResult]) -> int:
    """1 when any required check failed, else 0: warnings never fail the doctor."""
    return 1 if any(r.status == FAIL and r.required for r in results) else 0


def read_text(path: Path) -> str | None:
    """The file's text, or None when it cannot be read (absent, permission, EOPNOTSUPP)."""
    try:
        return path.read_text()
    except OSError:
        return None
