"""Image references as docker normalises them.

`debian` is `docker.io/library/debian:latest`; `localhost:5000/x` names a registry by its host
(a first component with a `.` or a `:`, or `localhost`); `name@sha256:...` pins content. The
store keeps docker's short ("familiar") form, `debian` or `localhost:5000/x`, so `corral images`
reads like `docker images`; the registry client uses the full form.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from agent.errors import InvalidArgument
from agent.images.model import DEFAULT_TAG, parse_reference

DOCKER_HUB = "docker.io"
# Docker Hub's API lives on another host than its name; every other registry is its own host.
_API_HOSTS = {DOCKER_HUB: "registry-1.docker.io"}
_HUB_ALIASES = ("index.docker.io", "registry-1.docker.io")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True)
class Reference:
    """One image in one registry: `registry/repository` plus a tag or a digest (or both)."""

    registry: str          # "docker.io", "localhost:5000"
    repository: str        # "library/debian", "team/app"
    tag: str = DEFAULT_TAG
    digest: str = ""       # "sha256:<64 hex>" when the reference pins content

    @property
    def api_host(self) -> str:
        return _API_HOSTS.get(self.registry, self.registry)

    @property
    def familiar_name(self) -> str:
        """The name as docker shows it: `debian`, `team/app`, `localhost:5000/x`."""
        if self.registry == DOCKER_HUB:
            return self.repository.removeprefix("library/")
        return f"{self.registry}/{self.repository}"

    @property
    def version(self) -> str:
        """What the registry resolves: the digest when pinned, else the tag."""
        return self.digest or self.tag

    def __str__(self) -> str:
        if self.digest:
            return f"{self.familiar_name}@{self.digest}"
        return f"{self.familiar_name}:{self.tag}"

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.registry, self.repository, self.tag, digest)


def parse(text: str) -> Reference:
    """A reference as a user types it, normalised the way docker does."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidArgument("image reference: an image name is required",
                              hint="write it like debian, debian:12 or localhost:5000/team/app@sha256:...")
    digest = ""
    rest = text
    if "@" in text:
        rest, digest = text.split("@", 1)
        if not _DIGEST.match(digest):
            raise InvalidArgument(f"image reference {text!r}: digest {digest!r} is not sha256:<64 hex digits>")
    name, tag = parse_reference(rest)          # the grammar and its messages live with the store
    explicit_tag = rest.rfind(":") > rest.rfind("/")
    if digest and not explicit_tag:
        tag = ""
    first, _, remainder = name.partition("/")
    if remainder and ("." in first or ":" in first or first == "localhost"):
        registry, repository = first, remainder
    else:
        registry, repository = DOCKER_HUB, name
    if registry in _HUB_ALIASES:
        registry = DOCKER_HUB
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    return Reference(registry=registry, repository=repository, tag=tag, digest=digest)


def normalize_registry(text: str) -> str:
    """`corral login` takes a host[:port] (or nothing: Docker Hub); URLs are reduced to the host."""
    host = text.strip().removeprefix("https://").removeprefix("http://").split("/", 1)[0]
    if not host:
        raise InvalidArgument(f"registry {text!r}: expected a host like registry.example.com:5000")
    return DOCKER_HUB if host in ("index.docker.io", "registry-1.docker.io") else host
