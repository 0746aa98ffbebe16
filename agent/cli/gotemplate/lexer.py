"""Template text to tokens, as Go's text/template/parse lexer cuts it.

Outside actions everything is TEXT. `{{- ` trims the whitespace before an action and ` -}}`
the whitespace after it; `{{/* ... */}}` is a comment. Inside an action: fields (`.Name`),
variables (`$`, `$x`), strings ("...", `...`), characters ('a'), numbers, identifiers
(functions and keywords), `|`, `(`, `)`, `,`, `:=` and `=`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from agent.errors import InvalidArgument

KEYWORDS = frozenset({"if", "else", "end", "range", "with", "define", "template", "block",
                      "break", "continue", "nil", "true", "false"})
LEFT, RIGHT = "{{", "}}"
_NUMBER = re.compile(r"[+-]?(0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|"
                     r"([0-9][0-9_]*)?\.?[0-9_]+([eE][+-]?[0-9_]+)?)(i)?")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SPACE = " \t\r\n"


class TemplateError(InvalidArgument):
    """A template that cannot be parsed or run; the message names `line:column`."""


@dataclass(frozen=True)
class Token:
    kind: str        # text, left, right, field, variable, string, raw, char, number, identifier,
                     # keyword, pipe, open, close, comma, declare, assign, dot, eof
    value: str
    pos: int         # offset in the template text


def position(text: str, pos: int) -> str:
    """`line:column` (both from 1) of an offset, as Go's errors name it."""
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return f"{line}:{column}"


def fail(text: str, pos: int, message: str) -> TemplateError:
    return TemplateError(f"template: {position(text, pos)}: {message}",
                         hint="the --format language is Go's text/template, as docker's")


def tokens(text: str) -> list[Token]:
    """Every token of `text`, ending with an eof token."""
    out: list[Token] = []
    pos = 0
    trim_next = False
    while pos < len(text):
        start = text.find(LEFT, pos)
        end = len(text) if start < 0 else start
        chunk = text[pos:end]
        trim_before = start >= 0 and text[start + 2:start + 3] == "-" and text[start + 3:start + 4] in tuple(_SPACE)
        if trim_next:
            chunk = chunk.lstrip(_SPACE)
        if trim_before:
            chunk = chunk.rstrip(_SPACE)
        if chunk:
            out.append(Token("text", chunk, pos))
        if start < 0:
            break
        pos, trim_next = _action(text, start, trim_before, out)
    out.append(Token("eof", "", len(text)))
    return out


def _action(text: str, start: int, trimmed: bool, out: list[Token]) -> tuple[int, bool]:
    """Tokens of the action at `start`; the offset after it and whether it trims what follows."""
    pos = start + 2 + (2 if trimmed else 0)
    if text.startswith("/*", pos):
        close = text.find("*/", pos + 2)
        if close < 0:
            raise fail(text, start, "unclosed comment")
        pos = close + 2
        trim_after = text.startswith(" -}}", pos)
        if not (trim_after or text.startswith(RIGHT, pos)):
            raise fail(text, start, "comment ends before closing delimiter")
        return pos + (4 if trim_after else 2), trim_after
    out.append(Token("left", LEFT, start))
    depth = 0
    while True:
        if pos >= len(text):
            raise fail(text, start, "unclosed action")
        char = text[pos]
        if text.startswith(" -}}", pos) or text.startswith("\t-}}", pos) or text.startswith("\n-}}", pos):
            if depth:
                raise fail(text, pos, "unclosed left paren")
            out.append(Token("right", RIGHT, pos))
            return pos + 4, True
        if text.startswith(RIGHT, pos):
            if depth:
                raise fail(text, pos, "unclosed left paren")
            out.append(Token("right", RIGHT, pos))
            return pos + 2, False
        if char in _SPACE:
            pos += 1
        elif char in "|,":
            out.append(Token("pipe" if char == "|" else "comma", char, pos))
            pos += 1
        elif char == "(":
            depth += 1
            out.append(Token("open", char, pos))
            pos += 1
        elif char == ")":
            if not depth:
                raise fail(text, pos, "unexpected right paren")
            depth -= 1
            out.append(Token("close", char, pos))
            pos += 1
        elif text.startswith(":=", pos):
            out.append(Token("declare", ":=", pos))
            pos += 2
        elif char == "=":
            out.append(Token("assign", "=", pos))
            pos += 1
        elif char in "\"`'":
            pos = _quoted(text, pos, out)
        elif char == "$":
            match = _IDENTIFIER.match(text, pos + 1)
            name = "$" + (match.group() if match else "")
            out.append(Token("variable", name, pos))
            pos += len(name)
        elif char == "." and not text[pos + 1:pos + 2].isdigit():
            match = _IDENTIFIER.match(text, pos + 1)
            if match:
                out.append(Token("field", "." + match.group(), pos))
                pos = match.end()
            else:
                out.append(Token("dot", ".", pos))
                pos += 1
        elif char.isdigit() or (char in "+-." and text[pos + 1:pos + 2].isdigit()):
            number = _NUMBER.match(text, pos)
            if not number or (number.end() < len(text) and text[number.end()].isalnum()):
                raise fail(text, pos, f"bad number syntax: {text[pos:pos + 10]!r}")
            out.append(Token("number", number.group(), pos))
            pos = number.end()
        elif char.isalpha() or char == "_":
            word = _IDENTIFIER.match(text, pos)
            assert word is not None
            out.append(Token("keyword" if word.group() in KEYWORDS else "identifier", word.group(), pos))
            pos = word.end()
        else:
            raise fail(text, pos, f"unexpected {char!r} in command")


def _quoted(text: str, pos: int, out: list[Token]) -> int:
    quote = text[pos]
    index = pos + 1
    while index < len(text):
        char = text[index]
        if char == "\\" and quote != "`":
            index += 2
            continue
        if char == "\n" and quote != "`":
            break
        if char == quote:
            kind = {"\"": "string", "`": "raw", "'": "char"}[quote]
            out.append(Token(kind, text[pos:index + 1], pos))
            return index + 1
        index += 1
    raise fail(text, pos, "unterminated quoted string" if quote != "'" else "unterminated character constant")
