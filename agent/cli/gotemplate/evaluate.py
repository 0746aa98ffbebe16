"""Running a parsed template over data, as Go's text/template/exec does.

Data is JSON-like (dicts, lists, str, int, float, bool, None) or `Fields`: docker's formatting
contexts, whose capitalised methods are the fields a template can name (`{{.Names}}`,
`{{.Label "k"}}`). A field of a dict is its key (missing: MISSING, printed `<no value>`); a
field of MISSING is MISSING; a field of None (JSON null) or of a string is an error, as in Go.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable

from agent.cli.gotemplate.functions import FUNCTIONS, MISSING, FunctionError, go_string, truth, type_name
from agent.cli.gotemplate.lexer import TemplateError, fail
from agent.cli.gotemplate.parser import (
    Action,
    Branch,
    Chain,
    Command,
    Dot,
    Field,
    Function,
    Literal,
    Loop,
    Node,
    Pipeline,
    Template,
    Text,
    Variable,
)

_NO_FINAL: Any = object()    # a command that is first in its pipeline has no piped-in value


class Fields:
    """A formatting context: each public method named like docker's (ID, Names, Label) is a field.

    `kind` names it in errors; `to_json` is what `{{json .}}` prints (docker's fields that
    take no argument)."""

    kind = "context"

    def field_names(self) -> list[str]:
        return [name for name, member in inspect.getmembers(type(self), inspect.isfunction)
                if name[:1].isupper()]

    def resolve(self, name: str) -> Callable[..., object] | None:
        """The method behind field `name`, or None when there is no such field."""
        return getattr(self, name) if name in self.field_names() else None

    def to_json(self) -> dict:
        return {name: getattr(self, name)() for name in self.field_names()
                if len(inspect.signature(getattr(type(self), name)).parameters) == 1}


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _State:
    def __init__(self, template: Template, data: object, functions: dict[str, Callable[..., object]]) -> None:
        self.text = template.text
        self.functions = functions
        self.variables: list[tuple[str, object]] = [("$", data)]
        self.out: list[str] = []

    def error(self, node: Node, message: str) -> TemplateError:
        start = node.pos
        end = min(i for i in (self.text.find("}}", start), self.text.find("|", start), len(self.text)) if i >= 0)
        shown = self.text[start:end].strip()
        return fail(self.text, start, f"executing at <{shown}>: {message}")

    # Nodes

    def run(self, nodes: tuple[Node, ...], dot: object) -> None:
        for node in nodes:
            if isinstance(node, Text):
                self.out.append(node.text)
            elif isinstance(node, Action):
                value = self.pipeline(dot, node.pipeline)
                if not node.pipeline.variables:
                    self.out.append("<no value>" if value is None else go_string(value))
            elif isinstance(node, Branch):
                self.branch(node, dot)
            elif isinstance(node, Loop):
                raise _Break() if node.kind == "break" else _Continue()

    def branch(self, node: Branch, dot: object) -> None:
        mark = len(self.variables)
        try:
            value = self.pipeline(dot, node.pipeline, declare_only=node.kind == "range")
            if node.kind == "range":
                self.range(node, value, dot)
            elif truth(value):
                self.run(node.body, value if node.kind == "with" else dot)
            else:
                self.run(node.otherwise, dot)
        finally:
            del self.variables[mark:]

    def range(self, node: Branch, value: object, dot: object) -> None:
        if value is None or value is MISSING:
            items: list[tuple[object, object]] = []
        elif isinstance(value, (list, tuple)):
            items = list(enumerate(value))
        elif isinstance(value, dict):
            items = [(key, value[key]) for key in sorted(value, key=str)]
        elif isinstance(value, int) and not isinstance(value, bool):
            items = [(i, i) for i in range(value)]
        else:
            raise self.error(node, f"range can't iterate over {go_string(value)}")
        if not items:
            self.run(node.otherwise, dot)
            return
        names = node.pipeline.variables
        mark = len(self.variables)
        for key, element in items:
            if len(names) == 1:
                self.variables.append((names[0], element))
            elif len(names) == 2:
                self.variables += [(names[0], key), (names[1], element)]
            try:
                self.run(node.body, element)
            except _Break:
                break
            except _Continue:
                pass
            finally:
                del self.variables[mark:]

    # Pipelines and commands

    def pipeline(self, dot: object, pipeline: Pipeline, declare_only: bool = False) -> object:
        value = _NO_FINAL
        for command in pipeline.commands:
            value = self.command(dot, command, value)
        if pipeline.variables and not declare_only:
            if pipeline.assign:
                self.assign(pipeline, pipeline.variables[0], value)
            else:
                self.variables.append((pipeline.variables[0], value))
        return value

    def assign(self, node: Node, name: str, value: object) -> None:
        for index in range(len(self.variables) - 1, -1, -1):
            if self.variables[index][0] == name:
                self.variables[index] = (name, value)
                return
        raise self.error(node, f"undefined variable: {name}")

    def variable(self, node: Node, name: str) -> object:
        for known, value in reversed(self.variables):
            if known == name:
                return value
        raise self.error(node, f"undefined variable: {name}")

    def command(self, dot: object, command: Command, final: object) -> object:
        first, rest = command.args[0], command.args[1:]
        try:
            if isinstance(first, Field):
                return self.fields(dot, first, first.names, rest, final)
            if isinstance(first, Chain):
                return self.fields(dot, first, first.names, rest, final, self.argument(dot, first.node))
            if isinstance(first, Variable) and first.names:
                return self.fields(dot, first, first.names, rest, final, self.variable(first, first.name))
            if isinstance(first, Function):
                return self.call(dot, first, rest, final)
        except FunctionError as exc:
            raise self.error(first, str(exc)) from None
        if rest or final is not _NO_FINAL:
            raise self.error(first, f"can't give argument to non-function {self.text[first.pos:].split()[0]}")
        return self.argument(dot, first)

    def argument(self, dot: object, node: Node) -> object:
        if isinstance(node, Dot):
            return dot
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, Variable):
            value = self.variable(node, node.name)
            return self.fields(dot, node, node.names, (), _NO_FINAL, value) if node.names else value
        if isinstance(node, Pipeline):
            mark = len(self.variables)
            try:
                return self.pipeline(dot, node)
            finally:
                del self.variables[mark:]
        if isinstance(node, (Field, Chain, Function)):
            return self.command(dot, Command(node.pos, (node,)), _NO_FINAL)
        raise self.error(node, f"can't evaluate {type(node).__name__}")   # pragma: no cover - parser never makes one

    def fields(self, dot: object, node: Node, names: tuple[str, ...], args: tuple[Node, ...], final: object,
               receiver: object = _NO_FINAL) -> object:
        value = dot if receiver is _NO_FINAL else receiver
        for name in names[:-1]:
            value = self.field(node, value, name, None)
        values = [self.argument(dot, arg) for arg in args]
        if final is not _NO_FINAL:
            values.append(final)
        return self.field(node, value, names[-1], values if (args or final is not _NO_FINAL) else None)

    def field(self, node: Node, receiver: object, name: str, args: list[object] | None) -> object:
        if receiver is MISSING:
            return MISSING
        if isinstance(receiver, Fields):
            method = receiver.resolve(name)
            if method is None:
                raise self.error(node, f"can't evaluate field {name} in type {receiver.kind}")
            wanted = len(inspect.signature(method).parameters)
            given = [None if value is MISSING else value for value in args or []]
            if len(given) != wanted:
                raise self.error(node, f"wrong number of args for {name}: want {wanted} got {len(given)}")
            try:
                return method(*given)
            except FunctionError as exc:
                raise self.error(node, str(exc)) from None
        if args is not None:
            raise self.error(node, f"{name} has arguments but cannot be invoked as function")
        if isinstance(receiver, dict):
            return receiver.get(name, MISSING)
        if receiver is None:
            raise self.error(node, f"nil pointer evaluating interface {{}}.{name}")
        raise self.error(node, f"can't evaluate field {name} in type {type_name(receiver)}")

    def call(self, dot: object, node: Function, args: tuple[Node, ...], final: object) -> object:
        if node.name in ("and", "or"):
            return self.logic(dot, node, args, final)
        function = self.functions.get(node.name)
        if function is None:
            raise self.error(node, f"function \"{node.name}\" not defined")
        values = [self.argument(dot, arg) for arg in args]
        if final is not _NO_FINAL:
            values.append(final)
        values = [None if value is MISSING else value for value in values]
        try:
            inspect.signature(function).bind(*values)
        except TypeError:
            raise self.error(node, f"wrong number of args for {node.name}: got {len(values)}") from None
        return function(*values)

    def logic(self, dot: object, node: Function, args: tuple[Node, ...], final: object) -> object:
        """`and` gives its first false operand (or its last), `or` its first true one; both stop there."""
        if not args and final is _NO_FINAL:
            raise self.error(node, f"wrong number of args for {node.name}: want at least 1 got 0")
        value: object = None
        for index in range(len(args) + (final is not _NO_FINAL)):
            value = self.argument(dot, args[index]) if index < len(args) else final
            if truth(value) == (node.name == "or"):
                return value
        return value


def render_tree(template: Template, data: object, functions: dict | None = None) -> str:
    state = _State(template, data, {**FUNCTIONS, **(functions or {})})
    state.run(template.nodes, data)
    return "".join(state.out)
