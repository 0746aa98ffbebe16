"""Which history `POST /v1/policies/suggest` learns from: a container by id, name or prefix
(also a removed one), or every container a selector matches."""
from __future__ import annotations

import pytest

from agent.catalog.catalog import ContainerCatalog
from agent.catalog.entry import CatalogEntry
from agent.cgroups.driver import CgroupPaths
from agent.errors import InvalidArgument, NotFound
from agent.policy.engine import ContainerRef
from agent.policy.history import SignalHistory
from agent.policy.model import Selector
from agent.policy.signals import SignalSample
from agent.policy.suggest_query import selected, suggestion

T0 = 1_700_000_000.0


@pytest.fixture
def history() -> SignalHistory:
    history = SignalHistory(capacity=10)
    for ref in (ContainerRef("aaa111", "web-1", "busybox", {"tier": "web"}),
                ContainerRef("aaa222", "web-2", "busybox", {"tier": "web"}),
                ContainerRef("bbb333", "db-1", "postgres", {"tier": "db"})):
        for t in range(5):
            history.record(ref, SignalSample(T0 + t, {"pids": 2.0}), syscall_totals={"read": (t + 1, 0)})
    return history


def test_a_removed_container_is_found_in_the_history_by_name_id_or_prefix(history):
    catalog = ContainerCatalog()          # every container removed: the catalogue knows none
    for reference in ("web-1", "aaa111", "aaa1"):
        behaviours, selector = selected(history, catalog, reference, None)
        assert [b.container.id for b in behaviours] == ["aaa111"]
        assert selector == Selector(names=("web-1",))
    with pytest.raises(InvalidArgument, match="matches 2 containers"):
        selected(history, catalog, "aaa", None)
    with pytest.raises(NotFound, match="no history of container nope"):
        selected(history, catalog, "nope", None)


def test_a_running_container_is_found_through_the_catalogue(history):
    catalog = ContainerCatalog()
    catalog.put(CatalogEntry(id="bbb333", name="db-renamed", image="postgres", cgroup=CgroupPaths("/x"),
                             cgroup_id=3))
    behaviours, _ = selected(history, catalog, "db-renamed", None)
    assert [b.container.id for b in behaviours] == ["bbb333"]
    answer = suggestion(history, catalog, container="db-renamed", selector=None, since=0.0, holdout=0.2,
                        mode="enforce", name=None, egress_recorded=True, syscall_known=None)
    assert "deny rules do not reach" not in answer["policy"]


def test_a_container_corral_did_not_start_is_told_deny_rules_skip_it(history):
    from agent.catalog.entry import OBSERVED
    catalog = ContainerCatalog()
    catalog.put(CatalogEntry(id="bbb333", name="db-1", image="postgres", cgroup=CgroupPaths("/x"),
                             cgroup_id=3, origin=OBSERVED, runtime="docker"))
    answer = suggestion(history, catalog, container="db-1", selector=None, since=0.0, holdout=0.2,
                        mode="enforce", name=None, egress_recorded=True, syscall_known=None)
    assert "# deny rules do not reach db-1: Corral did not start it" in answer["policy"]


def test_a_selector_learns_from_every_container_it_matches(history):
    chosen = Selector(labels={"tier": "web"})
    behaviours, selector = selected(history, ContainerCatalog(), None, chosen)
    assert sorted(b.container.name for b in behaviours) == ["web-1", "web-2"] and selector == chosen
    answer = suggestion(history, ContainerCatalog(), container=None, selector=chosen, since=0.0, holdout=0.2,
                        mode="audit", name=None, egress_recorded=False, syscall_known=None)
    assert answer["containers"] == ["web-1", "web-2"] and answer["name"] == "suggested-selection"
    assert "mode: audit" in answer["policy"] and 'labels: {"tier": "web"}' in answer["policy"]
    assert "network: none suggested" in answer["policy"]
    with pytest.raises(NotFound, match="no container in the history matches"):
        selected(history, ContainerCatalog(), None, Selector(names=("api-*",)))
    with pytest.raises(InvalidArgument, match="give a container or a selector"):
        selected(history, ContainerCatalog(), None, None)
