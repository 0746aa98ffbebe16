"""`corral daemon`: the composition root.

Builds every part, starts them in order (mounts, events, catalogue and bus, cgroups, images,
probes, runtime, discovery, metrics, policies, probe events, API) and stops them in reverse.
The runtime and discovery publish container events on the ContainerBus; the catalogue, the
probes, the event log and the policy enforcer subscribe here, in that order. Nothing else in Corral constructs parts or holds
process-wide state. SIGTERM or SIGINT stops the daemon cleanly; a second one forces exit.
Containers keep running while the daemon is down and are adopted when it starts again.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from agent import __version__
from agent.daemon_config import DaemonConfig, parse_args
from agent.daemon_metrics import metrics_registry, raise_open_files_limit
from agent.daemon_parts import load_probes, registry_options, start_networks, syscall_names

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from agent.alerting.fanout import AlertFanOut
    from agent.cgroups.driver import CgroupDriver
    from agent.discovery.observed import ObservedContainers
    from agent.policy.metrics import PolicyMetrics
    from agent.policy.prover import EnforcementProver
    from agent.policy.service import PolicyService
    from agent.probes.loader import ProbeSet
    from agent.registry.options import RegistryOptions
    from agent.services.manager import ServiceManager

log = logging.getLogger("corral.daemon")

class Daemon:
    """Owns every part; `run()` blocks until stopped."""

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self._stop = threading.Event()
        self._stack: list[tuple[str, Callable[[], object]]] = []   # (what, stop), stopped in reverse
        self.probes: ProbeSet | None = None
        self.policy: PolicyService | None = None              # with --policies
        self.prover: EnforcementProver | None = None          # with --policies
        self.registry: CollectorRegistry | None = None        # the /metrics registry, shared by the collectors
        self.alert_sink: AlertFanOut | None = None            # with --alertmanager/--alert-webhook
        self.observed: ObservedContainers | None = None       # with --observe
        self.services: ServiceManager | None = None
        self.host_cgroups: CgroupDriver | None = None         # Corral's driver, plus observed containers' cgroups
        self.policy_metrics: PolicyMetrics | None = None      # on the registry, with or without --policies
        self.started_at = time.time()
        self.syscall_name = syscall_names()     # one cache for the sampler, metrics and policies

    def build(self) -> None:
        from agent.catalog.bus import ContainerBus
        from agent.catalog.catalog import ContainerCatalog
        from agent.catalog.followers import log_observed, probes_follow
        from agent.cgroups.detect import detect_driver
        from agent.events import EventLog
        from agent.images.rootfs import RootfsManager
        from agent.images.store import ImageStore
        from agent.runtime.containers import Runtime
        from agent.runtime.launch import find_launcher

        config = self.config
        config.root.mkdir(parents=True, exist_ok=True)
        launcher = find_launcher()
        self.events = EventLog(config.root / "events.jsonl")
        self.catalog = ContainerCatalog()
        self.bus = ContainerBus()
        self._stack.append(("catalogue", self.bus.subscribe("catalogue", self.catalog.apply)))
        self._stack.append(("observed events", self.bus.subscribe("event log", log_observed(self.events))))
        self.cgroups = detect_driver(io_paths=[str(config.root)], device_cache=config.root / "probe-cache" / "devices")
        self._stack.append(("cgroup files", self.cgroups.close))
        self.images = ImageStore(config.root)
        self.images.clear_staging()       # what a daemon killed mid-pull or mid-import left
        if not any(f"{i.name}:{i.tag}" == "busybox:latest" for i in self.images.list()):
            self.images.build_busybox()
        if config.probes:
            self.probes = load_probes(config, launcher)
            if self.probes is not None:
                self._stack.append(("probes", self.probes.close))
                self._stack.append(("probes following", self.bus.subscribe("probes", probes_follow(self.probes))))
        self.networks = start_networks(config)
        if self.networks is not None:     # exited containers' queued detaches finished, the pool let go
            self._stack.append(("networks", self.networks.close))
        decider = None
        if config.policies:
            from agent.policy.decider import LibraryDecider
            from agent.policy.library import PolicyLibrary
            from agent.policy.yaml_source import YamlLimits
            # Loaded by the policy service's start, before the API lets any container start.
            decider = LibraryDecider(PolicyLibrary(str(config.policies),
                                                   limits=YamlLimits(max_bytes=config.policy_max_size)))
        from agent.userns.allocator import AUTO, UsernsAllocator
        from agent.userns.ownership import RootfsOwnership
        userns = UsernsAllocator(default=config.userns)
        if config.userns == AUTO:
            userns.spans()                # no subordinate ids: refuse to start, naming the file
        self.runtime = Runtime(root=config.root, images=self.images,
                               rootfs=RootfsManager(config.root, ownership=RootfsOwnership()),
                               cgroups=self.cgroups, events=self.events, launcher=launcher,
                               bus=self.bus, networks=self.networks, decider=decider, userns=userns)
        from agent.health.monitor import HealthMonitor
        # Subscribed before reconcile, so the containers it adopts are checked again.
        self.health = HealthMonitor(self.runtime, self.events, self.bus)
        self._stack.append(("health checks", self.health.close))
        self._stack.append(("health following", self.bus.subscribe("health", self.health.on_container)))
        from agent.runtime.restarts import RestartPolicies
        # Subscribed before reconcile: containers whose shim went while the daemon was down are
        # held and weighed at start(), once every container is reconciled.
        self.restarts = RestartPolicies(self.runtime, self.events)
        self._stack.append(("restart policy following",
                            self.bus.subscribe("restart policies", self.restarts.on_container)))
        self.runtime.reconcile()
        from agent.runtime.terminals import Terminals
        self.terminals = Terminals(self.runtime)    # attach, resize, interactive exec (v1 and Docker APIs)
        self._stack.append(("runtime", self.runtime.close))
        self.restarts.start()
        self._stack.append(("restart policies", self.restarts.close))
        self._start_observer()
        from agent.budget.budget import Budget, BudgetOptions
        self.budget = Budget(BudgetOptions(cpu=config.cpu_budget, series=config.series_budget))
        self.budget.start()
        self._stack.append(("budget", self.budget.stop))
        from agent.metrics.sampler import Sampler
        # The one reader of cgroup figures and BPF counters: metrics, `corral stats` and policies.
        self.sampler = Sampler(self.host_cgroups or self.cgroups, self.probes, self.syscall_name)
        self._start_alerting()
        if config.metrics_addr:
            self._start_metrics()
        self._start_incidents()
        if decider is not None:
            self._start_policies(decider)
        self._adopt_pinned()
        self._start_probe_events()
        self._start_services()
        from agent.build.builder import Builder
        from agent.build.pull import BasePull
        # One builder for `corral build` and the Docker API's POST /build.
        self.builder = Builder(self.images, self.runtime, BasePull(self.images, self.registry_options()),
                               config.root / "build-cache", "bridge" if self.networks else "none")
        from agent.api.server import ApiServer
        from agent.daemon_routes import route_groups
        self.api = ApiServer(config.socket, self.runtime, self.events, self.info,
                             extra_routes=route_groups(self), health=self.health)
        self.api.start()
        self._stack.append(("api", self.api.stop))
        if config.docker_socket is not None:
            self._start_docker_api(config.docker_socket)

    def _start_docker_api(self, path: Path) -> None:
        """Docker's Engine API over the same runtime, stores and networks (agent/dockerapi)."""
        from agent.dockerapi.app import Parts, build_router
        from agent.dockerapi.server import DockerApiServer
        parts = Parts(runtime=self.runtime, events=self.events, images=self.images, cgroups=self.cgroups,
                      info=self.info, networks=self.networks, registry_options=self.registry_options(),
                      health=self.health, terminals=self.terminals, builder=self.builder)
        server = DockerApiServer(path, build_router(parts))
        server.start()

        def stop() -> None:
            parts.stopping.set()
            server.stop()
        self._stack.append(("docker api", stop))

    def registry_options(self) -> RegistryOptions:
        return registry_options(self.config)

    def _adopt_pinned(self) -> None:
        """Push the adopted containers' rules now, then retire what a previous daemon left
        pinned (its rules were in force while none ran; agent/probes/pins.py)."""
        if self.probes is None:
            return
        if self.policy is not None:
            self.policy.enforce_running()
        lost = self.probes.adopt_pinned()
        if lost:
            log.warning("%d probe events were lost while no daemon read them", lost)

    def _start_probe_events(self) -> None:
        """OOM kills and execs to the event log, enforcement reports to the policies; each
        attributed to its container (own or observed) through the catalogue."""
        if self.probes is None:
            return
        from agent.probes.pump import ProbeEventPump
        pump = ProbeEventPump(self.probes, self.events, self.catalog, reports=self.policy, shed=self.budget.shed)
        pump.start()
        self._stack.append(("probe events", pump.stop))

    def _start_services(self) -> None:
        """Services: each saved one's worker adopts its running replicas and heals the rest.
        Stopped before the runtime: replicas keep running while the daemon is down."""
        from agent.services.manager import ServiceManager
        services = self.services = ServiceManager(self.config.root, self.runtime, self.images, self.events,
                                                       self.networks)
        self._stack.append(("service replicas followed", self.bus.subscribe("services", services.on_container)))
        services.start()
        self._stack.append(("services", services.close))

    def _start_observer(self) -> None:
        """Observe mode: follow the containers docker, containerd, podman and systemd started."""
        from agent.discovery.foreign_cgroups import ForeignCgroups, HostCgroups
        from agent.discovery.observed import ObservedContainers
        from agent.discovery.watcher import CgroupTrees, CgroupWatcher
        if not self.config.observe:
            self.host_cgroups = self.cgroups
            return
        from agent.discovery.classify import HostState
        self.observed = ObservedContainers(bus=self.bus, probes=self.probes is not None,
                                           state=HostState(root=str(self.config.observe_state_root)))
        foreign = ForeignCgroups(self.cgroups.mode, self.observed.owns, parent=self.cgroups.parent)
        self.host_cgroups = HostCgroups(self.cgroups, foreign, self.observed.owns)
        watcher = CgroupWatcher(CgroupTrees.detect(), self.observed.update, root=self.config.observe_root,
                                own_parent=self.cgroups.parent)
        self._stack.append(("observed cgroup files", self.host_cgroups.close))
        self._stack.append(("observed containers", self.observed.close))
        watcher.start()
        self._stack.append(("cgroup watcher", watcher.stop))
        log.info("observing containers below cgroup %s: %d found", self.config.observe_root,
                 len(self.observed.list()))

    def _start_metrics(self) -> None:
        from agent.metrics.collector import ContainerCollector
        from agent.metrics.server import build_registry, serve_metrics
        collector = ContainerCollector(self.watched_containers, self.host_cgroups or self.cgroups, self.probes,
                                       self.config.metrics, syscall_name=self.syscall_name,
                                       sampler=self.sampler, budget=self.budget)
        sink = self.alert_sink
        self.registry, self.policy_metrics = metrics_registry(build_registry(collector),
                                                              sink.stats if sink is not None else list,
                                                              self.service_figures)
        from agent.health.metrics import HealthCollector
        self.registry.register(HealthCollector(self.catalog.list))
        from agent.budget.metrics import BudgetCollector
        self.registry.register(BudgetCollector(self.budget))
        from agent.volumes.metrics import VolumeCollector
        self.registry.register(VolumeCollector(self.runtime.volumes.usage))
        self.metrics = serve_metrics(self.config.metrics_addr, registry=self.registry)
        self._stack.append(("metrics", self.metrics.stop))
        log.info("metrics on http://%s/metrics", self.config.metrics_addr)

    def _start_incidents(self) -> None:
        """Evidence bundles of kills, freezes and OOM kills (agent/incidents), for every container."""
        from agent.incidents.recorder import IncidentRecorder
        from agent.incidents.store import IncidentStore
        from agent.policy.history import SignalHistory
        from agent.policy.history_store import HistoryStore
        capacity = max(1, int(3600 / self.config.policy_interval))
        store = HistoryStore(self.config.root / "policy-history", capacity)   # kept across restarts
        self.signal_history = SignalHistory(capacity=capacity, store=store)
        store.load(self.signal_history)
        self.incidents = IncidentRecorder(
            IncidentStore(self.config.root), events=self.events, catalog=self.catalog,
            cgroups=self.host_cgroups or self.cgroups, history=self.signal_history,
            effective=lambda name, image, labels: self.policy.policy_for(name, image, labels) if self.policy else None)
        self.incidents.start()
        self._stack.append(("incidents", self.incidents.stop))

    def _start_policies(self, decider) -> None:
        """Load the policy folder now (before the API lets any container start), then follow it."""
        from agent.cgroups.watch import kernel_watch
        from agent.policy.prover import EnforcementProver
        from agent.policy.service import PolicyService
        # host_cgroups reaches observed containers' cgroups too (never creating or removing them).
        self.policy = PolicyService(decider.library, catalog=self.catalog,
                                    cgroups=self.host_cgroups or self.cgroups, events=self.events,
                                    probes=self.probes, metrics=self.policy_metrics, sampler=self.sampler,
                                    interval=self.config.policy_interval,
                                    alert_sink=self.alert_sink, history=self.signal_history,
                                    before_action=self.incidents.before_action,
                                    watch=kernel_watch(self.cgroups.mode),
                                    syscall_name=self.syscall_name)
        self.policy.start()
        self._stack.append(("policies", self.policy.stop))
        self.prover = EnforcementProver.for_policies(
            self.policy, catalog=self.catalog, cgroups=self.host_cgroups or self.cgroups, probes=self.probes,
            events=self.events, interval=self.config.prove_interval, canary_interval=self.config.canary_interval)
        self.prover.start()
        self._stack.append(("policy prover", self.prover.stop))
        # After the probes' subscription: a container's rules go to probes that already watch it.
        self._stack.append(("policy enforcer", self.bus.subscribe("policy enforcer", self.policy.enforcer.on_container)))
        self._stack.append(("policy watches", self.bus.subscribe("policy watches", self.policy.on_container)))
        from agent.policy.history_follow import record_on_stop
        self._stack.append(("policy history", self.bus.subscribe(
            "policy history", record_on_stop(self.signal_history, self.policy.sampler))))
        log.info("policies from %s: %s", self.config.policies,
                 ", ".join(p.name for p in self.policy.library.policies()) or "none")

    def _start_alerting(self) -> None:
        """Senders for --alertmanager/--alert-webhook; enforcement and OOM events alert too."""
        if not (self.config.alertmanagers or self.config.alert_webhooks):
            return      # and the senders' modules (urllib.request, ~15 ms of a start) stay unimported
        from agent.alerting.event_alerts import EventAlerts
        from agent.alerting.fanout import build_alerting
        self.alert_sink = build_alerting(self.config.alertmanagers, self.config.alert_webhooks,
                                         image_of=lambda cid: self.catalog.get(cid).image)
        if self.alert_sink is None:
            return
        self.alert_sink.start()
        self._stack.append(("alerting", self.alert_sink.stop))
        self._stack.append(("alerting events", self.events.subscribe(EventAlerts(self.alert_sink))))
        log.info("alerts to %s", ", ".join(stats.target for stats in self.alert_sink.stats()))

    def service_figures(self) -> list:
        """Each service's replica counts and connections for /metrics (none before services start)."""
        return self.services.figures() if self.services is not None else []

    def watched_containers(self) -> list:
        """What a scrape reports on: every catalogued container with a cgroup (Corral's own,
        exited ones until removed, and observed ones; Kubernetes pod, namespace and container
        arrive as the io.kubernetes.* labels)."""
        return [c for c in self.catalog.list() if c.cgroup_id or c.observed]

    def snapshots(self, with_syscalls: bool = False) -> list:
        """Cumulative figures of the running containers, own and observed, for `corral stats` and `top`."""
        running = [c for c in self.catalog.list(running=True) if c.cgroup_id or c.observed]
        return self.sampler.snapshots(running, with_syscalls=with_syscalls)

    def info(self) -> dict:
        return {
            "version": __version__,
            "root": str(self.config.root),
            "socket": str(self.config.socket),
            "cgroup_driver": self.cgroups.mode,
            "metrics_addr": self.config.metrics_addr,
            "policies": str(self.config.policies) if self.config.policies else None,
            "probes": self.probes.status() if self.probes else {},
            "containers": len(self.runtime.list(all=True)),
            "running": len(self.runtime.list()),
            "started_at": self.started_at,
        }

    def run(self) -> None:
        try:
            self.build()
            log.info("corral %s ready on unix://%s (root %s, cgroups %s)", __version__,
                     self.config.socket, self.config.root, self.cgroups.mode)
            self._stop.wait()
        finally:
            self.shutdown()

    def request_stop(self) -> None:
        self._stop.set()

    def shutdown(self) -> None:
        while self._stack:
            what, stop = self._stack.pop()
            try:
                stop()
            except Exception:  # stopping goes on: a part left running is worse than a log line
                log.exception("stopping %s failed", what)
        log.info("stopped")


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    raise_open_files_limit()
    logging.basicConfig(level=config.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if config.dump_bpf:
        from agent.probes.loader import ProbeOptions, ProbeSet
        print(ProbeSet(config.probes_dir, ProbeOptions(syscall_latency=config.syscall_latency)).dump())
        return 0
    daemon = Daemon(config)
    signalled: list[int] = []

    def on_signal(number, _frame):
        if signalled:
            log.warning("second signal: exiting now")
            os._exit(1)
        signalled.append(number)
        log.info("received %s, stopping", signal.Signals(number).name)
        daemon.request_stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    daemon.run()
    return 0
