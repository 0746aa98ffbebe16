"""The daemon's configuration file: /etc/corral/corral.yaml, or the one `--config FILE` names.

Every key is the name of a `corral daemon` flag with dashes as underscores, as argparse stores
it (`metrics_addr` for --metrics-addr, `probes: false` for --no-probes, `drop_metrics: [...]`
for the repeatable --drop-metric). The file sets the defaults and flags given on the command
line override them, so `corral daemon --config f.yaml --log-level debug` logs at debug whatever
the file says. An unknown key, or a value of the wrong kind, is an error naming file:line and the
key, and saying what was expected; an empty file (or one of comments only) sets nothing.

The default file is read only when it exists: a host without /etc/corral/corral.yaml runs on
the flags' defaults. `--config none` reads no file at all.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import yaml

from agent.errors import InvalidArgument

DEFAULT_CONFIG = Path("/etc/corral/corral.yaml")
NO_CONFIG = "none"
# Keys that exist only on the command line.
COMMAND_LINE_ONLY = {"help", "config", "dump_bpf"}


def config_keys(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Config key -> the flag's argparse action, for every flag the file may set."""
    keys: dict[str, argparse.Action] = {}
    for action in parser._actions:   # argparse has no public list of its actions
        if action.dest in COMMAND_LINE_ONLY or not action.option_strings:
            continue
        keys.setdefault(action.dest, action)
    return keys


def _flag(action: argparse.Action) -> str:
    return max(action.option_strings, key=len)


def _check_value(key: str, value: Any, action: argparse.Action, where: str) -> Any:
    """The value as argparse would hold it after parsing, or InvalidArgument naming `where`."""
    flag = _flag(action)
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction,
                           argparse.BooleanOptionalAction)):
        if not isinstance(value, bool):
            raise InvalidArgument(f"{where}: {key}: expected true or false (flag {flag}), got {value!r}")
        return value
    if isinstance(action, argparse._AppendAction):
        if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool)
                                                  for v in value):
            raise InvalidArgument(f"{where}: {key}: expected a list of strings (flag {flag}, repeatable), got {value!r}")
        return [str(v) for v in value]
    if value is None:
        return None
    if isinstance(value, (bool, list, dict)):
        raise InvalidArgument(f"{where}: {key}: expected a single value like `{flag}` takes, got {value!r}")
    text = str(value)
    try:
        convert = action.type       # typeshed allows a type name (str) here; ours are callables
        converted = convert(text) if callable(convert) else text
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"{where}: {key}: {exc}") from None
    if action.choices is not None and converted not in action.choices:
        raise InvalidArgument(f"{where}: {key}: expected one of {', '.join(map(str, action.choices))}, "
                              f"got {value!r}")
    return converted


def load_config(path: Path, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """The file's settings as {argparse dest: value}; InvalidArgument naming file:line on any fault."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidArgument(f"config file {path}: {exc.strerror}",
                              hint="give an existing file with --config, or --config none") from None
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise InvalidArgument(f"{path}{line}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        raise InvalidArgument(f"{path}:1: expected a mapping of settings like `root: /var/lib/corral`")
    lines = {key_node.value: key_node.start_mark.line + 1 for key_node, _ in node.value
             if isinstance(key_node, yaml.ScalarNode)}
    known = config_keys(parser)
    settings = {}
    for key, value in data.items():
        where = f"{path}:{lines.get(str(key), 1)}"
        action = known.get(key) if isinstance(key, str) else None
        if action is None:
            raise InvalidArgument(f"{where}: unknown key {key!r}",
                                  hint=f"known keys: {', '.join(sorted(known))}")
        settings[key] = _check_value(key, value, action, where)
    return settings


def apply_config_file(parser: argparse.ArgumentParser, argv: list[str] | None) -> Path | None:
    """Read the file `--config` names (or the default one, if it exists) into the parser's
    defaults, so flags on the command line still win. Answers the file read, or None."""
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--config", default=None)
    known, _rest = early.parse_known_args(argv)
    if known.config == NO_CONFIG:
        return None
    if known.config is None:
        if not DEFAULT_CONFIG.is_file():
            return None
        path = DEFAULT_CONFIG
    else:
        path = Path(known.config)
    parser.set_defaults(**load_config(path, parser))
    return path
