"""The quick parse of `corral run`/`create` (agent/cli/quick_parse.py) gives exactly argparse's
values, or leaves the command line to argparse."""
from __future__ import annotations

import pytest

from agent.cli.main import build_parser, main
from agent.cli.run import parse_quickly
from agent.cli.run_flags import flags_of
from tests.unit.cli_support import NO_DAEMON

SAME = [
    ["busybox"],
    ["--rm", "--net", "none", "busybox", "true"],
    ["-it", "busybox", "sh"],
    ["-d", "--rm", "--name", "web", "-e", "A=1", "--env", "B", "busybox", "sleep", "9"],
    ["-v", "/a:/b", "--volume=/c:/d:ro", "--mount", "type=tmpfs,target=/t", "-p", "80:80", "-p", "81:81",
     "--pids-limit", "20", "--stop-timeout", "0", "--userns", "auto", "--pull", "never", "busybox"],
    ["--net", "a", "--network", "b", "--network-alias", "x", "-l", "k=v", "--label", "e=", "busybox"],
    ["--cap-add", "NET_ADMIN", "--cap-drop", "ALL", "--privileged", "--read-only", "--tmpfs", "/run",
     "-u", "1000:1000", "--security-opt", "no-new-privileges", "busybox", "id"],
    ["--group-add", "5", "--init", "--ulimit", "nofile=1:2", "--shm-size", "1m", "--dns", "1.1.1.1",
     "--dns-search", "x", "--dns-option", "ndots:2", "--add-host", "h:1.2.3.4", "busybox"],
    ["--health-cmd", "true", "--health-interval", "1s", "--health-retries", "3", "--no-healthcheck",
     "--health-timeout", "2s", "--health-start-period", "0s", "--env-file", "/dev/null", "busybox"],
    ["--restart", "on-failure:2", "--stop-signal", "INT", "--hostname", "h", "-w", "/srv", "-m", "64m",
     "--cpus", "0.5", "--entrypoint", "", "--name", "", "busybox", "-c", "echo hi", "--rm", "-d", "--", "x"],
    ["--detach-keys", "ctrl-a,x", "--device", "/dev/null", "busybox", "-"],
]


@pytest.mark.parametrize("words", SAME)
@pytest.mark.parametrize("verb", ["run", "create"])
def test_the_quick_parse_gives_argparse_s_values(verb, words):
    if verb == "create" and {"-d", "-it", "--detach-keys"} & set(words[:words.index("busybox")]):
        return                                     # run's own flags
    quick = parse_quickly(verb, words)
    assert quick is not None, words
    expected = vars(build_parser(verb).parse_args([verb, *words]))
    assert expected.pop("verb") == verb and expected.pop("host") is None and expected.pop("debug") is False
    assert quick == expected


@pytest.mark.parametrize("words", [
    [], ["--rm"], ["-h", "busybox"], ["--help"], ["--detac", "busybox"], ["-eA=1", "busybox"],
    ["--name", "-x", "busybox"], ["--pids-limit", "-1", "busybox"], ["--pids-limit", "many", "busybox"],
    ["--userns", "other", "busybox"], ["--rm=yes", "busybox"], ["-ix", "busybox"], ["--", "busybox"],
    ["-", "busybox"], ["-e=C=3", "busybox"], ["--name"], ["--bogus", "busybox"], ["-e", "A", "--", "busybox"],
])
def test_anything_else_is_left_to_argparse(words):
    assert parse_quickly("run", words) is None


def test_every_flag_of_the_table_is_exercised():
    """A flag added to run_flags.py is in SAME above, so its quick parse is checked too."""
    given = {word.split("=", 1)[0] for words in SAME for word in words[:words.index("busybox")]}
    given |= {"-i", "-t"}             # as -it
    assert [names for _group, names, _options in flags_of("run")
            if names[0].startswith("-") and not given & set(names)] == []


def test_globals_before_the_verb_reach_the_quick_parse(capsys):
    assert main(["-D", "--host", NO_DAEMON, "run", "--rm", "busybox"]) == 125
    assert "cannot reach the Corral daemon at unix:///tmp/corral-test-nobody-here" in capsys.readouterr().err
    assert main([f"--host={NO_DAEMON}", "create", "busybox"]) == 125
    assert "cannot reach" in capsys.readouterr().err
