"""Manifests and indexes: OCI image manifest and index, Docker schema 2 manifest and list.

Parsed into one shape whatever the format: an `Index` lists per-platform manifests, a
`Manifest` names a config blob and its layer blobs. Docker schema 1 (signed, no config blob,
deprecated since 2017) is refused with a message that says so.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from agent.errors import InvalidArgument

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v1+prettyjws")
# Every format we read, in the order we prefer them (docker and containerd send the same set).
ACCEPT = f"{OCI_INDEX}, {DOCKER_LIST}, {OCI_MANIFEST}, {DOCKER_MANIFEST}"

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
LAYER_TYPES = {
    "application/vnd.oci.image.layer.v1.tar": "tar",
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
}


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        return "/".join(part for part in (self.os, self.architecture, self.variant) if part)


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    annotations: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size}


@dataclass(frozen=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: list[Descriptor]


@dataclass(frozen=True)
class Index:
    media_type: str
    manifests: list[Descriptor]


def _descriptor(data: Any, where: str) -> Descriptor:
    if not isinstance(data, dict):
        raise InvalidArgument(f"{where}: expected an object, got {type(data).__name__}")
    digest, size, media = data.get("digest"), data.get("size"), data.get("mediaType", "")
    if not isinstance(digest, str) or ":" not in digest:
        raise InvalidArgument(f"{where}.digest: expected a digest, got {digest!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise InvalidArgument(f"{where}.size: expected a byte count, got {size!r}")
    platform = None
    if isinstance(data.get("platform"), dict):
        raw = data["platform"]
        platform = Platform(str(raw.get("os", "")), str(raw.get("architecture", "")), str(raw.get("variant", "")))
    annotations = data.get("annotations") if isinstance(data.get("annotations"), dict) else {}
    return Descriptor(str(media), digest, size, platform, dict(annotations or {}))


def parse(body: bytes, content_type: str, where: str) -> Manifest | Index:
    """A manifest or an index from its bytes; the media type from the body, else the header."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise InvalidArgument(f"{where}: the manifest is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise InvalidArgument(f"{where}: the manifest is not a JSON object")
    media = data.get("mediaType") or content_type.split(";")[0].strip()
    if data.get("schemaVersion") == 1 or media in DOCKER_SCHEMA1:
        raise InvalidArgument(f"{where}: Docker image manifest schema 1 is not supported (deprecated since "
                              "2017)", hint="push the image again with a current docker, podman or skopeo")
    if media in (OCI_INDEX, DOCKER_LIST) or (not media and "manifests" in data):
        items = data.get("manifests")
        if not isinstance(items, list):
            raise InvalidArgument(f"{where}.manifests: expected a list")
        return Index(media or OCI_INDEX, [_descriptor(item, f"{where}.manifests[{i}]") for i, item in enumerate(items)])
    if media in (OCI_MANIFEST, DOCKER_MANIFEST) or (not media and "config" in data):
        layers = data.get("layers")
        if not isinstance(layers, list):
            raise InvalidArgument(f"{where}.layers: expected a list")
        return Manifest(media or OCI_MANIFEST, _descriptor(data.get("config"), f"{where}.config"),
                        [_descriptor(item, f"{where}.layers[{i}]") for i, item in enumerate(layers)])
    raise InvalidArgument(f"{where}: unsupported manifest media type {media!r}")


def layer_compression(layer: Descriptor, where: str) -> str:
    """"tar", "gzip" or "zstd" for a layer blob, from its media type."""
    try:
        return LAYER_TYPES[layer.media_type]
    except KeyError:
        raise InvalidArgument(f"{where}: unsupported layer media type {layer.media_type!r}") from None


def encode(manifest: Manifest) -> bytes:
    """A manifest's canonical bytes, for push (what its digest is computed over)."""
    body = {"schemaVersion": 2, "mediaType": manifest.media_type, "config": manifest.config.to_dict(),
            "layers": [layer.to_dict() for layer in manifest.layers]}
    return json.dumps(body, separators=(",", ":")).encode()
