"""The parts of `corral daemon` that are made from its configuration alone.

agent/daemon.py composes them; each is a plain function of DaemonConfig, so the composition
root stays the one place that orders, subscribes and stops parts.
"""
from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from agent.daemon_config import DaemonConfig
from agent.errors import CorralError

if TYPE_CHECKING:
    from agent.network.manager import NetworkManager
    from agent.probes.loader import ProbeSet
    from agent.registry.options import RegistryOptions

log = logging.getLogger("corral.daemon")


def load_probes(config: DaemonConfig, launcher: Path) -> ProbeSet | None:
    """The probes, loaded from `<root>/probe-cache` (compiled in a child when it has none);
    None when they cannot load, so containers run unobserved rather than not at all."""
    from agent.probes.loader import ProbeOptions, ProbeSet, ensure_mounts
    ensure_mounts()
    from agent.probes.pins import pin_dir_of
    probes = ProbeSet(config.probes_dir, ProbeOptions(syscall_latency=config.syscall_latency, launcher=str(launcher)),
                      pin_dir=pin_dir_of(config.root), pin=config.pin,
                      owner=str(config.root.resolve()), cache_dir=config.root / "probe-cache")
    started = time.monotonic()
    try:
        probes.load()
    except CorralError as exc:
        log.error("BPF probes are not loaded: %s; containers run unobserved (`corral doctor` says why)", exc)
        return None
    log.info("probes %s and attached in %.2fs: %s", "compiled" if probes.cache.compiled else "loaded from the cache",
             time.monotonic() - started, ", ".join(f"{k}={'yes' if v else 'NO'}" for k, v in probes.status().items()))
    return probes


def start_networks(config: DaemonConfig) -> NetworkManager | None:
    """Bridge networking; nothing to stop at shutdown: containers keep their network."""
    if not config.network:
        return None
    from agent.network.manager import NetworkManager
    try:
        networks = NetworkManager(config.root, default_subnet=config.default_subnet, netns_pool=config.netns_pool)
        networks.ensure_default()
    except CorralError as exc:
        log.error("bridge networking is off: %s; containers can use --net none or --net host", exc)
        return None
    return networks


def registry_options(config: DaemonConfig) -> RegistryOptions:
    from agent.registry.options import CERT_DIRS, RegistryOptions  # not transport: httpx at first use
    return RegistryOptions(insecure=config.insecure_registries, mirrors=config.registry_mirrors,
                           cert_dirs=config.registry_certs_dirs or CERT_DIRS)


def syscall_names() -> Callable[[int], str | None] | None:
    """Syscall number -> name, cached; None where the syscall table cannot be read."""
    try:
        from agent.syscall_table import syscall_name
    except ImportError:
        return None
    # syscall_name reads the header on each call (~1 ms); the sampler asks for every syscall
    # of every container at each policy evaluation (most of the policy thread's idle CPU).
    return functools.lru_cache(maxsize=1024)(syscall_name)
