"""The argparse side of `corral`: its parser class, help formatter and the gettext shortcut,
imported only when a command line is parsed by argparse (agent/cli/main.py build_parser): `run`
and `create` parse a plain command line without it (agent/cli/quick_parse.py)."""
from __future__ import annotations

import argparse
import functools
import os
import sys

from agent.errors import InvalidArgument

TYPE_CHECKING = False   # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any


class HelpFormatter(argparse.HelpFormatter):
    """argparse's, with the terminal's width found without shutil. argparse builds a formatter at
    every add_argument (to check the metavar) and asks shutil.get_terminal_size for the width,
    importing shutil (with bz2, lzma and fnmatch: ~1.7 ms of `corral ps`) to print nothing."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position, terminal_columns() - 2 if width is None else width)


@functools.cache    # argparse makes a formatter at every add_argument
def terminal_columns() -> int:
    """What shutil.get_terminal_size().columns answers: $COLUMNS, else stdout's terminal, else 80."""
    try:
        columns = int(os.environ.get("COLUMNS", "0"))
    except ValueError:
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns if sys.__stdout__ else 0
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class Parser(argparse.ArgumentParser):
    """Usage errors are CorralErrors too, so they print and exit like every other (125)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)    # every verb's parser is a Parser too
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        raise InvalidArgument(message, hint=f"see `{self.prog} --help`")


def ask_gettext_once() -> None:
    """argparse translates each of its words through gettext.gettext, which looks for .mo files
    on disk at every call: ~2 ms of stat calls for the parsers of one verb, a twentieth of `corral
    ps`. A message's translation does not change within a process, so each is asked for once."""
    translate = getattr(argparse, "_")  # noqa: B009 - argparse's type stubs do not declare `_`
    if not hasattr(translate, "cache_info"):
        setattr(argparse, "_", functools.lru_cache(maxsize=None)(translate))  # noqa: B010
