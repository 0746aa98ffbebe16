"""`corral policy test`: the series notation, the cases, the diff, and the shipped policies' own tests."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from agent.cli.policy_test import test_policies as run_policy_tests
from agent.errors import InvalidArgument
from agent.policy.check import load_text
from agent.policy.testing import expand_series, parse_file, run_case

REPO = Path(__file__).resolve().parents[2]
POLICY = """\
apiVersion: corral/v1
kind: Policy
metadata: {name: guard}
spec:
  mode: enforce
  syscalls:
    - {name: no-bpf, names: [bpf], action: kill}
  thresholds:
    - {name: hot, signal: cpu_percent, above: 90, for: 2s, actions: [alert, throttle]}
"""


def _policies(text: str = POLICY):
    loaded = load_text(text, "guard.yaml")
    assert loaded.valid, loaded.problems
    return list(loaded.policies)


@pytest.mark.parametrize("text, values", [
    ("1 2 3", [1, 2, 3]), ("5x2", [5, 5, 5]), ("10+5x3", [10, 15, 20, 25]), ("10-1x2", [10, 9, 8]),
    ("_ _x1 7", [None, None, None, 7]), ("64Mi", [64 << 20]), ("1.5", [1.5]),
])
def test_expand_series(text, values):
    assert expand_series(text, "s") == values


@pytest.mark.parametrize("text", ["abc", "5x", "1++2", "x3"])
def test_bad_series_tokens_are_named(text):
    with pytest.raises(InvalidArgument, match="is not a value"):
        expand_series(text, "signals.cpu_percent")


def test_a_case_passes_and_a_wrong_expectation_gives_a_diff():
    data = {"tests": [{"name": "hot", "signals": {"cpu_percent": "10 95x4 10"},
                       "syscalls": [{"at": "1s", "name": "bpf"}],
                       "expect": [{"at": "1s", "policy": "guard", "rule": "no-bpf", "kind": "syscall",
                                   "actions": ["kill"]},
                                  {"at": "3s", "policy": "guard", "rule": "hot", "actions": ["alert", "throttle"]},
                                  {"at": "6s", "policy": "guard", "rule": "hot", "kind": "resolve"}]}]}
    case = parse_file(data, "t.yaml").tests[0]
    assert run_case(case, _policies(), "t.yaml").passed
    wrong = parse_file({"tests": [{"name": "late", "signals": {"cpu_percent": "10 95x4 10"},
                                   "expect": [{"at": "4s", "policy": "guard", "rule": "hot"}]}]}, "t.yaml")
    result = run_case(wrong.tests[0], _policies(), "t.yaml")
    assert not result.passed
    assert result.diff() == ["  - 4s fire guard/hot [any actions]", "  + 3s fire guard/hot [alert, throttle]",
                             "  + 6s resolve guard/hot [restore, resolve_alert]"]


def test_audit_mode_records_what_it_would_do():
    audit = POLICY.replace("mode: enforce", "mode: audit")
    case = parse_file({"tests": [{"name": "a", "syscalls": [{"at": "0s", "name": "bpf"}],
                                  "expect": [{"at": "0s", "policy": "guard", "rule": "no-bpf", "kind": "syscall",
                                              "actions": ["alert"]}]}]}, "t.yaml").tests[0]
    assert run_case(case, _policies(audit), "t.yaml").passed


@pytest.mark.parametrize("data, message", [
    ({"tests": [{"name": "x", "bogus": 1}]}, "bogus"),
    ({"tests": [{"name": "x", "expect": [{"at": "1s", "policy": "p", "rule": "r", "kind": "boom"}]}]}, "kind"),
    ({}, "tests"),
])
def test_bad_test_files_name_the_field(data, message):
    with pytest.raises(InvalidArgument, match=message):
        parse_file(data, "t.yaml")


def test_unknown_signal_is_named():
    case = parse_file({"tests": [{"name": "x", "signals": {"memory_mb": "1"}}]}, "t.yaml").tests[0]
    with pytest.raises(InvalidArgument, match="unknown signal 'memory_mb'"):
        run_case(case, _policies(), "t.yaml")


def test_the_shipped_policies_pass_their_tests(capsys):
    args = argparse.Namespace(directory=str(REPO / "policies"), tests=[], quiet=False)
    assert run_policy_tests(args) == 0
    out = capsys.readouterr().out
    assert "0 failed" in out and "FAIL" not in out


def test_a_failing_file_exits_1_with_the_diff(tmp_path, capsys):
    (tmp_path / "guard.yaml").write_text(POLICY)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "t.yaml").write_text("tests:\n  - name: quiet\n    signals: {cpu_percent: '95x5'}\n"
                                               "    expect: []\n")
    args = argparse.Namespace(directory=str(tmp_path), tests=[], quiet=True)
    assert run_policy_tests(args) == 1
    assert "+ 2s fire guard/hot [alert, throttle]" in capsys.readouterr().out
