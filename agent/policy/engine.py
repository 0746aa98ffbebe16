"""The threshold state machine: per (container, policy, rule), is the condition holding, for
how long, and what must be done about it.

    ok --above--> pending --held for `for:`--> firing --clears--> resolved (ok)
                     `--clears--> ok (nothing recorded)

The engine is pure: the caller passes time and signal samples in, and gets back records
(Violation, Resolution) and the Actions to take; it never sleeps and never touches a cgroup.

Decisions worth knowing (docs/policies.md, "Thresholds"):
- an unknown value (None: no previous snapshot, counters restarted) leaves the state alone;
- throttle and freeze are shared by the rules of a container: the first rule to fire throttles
  (or freezes), the last one to resolve restores (or thaws), so two rules never halve twice
  and one rule resolving does not undo another's action;
- a rule holding a freeze does not resolve on its own: a frozen container's rates fall to zero
  and its memory cannot change, so its signals say nothing. It resolves (and thaws) when the
  user unfreezes the container (`released`), or when the rule disappears on reload;
- audit mode records the violation and alerts; it never throttles, freezes or kills (the
  violation lists what enforcing would have done in `suppressed`);
- a rule that disappears from the effective policy (reload, policy no longer selects the
  container) resolves at the next evaluation, with its resolve actions.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import cast

from agent.policy.merge import EffectivePolicy, ThresholdEntry
from agent.policy.signals import SignalSample

ENFORCING_ACTIONS = ("throttle", "freeze", "kill")
SHARED_ACTIONS = {"throttle": "restore", "freeze": "thaw"}   # action -> its resolve action


@dataclass(frozen=True)
class ContainerRef:
    id: str
    name: str
    image: str = ""
    labels: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Violation:
    container_id: str
    container_name: str
    policy: str
    rule: str
    signal: str
    syscall: str | None
    value: float
    above: float
    since: float               # when the condition began to hold
    time: float                # when it fired (since + for:, at sampling granularity)
    mode: str
    actions: tuple[str, ...]   # what is done: alert, throttle, freeze, kill
    suppressed: tuple[str, ...] = ()   # enforcing actions audit mode did not take
    # Who saw the condition begin: "kernel" (a rate limit crossing, agent/probes/rate_limits.py)
    # or "sampled" (the periodic evaluation); "" for records that are not threshold rules.
    trigger: str = ""

    def to_dict(self) -> dict:
        data = dict(self.__dict__, actions=list(self.actions), suppressed=list(self.suppressed))
        if not self.trigger:
            data.pop("trigger")
        return data


@dataclass(frozen=True)
class Resolution:
    container_id: str
    container_name: str
    policy: str
    rule: str
    signal: str
    value: float | None
    fired_at: float
    time: float
    reason: str                # "cleared", "rule removed", "unfrozen"
    actions: tuple[str, ...]   # restore, thaw, resolve_alert

    def to_dict(self) -> dict:
        return dict(self.__dict__, actions=list(self.actions))


@dataclass(frozen=True)
class Action:
    """One thing to do to a container: alert, throttle, freeze, kill, restore, thaw, resolve_alert."""

    kind: str
    container_id: str
    container_name: str
    policy: str
    rule: str
    record: Violation | Resolution


@dataclass
class Evaluation:
    violations: list[Violation] = field(default_factory=list)
    resolutions: list[Resolution] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)


@dataclass(frozen=True)
class RuleState:
    """Where one rule stands for one container (for `policy explain`)."""

    policy: str
    rule: str
    phase: str                 # pending | firing
    since: float
    value: float | None
    fired_at: float | None = None
    taken: tuple[str, ...] = ()          # actions taken when it fired
    entry: ThresholdEntry | None = None
    violation: Violation | None = None
    trigger: str = "sampled"             # who saw the condition begin (Violation.trigger)


class Engine:
    """Threshold states of every container; one instance per daemon (and one per replay)."""

    def __init__(self) -> None:
        self._states: dict[tuple[str, str, str], RuleState] = {}
        # (container id, "throttle"|"freeze") -> keys of the rules holding it
        self._holders: dict[tuple[str, str], set[tuple[str, str, str]]] = {}

    def states(self, container_id: str) -> list[RuleState]:
        return [s for (cid, _, _), s in sorted(self._states.items()) if cid == container_id]

    def next_due(self) -> float | None:
        """When the earliest pending rule will have held for its `for:` (the clock of the
        samples), so the service can evaluate then instead of at the next tick."""
        dues = [state.since + state.entry.threshold.for_seconds for state in self._states.values()
                if state.phase == "pending" and state.entry is not None]
        return min(dues) if dues else None

    def holding(self, container_id: str, action: str) -> bool:
        """True while a rule of this engine holds the container throttled or frozen."""
        return bool(self._holders.get((container_id, action)))

    def forget(self, container_id: str) -> None:
        """The container is gone: drop its states without actions."""
        for state_key in [k for k in self._states if k[0] == container_id]:
            del self._states[state_key]
        for holder_key in [k for k in self._holders if k[0] == container_id]:
            del self._holders[holder_key]

    def evaluate(self, container: ContainerRef, effective: EffectivePolicy, sample: SignalSample) -> Evaluation:
        """Advance every threshold rule of `container` to `sample.time`."""
        result = Evaluation()
        now = sample.time
        live = set()
        for entry in effective.thresholds:
            key = (container.id, entry.source.policy, entry.source.rule)
            live.add(key)
            value = sample.value(entry.threshold.signal, entry.threshold.syscall)
            if value is None:
                continue
            state = self._states.get(key)
            if value > entry.threshold.above:
                self._above(container, entry, value, now, result, "sampled")
            elif state is not None:
                if state.phase == "pending":
                    del self._states[key]
                elif "freeze" not in state.taken:
                    self._resolve(container, key, now, value, "cleared", result)
                else:
                    self._states[key] = replace(state, value=value)
        for key in [k for k in self._states if k[0] == container.id and k not in live]:
            if self._states[key].phase == "firing":
                self._resolve(container, key, now, None, "rule removed", result)
            else:
                del self._states[key]
        return result

    def cross(self, container: ContainerRef, entries: tuple[ThresholdEntry, ...], value: float, now: float,
              trigger: str = "kernel") -> Evaluation:
        """A crossing the kernel saw (a rate limit, probes/rates.c): each of `entries` whose
        threshold `value` is above advances as `evaluate` would advance it (pending, or firing
        when its `for:` is 0 or has run out). Nothing else changes: `value` is a lower bound (a
        count so far in one window), so a rule it is not above is not cleared by it."""
        result = Evaluation()
        for entry in entries:
            if value > entry.threshold.above:
                self._above(container, entry, value, now, result, trigger)
        return result

    def _above(self, container: ContainerRef, entry: ThresholdEntry, value: float, now: float,
               result: Evaluation, trigger: str) -> None:
        key = (container.id, entry.source.policy, entry.source.rule)
        state = self._states.get(key)
        if state is None:
            state = RuleState(entry.source.policy, entry.source.rule, "pending", now, value, entry=entry,
                              trigger=trigger)
        state = replace(state, value=value, entry=entry)
        if state.phase == "pending" and now - state.since >= entry.threshold.for_seconds:
            state = self._fire(container, entry, state, now, result)
        self._states[key] = state

    def gone(self, container: ContainerRef, now: float) -> Evaluation:
        """The container stopped or was removed: its firing rules resolve with reason
        `container gone` (alerts are resolved; nothing is left to restore or thaw). The caller
        runs the actions, then `forget`s the container."""
        evaluation = Evaluation()
        for state in self.states(container.id):
            if state.phase != "firing":
                continue
            kinds = ("resolve_alert",) if "alert" in state.taken else ()
            resolution = Resolution(container.id, container.name, state.policy, state.rule,
                                    state.entry.threshold.signal if state.entry else "", None,
                                    state.fired_at or state.since, now, "container gone", kinds)
            evaluation.resolutions.append(resolution)
            evaluation.actions.extend(Action(kind, container.id, container.name, state.policy, state.rule,
                                             resolution) for kind in kinds)
        return evaluation

    def released(self, container: ContainerRef, now: float) -> Evaluation:
        """The user unfroze the container: rules holding the freeze resolve, so a condition
        that still holds starts over (pending, then firing after its `for:` again)."""
        result = Evaluation()
        for key in list(self._holders.get((container.id, "freeze"), ())):
            self._resolve(container, key, now, None, "unfrozen", result, thaw=False)
        return result

    def _fire(self, container: ContainerRef, entry: ThresholdEntry, state: RuleState, now: float,
              result: Evaluation) -> RuleState:
        key = (container.id, entry.source.policy, entry.source.rule)
        wanted = entry.threshold.actions
        taken: tuple[str, ...]
        if entry.source.mode == "audit":
            taken = ("alert",)
            suppressed = tuple(a for a in wanted if a in ENFORCING_ACTIONS)
        else:
            taken, suppressed = wanted, ()
        violation = Violation(container.id, container.name, entry.source.policy, entry.source.rule,
                              # state.value is set from the first reading that made the rule pending
                              entry.threshold.signal, entry.threshold.syscall, float(cast(float, state.value)),
                              entry.threshold.above, state.since, now, entry.source.mode, taken, suppressed,
                              state.trigger)
        result.violations.append(violation)
        for kind in taken:
            if kind in SHARED_ACTIONS:
                holders = self._holders.setdefault((container.id, kind), set())
                first = not holders
                holders.add(key)
                if not first:
                    continue       # already throttled/frozen by another rule
            result.actions.append(Action(kind, container.id, container.name, entry.source.policy,
                                         entry.source.rule, violation))
        return replace(state, phase="firing", fired_at=now, taken=taken, violation=violation)

    def _resolve(self, container: ContainerRef, key: tuple[str, str, str], now: float, value: float | None,
                 reason: str, result: Evaluation, *, thaw: bool = True) -> None:
        state = self._states.pop(key)
        kinds = []
        for kind in reversed(state.taken):      # undo in reverse order
            if kind in SHARED_ACTIONS:
                holders = self._holders.get((container.id, kind), set())
                holders.discard(key)
                if not holders:
                    self._holders.pop((container.id, kind), None)
                    if thaw or kind != "freeze":
                        kinds.append(SHARED_ACTIONS[kind])
            elif kind == "alert":
                kinds.append("resolve_alert")
        signal = state.entry.threshold.signal if state.entry else ""
        resolution = Resolution(container.id, container.name, state.policy, state.rule, signal,
                                value, state.fired_at or state.since, now, reason, tuple(kinds))
        result.resolutions.append(resolution)
        result.actions.extend(Action(kind, container.id, container.name, state.policy, state.rule, resolution)
                              for kind in kinds)
