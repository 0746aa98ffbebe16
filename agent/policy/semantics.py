"""The checks a schema cannot express, run on top of it (agent.policy.validate calls them by
the `check` name a field carries in agent.policy.schema, once its type is right).

They need the host or other fields: syscall names of this architecture (with "did you mean"),
CIDRs and their host bits, sizes and durations read as numbers, signals, container-name globs
and image references that can never match, a kill signal only on kill rules, `above:` read by
its signal's kind, rule names unique within a policy, at most as many levels per rate as the
kernel checks (probes/rates.c: RATE_LEVELS distinct `above`s per signal, or per signal of one
syscall), so every threshold of one policy on these rates is checked in the kernel.
"""
from __future__ import annotations

import difflib
import ipaddress
import math
import re
from collections.abc import Callable
from typing import Any

from agent.errors import InvalidArgument
from agent.policy.schema import MAX_HOLD, MIN_MEMORY, PER_SYSCALL_SIGNALS, SIGNALS
from agent.policy.validate import Check, Errors, Path, describe
from agent.probes.structs import RATE_LEVELS
from agent.units import parse_duration, parse_signal, parse_size

MAX_SIZE = 1 << 62
# The rates the probes check in the kernel (agent/policy/kernel_rates.py PROBE_SIGNAL).
KERNEL_RATES = ("syscalls_per_second", "syscall_errors_per_second", "tcp_connects_per_second",
                "network_tx_bytes_per_second", "network_rx_bytes_per_second")
# What a container-name glob may contain: the characters of a name plus glob syntax.
_NAME_GLOB = re.compile(r"^[a-zA-Z0-9_.*?\[\]!-]+$")
# An image reference with globs: [host[:port]/]path[:tag][@algo:hex]; path components are
# lowercase, tags up to 128 word characters, dots and dashes.
_IMAGE_COMPONENT = re.compile(r"^[a-z0-9*?\[\]]+(?:(?:[._]|__|-+)[a-z0-9*?\[\]]+)*$")
_IMAGE_HOST = re.compile(r"^[a-zA-Z0-9*?.-]+(?::[0-9*?]+)?$")
_IMAGE_TAG = re.compile(r"^[a-zA-Z0-9_*?\[\]][a-zA-Z0-9_.*?\[\]-]{0,127}$")
_IMAGE_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-fA-F0-9*?]+$")


def checks(syscall_known: Callable[[str], bool] | None = None) -> dict[str, Check]:
    """The semantic checks by name; syscall names are checked only when a table is given."""
    def syscall(value: str, path: Path, errors: Errors) -> None:
        if syscall_known is not None and not syscall_known(value):
            errors.add(path, f"unknown syscall {value!r} on this architecture" + _suggestion(value, syscall_known))

    return {"size": _size, "memory": _memory, "duration": _duration, "cidr": _cidr, "signal": _signal,
            "syscall": syscall, "name_glob": _name_glob, "image": _image, "syscall_rule": _syscall_rule,
            "threshold": _threshold, "rule_names": _spec}


def size_of(value: int | str) -> int:
    """Bytes of a size the schema accepted (InvalidArgument if it cannot be read)."""
    size = parse_size(value, field="size")
    if size > MAX_SIZE:
        raise InvalidArgument(f"size: larger than {MAX_SIZE} bytes")
    return size


def _size(value: Any, path: Path, errors: Errors) -> None:
    try:
        size_of(value)
    except InvalidArgument:
        errors.add(path, f"expected a size like 64Mi, 512m or 1Gi, got {describe(value)}")


def _memory(value: Any, path: Path, errors: Errors) -> None:
    _size(value, path, errors)
    if errors and errors[-1].path == path:
        return
    if size_of(value) < MIN_MEMORY:
        errors.add(path, f"{value!r} is below the minimum of 4Mi")


def _duration(value: Any, path: Path, errors: Errors) -> None:
    try:
        seconds = parse_duration(value, field="for")
    except InvalidArgument:
        errors.add(path, f"expected a duration like 10s, 500ms or 5m, got {describe(value)}")
        return
    if seconds > MAX_HOLD:
        errors.add(path, f"{value!r} is longer than a week")


def _cidr(value: str, path: Path, errors: Errors) -> None:
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        try:
            fixed = ipaddress.ip_network(value, strict=False)
        except ValueError:
            errors.add(path, f"{describe(value)} is not a CIDR like 10.0.0.0/8 or 2001:db8::/32 ({exc})")
            return
        errors.add(path, f"{value!r} has host bits set; did you mean {fixed}?")


def _signal(value: Any, path: Path, errors: Errors) -> None:
    try:
        parse_signal(value, field="signal")
    except InvalidArgument as exc:
        errors.add(path, exc.message.split(": ", 1)[-1])


def _suggestion(name: str, syscall_known: Callable[[str], bool]) -> str:
    table = getattr(syscall_known, "names", None)
    if not table:
        return ""
    close = difflib.get_close_matches(name, table, n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def _name_glob(glob: str, path: Path, errors: Errors) -> None:
    problem = None
    if not _NAME_GLOB.match(glob):
        bad = sorted({c for c in glob if not re.match(r"[a-zA-Z0-9_.*?\[\]!-]", c)})
        problem = f"names hold only letters, digits, '_', '.' and '-' (found {' '.join(map(repr, bad))})"
    elif glob[0] in "_.-":
        problem = "names start with a letter or digit"
    elif glob.count("[") != glob.count("]"):
        problem = "unbalanced '[' ']'"
    if problem:
        errors.add(path, f"{glob!r} can never match a container name: {problem}")


def _image(ref: str, path: Path, errors: Errors) -> None:
    problem = _image_problem(ref)
    if problem:
        errors.add(path, f"{ref!r} is not an image reference: {problem}")


def _image_problem(ref: str) -> str | None:
    if any(c.isspace() for c in ref):
        return "it contains whitespace"
    if ref.count("@") > 1:
        return "more than one '@'"
    rest, _, digest = ref.partition("@")
    if digest and not _IMAGE_DIGEST.match(digest):
        return f"digest {digest!r} should look like sha256:<hex>"
    parts = rest.split("/")
    if len(parts) > 1 and ("." in parts[0] or ":" in parts[0] or parts[0] == "localhost"):
        host, parts = parts[0], parts[1:]
        if not _IMAGE_HOST.match(host):
            return f"registry {host!r} is not a host[:port]"
    last, colon, tag = parts[-1].partition(":")
    parts[-1] = last
    if colon and not _IMAGE_TAG.match(tag):
        return f"tag {tag!r}: up to 128 letters, digits, '_', '.' and '-'"
    for part in parts:
        if not part:
            return "an empty path component"
        if not _IMAGE_COMPONENT.match(part):
            return f"path component {part!r}: lowercase letters and digits separated by '.', '_' or '-'"
    return None


def _syscall_rule(rule: dict, path: Path, errors: Errors) -> None:
    if "signal" in rule and rule["action"] != "kill":
        errors.add(path + ("signal",), "signal is only used by action: kill")


def _threshold(rule: dict, path: Path, errors: Errors) -> None:
    if "syscall" in rule and rule["signal"] not in PER_SYSCALL_SIGNALS:
        errors.add(path + ("syscall",), f"syscall only applies to {' and '.join(PER_SYSCALL_SIGNALS)}")
    _above(rule["above"], rule["signal"], path + ("above",), errors)


def _spec(spec: dict, path: Path, errors: Errors) -> None:
    _rule_names(spec, path, errors)
    _rate_levels(spec, path, errors)


def _rate_levels(spec: dict, path: Path, errors: Errors) -> None:
    """At most RATE_LEVELS distinct levels (`above` rounded down) per kernel-checked rate and
    syscall: the kernel holds that many per container, so one policy's are all checked there.
    Run on the raw spec: what is not a readable threshold is left to the other checks."""
    thresholds = spec.get("thresholds")
    levels: dict[tuple[str, str | None], set[int]] = {}
    for i, rule in enumerate(thresholds if isinstance(thresholds, list) else ()):
        if not isinstance(rule, dict) or rule.get("signal") not in KERNEL_RATES:
            continue
        above = rule.get("above")
        if isinstance(above, bool) or not isinstance(above, (int, float, str)):
            continue
        try:
            level = math.floor(above_value(above, rule["signal"]))
        except (InvalidArgument, ValueError, OverflowError):
            continue
        syscall = rule.get("syscall") if isinstance(rule.get("syscall"), str) else None
        seen = levels.setdefault((rule["signal"], syscall), set())
        seen.add(level)
        if len(seen) > RATE_LEVELS:
            what = rule["signal"] + ("" if syscall is None else f" of syscall {syscall}")
            errors.add(path + ("thresholds", i, "above"),
                       f"the kernel checks at most {RATE_LEVELS} levels of {what} per container; this is "
                       f"level {len(seen)} of it in this policy (rules with the same level count once)")
            seen.discard(level)


def _rule_names(spec: dict, path: Path, errors: Errors) -> None:
    """Rule names are unique within a policy. Run on the raw spec even when other fields have
    problems (so everything is reported at once): hence the type checks."""
    network = spec.get("network")
    egress = network.get("egress") if isinstance(network, dict) else None
    seen: set[str] = set()
    for part, rules in ((("syscalls",), spec.get("syscalls")),
                        (("network", "egress", "rules"), egress.get("rules") if isinstance(egress, dict) else None),
                        (("thresholds",), spec.get("thresholds"))):
        for i, rule in enumerate(rules if isinstance(rules, list) else ()):
            name = rule.get("name") if isinstance(rule, dict) else None
            if not isinstance(name, str):
                continue
            if name in seen:
                errors.add(path + part + (i, "name"), f"rule name {name!r} is used twice in this policy")
            seen.add(name)


def above_value(value: float | str, signal: str) -> float:
    """`above:` as a number: a size for the byte signals (InvalidArgument if not readable)."""
    if isinstance(value, str):
        if SIGNALS[signal] != "bytes":
            raise InvalidArgument("not a number")
        return float(size_of(value))
    return float(value)


def _above(value: Any, signal: str, path: Path, errors: Errors) -> None:
    kind = SIGNALS[signal]
    try:
        number = above_value(value, signal)
    except InvalidArgument:
        hint = "a size like 200Mi or a number" if kind == "bytes" else "a number"
        errors.add(path, f"expected {hint}, got {describe(value)}")
        return
    if not math.isfinite(number):
        errors.add(path, f"expected a finite number, got {describe(value)}")
    elif kind == "flag" and not 0 <= number < 1:
        errors.add(path, f"{signal} is 1 while it holds and 0 otherwise: use above: 0, got {value!r}")
    elif kind == "percent" and number > 100:
        errors.add(path, f"a percentage of the limit is at most 100, got {value!r}")
