"""The times of `logs --since/--until` and `--timestamps`, in docker's syntax.

A time is read as docker's CLI reads it (GetTimestamp): a Go duration back from now (`10m`,
`1h30m`, `1.5h`, `250ms`), UNIX seconds with an optional fraction (`1700000000.123456789`, the
form Docker's API takes), or an RFC 3339 date (`2024-05-01`, `2024-05-01T12:00:00`, with
`Z`/`+02:00` and up to nine fraction digits; without a zone it is local time). Times are kept
as integer UNIX nanoseconds, so a timestamp printed by `-t` and given back to `--since` is
exact (a float of seconds is not).

Printed times are docker's RFC3339NanoFixed in UTC: `2024-05-01T12:00:00.000000000Z`. A
record with no time (a log written by an older shim) prints as Go's zero time.
"""
from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta, timezone

from agent.errors import InvalidArgument

NS = 1_000_000_000
UNKNOWN = "0001-01-01T00:00:00.000000000Z"   # Go's zero time.Time, as docker would print it

_GO_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": NS, "m": 60 * NS,
             "h": 3600 * NS}
_GO_DURATION = re.compile(r"^(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h)"
                          r"(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))*$")
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIX = re.compile(r"^(\d+)(?:\.(\d{0,9}))?$")
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})"
                   r"(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?"
                   r"(Z|z|[+-]\d{2}:?\d{2})?$")


def parse_log_time(text: str, *, now_ns: int | None = None, field: str = "since") -> int:
    """UNIX nanoseconds from any of the forms above; InvalidArgument naming `field` else."""
    text = text.strip()
    now = time.time_ns() if now_ns is None else now_ns
    if _GO_DURATION.match(text):
        return now - _duration_ns(text)
    unix = _UNIX.match(text)
    if unix:
        return int(unix.group(1)) * NS + int((unix.group(2) or "").ljust(9, "0"))
    date = _DATE.match(text)
    if date:
        try:
            return _date_ns(date)
        except ValueError as error:
            raise InvalidArgument(f"{field}: {text!r} is not a valid date ({error})") from None
    raise InvalidArgument(f"{field}: expected a duration like 10m or 1h30m, UNIX seconds like "
                          f"1700000000.5, or an RFC 3339 date like 2024-05-01T12:00:00Z, got {text!r}")


def _duration_ns(text: str) -> int:
    total = 0
    for number, unit in _GO_PART.findall(text):
        whole, _, fraction = number.partition(".")
        scale = _GO_UNITS[unit]
        total += int(whole or "0") * scale + (int(fraction) * scale // 10 ** len(fraction) if fraction else 0)
    return total


def _date_ns(match: re.Match[str]) -> int:
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    if zone in (None, ""):
        tz = None                                   # local time, as docker's CLI reads it
    elif zone in ("Z", "z"):
        tz = UTC
    else:
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    moment = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
                      tzinfo=tz)
    seconds = int(moment.timestamp())
    return seconds * NS + int((fraction or "").ljust(9, "0"))


def format_log_time(ns: int | None) -> str:
    """docker's RFC3339NanoFixed in UTC, the prefix of each line of `logs -t`."""
    if ns is None:
        return UNKNOWN
    seconds, fraction = divmod(ns, NS)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z"


def parse_tail(text: str | int | None, *, field: str = "tail") -> int | None:
    """docker's tail: a number of lines, or `all` (None). Docker's daemon reads anything that
    is not a number, and a negative number, as all."""
    if text is None or isinstance(text, int):
        return None if text is None or text < 0 else text
    text = text.strip()
    if text.lstrip("-").isdigit():
        number = int(text)
        return None if number < 0 else number
    if text in ("", "all"):
        return None
    raise InvalidArgument(f"{field}: expected a number of lines or all, got {text!r}")
