"""The daemon's flags and configuration: `DaemonConfig`, the argument parser, and parsing.

Every flag has a key in /etc/corral/corral.yaml (agent/config.py maps the file onto the parser's
dests); `parse_args` gives the one frozen DaemonConfig the composition root (agent/daemon.py)
builds every part from.
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path

from agent.errors import InvalidArgument
from agent.metrics.model import MetricsOptions

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
    pin: bool = True                   # enforcing BPF programs pinned in bpffs: rules outlive the daemon
    cpu_budget: float = 0.0            # --cpu-budget: the agent's own CPU, in CPUs (0: none; agent/budget)
    series_budget: int = 0             # --series-budget: series per scrape (0: none)
    network: bool = True
    default_subnet: str = "10.213.0.0/16"
    netns_pool: int = 4                # --netns-pool: network namespaces made ahead (agent/network/pool.py); 0: off
    metrics: MetricsOptions = field(default_factory=MetricsOptions)   # --syscall-metrics, --drop-*
    dump_bpf: bool = False
    log_level: str = "info"
    observe: bool = True               # follow containers Corral did not start (agent/discovery)
    observe_root: str = "/"            # the cgroup path below which to look for them
    observe_state_root: Path = Path("/")   # prefix of the runtimes' state dirs (/host in a pod)
    policy_interval: float = 1.0       # seconds between policy evaluations (hidden flag, for tests)
    prove_interval: float = 10.0       # seconds between enforcement proofs (agent/policy/prover.py); 0: on request
    canary_interval: float = 0.0       # seconds between canary trials (agent/policy/canary.py); 0: on request
    policy_max_size: int = 1024 * 1024  # bytes: a bigger policy file is refused (docs/policies.md)
    alertmanagers: tuple[str, ...] = ()    # --alertmanager URL (repeatable): Alertmanager API v2
    alert_webhooks: tuple[str, ...] = ()   # --alert-webhook URL (repeatable): the same JSON, POSTed
    insecure_registries: tuple[str, ...] = ()       # --insecure-registry HOST[:PORT]: plain http
    registry_mirrors: dict[str, tuple[str, ...]] = field(default_factory=dict)   # --registry-mirror R=HOST
    registry_certs_dirs: tuple[Path, ...] = ()      # --registry-certs-dir DIR: DIR/HOST:PORT/ca.crt
    userns: str = "host"               # --userns: auto | host, for containers that do not say
    docker_socket: Path | None = None  # --docker-socket: Docker's Engine API (agent/dockerapi); None: off

    def __post_init__(self) -> None:
        if self.metrics_addr and ":" not in self.metrics_addr:
            raise InvalidArgument(f"--metrics-addr {self.metrics_addr!r}: expected HOST:PORT like 127.0.0.1:9750")
        if self.policies is not None and not self.policies.is_dir():
            raise InvalidArgument(f"--policies {str(self.policies)!r}: not a directory")
        if not (self.alertmanagers or self.alert_webhooks):
            return      # the check's module imports urllib.request (~15 ms of the daemon's start)
        from agent.alerting.webhook import check_url
        object.__setattr__(self, "alertmanagers", tuple(check_url(u, "--alertmanager") for u in self.alertmanagers))
        object.__setattr__(self, "alert_webhooks", tuple(check_url(u, "--alert-webhook") for u in self.alert_webhooks))


def build_parser() -> argparse.ArgumentParser:
    """The daemon's flags; agent/config.py maps /etc/corral/corral.yaml keys onto their dests."""
    parser = argparse.ArgumentParser(prog="corral daemon", description="Run the Corral daemon.")
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="configuration file; flags override it (default /etc/corral/corral.yaml "
                             "when it exists; `none` for no file)")
    parser.add_argument("--observe", action=argparse.BooleanOptionalAction, default=True,
                        help="observe containers Corral did not start: docker, containerd/Kubernetes, "
                             "podman, systemd services (default on)")
    parser.add_argument("--observe-root", default="/", metavar="CGROUP",
                        help="cgroup path below which observed containers are looked for (default %(default)s)")
    parser.add_argument("--observe-state-root", type=Path, default=Path("/"), metavar="DIR",
                        help="where the host's /run/containerd, /var/lib/docker and containers/storage "
                             "are seen from here, for names and Kubernetes labels (default %(default)s)")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="state, images and containers (default %(default)s)")
    parser.add_argument("--socket", type=Path, default=Path(os.environ.get("CORRAL_SOCKET", DEFAULT_SOCKET)),
                        help="UNIX socket of the REST API (default %(default)s)")
    parser.add_argument("--metrics-addr", default=DEFAULT_METRICS,
                        help="HOST:PORT of the Prometheus endpoint; empty to disable (default %(default)s)")
    parser.add_argument("--policies", type=Path, default=None, help="folder of policy YAML files")
    parser.add_argument("--policy-interval", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--prove-interval", type=float, default=10.0, metavar="SECONDS",
                        help="check every SECONDS that the kernel still holds each enforcing rule, export "
                             "corral_policy_enforced and put lost rules back; 0 only on `corral policy prove` "
                             "(default %(default)s)")
    parser.add_argument("--canary-interval", type=float, default=0.0, metavar="SECONDS",
                        help="every SECONDS (at most as often as --prove-interval), try each egress and "
                             "syscall kill rule for real with a short-lived process in the container's "
                             "cgroup; 0 only on `corral policy prove --canary` (default %(default)s)")
    parser.add_argument("--policy-max-size", type=_size, default=1024 * 1024, metavar="SIZE",
                        help="refuse policy files larger than this, like 1Mi (default 1Mi)")
    parser.add_argument("--no-probes", dest="probes", action="store_false", help="run without BPF probes")
    parser.add_argument("--probes-dir", type=Path, default=REPO_PROBES, help=argparse.SUPPRESS)
    parser.add_argument("--no-pin", dest="pin", action="store_false",
                        help="do not pin the enforcing BPF programs in /sys/fs/bpf/corral: syscall kill and "
                             "egress rules then stop with the daemon (docs/policies.md)")
    parser.add_argument("--cpu-budget", type=float, default=0.0, metavar="CPUS",
                        help="the agent's own CPU budget, like 0.25 of one CPU: above it optional work is shed "
                             "(docs/metrics.md, \"The agent's budget\"; default 0: none)")
    parser.add_argument("--series-budget", type=int, default=0, metavar="N",
                        help="series per scrape of /metrics: above it optional series are shed (default 0: none)")
    parser.add_argument("--no-network", dest="network", action="store_false",
                        help="no bridge networking (containers may use --net none or host)")
    parser.add_argument("--default-subnet", default="10.213.0.0/16", metavar="CIDR",
                        help="subnet of the default network corral0 (default %(default)s)")
    parser.add_argument("--netns-pool", type=_pool_size, default=4, metavar="N",
                        help="network namespaces made ahead for bridge containers, each with its veth, so a "
                             "start only takes one (docs/networking.md; default %(default)s, 0: off)")
    parser.add_argument("--syscall-metrics", default="all", help="all | top:N | none (default %(default)s)")
    parser.add_argument("--syscall-latency", action="store_true",
                        help="per-container syscall latency histograms (costs several times more than counting)")
    parser.add_argument("--drop-metric", action="append", default=[], dest="drop_metrics",
                        help="glob of metric names not to export (repeatable)")
    parser.add_argument("--drop-label", action="append", default=[], dest="drop_labels",
                        help="glob of container labels (id, image, container_label_*) not to export (repeatable)")
    parser.add_argument("--dump-bpf", action="store_true", help="print the final BPF program and exit")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--alertmanager", action="append", default=[], dest="alertmanagers", metavar="URL",
                        help="Alertmanager to post alerts to, e.g. http://127.0.0.1:9093 (repeatable)")
    parser.add_argument("--alert-webhook", action="append", default=[], dest="alert_webhooks", metavar="URL",
                        help="URL to POST the same alert JSON to (repeatable)")
    parser.add_argument("--insecure-registry", action="append", default=[], dest="insecure_registries",
                        metavar="HOST[:PORT]", help="reach this registry over plain http (loopback always is)")
    parser.add_argument("--registry-mirror", action="append", default=[], dest="registry_mirrors",
                        metavar="REGISTRY=HOST[:PORT]",
                        help="pull REGISTRY's images (docker.io included) from this mirror first (repeatable)")
    parser.add_argument("--registry-certs-dir", action="append", default=[], dest="registry_certs_dirs",
                        type=Path, metavar="DIR", help="folders of HOST:PORT/ca.crt for registries' TLS "
                                                       "(default /etc/corral/certs.d and /etc/docker/certs.d)")
    parser.add_argument("--userns", choices=["auto", "host"], default="host",
                        help="user namespace of containers that do not give --userns: auto maps each one's "
                             "root to a range of its own from /etc/subuid (user corral); host shares the "
                             "host's ids (default %(default)s; docs/security.md)")
    parser.add_argument("--docker-socket", default=None, metavar="PATH",
                        help="UNIX socket of Docker's Engine API, for the docker CLI, docker-py and Compose "
                             "(default docker.sock next to --socket: /run/corral/docker.sock; \"\" turns it off)")
    return parser


def docker_socket_of(value: str | None, socket: Path) -> Path | None:
    """--docker-socket: the path given, docker.sock beside the API socket when not given, None for ""."""
    if value is None:
        return Path(socket).parent / "docker.sock"
    return Path(value) if value else None


def parse_mirrors(values: list[str]) -> dict[str, tuple[str, ...]]:
    """`docker.io=mirror.local:5000` pairs, several mirrors per registry kept in order."""
    mirrors: dict[str, tuple[str, ...]] = {}
    for value in values:
        registry, _, host = value.partition("=")
        if not registry or not host or "/" in host:
            raise InvalidArgument(f"--registry-mirror {value!r}: expected REGISTRY=HOST[:PORT], "
                                  "like docker.io=127.0.0.1:5000")
        mirrors[registry] = (*mirrors.get(registry, ()), host)
    return mirrors


class _BadValue(argparse.ArgumentTypeError, ValueError):
    """argparse shows its text for a flag; agent/config.py, which catches ValueError, for a key."""


def _pool_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 64:
        raise _BadValue(f"--netns-pool {text!r}: expected a count from 0 (off) to 64")
    return value


def _size(text: str) -> int:
    from agent.units import parse_size
    try:
        return parse_size(text, field="--policy-max-size")
    except InvalidArgument as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


def parse_args(argv: list[str] | None) -> DaemonConfig:
    from agent.config import apply_config_file
    parser = build_parser()
    apply_config_file(parser, argv)
    args = parser.parse_args(argv)
    values = vars(args)
    values.pop("config", None)
    values["insecure_registries"] = tuple(values["insecure_registries"])
    values["registry_certs_dirs"] = tuple(values["registry_certs_dirs"])
    values["registry_mirrors"] = parse_mirrors(values["registry_mirrors"])
    values["docker_socket"] = docker_socket_of(values["docker_socket"], values["socket"])
    values["metrics"] = MetricsOptions(syscall_metrics=values.pop("syscall_metrics"),
                                       drop_metrics=tuple(values.pop("drop_metrics")),
                                       drop_labels=tuple(values.pop("drop_labels")))
    return DaemonConfig(**values)
