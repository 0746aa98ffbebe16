"""Runs every check in order and renders the report as text or JSON."""
from __future__ import annotations

import json
import os
from typing import Callable

from agent.doctor import filesystems, headers, isolation, kernel, software, userns
from agent.doctor.result import FAIL, OK, WARN, CheckResult, HostPaths, exit_code, problem


def _guarded(name: str, check: Callable[[], CheckResult | list[CheckResult]]) -> list[CheckResult]:
    # A check that crashes must not hide the others: it becomes a failed line of its own.
    try:
        result = check()
    except Exception as exc:      # noqa: BLE001 - the doctor reports, it never crashes
        return [problem(name, f"check crashed: {type(exc).__name__}: {exc}",
                        "report this with the output of `corral doctor --format json`")]
    return result if isinstance(result, list) else [result]


def run_checks(paths: HostPaths | None = None, euid: int | None = None) -> list[CheckResult]:
    """Every check, in the order a user would fix them."""
    paths = paths or HostPaths()
    euid = os.geteuid() if euid is None else euid
    # Namespaces fork test children: run them before `import bcc` makes this process big.
    checks: list[tuple[str, Callable]] = [
        ("root", lambda: kernel.check_root(euid)),
        ("kernel", lambda: kernel.check_kernel(paths)),
        ("bpf", kernel.check_bpf),
        ("btf", lambda: kernel.check_btf(paths)),
        ("tracefs", lambda: kernel.check_tracefs(paths)),
        ("bpffs", lambda: kernel.check_bpffs(paths)),
        ("headers", lambda: headers.check_headers(paths)),
        ("cgroups", lambda: filesystems.check_cgroups(paths)),
        ("overlay", lambda: filesystems.check_overlay(paths, euid)),
        ("namespaces", isolation.check_namespaces),
        ("seccomp", lambda: isolation.check_seccomp(paths)),
        ("userns", lambda: userns.check_userns(paths)),
        ("psi", lambda: kernel.check_psi(paths)),
        ("bcc", software.check_bcc),
        ("launcher", lambda: software.check_launcher(paths)),
        ("busybox", lambda: software.check_busybox(paths)),
    ]
    return [r for name, check in checks for r in _guarded(name, check)]


_LABEL = {OK: "ok", WARN: "warn", FAIL: "FAIL"}


def render_text(results: list[CheckResult]) -> str:
    width = max((len(r.name) for r in results), default=0)
    lines = []
    for r in results:
        line = f"{_LABEL[r.status]:<4}  {r.name:<{width}}  {r.found}"
        if r.fix:
            line += f"  [fix: {r.fix}]"
        lines.append(line)
    failed = [r.name for r in results if r.status == FAIL and r.required]
    warned = sum(r.status == WARN for r in results)
    if failed:
        lines.append(f"Corral cannot run here: required check(s) failed: {', '.join(failed)}")
    else:
        lines.append(f"Corral can run here ({warned} warning(s))")
    return "\n".join(lines) + "\n"


def render_json(results: list[CheckResult]) -> str:
    code = exit_code(results)
    return json.dumps({"ok": code == 0, "exit_code": code,
                       "checks": [r.to_dict() for r in results]}, indent=2) + "\n"
