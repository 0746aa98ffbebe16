"""`corral daemon`: the composition root.

Builds every part, starts them in order (mounts, events, cgroups, images, probes, runtime,
metrics, API) and stops them in reverse. Nothing else in Corral constructs parts or holds
process-wide state. SIGTERM or SIGINT stops the daemon cleanly; a second one forces exit.
Containers keep running while the daemon is down and are adopted when it starts again.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from agent import __version__
from agent.errors import CorralError, InvalidArgument
from agent.metrics.model import MetricsOptions

log = logging.getLogger("corral.daemon")

DEFAULT_ROOT = Path("/var/lib/corral")
DEFAULT_SOCKET = Path("/run/corral/corral.sock")
DEFAULT_METRICS = "127.0.0.1:9750"
REPO_PROBES = Path(__file__).resolve().parent.parent / "probes"


@dataclass(frozen=True)
class DaemonConfig:
    """Every daemon flag; issue 8's /etc/corral/corral.yaml maps onto the same fields."""

    root: Path = DEFAULT_ROOT
    socket: Path = DEFAULT_SOCKET
    metrics_addr: str = DEFAULT_METRICS
    policies: Path | None = None
    probes: bool = True
    probes_dir: Path = REPO_PROBES
    syscall_latency: bool = False
    network: bool = True
    default_subnet: str = "10.213.0.0/16"
    metrics: MetricsOptions = field(default_factory=MetricsOptions)   # --syscall-metrics, --drop-*
    dump_bpf: bool = False
    log_level: str = "info"
    policy_interval: float = 1.0       # seconds between policy evaluations (hidden flag, for tests)

    def __post_init__(self) -> None:
        if self.metrics_addr and ":" not in self.metrics_addr:
            raise InvalidArgument(f"--metrics-addr {self.metrics_addr!r}: expected HOST:PORT like 127.0.0.1:9750")
        if self.policies is not None and not self.policies.is_dir():
            raise InvalidArgument(f"--policies {str(self.policies)!r}: not a directory")


def parse_args(argv: list[str] | None) -> DaemonConfig:
    parser = argparse.ArgumentParser(prog="corral daemon", description="Run the Corral daemon.")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="state, images and containers (default %(default)s)")
    parser.add_argument("--socket", type=Path, default=Path(os.environ.get("CORRAL_SOCKET", DEFAULT_SOCKET)),
                        help="UNIX socket of the REST API (default %(default)s)")
    parser.add_argument("--metrics-addr", default=DEFAULT_METRICS,
                        help="HOST:PORT of the Prometheus endpoint; empty to disable (default %(default)s)")
    parser.add_argument("--policies", type=Path, default=None, help="folder of policy YAML files")
    parser.add_argument("--policy-interval", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--no-probes", dest="probes", action="store_false", help="run without BPF probes")
    parser.add_argument("--probes-dir", type=Path, default=REPO_PROBES, help=argparse.SUPPRESS)
    parser.add_argument("--no-network", dest="network", action="store_false",
                        help="no bridge networking (containers may use --net none or host)")
    parser.add_argument("--default-subnet", default="10.213.0.0/16", metavar="CIDR",
                        help="subnet of the default network corral0 (default %(default)s)")
    parser.add_argument("--syscall-metrics", default="all", help="all | top:N | none (default %(default)s)")
    parser.add_argument("--syscall-latency", action="store_true",
                        help="per-container syscall latency histograms (costs several times more than counting)")
    parser.add_argument("--drop-metric", action="append", default=[], dest="drop_metrics",
                        help="glob of metric names not to export (repeatable)")
    parser.add_argument("--drop-label", action="append", default=[], dest="drop_labels",
                        help="glob of container labels (id, image, container_label_*) not to export (repeatable)")
    parser.add_argument("--dump-bpf", action="store_true", help="print the final BPF program and exit")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(argv)
    values = vars(args)
    values["metrics"] = MetricsOptions(syscall_metrics=values.pop("syscall_metrics"),
                                       drop_metrics=tuple(values.pop("drop_metrics")),
                                       drop_labels=tuple(values.pop("drop_labels")))
    return DaemonConfig(**values)


class Daemon:
    """Owns every part; `run()` blocks until stopped."""

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        self._stop = threading.Event()
        self._stack: list[tuple[str, object]] = []   # (what, stop callable), stopped in reverse
        self.probes = None
        self.runtime = None
        self.policy = None            # agent.policy.service.PolicyService with --policies
        self.registry = None          # the /metrics registry, shared by the collectors
        self.started_at = time.time()

    def build(self) -> None:
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
        self.cgroups = detect_driver()
        self._stack.append(("cgroup files", self.cgroups.close))
        self.images = ImageStore(config.root)
        if not any(f"{i.name}:{i.tag}" == "busybox:latest" for i in self.images.list()):
            self.images.build_busybox()
        watchers = []
        if config.probes:
            self.probes = self._load_probes()
            if self.probes is not None:
                watchers.append(self.probes)
                self._stack.append(("probes", self.probes.close))
                from agent.probes.pump import ProbeEventPump
                pump = ProbeEventPump(self.probes, self.events, self._owner_of_cgroup)
                pump.start()
                self._stack.append(("probe events", pump.stop))
        self.networks = self._start_networks()
        self.runtime = Runtime(root=config.root, images=self.images, rootfs=RootfsManager(config.root),
                               cgroups=self.cgroups, events=self.events, launcher=launcher,
                               watchers=watchers, networks=self.networks,
                               policy_for=self._policy_for if config.policies else None)
        self.runtime.reconcile()
        self._stack.append(("runtime", self.runtime.close))
        if config.metrics_addr:
            self._start_metrics()
        if config.policies:
            self._start_policies()
        from agent.api.network_endpoints import NetworkEndpoints
        from agent.api.policy_endpoints import PolicyEndpoints
        from agent.api.server import ApiServer
        from agent.api.stats_endpoints import StatsEndpoints
        # Network routes are always served (None: they say networking is off), so the route
        # table and openapi.yaml agree whatever the daemon was started with.
        self.api = ApiServer(config.socket, self.runtime, self.events, self.info,
                             extra_routes=[NetworkEndpoints(self.networks).register,
                                           StatsEndpoints(self.snapshots).register,
                                           PolicyEndpoints(self.policy).register])
        self.api.start()
        self._stack.append(("api", self.api.stop))

    def _start_networks(self):
        """Bridge networking; nothing to stop at shutdown: containers keep their network."""
        if not self.config.network:
            return None
        from agent.network.manager import NetworkManager
        try:
            networks = NetworkManager(self.config.root, default_subnet=self.config.default_subnet)
            networks.ensure_default()
        except CorralError as exc:
            log.error("bridge networking is off: %s; containers can use --net none or --net host", exc)
            return None
        return networks

    def _load_probes(self):
        from agent.probes.loader import ProbeOptions, ProbeSet, ensure_mounts
        ensure_mounts()
        probes = ProbeSet(self.config.probes_dir, ProbeOptions(syscall_latency=self.config.syscall_latency))
        started = time.monotonic()
        try:
            probes.load()
        except CorralError as exc:
            log.error("BPF probes are not loaded: %s; containers run unobserved (`corral doctor` says why)", exc)
            return None
        log.info("probes compiled and attached in %.2fs: %s", time.monotonic() - started,
                 ", ".join(f"{k}={'yes' if v else 'NO'}" for k, v in probes.status().items()))
        return probes

    def _start_metrics(self) -> None:
        from agent.metrics.collector import ContainerCollector
        from agent.metrics.server import build_registry, serve_metrics
        collector = ContainerCollector(self.watched_containers, self.cgroups, self.probes,
                                       self.config.metrics, syscall_name=self._syscall_name())
        self.registry = build_registry(collector)     # the policy metrics join it
        self.metrics = serve_metrics(self.config.metrics_addr, registry=self.registry)
        self._stack.append(("metrics", self.metrics.stop))
        log.info("metrics on http://%s/metrics", self.config.metrics_addr)

    def _start_policies(self) -> None:
        """Load the policy folder now (before the API lets any container start), then follow it."""
        from agent.policy.library import PolicyLibrary
        from agent.policy.service import PolicyService
        self.policy = PolicyService(PolicyLibrary(str(self.config.policies)), runtime=self.runtime,
                                    cgroups=self.cgroups, events=self.events, probes=self.probes,
                                    registry=self.registry, interval=self.config.policy_interval,
                                    syscall_name=self._syscall_name())
        self.policy.start()
        self._stack.append(("policies", self.policy.stop))
        log.info("policies from %s: %s", self.config.policies,
                 ", ".join(p.name for p in self.policy.library.policies()) or "none")

    def _policy_for(self, name: str, image: str, labels: dict):
        """What the runtime asks at create and start; None until the policies are loaded."""
        return self.policy.policy_for(name, image, labels) if self.policy is not None else None

    @staticmethod
    def _syscall_name():
        try:
            from agent.probes.syscall_names import syscall_name
        except ImportError:
            return None
        return syscall_name

    def watched_containers(self) -> list:
        from agent.cgroups.driver import CgroupPaths
        from agent.metrics.model import WatchedContainer
        return [WatchedContainer(id=c.id, name=c.name, image=c.spec.image,
                                 cgroup=CgroupPaths.from_dict(c.cgroup), cgroup_id=c.cgroup_id,
                                 started_at=c.started_at or c.created_at, labels=dict(c.spec.labels))
                for c in self.runtime.list(all=True) if c.cgroup and c.cgroup_id]

    def _owner_of_cgroup(self, cgroup_id: int) -> tuple[str, str] | None:
        for container in self.runtime.list(all=True) if self.runtime else []:
            if container.cgroup_id == cgroup_id:
                return container.id, container.name
        return None

    def snapshots(self, with_syscalls: bool = False) -> list:
        """Cumulative figures of the running containers, for `corral stats` and `top`."""
        from agent.metrics.snapshot import take_snapshots
        running = {c.id for c in self.runtime.list()}
        return take_snapshots([w for w in self.watched_containers() if w.id in running], self.cgroups,
                              self.probes, self._syscall_name() or str, with_syscalls=with_syscalls)

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


def raise_open_files_limit() -> None:
    """The cgroup drivers keep each container's files open (a re-read is 5x cheaper than an
    open), up to a quarter of the soft limit: lift the soft limit to the hard one. Raising the
    hard limit needs CAP_SYS_RESOURCE, which not every host grants, so it is left alone."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


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
    signalled = []

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
