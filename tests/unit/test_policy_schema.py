"""The policy schema (msgspec Structs) is the one description of a policy document: the
committed JSON Schema is generated from it, and validation follows its bounds strictly."""
from __future__ import annotations

from pathlib import Path

import pytest

from agent.policy.build import parse_policy
from agent.policy.schema import render

REPO = Path(__file__).resolve().parents[2]


def test_the_committed_json_schema_is_the_generated_one():
    committed = (REPO / "policies" / "schema.json").read_text()
    assert committed == render(), "run: python -m agent.policy.schema > policies/schema.json"


def doc(spec: dict) -> dict:
    return {"apiVersion": "corral/v1", "kind": "Policy", "metadata": {"name": "p"}, "spec": spec}


def errors_of(spec: dict) -> dict[str, str]:
    policy, errors = parse_policy(doc(spec))
    assert (policy is None) == bool(errors)
    return {e.dotted: e.message for e in errors}


@pytest.mark.parametrize("spec, field, message", [
    # YAML's empty value (`limits:` and nothing: what a truncated write leaves) is never "none".
    ({"limits": None}, "spec.limits", "expected a mapping with memory, cpus, pids, killOrder, got nothing"),
    ({"syscalls": None}, "spec.syscalls", "expected a list of syscall rules, got nothing"),
    ({"selector": {"names": None}}, "spec.selector.names", "expected a list of name globs, got nothing"),
    # no bool as a number, no float as an integer, bounds on every number
    ({"limits": {"pids": True}}, "spec.limits.pids", "got True"),
    ({"limits": {"pids": 1.5}}, "spec.limits.pids", "got 1.5"),
    ({"limits": {"pids": 10**30}}, "spec.limits.pids", "between 1 and 4194304"),
    ({"limits": {"cpus": float("inf")}}, "spec.limits.cpus", "between 0.01 and 1024"),
    ({"limits": {"memory": True}}, "spec.limits.memory", "expected a size like 64Mi"),
    ({"limits": {"memory": "99999999999999T"}}, "spec.limits.memory", "expected a size like 64Mi"),
    ({"limits": {"memory": "1Mi"}}, "spec.limits.memory", "below the minimum of 4Mi"),
    ({"thresholds": [{"signal": "pids", "above": float("nan")}]}, "spec.thresholds[0].above", "expected a number"),
    ({"thresholds": [{"signal": "pids", "above": 1, "for": "30d"}]}, "spec.thresholds[0].for", "longer than a week"),
    ({"thresholds": [{"signal": "pids", "above": "10Mi"}]}, "spec.thresholds[0].above", "expected a number"),
    ({"syscalls": [{"names": ["Ptrace"], "action": "deny"}]}, "spec.syscalls[0].names[0]", "expected a syscall name"),
    ({"syscalls": [{"names": ["x"] * 513, "action": "deny"}]}, "spec.syscalls[0].names", "at most 512 items"),
    ({"selector": {"labels": {"tier": [1]}}}, "spec.selector.labels.tier", "expected a label value (text)"),
    ({"selector": {"labels": {"-x": "y"}}}, "spec.selector.labels.-x", "label key '-x' is not a valid label name"),
])
def test_strict_types_and_bounds(spec, field, message):
    found = errors_of(spec)
    assert field in found, found
    assert message in found[field]


def test_a_long_value_is_shown_shortened():
    [message] = errors_of({"mode": "x" * 10_000}).values()
    assert len(message) < 200 and message.startswith("unknown mode 'xxx")


def test_a_spec_with_problems_still_reports_rule_names_used_twice():
    found = errors_of({"mode": "loud", "syscalls": [{"name": "r", "names": ["chmod"], "action": "alert"}],
                       "thresholds": [{"name": "r", "signal": "pids", "above": 1}]})
    assert set(found) == {"spec.mode", "spec.thresholds[0].name"}
