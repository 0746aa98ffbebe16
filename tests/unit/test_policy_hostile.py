"""Hostile policy files (tests/data/hostile-policies, and huge ones made here) through the real
`corral policy check`: each is refused with exit 1, every line `file:line:col: path: message`,
the intended reason among them, never a traceback, and within 2 s (a subprocess timeout: a
file that stalls the checker fails the test; how fast it is belongs to bench/)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[1] / "data" / "hostile-policies"
CORRAL = str(Path(sys.executable).parent / "corral")
LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+):(?P<col>\d+): (?P<path>\S+): (?P<message>.+)$")
TIMEOUT = 2.0

# file -> what it must be refused for (a substring of one of its problems)
REASONS = {
    "bad-cidrs.yaml": "has host bits set; did you mean 10.0.0.0/8?",
    "bad-durations.yaml": "expected a duration like 10s",
    "bad-int-literal.yaml": "not a valid int",
    "bad-names.yaml": "rule name 'twice' is used twice in this policy",
    "bad-ports.yaml": "port 65536 is not between 1 and 65535",
    "bad-selectors-empty.yaml": "an empty list matches no container",
    "bad-selectors.yaml": "can never match a container name",
    "bad-signals.yaml": "signal is only used by action: kill",
    "bad-sizes.yaml": "is below the minimum of 4Mi",
    "bad-syscalls.yaml": "unknown syscall 'ptrase' on this architecture (did you mean ptrace",
    "bad-thresholds.yaml": "a percentage of the limit is at most 100",
    "billion-laughs-in-spec.yaml": "billion laughs",
    "billion-laughs.yaml": "billion laughs",
    "binary.yaml": "binary file",
    "comments-only.yaml": "no policy document in the file",
    "complex-key.yaml": "a mapping key must be a scalar",
    "control-characters.yaml": "control characters are not allowed",
    "custom-tag.yaml": "tag !corral is not allowed",
    "deep-nesting-lists.yaml": "nested deeper than 32 levels",
    "deep-nesting-mappings.yaml": "nested deeper than 32 levels",
    "duplicate-keys.yaml": "field given twice in one mapping",
    "duplicate-policy-names.yaml": "policy name 'hostile' is already used",
    "empty.yaml": "empty file",
    "gzip.yaml": "binary file",
    "huge-numbers.yaml": "between 1 and 4194304",
    "latin1.yaml": "not UTF-8 text (byte 0xe9)",
    "long-strings.yaml": "...",
    "merge-key.yaml": "unknown field '<<'",
    "missing-everything.yaml": "missing required field 'spec'",
    "multi-document-one-bad.yaml": "unknown mode 'loud'",
    "multi-document-syntax-later.yaml": "not valid YAML",
    "nulls-everywhere.yaml": "spec.limits: expected a mapping with memory, cpus, pids, killOrder, got nothing",
    "python-object-tag.yaml": "python/object/apply:os.system is not allowed",
    "recursive-anchor-mapping.yaml": "recursive anchor",
    "recursive-anchor.yaml": "recursive anchor",
    "separators-only.yaml": "no policy document in the file",
    "set-tag.yaml": "tag tag:yaml.org,2002:set is not allowed",
    "syntax-bad-indent.yaml": "not valid YAML",
    "syntax-tabs.yaml": "not valid YAML",
    "syntax-unclosed-flow.yaml": "not valid YAML",
    "timestamps-and-binary.yaml": "expected text, got datetime.date(2024, 1, 1)",
    "too-many-aliases.yaml": "more than 100 aliases",
    "too-many-documents.yaml": "more than 100 documents",
    "top-level-list.yaml": "expected a mapping with apiVersion, kind, metadata, spec, got a list",
    "top-level-scalar.yaml": "expected a mapping with apiVersion, kind, metadata, spec, got 'policy'",
    "truncated-after-key.yaml": "spec.limits: expected a mapping",
    "truncated-mid-flow.yaml": "not valid YAML",
    "truncated-mid-value.yaml": "below the minimum of 4Mi",
    "undefined-alias.yaml": "alias *nowhere names no anchor",
    "unknown-keys.yaml": "unknown field 'memroy' (known: memory, cpus, pids, killOrder)",
    "utf16.yaml": "binary file",
    "whitespace-only.yaml": "empty file",
    "wrong-header.yaml": "expected 'corral/v1', got 'corral/v2'",
    "wrong-types-egress-rule.yaml": "spec.network.egress.rules[0].protocol: expected one of tcp, udp, got 6",
    "wrong-types-egress.yaml": "spec.network.egress.rules: expected a list of egress rules, got a mapping",
    "wrong-types-limits.yaml": "spec.limits.pids: expected a whole number of processes between 1 and 4194304, got True",
    "wrong-types-metadata.yaml": "metadata.name: expected text, got a list",
    "wrong-types-mode.yaml": "spec.mode: expected one of enforce, audit, got True",
    "wrong-types-network.yaml": "spec.network.egress: expected a mapping with default, rules, got a list",
    "wrong-types-selector.yaml": "spec.selector.labels: expected a mapping of label: value, got a list",
    "wrong-types-spec.yaml": "spec: expected a mapping with selector",
    "wrong-types-syscall-rule.yaml": "spec.syscalls[1]: expected a mapping with names, action, signal, name, got 'ptrace'",
    "wrong-types-syscalls.yaml": "spec.syscalls: expected a list of syscall rules, got a mapping",
    "wrong-types-thresholds.yaml": "spec.thresholds[0].for: expected a duration like 10s, 500ms or 5m, got a mapping",
}
HEADER = "apiVersion: corral/v1\nkind: Policy\nmetadata:\n  name: hostile\n"


def check(path: Path, *extra: str) -> tuple[list[str], str]:
    """`corral policy check PATH`: its problem lines and stderr; asserts exit 1 within 2 s."""
    result = subprocess.run([CORRAL, "policy", "check", *extra, str(path)], capture_output=True, check=False,
                            timeout=TIMEOUT)
    out, err = result.stdout.decode(), result.stderr.decode()
    assert result.returncode == 1, f"exit {result.returncode}\n{out}\n{err}"
    assert "Traceback" not in err and "internal error" not in err, err
    lines = out.splitlines()
    assert lines, err
    for line in lines:
        match = LINE.match(line)
        assert match and match["file"] == str(path), line
    assert re.fullmatch(rf"{len(lines)} problems? in 1 file\n", err), err
    return lines, err


def test_the_corpus_is_what_the_reasons_list():
    files = sorted(p.name for p in CORPUS.iterdir())
    assert files == sorted(REASONS)
    assert len(files) >= 40


@pytest.mark.parametrize("name", sorted(REASONS))
def test_each_hostile_file_is_refused_with_its_place_and_reason(name):
    lines, _ = check(CORPUS / name)
    assert any(REASONS[name] in line for line in lines), "\n".join(lines)


def test_the_corpus_as_a_folder(tmp_path):
    """All of them at once (as in a policy folder): every file reported, none stops the others."""
    result = subprocess.run([CORRAL, "policy", "check", str(CORPUS)], capture_output=True, check=False,
                            timeout=10 * TIMEOUT)
    assert result.returncode == 1
    reported = {Path(LINE.match(line)["file"]).name for line in result.stdout.decode().splitlines()}
    assert reported == set(REASONS)


# --- huge files, made here rather than committed -------------------------------------------

def test_a_5_mb_file_is_refused_for_its_size_without_being_read(tmp_path):
    path = tmp_path / "huge.yaml"
    with open(path, "w") as handle:
        handle.write(HEADER + "spec:\n  syscalls:\n    - action: alert\n      names:\n")
        handle.write("        - ptrace\n" * (5 * 1024 * 1024 // 17))
    [line], _ = check(path)
    assert line == f"{path}:1:1: (file): file is larger than the limit of 1 MiB (--policy-max-size)"


def test_one_byte_over_the_limit_and_the_limit_is_a_flag(tmp_path):
    path = tmp_path / "over.yaml"
    text = HEADER + "spec: {}\n"
    path.write_text(text + "#" * (1024 * 1024 - len(text)) + "\n")      # 1 MiB + 1
    [line], _ = check(path)
    assert "larger than the limit of 1 MiB" in line
    ok = subprocess.run([CORRAL, "policy", "check", "--max-size", "2Mi", str(path)], capture_output=True, check=False,
                        timeout=TIMEOUT)
    assert ok.returncode == 0 and ok.stdout.decode() == "ok: 1 policy in 1 file\n"


def test_a_file_under_the_size_limit_with_too_many_nodes(tmp_path):
    path = tmp_path / "many.yaml"
    path.write_text(HEADER + "spec:\n  syscalls:\n    - action: alert\n      names: ["
                    + ", ".join(["ptrace"] * 100_000) + "]\n")
    assert path.stat().st_size < 1024 * 1024
    [line], _ = check(path)
    assert "more than 20000 YAML nodes in one file" in line


def test_a_one_megabyte_line(tmp_path):
    path = tmp_path / "line.yaml"
    path.write_text(HEADER + "  description: " + "x" * (1024 * 1024 - 100) + "\nspec: {}\n")
    lines, _ = check(path)
    assert any("metadata.description: expected text, got 'xxx" in line for line in lines)


# --- files that are not files ---------------------------------------------------------------

@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_fifo_or_a_device_named_yaml_is_refused_without_blocking(tmp_path, kind):
    import os
    path = tmp_path / "trap.yaml"
    if kind == "fifo":
        os.mkfifo(path)                  # opening it for reading would wait for a writer
    else:
        path.symlink_to("/dev/zero")     # reading it would never end
    [line], _ = check(path)
    assert line == f"{path}:1:1: (file): cannot read: not a regular file"


def test_a_fifo_in_a_policy_folder_does_not_stall_the_library(tmp_path):
    import os

    from agent.policy.library import PolicyLibrary
    os.mkfifo(tmp_path / "a-trap.yaml")
    (tmp_path / "b.yaml").write_text(HEADER + "spec: {}\n")
    library = PolicyLibrary(str(tmp_path), syscall_known=lambda name: True)
    assert library.reload().loaded == (str(tmp_path / "b.yaml"),)
    assert [p.name for p in library.policies()] == ["hostile"]
