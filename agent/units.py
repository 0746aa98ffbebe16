"""Parsing of the units users type: sizes (64m, 256Mi), CPU counts (0.5), durations (10s) and signals."""
from __future__ import annotations

import re
import signal

from agent.errors import InvalidArgument

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?)(b?)\s*$", re.IGNORECASE)
_POWERS = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}


def parse_size(text: str | int, *, field: str = "size") -> int:
    """Bytes from "64m", "64M", "64MiB", "256Mi", "1g" or a plain number of bytes.

    Docker reads k/m/g as binary units and so does Corral; "Mi" and "MiB" are accepted too.
    """
    if isinstance(text, bool):
        raise InvalidArgument(f"{field}: expected a size like 64m or 256Mi, got {text!r}")
    if isinstance(text, int):
        value = text
    else:
        match = _SIZE.match(str(text))
        if not match:
            raise InvalidArgument(f"{field}: expected a size like 64m or 256Mi, got {text!r}")
        number, unit, _binary, _b = match.groups()
        value = int(float(number) * (1024 ** _POWERS[unit.lower()]))
    if value <= 0:
        raise InvalidArgument(f"{field}: must be greater than 0, got {text!r}")
    return value


def parse_cpus(text: str | float, *, field: str = "cpus") -> float:
    """A number of CPUs such as 0.5 or 2."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise InvalidArgument(f"{field}: expected a number of CPUs like 0.5, got {text!r}") from None
    if not 0.01 <= value <= 1024:
        raise InvalidArgument(f"{field}: must be between 0.01 and 1024, got {text!r}")
    return value


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(text: str | int | float, *, field: str = "duration") -> float:
    """Seconds from "500ms", "10s", "5m", "1h" or a bare number of seconds."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if text < 0:
            raise InvalidArgument(f"{field}: must not be negative, got {text!r}")
        return float(text)
    match = _DURATION.match(str(text))
    if not match:
        raise InvalidArgument(f"{field}: expected a duration like 10s, 5m or 1h, got {text!r}")
    return float(match.group(1)) * _SECONDS[match.group(2)]


def parse_signal(text: str | int, *, field: str = "signal") -> int:
    """A signal number from "KILL", "SIGKILL", "kill" or "9"."""
    if isinstance(text, int) or str(text).isdigit():
        number = int(text)
        if 0 < number < signal.NSIG:
            return number
        raise InvalidArgument(f"{field}: no signal numbered {text!r}")
    name = str(text).upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise InvalidArgument(f"{field}: unknown signal {text!r} (try TERM, KILL, INT, HUP)") from None


def format_size(value: int | None) -> str:
    """A size for people: 64MiB, 1.5GiB."""
    if value is None:
        return "-"
    number = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if number < 1024 or unit == "TiB":
            return f"{number:.0f}{unit}" if unit == "B" or number >= 100 else f"{number:.1f}{unit}"
        number /= 1024
    return f"{value}B"
