"""HTTP to one registry: scheme and CAs, authorization challenges, redirects, retries, errors.

httpx does the HTTP. What is ours is the registry protocol around it: https unless the host is
loopback or configured insecure; CAs from `certs.d/HOST:PORT/ca.crt` (Corral's and docker's
folders); one retry per 401 challenge with a token for the request's scopes; redirects followed
by hand so `Authorization` is never sent to another host (blob storage on a CDN); retries with
backoff on 429 and 5xx honouring `Retry-After`; a registry's error body shown as its own code
and message.
"""
from __future__ import annotations

import base64
import ipaddress
import json
import logging
import ssl
import time
from collections.abc import Iterable
from urllib.parse import urlencode, urljoin, urlsplit

import httpx

from agent.errors import CorralError, NotFound, RegistryError, Unauthorized
from agent.registry.auth import (
    Credentials,
    TokenCache,
    parse_challenge,
    token_from_response,
)
from agent.registry.options import CERT_DIRS, RegistryOptions

__all__ = ["CERT_DIRS", "RegistryOptions", "Transport", "is_loopback"]

log = logging.getLogger("corral.registry")

_RETRY_STATUSES = {429, 500, 502, 503, 504}
_MAX_REDIRECTS = 5


def is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
    name = name.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _registry_error(response: httpx.Response, host: str, what: str) -> CorralError:
    detail = ""
    try:
        errors = json.loads(response.read()).get("errors") or []
        detail = "; ".join(f"{e.get('code', '?')}: {e.get('message', '')}" for e in errors if isinstance(e, dict))
    except (ValueError, AttributeError, httpx.HTTPError):
        pass
    message = f"registry {host}: {what}: {detail or f'HTTP {response.status_code}'}"
    if response.status_code in (401, 403):
        return Unauthorized(message, hint=f"log in with `corral login {host}`")
    if response.status_code == 404:
        return NotFound(message, hint=f"check the name; a private repository needs `corral login {host}`")
    return RegistryError(message)


class Transport:
    """Requests to one registry host with the credentials of one caller."""

    def __init__(self, host: str, credentials: Credentials | None, options: RegistryOptions,
                 tokens: TokenCache) -> None:
        self.host = host
        self.credentials = credentials
        self.options = options
        self.tokens = tokens
        verify = self._verify()
        # https by default; plain http for a configured insecure registry and for loopback,
        # unless a CA for that host is installed in certs.d (then it is https, verified).
        secure = host not in options.insecure and (not is_loopback(host) or verify is not True)
        self.base = f"{'https' if secure else 'http'}://{host}"
        self.client = httpx.Client(verify=verify, timeout=options.timeout, follow_redirects=False)
        self._authorization: dict[tuple[str, ...], str] = {}

    def _verify(self) -> ssl.SSLContext | bool:
        for directory in self.options.cert_dirs:
            ca = directory / self.host / "ca.crt"
            if ca.is_file():
                context = ssl.create_default_context(cafile=str(ca))
                return context
        return True

    def close(self) -> None:
        self.client.close()

    # -- authorization

    def _authorize(self, challenge_header: str, scopes: tuple[str, ...]) -> str:
        challenge = parse_challenge(challenge_header)
        if challenge.scheme == "basic":
            if not self.credentials or not self.credentials.username:
                raise Unauthorized(f"registry {self.host}: authentication required",
                                   hint=f"log in with `corral login {self.host}`")
            pair = f"{self.credentials.username}:{self.credentials.password}".encode()
            return "Basic " + base64.b64encode(pair).decode()
        if challenge.scheme != "bearer" or "realm" not in challenge.params:
            raise Unauthorized(f"registry {self.host}: unsupported authorization challenge {challenge_header!r}")
        realm, service = challenge.params["realm"], challenge.params.get("service", "")
        wanted = tuple(sorted(set(scopes) | set(challenge.params.get("scope", "").split())))
        # Keyed by who asks too: an anonymous token must never serve a logged-in caller.
        user = self.credentials.username if self.credentials else ""
        key = (realm, service, (f"user:{user}", *wanted))
        token = self.tokens.get(key)
        if token is None:
            token, expires = self._fetch_token(realm, service, wanted)
            self.tokens.put(key, token, expires)
        return f"Bearer {token}"

    def _fetch_token(self, realm: str, service: str, scopes: tuple[str, ...]) -> tuple[str, float]:
        query = [("service", service)] if service else []
        query += [("scope", scope) for scope in scopes]
        auth = None
        if self.credentials and self.credentials.username:
            auth = httpx.BasicAuth(self.credentials.username, self.credentials.password)
        url = f"{realm}{'&' if '?' in realm else '?'}{urlencode(query)}" if query else realm
        try:
            response = self.client.get(url, auth=auth)
        except httpx.HTTPError as exc:
            raise RegistryError(f"registry {self.host}: token server {realm}: {exc}") from None
        if response.status_code in (401, 403):
            raise Unauthorized(f"registry {self.host}: token server refused the credentials "
                               f"(HTTP {response.status_code})", hint=f"log in with `corral login {self.host}`")
        if response.status_code != 200:
            raise RegistryError(f"registry {self.host}: token server {realm}: HTTP {response.status_code}")
        try:
            return token_from_response(response.json(), realm)
        except ValueError:
            raise Unauthorized(f"registry {self.host}: token server {realm} answered no JSON") from None

    # -- requests

    def request(self, method: str, path: str, *, scopes: Iterable[str] = (), headers: dict[str, str] | None = None,
                content: bytes | None = None, params: dict[str, str] | None = None, what: str = "",
                ok: tuple[int, ...] = (200,), stream: bool = False) -> httpx.Response:
        """One request with challenges, redirects and retries; a status outside `ok` raises."""
        scope_key = tuple(sorted(scopes))
        url = path if path.startswith("http") else self.base + path
        if params:
            url += ("&" if "?" in url else "?") + urlencode(params)
        attempt, challenged, redirects = 0, False, 0
        while True:
            send_headers = dict(headers or {})
            same_host = urlsplit(url).netloc == self.host
            if same_host and scope_key in self._authorization:
                send_headers["Authorization"] = self._authorization[scope_key]
            try:
                request = self.client.build_request(method, url, headers=send_headers, content=content)
                response = self.client.send(request, stream=True)
            except httpx.HTTPError as exc:
                attempt += 1
                if attempt >= self.options.attempts:
                    raise RegistryError(f"registry {self.host}: {what or method + ' ' + path}: {exc}") from None
                time.sleep(min(0.2 * 2 ** attempt, self.options.max_backoff))
                continue
            status = response.status_code
            if status == 401 and same_host and not challenged and "www-authenticate" in response.headers:
                response.close()
                challenged = True
                self._authorization[scope_key] = self._authorize(response.headers["www-authenticate"], scope_key)
                continue
            if status in (301, 302, 303, 307, 308) and "location" in response.headers:
                response.close()
                redirects += 1
                if redirects > _MAX_REDIRECTS:
                    raise RegistryError(f"registry {self.host}: {what or path}: too many redirects")
                url = urljoin(url, response.headers["location"])
                if status == 303:
                    method, content = "GET", None
                continue
            if status in _RETRY_STATUSES and attempt + 1 < self.options.attempts:
                attempt += 1
                delay = _retry_after(response.headers.get("retry-after"), attempt, self.options.max_backoff)
                response.close()
                log.info("registry %s: %s answered %d; retrying in %.1fs", self.host, path, status, delay)
                time.sleep(delay)
                continue
            if status not in ok:
                if method == "HEAD" and status != 401:
                    response.close()
                    # A HEAD answer has no body to say why: ask again with GET for the registry's
                    # own error (only on this failure path; the GET fails the same way).
                    method, ok = "GET", ()
                    continue
                try:
                    raise _registry_error(response, self.host, what or f"{method} {path}")
                finally:
                    response.close()
            if not stream:
                response.read()
                response.close()
            return response


def _retry_after(value: str | None, attempt: int, cap: float) -> float:
    if value:
        try:
            return float(min(max(float(value), 0.0), cap))
        except ValueError:
            pass
    return float(min(0.2 * 2 ** attempt, cap))
