"""`corral`: parsing of every flag, docker-like output, exit codes, and a light import graph.

End-to-end cases run main() against a real ApiServer with an in-memory runtime."""
from __future__ import annotations

import json
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from agent.cli import format as fmt
from agent.cli.events import parse_since
from agent.cli.main import build_parser, main
from agent.errors import InvalidArgument
from tests.unit.cli_support import NO_DAEMON, corral, daemon  # noqa: F401 - daemon is a fixture

ROOT = Path(__file__).parents[2]


# Parsing


def test_usage_errors_exit_125_with_a_hint(capsys):
    assert main(["--host", NO_DAEMON, "run", "--pids-limit", "many", "busybox"]) == 125
    err = capsys.readouterr().err
    assert "invalid int value: 'many'" in err and "hint: see `corral run --help`" in err
    assert main(["--host", NO_DAEMON, "ps", "--format", "xml"]) == 125
    assert main(["--host", NO_DAEMON, "frobnicate"]) == 125
    assert "invalid choice: 'frobnicate'" in capsys.readouterr().err


def test_other_verbs_flags_parse():
    parse = build_parser().parse_args
    assert parse(["ps", "-a", "-q", "--format", "json"]).all is True
    args = parse(["stop", "-t", "3", "a", "b"])
    assert (args.timeout, args.containers) == (3.0, ["a", "b"])
    assert parse(["kill", "-s", "TERM", "a"]).signal == "TERM"
    assert parse(["rm", "-f", "a"]).force is True
    args = parse(["exec", "-e", "A=1", "-w", "/tmp", "web", "ls", "-l"])
    assert (args.env, args.workdir, args.container, args.command) == (["A=1"], "/tmp", "web", ["ls", "-l"])
    assert parse(["logs", "-f", "web"]).follow is True
    args = parse(["events", "--follow", "--since", "10m", "--format", "json"])
    assert (args.follow, args.since, args.format) == (True, "10m", "json")
    args = parse(["image", "import", "rootfs.tar", "--name", "app:1"])
    assert (args.source, args.name) == ("rootfs.tar", "app:1")
    assert parse(["image", "rm", "app"]).images == ["app"]
    assert parse(["images", "--format", "json"]).format == "json"
    assert parse(["-H", "unix:///x.sock", "version"]).host == "unix:///x.sock"


def test_since_takes_durations_timestamps_and_dates():
    assert parse_since("10m", now=1000.0) == 400.0
    assert parse_since("1700000000", now=0) == 1700000000.0
    assert parse_since("2024-05-01T12:00:00+00:00", now=0) == 1714564800.0
    with pytest.raises(InvalidArgument, match="--since 'yesterday'"):
        parse_since("yesterday", now=0)


# Exit codes and messages

def test_missing_daemon_exits_125_with_the_hint(capsys, monkeypatch):
    monkeypatch.setenv("CORRAL_HOST", NO_DAEMON)
    assert main(["ps"]) == 125
    err = capsys.readouterr().err.splitlines()
    assert err == ["corral: cannot reach the Corral daemon at " + NO_DAEMON,
                   "hint: start it with `sudo corral daemon` or `make run`, or set CORRAL_HOST / --host"]


def test_daemon_errors_exit_125_and_tracebacks_only_with_debug(daemon, capsys):
    assert corral(daemon, "inspect", "ghost") == 125
    out, err = capsys.readouterr()
    assert json.loads(out) == [] and err == "corral: no such container: ghost\n"
    assert main(["--debug", "--host", daemon.host, "start", "ghost"]) == 125
    assert "Traceback" not in capsys.readouterr().err   # handled per container, as docker does
    assert main(["--debug", "--host", daemon.host, "logs", "ghost"]) == 125
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_help_and_version_exit_0(capsys):
    assert main(["--help"]) == 0
    assert "run" in capsys.readouterr().out
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("corral version ")
    assert main([]) == 0


def test_daemon_and_doctor_are_handed_their_arguments(monkeypatch):
    seen = {}
    for verb in ("daemon", "doctor"):
        module = types.ModuleType(f"agent.{verb}")
        module.main = lambda argv, verb=verb: seen.setdefault(verb, argv) and 3
        monkeypatch.setitem(sys.modules, f"agent.{verb}", module)
    assert main(["daemon", "--root", "/x", "--help"]) == 3
    assert main(["--debug", "doctor", "--format", "json"]) == 3
    assert seen == {"daemon": ["--root", "/x", "--help"], "doctor": ["--format", "json"]}


# Against a daemon


def test_ps_table_quiet_and_json(daemon, capsys):
    corral(daemon, "run", "-d", "--name", "web", "busybox", "sh", "-c", "while true; do sleep 1; done")
    corral(daemon, "create", "--name", "idle", "busybox")
    web = daemon.runtime.get("web")
    capsys.readouterr()
    assert corral(daemon, "ps") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES"]
    assert len(lines) == 2 and lines[1].startswith(web.id[:12] + "   busybox   ")
    assert '"sh -c while true; d…"' in lines[1] and "Less than a second ago" in lines[1]
    assert "   Up Less than a second   " in lines[1]
    assert lines[1].endswith("   web")
    assert corral(daemon, "ps", "-a", "-q") == 0
    assert sorted(capsys.readouterr().out.split()) == sorted(c.id[:12] for c in daemon.runtime.containers.values())
    assert corral(daemon, "ps", "-a", "--format", "json") == 0
    assert sorted(c["name"] for c in json.loads(capsys.readouterr().out)) == ["idle", "web"]


def test_stop_kill_rm_wait_inspect(daemon, capsys):
    for name in ("a", "b", "c"):
        corral(daemon, "run", "-d", "--name", name, "busybox", "sleep", "60")
    capsys.readouterr()
    assert corral(daemon, "stop", "-t", "2", "a", "ghost") == 125
    out, err = capsys.readouterr()
    assert out == "a\n" and err == "corral: no such container: ghost\n"
    assert ("stop", "a", 2.0) in daemon.runtime.calls
    assert corral(daemon, "kill", "-s", "TERM", "b") == 0
    assert ("kill", "b", 15) in daemon.runtime.calls
    assert corral(daemon, "kill", "-s", "NOPE", "c") == 125
    assert corral(daemon, "wait", "a", "b") == 0
    assert capsys.readouterr().out.splitlines()[-2:] == ["143", "143"]
    assert corral(daemon, "inspect", "a", "b") == 0
    assert [item["Name"] for item in json.loads(capsys.readouterr().out)] == ["a", "b"]
    assert corral(daemon, "rm", "c") == 125
    assert "container c is running" in capsys.readouterr().err
    assert corral(daemon, "rm", "-f", "a", "b", "c") == 0
    assert capsys.readouterr().out == "a\nb\nc\n" and daemon.runtime.containers == {}


def test_logs_and_exec(daemon, capfd):
    corral(daemon, "run", "-d", "--name", "web", "busybox", "sleep", "60")
    daemon.runtime.write_log("web", 1, b"out\n")
    daemon.runtime.write_log("web", 2, b"err\n")
    capfd.readouterr()
    assert corral(daemon, "logs", "web") == 0
    assert capfd.readouterr() == ("out\n", "err\n")
    assert corral(daemon, "exec", "-e", "X=1", "-w", "/tmp", "web", "sh", "-c", "echo $X; pwd; exit 4") == 4
    assert capfd.readouterr().out == "1\n/tmp\n"
    assert corral(daemon, "exec", "web") == 125
    assert "a command is required" in capfd.readouterr().err


def test_images(daemon, capsys, tmp_path):
    assert corral(daemon, "images") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert lines[1].split() == ["busybox", "latest", "b" * 12, "About", "an", "hour", "ago", "4.26MB"]
    tarball = tmp_path / "rootfs.tar"
    tarball.write_bytes(b"")
    assert corral(daemon, "image", "import", str(tarball), "--name", "app:1.0") == 0
    assert capsys.readouterr().out.strip() == "sha256:" + "d" * 64
    assert ("import_image", str(tarball), "app:1.0") in daemon.runtime.calls
    assert corral(daemon, "image", "ls", "--format", "json") == 0
    assert [i["name"] for i in json.loads(capsys.readouterr().out)] == ["busybox", "app"]
    assert corral(daemon, "image", "rm", "app:1.0") == 0
    assert capsys.readouterr().out == "Deleted: app:1.0\n"
    assert corral(daemon, "image", "import", str(tmp_path / "missing.tar"), "--name", "x") == 125
    assert "missing.tar" in capsys.readouterr().err


def test_events(daemon, capsys):
    corral(daemon, "run", "-d", "--name", "web", "busybox")
    capsys.readouterr()
    assert corral(daemon, "events", "--since", "1h") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1:3] for line in lines] == [["container", "create"], ["container", "start"]]
    assert lines[0].endswith("(name=web)")
    assert corral(daemon, "events", "--format", "json", "--since", str(time.time() + 60)) == 0
    assert capsys.readouterr().out == ""
    assert corral(daemon, "events", "--format", "json") == 0
    assert [json.loads(line)["action"] for line in capsys.readouterr().out.splitlines()] == ["create", "start"]


def test_version_and_info(daemon, capsys):
    assert corral(daemon, "version") == 0
    out = capsys.readouterr().out
    assert "Client:" in out and "Server:" in out and "API version:  v1" in out
    assert main(["--host", NO_DAEMON, "version"]) == 125
    out, err = capsys.readouterr()
    assert "Client:" in out and "Server:" not in out and "cannot reach" in err
    assert corral(daemon, "info") == 0
    assert "cgroup_driver: hybrid" in capsys.readouterr().out
    assert corral(daemon, "info", "--format", "json") == 0
    assert json.loads(capsys.readouterr().out) == daemon.info


# Formatting

def test_durations_like_docker():
    cases = {0.4: "Less than a second", 1: "1 second", 59: "59 seconds", 90: "About a minute",
             600: "10 minutes", 3600: "About an hour", 7200: "2 hours", 3 * 86400: "3 days",
             20 * 86400: "2 weeks", 100 * 86400: "3 months", 800 * 86400: "2 years"}
    assert {seconds: fmt.human_duration(seconds) for seconds in cases} == cases


def test_status_sizes_commands_and_tables():
    now = 10_000.0
    assert fmt.container_status({"state": "running", "started_at": now - 180}, now) == "Up 3 minutes"
    assert fmt.container_status({"state": "exited", "exit_code": 137, "finished_at": now - 2}, now) \
        == "Exited (137) 2 seconds ago"
    assert fmt.container_status({"state": "created"}, now) == "Created"
    assert fmt.ago(now - 5, now) == "5 seconds ago"
    assert [fmt.human_size(n) for n in (0, 999, 4_261_000, 1_500_000_000)] == ["0B", "999B", "4.26MB", "1.5GB"]
    assert fmt.container_command({"command": ["sleep", "60"]}) == '"sleep 60"'
    assert fmt.container_command({"command": [], "spec": {"entrypoint": ["sh"], "command": ["-c", "x" * 30]}}) \
        == '"sh -c xxxxxxxxxxxxx…"'
    assert fmt.table(["A", "LONGER", "C"], [["xyz", "1", "end"]]) == "A     LONGER   C\nxyz   1        end\n"
    assert fmt.short_id("sha256:" + "f" * 64) == "f" * 12


# The import graph

FORBIDDEN = ("bcc", "prometheus_client", "pyroute2", "yaml", "psutil", "agent.daemon", "agent.doctor",
             "agent.cgroups", "agent.images", "agent.probes", "agent.metrics", "agent.api.server",
             "agent.api.endpoints",
             # http.client alone costs the CLI ~40 ms of start-up (email.*, ssl): the client has its own
             "http.client", "email", "ssl")
# Only `run` and `create` with a flag of its own syntax (-v, -p, --restart...) load the models, and
# `stats` and `top` their rows (dataclasses, typing); a plain `run` leaves the checks to the daemon.
MODELS = ("agent.network.model", "agent.runtime.model", "dataclasses", "typing", "inspect")


def _modules_after(*argvs: list[str]) -> list[str]:
    """The modules a fresh interpreter holds after `corral <argv>` for each argv (no daemon)."""
    script = (
        "import sys\n"
        "from agent.cli.main import main\n"
        f"for argv in {list(argvs)!r}:\n"
        f"    main(['--host', '{NO_DAEMON}', *argv])\n"
        "print('--- modules ---')\n"
        "print('\\n'.join(sorted(sys.modules)))\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    return result.stdout.split("--- modules ---\n", 1)[-1].split()   # after the verbs' own output


def _at_startup() -> set[str]:
    """What this interpreter imports before any of Corral's code runs (site hooks a host may
    add, e.g. a .pth that imports certifi and with it typing): not the CLI's cost."""
    result = subprocess.run([sys.executable, "-c", "import sys; print('\\n'.join(sys.modules))"],
                            capture_output=True, text=True, timeout=60, check=True)
    return set(result.stdout.split())


def _loaded(modules: list[str], forbidden: tuple[str, ...]) -> list[str]:
    startup = _at_startup()
    return [m for m in modules if m not in startup
            and any(m == bad or m.startswith(bad + ".") for bad in forbidden)]


def test_verbs_load_no_models():
    modules = _modules_after(["--help"], ["--version"], ["run", "--help"], ["ps"], ["images"], ["events"],
                             ["version"], ["network", "ls"], ["policy", "ls"], ["run", "--rm", "-m", "1g", "busybox"],
                             ["create", "--name", "web", "--net", "none", "-e", "A=1", "busybox", "true"])
    assert "agent.cli.run" in modules and "agent.api.client" in modules
    assert _loaded(modules, FORBIDDEN + MODELS) == []


def test_the_cli_imports_nothing_heavy():
    modules = _modules_after(["--help"], ["run", "--help"], ["ps"], ["run", "busybox"], ["images"], ["events"])
    assert "agent.cli.run" in modules and "agent.api.client" in modules
    loaded = _loaded(modules, FORBIDDEN)
    runtime_internals = [m for m in modules if m.startswith("agent.runtime.") and m not in ("agent.runtime.model", "agent.runtime.mount_model")]
    assert loaded == [] and runtime_internals == []


def test_the_verb_table_names_each_module_s_verbs():
    """`corral VERB` registers only VERBS[VERB]'s module: the table must say what each registers."""
    import argparse
    import importlib

    from agent.cli.main import VERB_MODULES, VERBS
    from agent.cli.parser import Parser
    registered = {}
    for module in VERB_MODULES:
        verbs = Parser(prog="corral").add_subparsers()
        importlib.import_module(module).register(verbs)
        registered.update(dict.fromkeys(verbs.choices, module))
    assert registered == VERBS
    assert isinstance(build_parser("ps")._subparsers._group_actions[0], argparse._SubParsersAction)
    assert set(build_parser("ps")._subparsers._group_actions[0].choices) == {
        "start", "ps", "stop", "kill", "rm", "wait", "inspect", "daemon", "doctor"}
    assert set(VERBS) <= set(build_parser("no-such-verb")._subparsers._group_actions[0].choices)
