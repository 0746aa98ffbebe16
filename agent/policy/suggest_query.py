"""`POST /v1/policies/suggest` in the daemon: which containers' history to learn from (one
container, also a removed one the history still holds, or every container a selector
matches), then agent/policy/suggest_report.py.
"""
from __future__ import annotations

from collections.abc import Callable

from agent.catalog.catalog import ContainerCatalog
from agent.errors import InvalidArgument, NotFound
from agent.policy.history import Behaviour, SignalHistory
from agent.policy.model import Selector
from agent.policy.suggest_report import SuggestRequest, suggest_report


def selected(history: SignalHistory, catalog: ContainerCatalog, container: str | None,
             selector: Selector | None) -> tuple[list[Behaviour], Selector]:
    """The behaviours to learn from and the selector the policy gets."""
    refs = history.containers()
    if container is not None:
        chosen = _one(refs, catalog, container)
        behaviour = history.behaviour(chosen)
        assert behaviour is not None
        return [behaviour], Selector(names=(behaviour.container.name,))
    if selector is None:
        raise InvalidArgument("give a container or a selector", field="container")
    found = [history.behaviour(r.id) for r in refs if selector.matches(r.name, r.image, r.labels)]
    behaviours = [b for b in found if b is not None]
    if not behaviours:
        raise NotFound("no container in the history matches the selector " + repr(selector.to_dict()),
                       hint="the daemon records containers while its policies run")
    return behaviours, selector


def _one(refs, catalog: ContainerCatalog, reference: str) -> str:
    """A container's id: the catalogue's answer if it knows the container, else the history's
    (by id, name or unique id prefix; the newest of several removed containers of one name)."""
    try:
        entry = catalog.get(reference)
        if any(r.id == entry.id for r in refs):
            return entry.id
    except NotFound:
        pass
    exact = [r for r in refs if r.id == reference or r.name == reference]
    if exact:
        return exact[-1].id            # the history keeps the most recently recorded last
    prefixed = [r for r in refs if r.id.startswith(reference)]
    if len(prefixed) == 1:
        return prefixed[0].id
    if prefixed:
        raise InvalidArgument(f"container {reference!r}: the prefix matches {len(prefixed)} containers in "
                              "the history", hint="give more of the id")
    raise NotFound(f"no history of container {reference}",
                   hint="the daemon records containers while its policies run (--policies), and keeps "
                        "removed ones until newer ones push them out")


def suggestion(history: SignalHistory, catalog: ContainerCatalog, *, container: str | None,
               selector: Selector | None, since: float, holdout: float, mode: str, name: str | None,
               egress_recorded: bool, syscall_known: Callable[[str], bool] | None) -> dict:
    behaviours, chosen = selected(history, catalog, container, selector)
    entries = [catalog.by_id(b.container.id) for b in behaviours]
    observed = tuple(sorted(e.name for e in entries if e is not None and e.observed))
    return suggest_report(behaviours, SuggestRequest(chosen, name, since, holdout, mode, egress_recorded, observed),
                          syscall_known)
