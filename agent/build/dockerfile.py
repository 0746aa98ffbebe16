"""Reading a Dockerfile: lines into instructions, instructions into stages.

What docker's parser does that people rely on: `#` comments (only at the start of a line), the
`# escape=` and `# syntax=` directives before the first instruction, line continuations with the
escape character (comment lines inside a continued instruction are dropped), the exec form (a
JSON list) beside the shell form, `--flag=value` options of FROM, COPY, ADD, RUN and HEALTHCHECK,
and `FROM image AS name`. Every error names the file, the line and the instruction.

Variables (`$X`, `${X}`, `${X:-default}`, `${X:+alt}`) are expanded by `expand`, which the
builder calls with the ARG and ENV values in scope at each instruction (RUN is left to the
shell, as docker does).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from agent.errors import InvalidArgument

KEYWORDS = ("FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT",
            "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL")
_FLAGGED = {"FROM": ("platform",), "COPY": ("from", "chown", "chmod", "link", "parents", "exclude"),
            "ADD": ("chown", "chmod", "link", "checksum", "keep-git-dir", "exclude"),
            "RUN": ("mount", "network", "security"),
            "HEALTHCHECK": ("interval", "timeout", "start-period", "start-interval", "retries")}
_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9_]*)\s*=\s*(.+?)\s*$")
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?:(:[-+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


@dataclass(frozen=True)
class Instruction:
    keyword: str                  # upper case
    arguments: str                # the text after the keyword and its flags
    line: int                     # where it starts, 1-based
    flags: dict[str, str] = field(default_factory=dict)
    original: str = ""            # as written (one line), for the build's output and cache keys

    @property
    def exec_form(self) -> list[str] | None:
        """The JSON list form's items, or None for the shell form."""
        return json_list(self.arguments)


@dataclass
class Stage:
    base: str                     # FROM's image (before ARG expansion)
    name: str                     # AS name, or its index as text
    index: int
    line: int
    platform: str = ""
    instructions: list[Instruction] = field(default_factory=list)


@dataclass
class Dockerfile:
    path: str
    global_args: list[Instruction]    # the ARGs before the first FROM
    stages: list[Stage]

    def stage(self, target: str) -> int:
        """The index of the stage named `target` (for --target)."""
        for stage in self.stages:
            if stage.name == target:
                return stage.index
        raise InvalidArgument(f"target stage {target!r} is not in {self.path}",
                              hint="stages: " + ", ".join(stage.name for stage in self.stages))


def json_list(text: str) -> list[str] | None:
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    return None


def parse(text: str, path: str = "Dockerfile") -> Dockerfile:
    escape = "\\"
    lines = text.splitlines()
    start = 0
    for start, raw in enumerate(lines):           # directives: only before anything else
        found = _DIRECTIVE.match(raw.strip())
        if not found:
            break
        if found.group(1).lower() == "escape":
            if found.group(2) not in ("\\", "`"):
                raise InvalidArgument(f"{path}:{start + 1}: escape directive must be \\ or `, got {found.group(2)!r}")
            escape = found.group(2)
    else:
        start = len(lines)
    instructions = [_instruction(path, number, logical, escape) for number, logical in _logical_lines(lines, start, escape)]
    return _stages(path, instructions)


def _logical_lines(lines: list[str], start: int, escape: str) -> list[tuple[int, str]]:
    """(first line number, joined text) of each instruction."""
    result: list[tuple[int, str]] = []
    pending: list[str] = []
    first = 0
    for index in range(start, len(lines)):
        raw = lines[index]
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and (stripped.startswith("#") or not stripped):
            continue                  # comments and blank lines inside a continuation are dropped
        if not pending:
            first = index + 1
        if raw.rstrip().endswith(escape):
            pending.append(raw.rstrip()[:-1])
            continue
        pending.append(raw)
        result.append((first, " ".join(part.strip() for part in pending).strip()))
        pending = []
    if pending:
        result.append((first, " ".join(part.strip() for part in pending).strip()))
    return result


def _instruction(path: str, number: int, text: str, escape: str) -> Instruction:
    keyword, _, rest = text.partition(" ")
    keyword = keyword.upper()
    where = f"{path}:{number}: {keyword}"
    if keyword not in KEYWORDS:
        raise InvalidArgument(f"{path}:{number}: unknown instruction {text.split()[0]!r}",
                              hint="Dockerfile instructions: " + ", ".join(KEYWORDS))
    rest = rest.strip()
    flags: dict[str, str] = {}
    allowed = _FLAGGED.get(keyword, ())
    while rest.startswith("--"):
        word, _, rest = rest.partition(" ")
        rest = rest.strip()
        name, has_value, value = word[2:].partition("=")
        if name not in allowed:
            raise InvalidArgument(f"{where}: unknown flag --{name}"
                                  + (f" (known: {', '.join('--' + a for a in allowed)})" if allowed else ""))
        flags[name] = value if has_value else "true"
    if not rest and keyword not in ("HEALTHCHECK",):
        raise InvalidArgument(f"{where} needs arguments")
    return Instruction(keyword, rest, number, flags, original=f"{keyword} " + " ".join(
        [f"--{k}={v}" for k, v in flags.items()] + [rest]))


def _stages(path: str, instructions: list[Instruction]) -> Dockerfile:
    global_args: list[Instruction] = []
    stages: list[Stage] = []
    for item in instructions:
        if item.keyword == "FROM":
            words = item.arguments.split()
            if len(words) == 3 and words[1].lower() == "as":
                name = words[2].lower()
                if any(stage.name == name for stage in stages):
                    raise InvalidArgument(f"{path}:{item.line}: FROM: stage name {name!r} is used twice")
            elif len(words) == 1:
                name = str(len(stages))
            else:
                raise InvalidArgument(f"{path}:{item.line}: FROM: expected IMAGE [AS NAME], got {item.arguments!r}")
            stages.append(Stage(words[0], name, len(stages), item.line, item.flags.get("platform", "")))
        elif not stages:
            if item.keyword != "ARG":
                raise InvalidArgument(f"{path}:{item.line}: {item.keyword} before the first FROM",
                                      hint="a Dockerfile starts with FROM (only ARG may come before it)")
            global_args.append(item)
        else:
            stages[-1].instructions.append(item)
    if not stages:
        raise InvalidArgument(f"{path}: no FROM instruction", hint="a Dockerfile starts with FROM IMAGE")
    return Dockerfile(path, global_args, stages)


def expand(text: str, values: dict[str, str], where: str) -> str:
    """Docker's variable substitution: $X, ${X}, ${X:-default}, ${X:+alternative}; \\$ is a $."""
    def replace(found: re.Match[str]) -> str:
        name = found.group(1) or found.group(4)
        operator, word = found.group(2), found.group(3) or ""
        value = values.get(name)
        if operator == ":-":
            return value if value else word
        if operator == ":+":
            return word if value else ""
        return value or ""
    parts = text.split("\\$")
    return "$".join(_VARIABLE.sub(replace, part) for part in parts)


def key_values(text: str, where: str) -> list[tuple[str, str]]:
    """ENV/ARG/LABEL pairs: `K=V K2="v 2"`, or ENV's old `K value` form (one pair)."""
    import shlex
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise InvalidArgument(f"{where}: {exc}") from None
    if words and "=" not in words[0]:
        key, _, value = text.partition(" ")
        return [(key, value.strip())]
    pairs = []
    for word in words:
        key, _, value = word.partition("=")
        if not key:
            raise InvalidArgument(f"{where}: {word!r} has no name")
        pairs.append((key, value))
    return pairs
