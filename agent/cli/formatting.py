"""The `--format` and `--filter` flags of the listing verbs, kept light: the template engine
(agent/cli/template_output.py, agent/cli/gotemplate/) is imported only when a template is
given, so `corral ps` alone pays nothing for it."""
from __future__ import annotations

import sys
from collections.abc import Sequence

from agent.errors import InvalidArgument

TYPE_CHECKING = False   # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from typing import Any

FORMAT_HELP = ("table (the default), json, or a Go template like '{{.Names}}' or "
               "'table {{.ID}}\\t{{.Status}}' (docs/cli.md)")


def is_template(format_text: str | None) -> bool:
    """True when `--format` asks for a template rather than the verb's table or JSON."""
    return format_text not in (None, "", "table", "json")


def prepared_format(format_text: str | None, each: bool = False) -> bool:
    """Whether `format_text` is a template; parsing it now, so a bad one fails (exit 125) before
    the daemon is asked anything."""
    if not is_template(format_text):
        return False
    from agent.cli.template_output import parse, prepare
    assert format_text is not None
    if each:
        parse(format_text)
    else:
        prepare(format_text)
    return True


def parse_filter_flags(flags: Sequence[str] | None) -> dict[str, list[str]] | None:
    """`--filter KEY=VALUE` flags as docker's filters map; the daemon checks keys and values."""
    if not flags:
        return None
    filters: dict[str, list[str]] = {}
    for flag in flags:
        key, equals, value = flag.partition("=")
        if not equals or not key.strip():
            raise InvalidArgument(f"--filter {flag!r}: expected KEY=VALUE, like label=tier=web or status=exited")
        filters.setdefault(key.strip().lower(), []).append(value)
    return filters


INSPECT_FORMAT_HELP = ("a Go template run over each document, like '{{.State.Running}}' or "
                       "'{{json .Config}}'; json: the array on one line")


def print_documents(format_text: str | None, documents: list) -> None:
    """What the inspect verbs print: the JSON array (indented as docker's), or the `-f` template
    over each document, one result a line."""
    if is_template(format_text):
        from agent.cli.template_output import render_each
        assert format_text is not None
        sys.stdout.write(render_each(format_text, documents))
    elif format_text == "json":
        import json
        print(json.dumps(documents, separators=(",", ":")))
    else:
        import json
        print(json.dumps(documents, indent=4))


def write_rows(format_text: str, items: Sequence[Any], headers: dict[str, str]) -> None:
    from agent.cli.template_output import render_rows
    sys.stdout.write(render_rows(format_text, items, headers))
