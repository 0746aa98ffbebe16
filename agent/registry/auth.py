"""Registry credentials and authorization challenges.

Credentials live where docker keeps them, `~/.docker/config.json` (`$DOCKER_CONFIG`): `auths`
with base64 `user:password`, and credential helpers (`credHelpers` per registry, `credsStore`
for all) run as `docker-credential-NAME get`. So `docker login` and `corral login` share them.
Only the CLI reads this file, as the calling user; it sends what it found with the request
(`X-Registry-Auth`, as docker does), and the daemon never reads anyone's home directory.

Challenges: a 401 carries `WWW-Authenticate: Basic ...` or `Bearer realm=...,service=...,scope=...`;
Bearer tokens are fetched from the realm with the credentials (anonymous without) and cached
per (realm, service, scopes) until they expire.
"""
from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import InvalidArgument, Unauthorized

HUB_CONFIG_KEY = "https://index.docker.io/v1/"
_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


@dataclass(frozen=True)
class Credentials:
    username: str = ""
    password: str = ""
    identity_token: str = ""     # an OAuth refresh token some registries hand out instead

    def to_header(self, server: str) -> str:
        """The `X-Registry-Auth` value docker sends: base64url of a small JSON object."""
        body = {"username": self.username, "password": self.password, "serveraddress": server}
        if self.identity_token:
            body["identitytoken"] = self.identity_token
        return base64.urlsafe_b64encode(json.dumps(body).encode()).decode()

    @classmethod
    def from_header(cls, value: str) -> Credentials | None:
        if not value:
            return None
        try:
            padded = value + "=" * (-len(value) % 4)
            data = json.loads(base64.urlsafe_b64decode(padded))
        except (ValueError, TypeError):
            raise InvalidArgument("X-Registry-Auth: expected base64url-encoded JSON") from None
        if not isinstance(data, dict):
            raise InvalidArgument("X-Registry-Auth: expected a JSON object")
        fields = {key: data.get(key, "") for key in ("username", "password", "identitytoken")}
        if not all(isinstance(value, str) for value in fields.values()):
            raise InvalidArgument("X-Registry-Auth: username, password and identitytoken must be strings")
        if not any(fields.values()):
            return None
        return cls(fields["username"], fields["password"], fields["identitytoken"])


def config_key(registry: str) -> str:
    """The key docker uses for a registry in config.json (Docker Hub has a historical URL)."""
    return HUB_CONFIG_KEY if registry == "docker.io" else registry


class DockerConfig:
    """`config.json` of the calling user: read, and written by login/logout (mode 0600)."""

    def __init__(self, directory: Path | None = None) -> None:
        base = directory or Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
        self.path = Path(base) / "config.json"

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise InvalidArgument(f"{self.path}: cannot read docker's credentials file: {exc}") from None
        return data if isinstance(data, dict) else {}

    def get(self, registry: str) -> Credentials | None:
        data = self._load()
        key = config_key(registry)
        helper = (data.get("credHelpers") or {}).get(key) or (data.get("credHelpers") or {}).get(registry) \
            or data.get("credsStore")
        if helper:
            found = _from_helper(str(helper), key)
            if found is not None:
                return found
        entry = (data.get("auths") or {}).get(key) or (data.get("auths") or {}).get(registry)
        if not isinstance(entry, dict):
            return None
        token = entry.get("identitytoken", "")
        if entry.get("auth"):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise InvalidArgument(f"{self.path}: auths.{key}.auth is not base64 of user:password") from None
            return Credentials(user, password, token)
        return Credentials(identity_token=token) if token else None

    def store(self, registry: str, credentials: Credentials) -> None:
        data = self._load()
        encoded = base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode()
        data.setdefault("auths", {})[config_key(registry)] = {"auth": encoded}
        self._write(data)

    def erase(self, registry: str) -> bool:
        data = self._load()
        removed = (data.get("auths") or {}).pop(config_key(registry), None) is not None
        if removed:
            self._write(data)
        return removed

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent="\t")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)


def _from_helper(helper: str, key: str) -> Credentials | None:
    try:
        done = subprocess.run([f"docker-credential-{helper}", "get"], input=key.encode(),
                              capture_output=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    try:
        data = json.loads(done.stdout)
    except ValueError:
        return None
    user, secret = str(data.get("Username", "")), str(data.get("Secret", ""))
    if user == "<token>":
        return Credentials(identity_token=secret)
    return Credentials(user, secret)


@dataclass(frozen=True)
class Challenge:
    scheme: str                 # "basic" or "bearer"
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge:
    scheme, _, rest = header.strip().partition(" ")
    params = {match.group(1).lower(): match.group(2) if match.group(2) is not None else match.group(3)
              for match in _PARAM.finditer(rest)}
    return Challenge(scheme.lower(), params)


class TokenCache:
    """Bearer tokens per (realm, service, scopes), kept until shortly before they expire."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str, tuple[str, ...]], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, tuple[str, ...]]) -> str | None:
        with self._lock:
            found = self._tokens.get(key)
        if found is None or found[1] <= time.monotonic():
            return None
        return found[0]

    def put(self, key: tuple[str, str, tuple[str, ...]], token: str, expires_in: float) -> None:
        with self._lock:
            # 10 s early, so a token never expires in the middle of a request.
            self._tokens[key] = (token, time.monotonic() + max(expires_in - 10, 1))


def token_from_response(data: object, realm: str) -> tuple[str, float]:
    if not isinstance(data, dict):
        raise Unauthorized(f"token server {realm}: answered something other than a JSON object")
    token = data.get("token") or data.get("access_token")
    if not isinstance(token, str) or not token:
        raise Unauthorized(f"token server {realm}: the answer has no token")
    expires = data.get("expires_in", 60)
    return token, float(expires) if isinstance(expires, (int, float)) and not isinstance(expires, bool) else 60.0
