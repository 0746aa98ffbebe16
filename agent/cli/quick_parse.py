"""The plain command lines of `corral run` and `create` parsed without argparse.

Why: importing argparse (with re, enum and gettext) and asking gettext for its words is ~8-9 ms
of a ~23 ms `corral run` client here, the largest part after the interpreter itself, and the
`run` target (<= 0.3x podman) is missed by about that much (bench/README.md, "CLI start-up").
This is not a second parser: it reads the same table argparse's parsers are built from
(agent/cli/run_flags.py) and accepts only what argparse reads the same way with no choice to
make: exact option names, `--opt value`, `--opt=value`, `-o value`, store-true short options
clustered (`-it`), then IMAGE and the command's words. Anything else (--help, an abbreviation,
`-ovalue`, a value starting with -, `--`, a bad number or choice, a missing IMAGE) gives None,
and main() leaves the whole command line to argparse, which answers or fails as it always did.
tests/unit/test_cli_quick_parse.py checks both give the same values.
"""
from __future__ import annotations

from agent.cli.run_flags import REMAINDER, dest_of

TYPE_CHECKING = False   # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

    from agent.cli.run_flags import Flag


def parse(flags: tuple[Flag, ...], words: list[str]) -> dict[str, Any] | None:
    """dest -> value as argparse's parse_args gives them for `words` (after the verb), or None."""
    options: dict[str, tuple[str, dict[str, Any]]] = {}
    positionals: list[tuple[str, dict[str, Any]]] = []
    values: dict[str, Any] = {}
    for _group, names, spec in flags:
        dest = dest_of(names, spec)
        default = spec.get("default", False if spec.get("action") == "store_true" else None)
        values[dest] = list(default) if isinstance(default, list) else default
        if names[0].startswith("-"):
            options.update((name, (dest, spec)) for name in names)
        else:
            positionals.append((dest, spec))
    if [spec.get("nargs") for _dest, spec in positionals] != [None, REMAINDER]:
        return None
    index = 0
    while index < len(words) and words[index].startswith("-"):
        word = words[index]
        name, equals, attached = word.partition("=") if word.startswith("--") else (word[:2], "", word[2:])
        if name not in options:
            return None
        dest, spec = options[name]
        if spec.get("action") == "store_true":
            if equals:
                return None
            if attached:            # -it: each letter a store-true option of its own
                cluster = [options.get("-" + letter) for letter in attached]
                if not all(entry and entry[1].get("action") == "store_true" for entry in cluster):
                    return None
                values.update((entry[0], True) for entry in cluster if entry)
            values[dest] = True
            index += 1
            continue
        if equals:
            value, index = attached, index + 1
        elif attached or index + 1 == len(words) or words[index + 1].startswith("-"):
            return None
        else:
            value, index = words[index + 1], index + 2
        converted = _converted(value, spec)
        if converted is None:
            return None
        if spec.get("action") == "append":
            values[dest] = [*(values[dest] or []), converted]
        else:
            values[dest] = converted
    if index == len(words):
        return None                 # no IMAGE: argparse says so
    (image, _), (command, _) = positionals
    values[image], values[command] = words[index], words[index + 1:]
    return values


def _converted(value: str, spec: dict[str, Any]) -> Any:
    """The value as `type` makes it and within `choices`, or None to leave it to argparse."""
    kind = spec.get("type")
    if kind is int:
        try:
            return int(value)
        except ValueError:
            return None
    if kind is not None or spec.get("action") not in (None, "store", "append"):
        return None
    if "choices" in spec and value not in spec["choices"]:
        return None
    return value
