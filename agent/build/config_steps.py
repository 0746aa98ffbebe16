"""Dockerfile instructions that change only the image config (no layer): ENV, LABEL, EXPOSE,
VOLUME, WORKDIR, USER, STOPSIGNAL, CMD, ENTRYPOINT, SHELL, MAINTAINER and HEALTHCHECK.

Variables are expanded as docker expands them: in ENV, LABEL, EXPOSE, VOLUME, WORKDIR, USER and
STOPSIGNAL, not in CMD, ENTRYPOINT and SHELL (their shell does it when the container runs).
"""
from __future__ import annotations

import dataclasses
import re

from agent.build.dockerfile import Instruction, expand, json_list
from agent.errors import InvalidArgument
from agent.images.changes import apply_change
from agent.images.model import ImageConfig

CONFIG_KEYWORDS = ("ENV", "LABEL", "EXPOSE", "VOLUME", "WORKDIR", "USER", "STOPSIGNAL", "CMD", "ENTRYPOINT",
                   "SHELL", "MAINTAINER", "HEALTHCHECK")
_EXPANDED = ("ENV", "LABEL", "EXPOSE", "VOLUME", "WORKDIR", "USER", "STOPSIGNAL")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
            "h": 3_600_000_000_000}


def apply(config: ImageConfig, item: Instruction, values: dict[str, str], where: str) -> ImageConfig:
    """`config` with the instruction applied; `values` are the ARG and ENV values in scope."""
    arguments = expand(item.arguments, values, where) if item.keyword in _EXPANDED else item.arguments
    if item.keyword == "MAINTAINER":
        return dataclasses.replace(config, labels={**config.labels, "maintainer": arguments})
    if item.keyword == "HEALTHCHECK":
        return dataclasses.replace(config, healthcheck=healthcheck(item, where))
    try:
        return apply_change(config, f"{item.keyword} {arguments}")
    except InvalidArgument as exc:
        raise InvalidArgument(f"{where}: {exc.message.split(': ', 1)[-1]}", hint=exc.hint) from None


def healthcheck(item: Instruction, where: str) -> dict[str, object]:
    """Docker's HealthConfig from `HEALTHCHECK [--interval=D ...] CMD ...` or `HEALTHCHECK NONE`."""
    words = item.arguments.split(None, 1)
    if not words:
        raise InvalidArgument(f"{where}: HEALTHCHECK needs NONE or CMD ...")
    if words[0].upper() == "NONE":
        if item.flags or len(words) > 1:
            raise InvalidArgument(f"{where}: HEALTHCHECK NONE takes no options or arguments")
        return {"Test": ["NONE"]}
    if words[0].upper() != "CMD" or len(words) < 2:
        raise InvalidArgument(f"{where}: HEALTHCHECK needs NONE or CMD followed by a command")
    command = json_list(words[1])
    result: dict[str, object] = {"Test": ["CMD", *command] if command is not None else ["CMD-SHELL", words[1]]}
    for flag, key in (("interval", "Interval"), ("timeout", "Timeout"), ("start-period", "StartPeriod"),
                      ("start-interval", "StartInterval")):
        if flag in item.flags:
            result[key] = duration_ns(item.flags[flag], f"{where}: --{flag}")
    if "retries" in item.flags:
        if not item.flags["retries"].isdigit():
            raise InvalidArgument(f"{where}: --retries must be a whole number, got {item.flags['retries']!r}")
        result["Retries"] = int(item.flags["retries"])
    return result


def duration_ns(text: str, where: str) -> int:
    """A Go duration ("30s", "1m30s", "250ms") in nanoseconds."""
    position, total = 0, 0.0
    for found in _DURATION.finditer(text):
        if found.start() != position:
            break
        total += float(found.group(1)) * _UNIT_NS[found.group(2)]
        position = found.end()
    if not text or position != len(text):
        raise InvalidArgument(f"{where}: {text!r} is not a duration, like 30s, 1m30s or 500ms")
    return int(total)
