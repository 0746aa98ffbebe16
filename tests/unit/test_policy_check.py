"""`corral policy check`: every problem located as file:line:col: path: message; the shipped
examples pass the check and the JSON Schema; the CLI's exit codes and output."""
from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from agent.cli.main import main
from agent.policy.check import check_paths, load_text

REPO = Path(__file__).resolve().parents[2]
POLICIES = REPO / "policies"
LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<path>[^:]+): (?P<message>.+)$")
KNOWN = {"ptrace", "mount", "openat", "chmod", "setns", "unshare"}.__contains__

BAD = """\
apiVersion: corral/v1
kind: Policy
metadata:
  name: web
spec:
  selector:
    names: []
  limits:
    memory: lots
    cpu: 1
  syscalls:
    - names: [ptrace, ptrase]
      action: deny
  network:
    egress:
      rules:
        - {action: block, cidr: 10.0.0.1/8, ports: [0], protocol: icmp}
  thresholds:
    - signal: mem
      above: 90
      for: soon
      actions: [alert, explode]
"""


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_every_problem_names_file_line_column_and_field(tmp_path):
    path = write(tmp_path, "bad.yaml", BAD)
    lines = [str(p) for p in check_paths([path], syscall_known=KNOWN)]
    expected = [
        (7, 12, "spec.selector.names", "an empty list matches no container"),
        (9, 13, "spec.limits.memory", "expected a size like 64Mi"),
        (10, 5, "spec.limits.cpu", "unknown field 'cpu'"),
        (12, 23, "spec.syscalls[0].names[1]", "unknown syscall 'ptrase'"),
        (17, 20, "spec.network.egress.rules[0].action", "unknown egress action 'block'"),
        (17, 33, "spec.network.egress.rules[0].cidr", "did you mean 10.0.0.0/8"),
        (17, 53, "spec.network.egress.rules[0].ports[0]", "port 0 is not between 1 and 65535"),
        (17, 67, "spec.network.egress.rules[0].protocol", "unknown protocol 'icmp'"),
        (19, 15, "spec.thresholds[0].signal", "unknown signal 'mem'"),
        (21, 12, "spec.thresholds[0].for", "expected a duration"),
        (22, 24, "spec.thresholds[0].actions[1]", "unknown action 'explode'"),
    ]
    assert len(lines) == len(expected), "\n".join(lines)
    for line, (row, col, field, message) in zip(lines, expected):
        match = LINE.match(line)
        assert match, line
        assert match["file"] == path
        assert (int(match["line"]), int(match["col"]), match["path"]) == (row, col, field), line
        assert message in match["message"], line


def test_the_line_points_at_the_text_it_names(tmp_path):
    path = write(tmp_path, "bad.yaml", BAD)
    source = BAD.splitlines()
    problems = check_paths([path], syscall_known=KNOWN)
    assert problems
    for problem in problems:
        text = source[problem.line - 1][problem.col - 1:]
        leaf = problem.path.rsplit(".", 1)[-1].split("[")[0]
        assert text, problem
        # Unknown keys point at the key; other problems at the value, which follows its key.
        assert leaf in source[problem.line - 1] or problem.path.endswith("]"), str(problem)


def test_duplicate_policy_names_across_files(tmp_path):
    doc = "apiVersion: corral/v1\nkind: Policy\nmetadata:\n  name: {name}\nspec: {{}}\n"
    first = write(tmp_path, "a.yaml", doc.format(name="shared"))
    second = write(tmp_path, "b.yaml", "# comment\n" + doc.format(name="shared"))
    problems = check_paths([str(tmp_path)], syscall_known=KNOWN)
    assert [str(p) for p in problems] == [
        f"{second}:5:9: metadata.name: policy name 'shared' is already used at {first}:4:9"]


def test_duplicate_names_in_one_file_and_multiple_documents(tmp_path):
    text = ("apiVersion: corral/v1\nkind: Policy\nmetadata: {name: one}\nspec: {}\n---\n"
            "apiVersion: corral/v1\nkind: Policy\nmetadata: {name: one}\nspec: {mode: audit}\n---\n"
            "apiVersion: corral/v1\nkind: Policy\nmetadata: {name: two}\nspec: {mode: nope}\n")
    path = write(tmp_path, "multi.yaml", text)
    problems = [str(p) for p in check_paths([path], syscall_known=KNOWN)]
    assert problems == [
        f"{path}:8:18: metadata.name: policy name 'one' is already used at {path}:3:18",
        f"{path}:14:14: spec.mode: unknown mode 'nope' (expected one of: enforce, audit)",
    ]


def test_yaml_syntax_errors_and_duplicate_keys(tmp_path):
    broken = write(tmp_path, "broken.yaml", "apiVersion: corral/v1\nspec: [1\nkind: x\n")
    twice = write(tmp_path, "twice.yaml", "apiVersion: corral/v1\nkind: Policy\nmetadata: {name: t}\n"
                                          "spec:\n  mode: audit\n  mode: enforce\n")
    problems = check_paths([broken, twice], syscall_known=KNOWN)
    assert str(problems[0]).startswith(f"{broken}:3:5: (yaml): not valid YAML")
    assert str(problems[1]) == f"{twice}:6:3: spec.mode: field given twice in one mapping; YAML would keep only the last"


def test_missing_paths_and_non_policy_files_in_folders(tmp_path):
    (tmp_path / "README.md").write_text("not a policy")
    assert check_paths([str(tmp_path)], syscall_known=KNOWN) == []
    [problem] = check_paths([str(tmp_path / "nope.yaml")], syscall_known=KNOWN)
    assert str(problem) == f"{tmp_path / 'nope.yaml'}:1:1: (file): no such file or folder"


def test_a_file_with_any_problem_loads_no_policy():
    good_and_bad = ("apiVersion: corral/v1\nkind: Policy\nmetadata: {name: good}\nspec: {}\n---\n"
                    "apiVersion: corral/v1\nkind: Policy\nmetadata: {name: bad}\nspec: {mode: x}\n")
    loaded = load_text(good_and_bad, "f.yaml", KNOWN)
    assert not loaded.valid and loaded.policies == ()


# --- the shipped examples -------------------------------------------------------------------

EXAMPLES = sorted(POLICIES.glob("*.yaml"))


def test_there_are_examples():
    assert len(EXAMPLES) >= 3
    assert (POLICIES / "schema.json").exists()


def test_every_example_passes_check_with_this_hosts_syscall_table():
    assert [str(p) for p in check_paths([str(POLICIES)])] == []


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_validates_against_the_schema(path):
    schema = json.loads((POLICIES / "schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    assert documents
    for document in documents:
        errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]
        assert errors == []


def test_the_schema_rejects_what_check_rejects():
    validator = jsonschema.Draft202012Validator(json.loads((POLICIES / "schema.json").read_text()))
    base = {"apiVersion": "corral/v1", "kind": "Policy", "metadata": {"name": "p"}}
    for spec in ({"limits": {"memroy": "1Gi"}}, {"mode": "loud"},
                 {"thresholds": [{"signal": "nope", "above": 1}]},
                 {"network": {"egress": {"rules": [{"action": "deny", "cidr": "10.0.0.0/8", "ports": [0]}]}}},
                 {"selector": {"names": []}}, {"syscalls": [{"names": ["x"], "action": "deny", "extra": 1}]}):
        assert list(validator.iter_errors(dict(base, spec=spec))), spec


# --- the CLI --------------------------------------------------------------------------------

def test_cli_check_exits_1_and_prints_each_problem(tmp_path, capsys):
    path = write(tmp_path, "bad.yaml", BAD)
    assert main(["policy", "check", path]) == 1
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 11 and all(LINE.match(line) for line in lines)
    assert err == "11 problems in 1 file\n"


def test_cli_check_exits_0_with_a_summary(capsys):
    assert main(["policy", "check", str(POLICIES)]) == 0
    out, _ = capsys.readouterr()
    assert re.fullmatch(r"ok: \d+ policies in \d+ files\n", out)


def test_cli_check_json(tmp_path, capsys):
    path = write(tmp_path, "bad.yaml", "apiVersion: corral/v1\nkind: Policy\nmetadata: {name: x}\nspec: {mode: q}\n")
    assert main(["policy", "check", "--format", "json", path]) == 1
    [problem] = json.loads(capsys.readouterr().out)
    assert problem == {"file": path, "line": 4, "col": 14, "path": "spec.mode",
                       "message": "unknown mode 'q' (expected one of: enforce, audit)"}


def test_ls_says_whether_a_broken_file_has_a_version_in_force(capsys):
    import argparse

    from agent.cli.policy import list_policies

    class Client:
        def policies(self) -> dict:
            return {"policies": [{"name": "web", "mode": "enforce", "containers": [], "file": "/p/web.yaml",
                                  "commit": None, "modified": False}],
                    "problems": {"/p/web.yaml": ["/p/web.yaml:5:20: spec.limits.memory: expected a size"],
                                 "/p/new.yaml": ["/p/new.yaml:1:1: (file): empty file"]}}

    assert list_policies(argparse.Namespace(format="table"), Client()) == 0
    err = capsys.readouterr().err.splitlines()
    assert err == ["broken, never loaded: /p/new.yaml", "  /p/new.yaml:1:1: (file): empty file",
                   "broken, previous version kept: /p/web.yaml",
                   "  /p/web.yaml:5:20: spec.limits.memory: expected a size"]


def test_a_policy_holds_at_most_the_levels_the_kernel_checks_per_rate(tmp_path):
    rules = "".join(f"    - {{signal: syscalls_per_second, above: {n * 100}}}\n" for n in range(1, 10))
    rules += "    - {signal: syscalls_per_second, above: 800.5}\n"            # level 800 again: counted once
    rules += "".join(f"    - {{signal: syscalls_per_second, syscall: openat, above: {n}}}\n" for n in range(1, 9))
    path = write(tmp_path, "levels.yaml", "apiVersion: corral/v1\nkind: Policy\nmetadata: {name: levels}\n"
                                          f"spec:\n  thresholds:\n{rules}")
    problems = check_paths([path], syscall_known=KNOWN)
    assert [(p.path, p.message) for p in problems] == [
        ("spec.thresholds[8].above", "the kernel checks at most 8 levels of syscalls_per_second per container; "
                                     "this is level 9 of it in this policy (rules with the same level count once)")]
