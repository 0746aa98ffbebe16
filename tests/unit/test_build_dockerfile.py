"""Dockerfile parsing, variable expansion, .dockerignore and config steps: pure logic."""
from __future__ import annotations

import pytest

from agent.build import config_steps, dockerfile
from agent.build.context import Context
from agent.errors import InvalidArgument
from agent.images.model import ImageConfig


def test_parse_joins_continuations_skips_comments_and_splits_stages():
    parsed = dockerfile.parse("# syntax=docker/dockerfile:1\nARG V=1\nFROM busybox:$V AS Build\n"
                              "RUN echo a \\\n  # a comment inside\n  && echo b\n\n"
                              "COPY --from=build --chown=1:2 /x /y\nFROM scratch\nCMD [\"/x\"]\n")
    assert [a.arguments for a in parsed.global_args] == ["V=1"]
    assert [(s.name, s.base, s.line) for s in parsed.stages] == [("build", "busybox:$V", 3), ("1", "scratch", 9)]
    run, copy = parsed.stages[0].instructions
    assert run.arguments == "echo a && echo b" and run.line == 4
    assert copy.flags == {"from": "build", "chown": "1:2"} and copy.arguments == "/x /y"
    assert parsed.stages[1].instructions[0].exec_form == ["/x"]
    assert parsed.stage("build") == 0


def test_escape_directive_changes_the_continuation_character():
    parsed = dockerfile.parse("# escape=`\nFROM busybox\nRUN echo a `\n b\n")
    assert parsed.stages[0].instructions[0].arguments == "echo a b"


@pytest.mark.parametrize("text, message", [
    ("FROM busybox\nFOO bar\n", "Dockerfile:2: unknown instruction 'FOO'"),
    ("RUN x\n", "Dockerfile:1: RUN before the first FROM"),
    ("ARG X\n", "no FROM instruction"),
    ("FROM a AS x\nFROM b AS x\n", "stage name 'x' is used twice"),
    ("FROM busybox\nCOPY --bogus=1 a b\n", "unknown flag --bogus"),
    ("FROM a b c d\n", "expected IMAGE [AS NAME]"),
    ("# escape=x\nFROM a\n", "escape directive"),
])
def test_parse_errors_name_file_and_line(text, message):
    with pytest.raises(InvalidArgument, match=message.replace("[", r"\[").replace("]", r"\]")):
        dockerfile.parse(text)


def test_unknown_target_lists_the_stages():
    with pytest.raises(InvalidArgument, match="not in Dockerfile") as caught:
        dockerfile.parse("FROM a AS one\n").stage("two")
    assert "one" in caught.value.hint


@pytest.mark.parametrize("text, expected", [
    ("$A/${B}", "1/2"), ("${MISSING:-dflt}", "dflt"), ("${A:+alt}", "alt"), ("${MISSING:+alt}", ""),
    ("\\$A", "$A"), ("$MISSING.", "."),
])
def test_expand_follows_docker(text, expected):
    assert dockerfile.expand(text, {"A": "1", "B": "2"}, "here") == expected


def test_key_values_both_forms():
    assert dockerfile.key_values('A=1 B="two words"', "ENV") == [("A", "1"), ("B", "two words")]
    assert dockerfile.key_values("A the rest", "ENV") == [("A", "the rest")]


def test_dockerignore_patterns_exceptions_and_directories(tmp_path):
    for name in ("a.log", "keep.log", "sub/b.log", "sub/deep/c.txt", "docs/x.md", "src/main.c"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    (tmp_path / ".dockerignore").write_text("# comment\n*.log\n!keep.log\n**/*.txt\ndocs\n")
    context = Context(tmp_path)
    assert context.ignored("a.log") and not context.ignored("keep.log")
    assert not context.ignored("sub/b.log")            # `*.log` is anchored at the context's root
    assert context.ignored("sub/deep/c.txt") and context.ignored("docs/x.md")
    assert context.walk() == [".dockerignore", "keep.log", "src", "src/main.c", "sub", "sub/b.log", "sub/deep"]
    assert context.sources(["src/*.c", "keep.log"], "COPY") == ["src/main.c", "keep.log"]
    with pytest.raises(InvalidArgument, match="leaves it out"):
        context.sources(["a.log"], "COPY")
    with pytest.raises(InvalidArgument, match="no file in the context matches"):
        context.sources(["*.rs"], "COPY")
    with pytest.raises(InvalidArgument, match="not in the build context"):
        context.sources(["../../etc/passwd"], "COPY")      # clamped to the context's root, never above
    digest = context.digest(["src"])
    (tmp_path / "src" / "main.c").write_text("changed")
    assert context.digest(["src"]) != digest


def test_config_steps_and_healthcheck():
    config = ImageConfig(env=["PATH=/bin"])
    parsed = dockerfile.parse("FROM x\nENV A=${B:-b}\nHEALTHCHECK --interval=1m30s --timeout=500ms --retries=3 "
                              "CMD [\"true\"]\nMAINTAINER me\nSTOPSIGNAL $SIG\n")
    for item in parsed.stages[0].instructions:
        config = config_steps.apply(config, item, {"SIG": "SIGINT"}, "here")
    assert "A=b" in config.env and config.labels == {"maintainer": "me"} and config.stop_signal == "SIGINT"
    assert config.healthcheck == {"Test": ["CMD", "true"], "Interval": 90_000_000_000, "Timeout": 500_000_000,
                                  "Retries": 3}
    none = dockerfile.parse("FROM x\nHEALTHCHECK NONE\n").stages[0].instructions[0]
    assert config_steps.healthcheck(none, "here") == {"Test": ["NONE"]}
    with pytest.raises(InvalidArgument, match="is not a duration"):
        config_steps.duration_ns("5 seconds", "here")
