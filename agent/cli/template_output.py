"""docker's `--format` for the listing verbs: `table`, `json` or a Go template.

- `table` alone (or no --format): the verb's usual table.
- `table TEMPLATE`: a header row (the template run over the column titles, docker's
  HeaderFunctions leaving json/upper/... out) and one row per item, aligned by tabs the way
  docker's tabwriter does (agent/cli/gotemplate/tabwriter.py).
- `json`: the verb's own JSON (the API's objects; docs/cli.md says where that differs).
- anything else: the template once per item, each followed by a newline.

As in docker, the two characters `\\t` and `\\n` written in the format stand for a tab and a
newline, so `--format 'table {{.Names}}\\t{{.Status}}'` works from any shell.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from agent.cli.gotemplate import Fields, Template, parse, render_tree
from agent.cli.gotemplate.functions import HEADER_FUNCTIONS, MISSING
from agent.cli.gotemplate.tabwriter import align


class HeaderFields(Fields):
    """What the header row of a `table` format sees: each field is its column title; an unknown
    field is missing (`<no value>`), as in docker's header map; `.Label "com.x.min-cpu"` is `min cpu`."""

    kind = "header"

    def __init__(self, headers: dict[str, str]) -> None:
        self._headers = headers

    def resolve(self, name: str) -> Callable[..., object] | None:
        if name == "Label":
            return self.Label
        title = self._headers.get(name, MISSING)
        return lambda: title

    def Label(self, name: str) -> str:
        """docker's SubHeaderContext.Label: the last dotted part, `-` and `_` read as spaces."""
        return name.split(".")[-1].replace("-", " ").replace("_", " ")

    def to_json(self) -> dict:
        return dict(self._headers)


def prepare(format_text: str) -> tuple[bool, Template]:
    """(is it a table, the parsed template): `table` cut off, `\\t` and `\\n` made real."""
    table = format_text.startswith("table")
    text = format_text[len("table"):] if table else format_text
    text = text.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    return table, parse(text)


def render_rows(format_text: str, items: Iterable[Any], headers: dict[str, str]) -> str:
    """Every item through the template, one line each (a `table` adds the header and aligns)."""
    table, template = prepare(format_text)
    rows = "".join(render_tree(template, item) + "\n" for item in items)
    if not table:
        return rows
    header = render_tree(template, HeaderFields(headers), HEADER_FUNCTIONS)
    return align(header + "\n" + rows)


def render_each(format_text: str, items: Sequence[Any]) -> str:
    """`inspect -f`: the template over each object, one result a line (no `table`, and `\\t`
    stays as written, as in docker's inspect)."""
    template = parse(format_text)
    return "".join(render_tree(template, item) + "\n" for item in items)
