"""`corral doctor`: checks that this host can run Corral, one line per check.

Each check is a small function returning a frozen `CheckResult` (ok, warn or fail, what was
found, and a command that fixes it); a failed *required* check makes the doctor exit 1.
Checks read the host through `HostPaths`, so unit tests run them against fixture trees.
"""
from agent.doctor.main import main
from agent.doctor.report import run_checks
from agent.doctor.result import CheckResult, HostPaths, exit_code

__all__ = ["CheckResult", "HostPaths", "exit_code", "main", "run_checks"]
