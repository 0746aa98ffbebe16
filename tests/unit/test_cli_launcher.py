"""The `corral` launcher (scripts/corral): Python without site processing, and every verb still works.

Each case runs the launcher's own Python code (taken from the script) or the script itself in a
fresh interpreter, as `corral` runs on a host."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from agent.cli.main import DELEGATED, VERBS
from tests.unit.fake_runtime import FakeDaemon

ROOT = Path(__file__).parents[2]
LAUNCHER = ROOT / "scripts" / "corral"
NO_DAEMON = "unix:///tmp/corral-test-nobody-here/corral.sock"
# The launcher's site-packages hooks (the venv's .pth files) may import these before Corral runs.
SITE_HOOKS = {"_distutils_hack", "coverage"}


def launcher_code() -> str:
    """The Python the launcher hands `python -S -P -c`."""
    match = re.search(r"-c '(.*?)' \"\$@\"", LAUNCHER.read_text(), re.S)
    assert match, "scripts/corral: no `python -c '...' \"$@\"` line"
    return match.group(1)


def launch(*argv: str, then: str = "") -> subprocess.CompletedProcess[str]:
    """`corral ARGV` through the launcher's code; `then` replaces its last line (main's exit)."""
    code = launcher_code()
    if then:
        code = code.replace("raise SystemExit(main())", then)
    env = {name: value for name, value in os.environ.items() if not name.startswith("COVERAGE_")}
    return subprocess.run([sys.executable, "-S", "-P", "-c", code, *argv], capture_output=True, text=True,
                          timeout=60, cwd="/", env=env)


# What neither `ps` nor a plain `run` needs (site hooks some hosts add import pathlib and re: certifi).
UNNEEDED = {"typing", "shutil", "pathlib", "datetime", "dataclasses", "inspect", "http", "email", "ssl",
            "tempfile", "sitecustomize", "certifi", "msgspec", "threading"}
# Corral's models and their checks: the daemon validates every body (`run` leaves it to it).
UNNEEDED_OF_CORRAL = ("agent.runtime", "agent.units", "agent.network", "agent.schema", "agent.security",
                      "agent.userns", "agent.log_time", "agent.cli.registry", "agent.cli.terminal")


def _outside_and_unneeded(modules: list[str]) -> tuple[list[str], list[str]]:
    outside = [name for name in modules if name.split(".")[0] not in sys.stdlib_module_names
               and name.split(".")[0] not in {"agent", "__main__"} | SITE_HOOKS]
    return outside, [name for name in modules
                     if name.split(".")[0] in UNNEEDED or name.startswith(UNNEEDED_OF_CORRAL)]


def test_ps_imports_only_the_standard_library_and_corral():
    result = launch("--host", NO_DAEMON, "ps", then=(
        "code = main()\n"
        "print(code, *sorted(sys.modules))"))
    code, *modules = result.stdout.split()
    assert code == "125", result.stderr        # no daemon: the CLI's own error, after the whole start
    assert _outside_and_unneeded(modules) == ([], [])


def test_a_whole_foreground_run_imports_no_models_nor_threading():
    """`run --rm` from start to exit code (create, logs, wait and remove), against a daemon."""
    with FakeDaemon() as daemon:
        daemon.runtime.on_start = lambda container: threading.Timer(
            0.05, daemon.runtime.finish, (container.id, 3)).start()
        result = launch("--host", daemon.host, "run", "--rm", "--net", "none", "busybox", "true", then=(
            "code = main()\n"
            "print(code, *sorted(sys.modules))"))
        code, *modules = result.stdout.split()
        assert code == "3", result.stderr          # the container's exit code: the run went to its end
        assert daemon.runtime.containers == {}     # --rm
    assert _outside_and_unneeded(modules) == ([], [])
    # A plain command line is parsed without argparse (agent/cli/quick_parse.py), nor gettext;
    # the signals are proxied through _signal, without signal's enums; the body is written
    # without json (agent/api/json_body.py), so neither re nor enum is imported.
    assert {"argparse", "gettext", "locale", "signal", "agent.cli.parser", "json", "re", "enum"} \
        & set(modules) == set()


def test_version_builds_no_verb_s_parser():
    """`corral --version` answers before any verb: none of their modules is imported."""
    result = launch("--version", then=(
        "code = main()\n"
        "print(code, *sorted(sys.modules))"))
    assert result.stdout.startswith("corral version "), result.stderr
    code, *modules = result.stdout.split("\n", 1)[1].split()
    assert code == "0"
    assert [name for name in modules if name.startswith("agent.cli.")] == ["agent.cli.format", "agent.cli.main",
                                                                          "agent.cli.parser"]


def test_every_verb_s_help_works_through_the_launcher():
    def help_of(verb: str) -> tuple[str, int, str]:
        result = launch(verb, "--help")
        return verb, result.returncode, result.stdout + result.stderr

    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(help_of, [*VERBS, *DELEGATED]))
    failed = [(verb, code, output[-500:]) for verb, code, output in answers
              if code != 0 or f"usage: corral {verb}" not in output]
    assert failed == []


def test_a_verb_that_needs_third_party_packages_finds_them():
    """`policy check` loads YAML: the package is found wherever pip or the system put it."""
    result = launch("policy", "check", str(ROOT / "policies" / "default.yaml"))
    assert (result.returncode, result.stdout.strip()) == (0, "ok: 1 policy in 1 file"), result.stderr


def test_the_daemon_gets_the_full_site_set_up():
    """site.main() sets ENABLE_USER_SITE; under -S nothing does."""
    result = launch("daemon", "--help", then="code = main()\nprint(code, site.ENABLE_USER_SITE is not None)")
    assert result.stdout.split()[-2:] == ["0", "True"], result.stderr


def test_the_script_runs_the_python_next_to_it_also_through_a_symlink(tmp_path):
    """As in a venv's bin/ (python3 beside corral) and as /usr/local/bin/corral links to it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "corral").write_bytes(LAUNCHER.read_bytes())
    (bin_dir / "corral").chmod(0o755)
    # This venv's interpreter under the name the launcher looks for (a symlink would keep the
    # link's path as sys.executable and so lose the venv).
    (bin_dir / "python3").write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    (bin_dir / "python3").chmod(0o755)
    (tmp_path / "link").symlink_to(bin_dir / "corral")
    for program in (bin_dir / "corral", tmp_path / "link"):
        result = subprocess.run([str(program), "--version"], capture_output=True, text=True, timeout=60, cwd="/")
        assert (result.returncode, result.stdout) == (0, "corral version 0.1.0\n"), result.stderr
        result = subprocess.run([str(program), "--host", NO_DAEMON, "ps"], capture_output=True, text=True,
                                timeout=60, cwd="/")
        assert result.returncode == 125 and "cannot reach the Corral daemon" in result.stderr
