"""`EnforcementProver`: gathers the kernel's evidence for every running container, judges each
enforcing rule (agent.policy.prove), exports `corral_policy_enforced{policy,rule,name,kind}`
(1/0, with `reason` when 0) and, when a rule drops to 0, records `enforcement_lost` (which
alerts as CorralPolicyNotEnforced) and puts the rule back (`Enforcer.repair`), recording
`enforcement_restored` once the kernel shows it again.

It runs every `interval` seconds on its own thread (`--prove-interval`, 0 = only on request)
and on `corral policy prove`. Reading is cheap: one BPF map lookup per table, one
BPF_PROG_QUERY per egress program and one /proc status read per process.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from prometheus_client import Gauge

from agent.catalog.catalog import ContainerCatalog
from agent.catalog.entry import CatalogEntry
from agent.cgroups.driver import CgroupDriver
from agent.errors import CorralError
from agent.events import Event, EventLog
from agent.policy import kill_order
from agent.policy.canary import Canaries, trials
from agent.policy.enforcer import Enforcer
from agent.policy.merge import EffectivePolicy, ThresholdEntry
from agent.policy.prove import Evidence, RuleProof, prove, seccomp_modes
from agent.probes.interface import ProbeControl

log = logging.getLogger("corral.policy")

REPAIRABLE = ("syscall_kill", "egress", "limits")


class EnforcementProver:
    def __init__(self, *, catalog: ContainerCatalog, effective: Callable[[str, str, dict], EffectivePolicy],
                 cgroups: CgroupDriver, probes: ProbeControl | None, enforcer: Enforcer, events: EventLog,
                 gauge: Gauge, number: Callable[[str], int | None],
                 interval: float = 10.0, proc: str = "/proc", canaries: Canaries | None = None,
                 canary_interval: float = 0.0) -> None:
        self.catalog = catalog
        self._effective = effective
        self.cgroups = cgroups
        self.probes = probes
        self.enforcer = enforcer
        self.events = events
        self._number = number
        self.interval = interval
        self._proc = proc
        self.canaries = canaries
        self.canary_interval = canary_interval
        self._canary_due = 0.0
        self.gauge = gauge
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str, str, str], RuleProof] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # (container id, threshold) -> its cgroup watch is armed (the policy service's Watches)
        self.watched: Callable[[str, ThresholdEntry], bool] = lambda container_id, entry: False

    @classmethod
    def for_policies(cls, policies, *, catalog: ContainerCatalog, cgroups: CgroupDriver,
                     probes: ProbeControl | None, events: EventLog, interval: float,
                     canary_interval: float) -> EnforcementProver:
        """The daemon's prover over its PolicyService, with canaries through the launcher (whose
        reports its Enforcer then knows not to take for violations)."""
        from agent.runtime.launch import find_launcher
        canaries = Canaries(find_launcher())
        enforcer = policies.enforcer
        enforcer.is_canary = canaries.is_canary
        prover = cls(catalog=catalog, effective=policies.policy_for, cgroups=cgroups, probes=probes,
                     enforcer=enforcer, events=events, gauge=policies.metrics.enforced,
                     number=enforcer.syscall_number, interval=interval, canaries=canaries,
                     canary_interval=canary_interval)
        prover.watched = policies.watches.evented
        return prover

    # --- life cycle -----------------------------------------------------------------------------

    def start(self) -> None:
        if self.interval <= 0:
            return
        self._thread = threading.Thread(target=self._loop, name="policy prover", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            canary = self.canaries is not None and self.canary_interval > 0 and time.monotonic() >= self._canary_due
            if canary:
                self._canary_due = time.monotonic() + self.canary_interval
            try:
                self.prove(repair=True, canary=canary)
            except Exception:       # noqa: BLE001 - a failed round must not end the checks
                log.exception("proving the policies' enforcement failed; trying again in %.0f s", self.interval)

    # --- proving --------------------------------------------------------------------------------

    def prove(self, reference: str | None = None, *, repair: bool = False,
              canary: bool = False) -> list[RuleProof]:
        """Judge every enforcing rule of the running containers (or of one), export the result,
        and with `repair` put back what the kernel lost (then judge those containers again).
        With `canary` (and canaries configured), also try each egress and kill rule for real."""
        containers = [self.catalog.get(reference)] if reference else self.catalog.list(running=True)
        proofs = [p for c in containers if c.state == "running" for p in self._prove_one(c, canary)]
        self._publish(proofs, whole=reference is None)      # the loss is recorded before the repair
        if not repair:
            return proofs
        # A seccomp filter cannot be put on running processes: only a restart brings it.
        broken = {p.container_id for p in proofs if p.applicable and not p.enforced and p.kind in REPAIRABLE}
        repaired = [c for c in containers if c.id in broken and self.enforcer.repair(c)]
        if not repaired:
            return proofs
        again = [p for c in repaired for p in self._prove_one(c)]
        self._publish(again, whole=False)
        ids = {c.id for c in repaired}
        return [p for p in proofs if p.container_id not in ids] + again

    def _prove_one(self, container: CatalogEntry, canary: bool = False) -> list[RuleProof]:
        effective = self._effective(container.name, container.image, dict(container.labels))
        proofs = prove(container.id, container.name, effective, self._evidence(container), self._number,
                       lambda entry: self.watched(container.id, entry))
        if canary and self.canaries is not None:
            proofs += self._canary_proofs(container, effective)
        return proofs

    def _canary_proofs(self, container: CatalogEntry, effective: EffectivePolicy) -> list[RuleProof]:
        """Each egress part and kill rule tried by a canary in the container's cgroup (kind
        `canary`); not applicable without a cgroup v2 directory or a process to take the
        network namespace of."""
        assert self.canaries is not None
        found = []
        try:
            pids = self.cgroups.procs(container.cgroup)
        except (CorralError, OSError):
            pids = []
        for trial in trials(effective, self._number):
            if not container.cgroup.unified or not pids:
                found.append(RuleProof(container.id, container.name, trial.policy, trial.rule, "canary", False,
                                       "no cgroup v2 directory or process to try it in", applicable=False))
                continue
            ok, detail = self.canaries.run(trial, container.cgroup.unified, f"{self._proc}/{pids[0]}/ns/net")
            found.append(RuleProof(container.id, container.name, trial.policy, trial.rule, "canary", ok,
                                   "" if ok else detail))
        return found

    def _evidence(self, container: CatalogEntry) -> Evidence:
        kernel, problem = None, ""
        if self.probes is None:
            problem = "the daemon runs without probes"
        elif not container.cgroup_id or not container.cgroup.unified:
            problem = "the container has no cgroup v2 directory for BPF programs"
        else:
            try:
                kernel = self.probes.enforcement_in_kernel(container.cgroup_id, container.cgroup.unified)
            except CorralError as error:
                problem = str(error)
        try:
            limits = self.cgroups.read_limits(container.cgroup)
            pids = self.cgroups.procs(container.cgroup)
        except (CorralError, OSError):
            limits, pids = None, []
        adj = kill_order.read(pids, self._proc)
        if container.observed:
            return Evidence(kernel, problem, None, None, limits, observed=True, oom_adj=adj)
        from agent.security.container_filter import in_force as filter_record
        record = filter_record(Path(container.seccomp_file).parent) if container.seccomp_file else None
        denied = tuple(record.get("denied") or ()) if record else ()
        return Evidence(kernel, problem, seccomp_modes(pids, self._proc), denied, limits, oom_adj=adj)

    def _publish(self, proofs: list[RuleProof], *, whole: bool) -> None:
        """The gauge and the lost/restored events. `whole`: every running container was
        proved, so series of containers and rules that are gone are dropped."""
        with self._lock:
            seen = {p.key for p in proofs}
            for proof in proofs:
                before = self._last.get(proof.key)
                if before is not None and before.reason != proof.reason:
                    self._remove_series(before)
                self._last[proof.key] = proof
                if not proof.applicable:
                    continue
                self.gauge.labels(proof.policy, proof.rule, proof.name, proof.kind,
                                  proof.reason).set(1 if proof.enforced else 0)
                if not proof.enforced and (before is None or before.enforced):
                    self._emit("enforcement_lost", proof)
                elif proof.enforced and before is not None and not before.enforced:
                    self._emit("enforcement_restored", proof)
            if whole:
                # A canary's result stays until its next trial; everything else of a container
                # or rule that is gone goes.
                running = {p.container_id for p in proofs}
                for key in [k for k in self._last if k not in seen
                            and not (k[3] == "canary" and k[0] in running)]:
                    self._remove_series(self._last.pop(key))

    def _remove_series(self, proof: RuleProof) -> None:
        try:
            self.gauge.remove(proof.policy, proof.rule, proof.name, proof.kind, proof.reason)
        except KeyError:
            pass

    def _emit(self, action: str, proof: RuleProof) -> None:
        if action == "enforcement_lost":
            log.error("policy %s rule %s of container %s is not in force: %s",
                      proof.policy, proof.rule, proof.name, proof.reason)
        self.events.emit(Event("policy", action, proof.container_id, proof.name,
                               attributes={"policy": proof.policy, "rule": proof.rule, "kind": proof.kind,
                                           "reason": proof.reason}))
