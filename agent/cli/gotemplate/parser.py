"""Tokens to a tree, with Go's grammar: text and actions; `if`/`else if`/`else`/`end`,
`range` (with `$i, $e :=`), `with`, `break`, `continue`; pipelines of commands joined by `|`,
each a function or a value followed by arguments; `$x := ...` and `$x = ...`.

`define`, `template` and `block` (named templates) are refused by name: one `--format` is
one template.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from agent.cli.gotemplate.lexer import TemplateError, Token, fail, tokens


@dataclass(frozen=True)
class Node:
    pos: int


@dataclass(frozen=True)
class Text(Node):
    text: str


@dataclass(frozen=True)
class Literal(Node):
    value: object            # str, int, float, bool or None (nil)


@dataclass(frozen=True)
class Dot(Node):
    pass


@dataclass(frozen=True)
class Field(Node):
    names: tuple[str, ...]   # .A.B -> ("A", "B")


@dataclass(frozen=True)
class Variable(Node):
    name: str                # "$" or "$x"
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Function(Node):
    name: str


@dataclass(frozen=True)
class Chain(Node):
    node: Node               # (pipeline).A.B
    names: tuple[str, ...]


@dataclass(frozen=True)
class Command(Node):
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Pipeline(Node):
    commands: tuple[Command, ...]
    variables: tuple[str, ...] = ()
    assign: bool = False     # `=` rather than `:=`


@dataclass(frozen=True)
class Action(Node):
    pipeline: Pipeline


@dataclass(frozen=True)
class Branch(Node):
    kind: str                # if, range, with
    pipeline: Pipeline
    body: tuple[Node, ...]
    otherwise: tuple[Node, ...] = ()


@dataclass(frozen=True)
class Loop(Node):
    kind: str                # break, continue


@dataclass
class Template:
    text: str
    nodes: tuple[Node, ...] = field(default_factory=tuple)


def parse(text: str) -> Template:
    parser = _Parser(text, tokens(text))
    nodes, end = parser.list(())
    if end is not None:
        raise fail(text, end.pos, f"unexpected {{{{{end.value}}}}}")
    return Template(text, nodes)


_OCTAL = re.compile(r"^[+-]?0[0-7_]+$")
_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
            "\\": "\\", "'": "'", '"': '"'}


class _Parser:
    def __init__(self, text: str, items: list[Token]) -> None:
        self.text = text
        self.items = items
        self.index = 0
        self.range_depth = 0

    def peek(self, offset: int = 0) -> Token:
        return self.items[min(self.index + offset, len(self.items) - 1)]

    def next(self) -> Token:
        token = self.peek()
        self.index += 1
        return token

    def error(self, token: Token, message: str) -> TemplateError:
        return fail(self.text, token.pos, message)

    def expect(self, kind: str, context: str) -> Token:
        token = self.next()
        if token.kind != kind:
            raise self.error(token, f"unexpected {_shown(token)} in {context}")
        return token

    def list(self, stops: tuple[str, ...]) -> tuple[tuple[Node, ...], Token | None]:
        """Nodes up to one of the keywords `stops` (end, else); returns them and that keyword."""
        nodes: list[Node] = []
        while True:
            token = self.next()
            if token.kind == "eof":
                if stops:
                    raise self.error(token, "unexpected EOF")
                return tuple(nodes), None
            if token.kind == "text":
                nodes.append(Text(token.pos, token.value))
                continue
            word = self.peek()
            if word.kind == "keyword" and word.value in ("end", "else"):
                if word.value not in stops:
                    raise self.error(word, f"unexpected {{{{{word.value}}}}}")
                return tuple(nodes), self.next()
            nodes.append(self.action(token))

    def action(self, left: Token) -> Node:
        word = self.peek()
        if word.kind == "keyword" and word.value in ("if", "range", "with"):
            self.next()
            return self.branch(word)
        if word.kind == "keyword" and word.value in ("break", "continue"):
            self.next()
            if not self.range_depth:
                raise self.error(word, f"{{{{{word.value}}}}} outside {{{{range}}}}")
            self.expect("right", word.value)
            return Loop(word.pos, word.value)
        if word.kind == "keyword" and word.value in ("define", "template", "block"):
            raise self.error(word, f"{{{{{word.value}}}}} is not supported: a format is one template")
        return Action(left.pos, self.pipeline("command", declarations=True))

    def branch(self, keyword: Token) -> Branch:
        pipeline = self.pipeline(keyword.value, declarations=True, pairs=keyword.value == "range")
        if keyword.value == "range":
            self.range_depth += 1
        body, end = self.list(("end", "else"))
        if keyword.value == "range":
            self.range_depth -= 1
        otherwise: tuple[Node, ...] = ()
        assert end is not None
        if end.value == "else":
            nested = self.peek()
            if nested.kind == "keyword" and nested.value in ("if", "with") and keyword.value != "range":
                # {{else if ...}} is {{else}}{{if ...}}...{{end}} sharing the outer {{end}}.
                self.next()
                otherwise = (self.branch(nested),)
                return Branch(keyword.pos, keyword.value, pipeline, body, otherwise)
            self.expect("right", "else")
            otherwise, _ = self.list(("end",))
        self.expect("right", "end")
        return Branch(keyword.pos, keyword.value, pipeline, body, otherwise)

    def pipeline(self, context: str, declarations: bool = False, pairs: bool = False) -> Pipeline:
        start = self.peek()
        variables: list[str] = []
        assign = False
        if declarations and start.kind == "variable":
            after = self.peek(1)
            if after.kind in ("declare", "assign") or (pairs and after.kind == "comma"):
                variables.append(self.next().value)
                if after.kind == "comma":
                    self.next()
                    variables.append(self.expect("variable", "range declaration").value)
                    if self.peek().kind != "declare":
                        raise self.error(self.peek(), "expected := after the range variables")
                assign = self.next().kind == "assign"
        commands: list[Command] = []
        while True:
            commands.append(self.command(context))
            token = self.next()
            if token.kind == "pipe":
                continue
            if token.kind in ("right", "close"):
                break
            raise self.error(token, f"unexpected {_shown(token)} in {context}")
        return Pipeline(start.pos, tuple(commands), tuple(variables), assign)

    def command(self, context: str) -> Command:
        start = self.peek()
        args: list[Node] = []
        while self.peek().kind not in ("pipe", "right", "close", "eof"):
            args.append(self.operand())
        if not args:
            raise self.error(start, f"missing value for {context}")
        if isinstance(args[0], Literal) and args[0].value is None:
            raise self.error(start, "nil is not a command")
        return Command(start.pos, tuple(args))

    def operand(self) -> Node:
        token = self.next()
        node = self.term(token)
        names = []
        while self.peek().kind == "field" and self._adjacent(self.items[self.index - 1], self.peek()):
            names.append(self.next().value[1:])
        if not names:
            return node
        if isinstance(node, Field):
            return Field(node.pos, node.names + tuple(names))
        if isinstance(node, Variable):
            return Variable(node.pos, node.name, node.names + tuple(names))
        if not isinstance(node, Pipeline):
            raise self.error(token, f"unexpected . after term {_shown(token)}")
        return Chain(node.pos, node, tuple(names))

    def term(self, token: Token) -> Node:
        kind, value = token.kind, token.value
        if kind == "field":
            return Field(token.pos, (value[1:],))
        if kind == "variable":
            return Variable(token.pos, value)
        if kind == "dot":
            return Dot(token.pos)
        if kind == "identifier":
            return Function(token.pos, value)
        if kind == "keyword" and value in ("true", "false"):
            return Literal(token.pos, value == "true")
        if kind == "keyword" and value == "nil":
            return Literal(token.pos, None)
        if kind in ("string", "raw"):
            return Literal(token.pos, self.unquote(token))
        if kind == "char":
            text = self.unquote(token)
            if len(text) != 1:
                raise self.error(token, f"malformed character constant: {value}")
            return Literal(token.pos, ord(text))
        if kind == "number":
            return Literal(token.pos, self.number(token))
        if kind == "open":
            return self.pipeline("parenthesized pipeline")
        raise self.error(token, f"unexpected {_shown(token)} in operand")

    @staticmethod
    def _adjacent(before: Token, after: Token) -> bool:
        return before.pos + len(before.value) == after.pos

    def number(self, token: Token) -> int | float:
        text = token.value.replace("_", "")
        try:
            if _OCTAL.match(token.value):
                return int(text, 8)
            if any(c in text for c in ".eE") and not text.lower().lstrip("+-").startswith("0x"):
                return float(text)
            return int(text, 0)
        except ValueError:
            raise self.error(token, f"bad number syntax: {token.value!r}") from None

    def unquote(self, token: Token) -> str:
        body = token.value[1:-1]
        if token.kind == "raw":
            return body
        out, index = [], 0
        while index < len(body):
            char = body[index]
            if char != "\\":
                out.append(char)
                index += 1
                continue
            code = body[index + 1:index + 2]
            if code in _ESCAPES:
                out.append(_ESCAPES[code])
                index += 2
            elif code in ("x", "u", "U"):
                width = {"x": 2, "u": 4, "U": 8}[code]
                digits = body[index + 2:index + 2 + width]
                if len(digits) != width or not all(c in "0123456789abcdefABCDEF" for c in digits):
                    raise self.error(token, f"invalid syntax: {token.value}")
                out.append(chr(int(digits, 16)))
                index += 2 + width
            elif code.isdigit() and len(body[index + 1:index + 4]) == 3:
                out.append(chr(int(body[index + 1:index + 4], 8)))
                index += 4
            else:
                raise self.error(token, f"invalid syntax: {token.value}")
        return "".join(out)


def _shown(token: Token) -> str:
    if token.kind == "eof":
        return "EOF"
    if token.kind == "right":
        return "\"}}\""
    return f"{token.value!r}" if token.kind != "text" else "text"
