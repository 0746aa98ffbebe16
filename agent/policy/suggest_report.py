"""One `corral policy suggest` answer from the history: the policy text (built from the whole
window), the seccomp profile, and the held-out check (a suggestion built from the first part
of the window, replayed over the rest). Used by the daemon's API (agent/policy/queries.py).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agent.errors import CorralError, InvalidArgument, NotFound
from agent.policy.history import Behaviour
from agent.policy.model import Policy, Selector
from agent.policy.suggest import observe, policy_name, suggest, window
from agent.policy.suggest_holdout import HoldoutReport, holdout
from agent.policy.suggest_text import policy_yaml, seccomp_profile

DEFAULT_HOLDOUT = 0.2       # the share of the window held out


@dataclass(frozen=True)
class SuggestRequest:
    selector: Selector
    name: str | None = None
    since: float = 0.0
    holdout: float = DEFAULT_HOLDOUT
    mode: str = "enforce"
    egress_recorded: bool = True
    observed: tuple[str, ...] = ()          # containers Corral did not start (deny rules skip them)


def suggest_report(behaviours: Sequence[Behaviour], request: SuggestRequest,
                   syscall_known: Callable[[str], bool] | None = None) -> dict:
    if not 0.0 <= request.holdout < 1.0:
        raise InvalidArgument(f"holdout {request.holdout!r}: expected a share from 0 up to (not including) 1")
    if request.mode not in ("enforce", "audit"):
        raise InvalidArgument(f"mode {request.mode!r}: expected enforce or audit")
    span = window(behaviours, request.since)
    if span is None:
        raise NotFound("no history for " + (", ".join(b.container.name for b in behaviours) or "that selector")
                       + " in that window",
                       hint="the daemon records containers while its policies run (--policies); "
                            "try a longer --since")
    start, end = span
    name = request.name or policy_name(behaviours[0].container.name if len(behaviours) == 1 else "selection")
    split = start + (end - start) * (1.0 - request.holdout)
    held: HoldoutReport | None = None
    note = "A policy from the first part of the window was replayed over the rest (see the report)."
    if request.holdout > 0 and split < end:
        trial = suggest(observe(behaviours, start, split), request.selector, name=name, mode=request.mode,
                        egress_recorded=request.egress_recorded, syscall_known=syscall_known)
        held = holdout(trial, _compiled(policy_yaml(trial), syscall_known), behaviours, split, end)
    final = suggest(observe(behaviours, start, end), request.selector, name=name, mode=request.mode,
                    egress_recorded=request.egress_recorded, syscall_known=syscall_known)
    text = policy_yaml(final, holdout_note=note if held is not None else "", observed=request.observed)
    _compiled(text, syscall_known)
    return {"name": name, "policy": text, "seccomp": seccomp_profile(final),
            "containers": list(final.observed.containers), "unnamed": list(final.unnamed), "start": start, "end": end,
            "samples": final.observed.samples, "split": split if held is not None else None,
            "holdout": held.to_dict() if held is not None else None}


def _compiled(text: str, syscall_known: Callable[[str], bool] | None) -> Policy:
    """The policy of a suggestion's text, checked as `corral policy check` would."""
    from agent.policy.check import load_text
    loaded = load_text(text, "suggested.yaml", syscall_known)
    if loaded.problems or len(loaded.policies) != 1:
        raise CorralError("the suggested policy does not pass its own check (a bug): "
                          + "; ".join(str(p) for p in loaded.problems))
    return loaded.policies[0]
