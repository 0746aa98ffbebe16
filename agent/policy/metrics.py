"""The policy metrics, as prometheus_client metrics on the daemon's registry.

The daemon registers them whether or not it has a policy folder, and every (action, result)
pair the agent can count starts at 0: the shipped dashboards and alert rules (which take
`increase()` of these) then show 0, not "No data", on a fresh daemon. Families whose labels
name a policy or container (violations, loaded) have no series until there is one to count.
"""
from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge

from agent.policy.actions import ActionResult
from agent.policy.engine import Evaluation
from agent.policy.model import Policy

# Every `action` label value: the threshold actions (agent.policy.actions.ActionExecutor),
# live limits, thawing by `corral policy unfreeze`, and the BPF-enforced ones.
ACTIONS = ("alert", "resolve_alert", "throttle", "restore", "freeze", "thaw", "kill",
           "limits", "enforce", "kill_process", "deny_connect")
RESULTS = ("ok", "failed")


class PolicyMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.violations = Counter("corral_policy_violations_total",
                                  "Policy rule violations, by action taken",
                                  ["policy", "rule", "action", "name"], registry=registry)
        self.actions = Counter("corral_policy_actions_total", "Policy actions executed, by result",
                               ["action", "result"], registry=registry)
        self.loaded = Gauge("corral_policy_loaded", "1 for each policy in force", ["policy", "mode"],
                            registry=registry)
        # agent/policy/prover.py: read back from the kernel every --prove-interval.
        self.enforced = Gauge("corral_policy_enforced",
                              "1 while the kernel holds an enforcing rule of a running container, 0 when "
                              "it does not (reason says why)", ["policy", "rule", "name", "kind", "reason"],
                              registry=registry)
        self.load_errors = Counter("corral_policy_load_errors_total",
                                   "Policy files that failed to load (previous version kept)",
                                   registry=registry)
        for action in ACTIONS:
            for result in RESULTS:
                self.actions.labels(action, result)

    def count(self, evaluation: Evaluation, results: list[ActionResult]) -> None:
        for violation in evaluation.violations:
            for action in violation.actions:
                self.violations.labels(violation.policy, violation.rule, action, violation.container_name).inc()
        for result in results:
            self.actions.labels(result.action, result.result).inc()

    def set_loaded(self, policies: Iterable[Policy]) -> None:
        self.loaded.clear()
        for policy in policies:
            self.loaded.labels(policy.name, policy.mode).set(1)
