"""Image config blobs (the JSON a manifest's `config` names), for `save` and `push` alike.

An image keeps the config blob it was pulled or loaded with (`Image.config_digest`); that blob is
sent again byte for byte while its `rootfs.diff_ids` still name the layers being written. An image
made here (imported, committed, or whose layers had to be written back from their trees) gets a
new one, as docker writes it: architecture, os, created, config, rootfs and history.
"""
from __future__ import annotations

import contextlib
import datetime
import json
import platform
from typing import TYPE_CHECKING, Any

from agent.images.model import Image, ImageConfig

if TYPE_CHECKING:   # the store imports oci, which imports this module
    from agent.images.store import ImageStore

# Go's names for this machine's architecture, which image configs and indexes use.
GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le",
          "s390x": "s390x", "riscv64": "riscv64"}


def host_architecture() -> str:
    return GOARCH.get(platform.machine(), platform.machine())


def timestamp(seconds: float) -> str:
    """RFC 3339 in UTC, as image configs write `created`."""
    return datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def canonical(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def new_config_blob(config: ImageConfig, diff_ids: list[str], created: float,
                    history: list[dict[str, Any]] | None = None) -> bytes:
    body: dict[str, Any] = {"architecture": host_architecture(), "os": "linux", "created": timestamp(created),
                            "config": config.to_oci(), "rootfs": {"type": "layers", "diff_ids": list(diff_ids)}}
    if history:
        body["history"] = history
    return canonical(body)


def stored_config(store: ImageStore, image: Image) -> dict[str, Any] | None:
    """The image's own config blob, parsed, if the store kept one."""
    if not image.config_digest:
        return None
    path = store.blob_path(image.config_digest)
    with contextlib.suppress(OSError, ValueError):
        document = json.loads(path.read_bytes())
        if isinstance(document, dict):
            return document
    return None


def config_blob(store: ImageStore, image: Image, diff_ids: list[str]) -> bytes:
    """The image's own config blob while its diff_ids are still true, else a new one (keeping
    the old one's history, so `corral history` survives a save, load and push)."""
    if image.config_digest:
        path = store.blob_path(image.config_digest)
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            raw = path.read_bytes()
            if json.loads(raw)["rootfs"]["diff_ids"] == diff_ids:
                return raw
    old = stored_config(store, image) or {}
    history = old.get("history") if isinstance(old.get("history"), list) else None
    return new_config_blob(image.config, diff_ids, image.created, history)
