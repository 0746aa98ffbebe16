"""`corral policy test`: unit tests for policies, like `promtool test rules` for alert rules.

A test file (`tests/*.yaml` beside the policies) holds cases. Each case names a container
(name, image, labels), a series per signal sampled every `interval`, and optionally syscalls
called at given times; it expects the rules that fire and resolve, in order, at what time,
with which actions:

    tests:
      - name: a leak is frozen after 30 s
        container: {name: web, image: nginx:1, labels: {tier: batch}}
        interval: 1s
        signals:
          memory_percent_of_limit: "50 85x40 50"   # 50, then 85 41 times, then 50
          pids: "10+5x20"                           # 10, 15, ..., 110
        syscalls:
          - {at: 3s, name: ptrace}
        expect:
          - {at: 3s, policy: default, rule: debugging-others, kind: syscall, actions: [alert]}
          - {at: 31s, policy: memory-pressure, rule: near-limit, kind: fire, actions: [alert]}

Series use promtool's notation: `V`, `VxN` (V, N more times), `A+BxN` / `A-BxN` (A, then N
steps of B), `_` (no value: the signal is unknown, as right after a start), `_xN`; values take
size suffixes (`64Mi`). The cases run through the daemon's own Engine and merge, with every
policy of the folder that selects the container, in its own mode (audit records without
throttling, freezing or killing). Pure: no root, no daemon, no kernel.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

from agent.errors import InvalidArgument
from agent.policy.engine import ContainerRef, Engine
from agent.policy.merge import merge, selecting
from agent.policy.model import Policy
from agent.policy.signals import SIGNAL_NAMES, SignalSample
from agent.units import parse_duration, parse_size

_TOKEN = re.compile(r"^(_|[0-9.]+[a-zA-Z]*)(?:([+-])([0-9.]+[a-zA-Z]*))?(?:x(\d+))?$")
_Short = Annotated[str, msgspec.Meta(max_length=256)]
MAX_SAMPLES = 100_000


class TestContainer(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: _Short = "test"
    image: _Short = "busybox:latest"
    labels: dict[_Short, _Short] = {}


class SyscallCall(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    at: _Short
    name: _Short
    calls: float = 1.0


class Expected(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    at: _Short
    policy: _Short
    rule: _Short
    kind: Annotated[str, msgspec.Meta(pattern="^(fire|resolve|syscall)$")] = "fire"
    actions: list[_Short] | None = None        # None: not compared


class TestCase(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    name: _Short
    container: TestContainer = TestContainer()
    interval: _Short = "1s"
    signals: dict[_Short, str] = {}
    syscalls: list[SyscallCall] = []
    expect: list[Expected] = []


class TestFile(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    tests: list[TestCase]


@dataclass(frozen=True)
class Outcome:
    """What happened, in the words of `expect`."""

    at: float
    policy: str
    rule: str
    kind: str
    actions: tuple[str, ...]

    def line(self) -> str:
        actions = "any actions" if self.actions == ("*",) else ", ".join(self.actions)
        return f"{self.at:g}s {self.kind} {self.policy}/{self.rule} [{actions}]"


@dataclass(frozen=True)
class CaseResult:
    file: str
    name: str
    expected: list[Outcome]
    got: list[Outcome]

    @property
    def passed(self) -> bool:
        return all(_same(e, g) for e, g in zip(self.expected, self.got)) and len(self.expected) == len(self.got)

    def diff(self) -> list[str]:
        lines = []
        for index in range(max(len(self.expected), len(self.got))):
            want = self.expected[index] if index < len(self.expected) else None
            have = self.got[index] if index < len(self.got) else None
            if want is not None and have is not None and _same(want, have):
                lines.append(f"    {have.line()}")
                continue
            if want is not None:
                lines.append(f"  - {want.line()}")
            if have is not None:
                lines.append(f"  + {have.line()}")
        return lines


def _same(want: Outcome, have: Outcome) -> bool:
    return (abs(want.at - have.at) < 1e-6 and (want.policy, want.rule, want.kind) == (have.policy, have.rule, have.kind)
            and (want.actions == ("*",) or want.actions == have.actions))


def parse_file(data: Any, file: str) -> TestFile:
    try:
        return msgspec.convert(data, TestFile)
    except msgspec.ValidationError as exc:
        raise InvalidArgument(f"{file}: {exc}") from None


def expand_series(text: str, where: str) -> list[float | None]:
    """promtool's expanding notation into one value per sample (None for `_`)."""
    values: list[float | None] = []
    for token in text.split():
        found = _TOKEN.match(token)
        if not found:
            raise InvalidArgument(f"{where}: {token!r} is not a value, V, VxN, A+BxN or _ (like 64Mi, 85x40, 10+5x20)")
        start, sign, step, count = found.groups()
        repeat = int(count) if count else 0
        if start == "_":
            values.extend([None] * (repeat + 1))
        else:
            first = _number(start, where)
            delta = _number(step, where) * (-1 if sign == "-" else 1) if step else 0.0
            values.extend(first + delta * i for i in range(repeat + 1))
        if len(values) > MAX_SAMPLES:
            raise InvalidArgument(f"{where}: more than {MAX_SAMPLES} samples")
    return values


def _number(text: str, where: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return float(parse_size(text, field=where))
    except InvalidArgument:
        raise InvalidArgument(f"{where}: {text!r} is not a value: a number, optionally with a size suffix "
                              "(64Mi), V, VxN, A+BxN or _") from None


def run_case(case: TestCase, policies: list[Policy], file: str) -> CaseResult:
    where = f"{file}: test {case.name!r}"
    interval = parse_duration(case.interval, field=f"{where}: interval")
    if interval <= 0:
        raise InvalidArgument(f"{where}: interval must be more than 0")
    series = {}
    for signal, text in case.signals.items():
        if signal not in SIGNAL_NAMES:
            raise InvalidArgument(f"{where}: unknown signal {signal!r} (known: {', '.join(SIGNAL_NAMES)})")
        series[signal] = expand_series(text, f"{where}: signals.{signal}")
    calls: dict[int, dict[str, float]] = {}
    for call in case.syscalls:
        step = round(parse_duration(call.at, field=f"{where}: syscalls at") / interval)
        calls.setdefault(step, {})[call.name] = calls.get(step, {}).get(call.name, 0.0) + call.calls
    length = max([len(values) for values in series.values()] + [max(calls, default=-1) + 1, 1])
    container = ContainerRef("test-" + case.container.name, case.container.name, case.container.image,
                             dict(case.container.labels))
    effective = merge(selecting(policies, container.name, container.image, container.labels))
    engine, got, seen = Engine(), [], set()
    for step in range(length):
        now = step * interval
        values = {name: (vals[step] if step < len(vals) else vals[-1]) for name, vals in series.items()}
        per_call = {name: (count / interval, 0.0) for name, count in calls.get(step, {}).items()}
        if per_call and values.get("syscalls_per_second") is None:
            values["syscalls_per_second"] = sum(rate for rate, _ in per_call.values())
        evaluation = engine.evaluate(container, effective, SignalSample(now, values, per_call))
        got += [Outcome(now, v.policy, v.rule, "fire", tuple(v.actions)) for v in evaluation.violations]
        got += [Outcome(now, r.policy, r.rule, "resolve", tuple(r.actions)) for r in evaluation.resolutions]
        for entry in effective.syscalls:
            if entry.syscall in per_call and (entry.source, entry.syscall) not in seen:
                seen.add((entry.source, entry.syscall))
                action = entry.action if entry.source.mode == "enforce" else "alert"
                got.append(Outcome(now, entry.source.policy, entry.source.rule, "syscall", (action,)))
    expected = [Outcome(parse_duration(e.at, field=f"{where}: expect at"), e.policy, e.rule, e.kind,
                        tuple(e.actions) if e.actions is not None else ("*",)) for e in case.expect]
    return CaseResult(file, case.name, expected, got)
