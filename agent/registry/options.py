"""Daemon-wide registry settings, apart from transport.py so the daemon builds them at start
without importing httpx (~15-45 ms of a start; it is imported at the first pull, push or login)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

CERT_DIRS = (Path("/etc/corral/certs.d"), Path("/etc/docker/certs.d"))


@dataclass(frozen=True)
class RegistryOptions:
    """Daemon-wide registry settings (the daemon config's `registries:`)."""

    insecure: tuple[str, ...] = ()                        # hosts reached over plain http
    mirrors: dict[str, tuple[str, ...]] = field(default_factory=dict)   # registry -> mirror hosts
    cert_dirs: tuple[Path, ...] = CERT_DIRS
    attempts: int = 4                                     # per request, on 429/5xx/connection errors
    max_backoff: float = 10.0
    timeout: float = 30.0
