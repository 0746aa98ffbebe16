"""The safe YAML reader of policy files: limits refused at the event that crosses them, every
refusal located, bytes that are not a policy refused before parsing."""
from __future__ import annotations

import pytest

from agent.policy.yaml_source import (
    Mark,
    SyntaxProblem,
    YamlLimits,
    decode,
    load_documents,
)

LIMITS = YamlLimits(max_depth=8, max_documents=3, max_aliases=4, max_nodes=200)


def refusal(text: str, limits: YamlLimits = LIMITS) -> SyntaxProblem:
    documents, problem = load_documents(text, "f.yaml", limits)
    assert problem is not None, documents
    return problem


def laughs(levels: int, width: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def test_a_billion_laughs_is_refused_by_its_expanded_size():
    problem = refusal(laughs(10), YamlLimits())
    assert "more than 20000 YAML nodes" in problem.message and "billion laughs" in problem.message
    assert problem.mark.line == 5          # 9 + 81 + 729 + 6561 + 59049 > 20000: at a4


def test_aliases_within_the_limits_are_shared_not_copied():
    [doc], problem = load_documents("a: &x [1, 2]\nb: *x\n", "f.yaml", LIMITS)
    assert problem is None
    assert doc.data == {"a": [1, 2], "b": [1, 2]} and doc.data["a"] is doc.data["b"]
    assert doc.where(("b", 1)) == Mark(2, 4)          # inside an alias: at the alias


def test_too_many_aliases():
    text = "a: &x 1\nb: [" + ", ".join(["*x"] * 5) + "]\n"
    assert "more than 4 aliases" in refusal(text).message


@pytest.mark.parametrize("text, mark", [
    ("a: &x [*x]\n", Mark(1, 8)),
    ("a: &x {b: [1, {c: *x}]}\n", Mark(1, 19)),
])
def test_recursive_anchors_are_refused(text, mark):
    problem = refusal(text)
    assert problem.message == "recursive anchor: alias *x inside its own anchor" and problem.mark == mark


def test_an_alias_to_nothing():
    assert "names no anchor" in refusal("a: *nope\n").message


def test_depth_is_counted_without_recursion():
    problem = refusal("a: " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert problem.message == "nested deeper than 8 levels" and problem.mark == Mark(1, 11)
    assert load_documents("a: " + "[" * 7 + "]" * 7 + "\n", "f.yaml", LIMITS)[1] is None


def test_document_count():
    problem = refusal("a: 1\n---\nb: 2\n---\nc: 3\n---\nd: 4\n")
    assert problem.message == "more than 3 documents in one file" and problem.mark.line == 6   # its `---`


@pytest.mark.parametrize("text, message", [
    ("a: !!python/object:os.system {}\n", "tag tag:yaml.org,2002:python/object:os.system is not allowed"),
    ("a: !!set {x}\n", "is not allowed"),
    ("a: !custom 1\n", "tag !custom is not allowed"),
    ("? [1, 2]\n: x\n", "a mapping key must be a scalar"),
    ("a: !!int nope\n", "not a valid int"),
])
def test_tags_and_keys_policies_do_not_use(text, message):
    assert message in refusal(text).message


def test_yaml_types_are_the_ones_users_expect():
    [doc], _ = load_documents("a: 10\nb: yes\nc: 1.5\nd: ~\ne: '10'\n<<: {x: 1}\n", "f.yaml", LIMITS)
    assert doc.data == {"a": 10, "b": True, "c": 1.5, "d": None, "e": "10", "<<": {"x": 1}}


def test_duplicate_keys_are_recorded_at_the_second_key():
    [doc], _ = load_documents("a: 1\nb: 2\na: 3\n", "f.yaml", LIMITS)
    assert doc.duplicates == [(("a",), Mark(3, 1))]


def test_the_time_budget_is_checked_while_composing():
    ticks = iter(range(10_000))
    text = "a: [" + ", ".join(["1"] * 1000) + "]\n"
    _, problem = load_documents(text, "f.yaml", YamlLimits(max_nodes=10_000, time_budget=2.0),
                                clock=lambda: float(next(ticks)))
    assert problem is not None and "budget" in problem.message


@pytest.mark.parametrize("raw, mark, message", [
    (b"", Mark(1, 1), "empty file"),
    (b"  \n\n\t\n", Mark(1, 1), "empty file"),
    (b"a: 1\nb: \x00\x01\x02", Mark(2, 4), "binary file"),
    (b"a: 1\nbb: caf\xe9\n", Mark(2, 8), "not UTF-8 text (byte 0xe9)"),
    (b"x" * 101, Mark(1, 1), "larger than the limit of 100 bytes"),
])
def test_bytes_that_are_not_a_policy_file(raw, mark, message):
    problem = decode(raw, "f.yaml", YamlLimits(max_bytes=100))
    assert isinstance(problem, SyntaxProblem)
    assert problem.mark == mark and message in problem.message


def test_decode_passes_text():
    assert decode("a: é\n".encode(), "f.yaml") == "a: é\n"


def test_text_over_the_size_limit_is_refused_without_parsing():
    _, problem = load_documents("a: 1\n" * 100, "f.yaml", YamlLimits(max_bytes=64))
    assert problem is not None and "larger than the limit" in problem.message
