"""The daemon's start imports what answering the API needs, and the rest at first use.

Each case runs in a fresh interpreter: what a module pulls in is only visible there. That the
routes still work once their modules are imported late is the integration suite's part
(tests/integration/test_containers.py, test_docker_cli.py, the registry and alerting tests)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]
# Imported at the first pull, push or login, or with an alert target, never by a start that has
# none: httpx alone (with its CLI's click and rich where installed) is ~15-45 ms of a start.
LATE = ("httpx", "agent.registry.transport", "agent.alerting.webhook")


def modules_after(script: str) -> set[str]:
    code = f"import json, sys\n{script}\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.splitlines()[-1]))


def late_ones(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == late or m.startswith(late + ".") for late in LATE))


def test_the_daemon_s_config_and_registry_settings_import_no_http_client():
    modules = modules_after(
        "from agent.daemon import Daemon\n"
        "from agent.daemon_config import parse_args\n"
        "import agent.daemon_routes, agent.api.server\n"
        "config = parse_args(['--config', 'none', '--root', '/nonexistent', '--insecure-registry', 'r:5000'])\n"
        "options = Daemon(config).registry_options()\n"
        "assert options.insecure == ('r:5000',), options\n")
    assert late_ones(modules) == []


def test_alert_targets_still_have_their_urls_checked():
    modules = modules_after(
        "from agent.daemon_config import parse_args\n"
        "from agent.errors import InvalidArgument\n"
        "try:\n"
        "    parse_args(['--config', 'none', '--alert-webhook', 'ftp://example.com/hook'])\n"
        "except InvalidArgument as exc:\n"
        "    assert '--alert-webhook' in str(exc), exc\n"
        "else:\n"
        "    raise AssertionError('ftp:// accepted')\n")
    assert "agent.alerting.webhook" in modules


def test_transport_still_exports_the_registry_settings():
    from agent.registry import options, transport
    assert transport.RegistryOptions is options.RegistryOptions and transport.CERT_DIRS == options.CERT_DIRS
