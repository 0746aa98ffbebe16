"""`corral commit`: a container's changes (its overlay upper directory) as a new image.

The upper directory is already a layer in overlayfs' own form (whiteouts are 0/0 character
devices, opaque directories carry the xattr), which is how the store keeps every layer; it is
written as a reproducible tar (`layer_tar`) and that tar goes through the same staging and checks
as a pulled layer, so a committed image pushes, saves and runs like any other. Its config blob
carries the parent's history plus one row for the commit.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from agent.errors import CorralError
from agent.images import layer_tar
from agent.images.config_blob import new_config_blob, stored_config, timestamp
from agent.images.extract import remove_tree
from agent.images.model import Image, ImageConfig, parse_reference
from agent.images.store import ImageStore

GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def commit_tree(store: ImageStore, upper: Path, base: Image, reference: str, config: ImageConfig, *,
                comment: str = "", author: str = "", created_by: str = "") -> Image:
    """Record `upper` as a layer on top of `base`'s, named `reference` with `config`."""
    name, tag = parse_reference(reference)
    now = time.time()
    with tempfile.TemporaryDirectory(dir=store.dir / "tmp", prefix="commit-") as work:
        blob = Path(work) / "layer.tar.gz"
        diff_id, blob_digest, size = layer_tar.write(upper, blob)
        with open(blob, "rb") as handle:
            staging, extracted = store.stage_layer(handle, label=f"commit of {upper}")
        try:
            if extracted.digest != diff_id:
                raise CorralError(f"commit: the layer read back as {extracted.digest}, written as {diff_id}")
            history = _history(store, base) + [{"created": timestamp(now), "created_by": created_by,
                                                **({"comment": comment} if comment else {}),
                                                **({"author": author} if author else {})}]
            document = new_config_blob(config, [*base.layers, diff_id], now, history)
            image = store.commit_image([(staging, extracted)], name, tag, config, base=base,
                                       config_digest=store.save_blob(_with(document, author, comment)))
        finally:
            remove_tree(staging)
        store.keep_blob(blob, blob_digest)
        store.add_layer_blob(diff_id, {"mediaType": GZIP_LAYER, "digest": blob_digest, "size": size})
    return image


def _history(store: ImageStore, base: Image) -> list[dict[str, Any]]:
    """The parent's history rows, or one per layer when it has none that fits its layers."""
    entries = (stored_config(store, base) or {}).get("history")
    if isinstance(entries, list) and sum(1 for e in entries if isinstance(e, dict)
                                         and not e.get("empty_layer")) == len(base.layers):
        return [e for e in entries if isinstance(e, dict)]
    return [{"created": timestamp(base.created), "comment": "layer"} for _ in base.layers]


def _with(document: bytes, author: str, comment: str) -> bytes:
    if not author and not comment:
        return document
    import json
    body = json.loads(document)
    body.update({key: value for key, value in (("author", author), ("comment", comment)) if value})
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
