"""Dockerfile instructions that change only an image's config (`corral commit --change`, and
the build's config steps): CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR,
STOPSIGNAL, SHELL. Each change is one instruction line, as docker takes it; a bad one is an
error naming the instruction and why, and nothing is applied.
"""
from __future__ import annotations

import dataclasses
import json
import posixpath
import shlex
from typing import Any

from agent.errors import InvalidArgument
from agent.images.model import ImageConfig

SUPPORTED = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "USER", "VOLUME", "WORKDIR", "STOPSIGNAL", "SHELL")
DEFAULT_SHELL = ["/bin/sh", "-c"]


def apply_changes(config: ImageConfig, changes: list[str]) -> ImageConfig:
    for change in changes:
        config = apply_change(config, change)
    return config


def apply_change(config: ImageConfig, line: str) -> ImageConfig:
    keyword, _, rest = line.strip().partition(" ")
    keyword, rest = keyword.upper(), rest.strip()
    where = f"change {line.strip()!r}"
    if keyword not in SUPPORTED:
        raise InvalidArgument(f"{where}: {keyword or '(empty)'} cannot be applied to an image's config",
                              hint=f"use one of {', '.join(SUPPORTED)}")
    if not rest:
        raise InvalidArgument(f"{where}: {keyword} needs an argument")
    shell = config.shell or DEFAULT_SHELL
    if keyword == "CMD":
        return dataclasses.replace(config, cmd=command_form(rest, shell, where))
    if keyword == "ENTRYPOINT":
        # Docker: a new ENTRYPOINT clears the CMD the image had.
        return dataclasses.replace(config, entrypoint=command_form(rest, shell, where), cmd=[])
    if keyword == "SHELL":
        value = _json_list(rest, where)
        if value is None or not value:
            raise InvalidArgument(f"{where}: SHELL takes a JSON list, like [\"/bin/bash\", \"-c\"]")
        return dataclasses.replace(config, shell=value)
    if keyword == "ENV":
        env = dict(item.split("=", 1) for item in config.env)
        env.update(pairs(rest, where, legacy=True))
        return dataclasses.replace(config, env=[f"{key}={value}" for key, value in env.items()])
    if keyword == "LABEL":
        return dataclasses.replace(config, labels={**config.labels, **pairs(rest, where, legacy=False)})
    if keyword == "EXPOSE":
        ports = [port if "/" in port else f"{port}/tcp" for port in _words(rest, where)]
        return _checked(config, where, exposed_ports=sorted(set(config.exposed_ports) | set(ports)))
    if keyword == "VOLUME":
        paths = _json_list(rest, where) or _words(rest, where)
        return _checked(config, where, volumes=sorted(set(config.volumes) | set(paths)))
    if keyword == "WORKDIR":
        return _checked(config, where, workdir=posixpath.normpath(posixpath.join(config.workdir, rest)))
    if keyword == "USER":
        return dataclasses.replace(config, user=rest)
    return dataclasses.replace(config, stop_signal=rest)        # STOPSIGNAL


def command_form(text: str, shell: list[str], where: str) -> list[str]:
    """The exec form (a JSON list) as is; the shell form run by the image's SHELL."""
    value = _json_list(text, where)
    return value if value is not None else [*shell, text]


def pairs(text: str, where: str, *, legacy: bool) -> dict[str, str]:
    """`K=V K2="v 2"`; for ENV also the old `K value with spaces` form."""
    words = _words(text, where)
    if legacy and "=" not in words[0]:
        key, _, value = text.partition(" ")
        return {key: value.strip()}
    result = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"{where}: {word!r} is not KEY=VALUE")
        result[key] = value
    return result


def _words(text: str, where: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise InvalidArgument(f"{where}: {exc}") from None


def _json_list(text: str, where: str) -> list[str] | None:
    if not text.startswith("["):
        return None
    try:
        value: Any = json.loads(text)
    except ValueError:
        return None     # docker runs a line that is not valid JSON in the shell form
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidArgument(f"{where}: the exec form must be a JSON list of strings")
    return value


def _checked(config: ImageConfig, where: str, **fields: Any) -> ImageConfig:
    try:
        return dataclasses.replace(config, **fields)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{where}: {exc.message}") from None
