"""`corral login`: check credentials against a registry before the CLI stores them."""
from __future__ import annotations

from agent.errors import InvalidArgument, Unauthorized
from agent.registry.auth import Credentials, TokenCache
from agent.registry.reference import DOCKER_HUB, normalize_registry
from agent.registry.transport import RegistryOptions, Transport

_API_HOSTS = {DOCKER_HUB: "registry-1.docker.io"}


def check_login(registry: str, credentials: Credentials | None, options: RegistryOptions | None = None) -> None:
    """Raise Unauthorized unless the registry accepts `credentials` (GET /v2/ with its challenge)."""
    if credentials is None:
        raise InvalidArgument("login: a username and password are required")
    host = normalize_registry(registry)
    transport = Transport(_API_HOSTS.get(host, host), credentials, options or RegistryOptions(), TokenCache())
    try:
        response = transport.request("GET", "/v2/", what="login")
        if response.status_code != 200:
            raise Unauthorized(f"registry {host}: login refused (HTTP {response.status_code})")
    finally:
        transport.close()
