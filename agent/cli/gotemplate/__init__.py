"""Go's text/template, the language of docker's `--format`, as a small pure interpreter.

`render(text, data)` parses and runs a template the way Go's text/template does over JSON-like
data (dicts, lists, strings, numbers, booleans, None) and over `Fields` objects (docker's
per-verb contexts, whose methods are the template's fields: `{{.Names}}`, `{{.Label "k"}}`).
Docker's functions (json, join, split, upper, lower, title, pad, truncate) sit beside Go's
builtins (index, len, printf, println, eq, and, or, not, ...).

Semantics follow Go where a script can see them: a missing map key prints `<no value>`, a
field of a missing value is missing too, maps print as `map[k:v]` with their keys sorted,
`range` over a map goes in key order, `and`/`or` return an operand and stop early. Errors are
TemplateError (an InvalidArgument: exit 125) naming the position: `template: 1:9: ...`.

Modules: lexer (text to tokens), parser (tokens to a tree), evaluate (the tree over data),
functions (the function table and Go's printing), tabwriter (docker's `table` alignment).
"""
from __future__ import annotations

from agent.cli.gotemplate.evaluate import MISSING, Fields, render_tree
from agent.cli.gotemplate.functions import TemplateError, go_json
from agent.cli.gotemplate.parser import Template, parse

__all__ = ["MISSING", "Fields", "Template", "TemplateError", "go_json", "parse", "render", "render_tree"]


def render(text: str, data: object, functions: dict | None = None) -> str:
    """`text` run over `data`; `functions` replace or add to the default function table."""
    return render_tree(parse(text), data, functions)
