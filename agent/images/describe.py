"""What `corral image inspect` and `corral history` show, in docker's field names (so scripts
and the Docker API answer alike).

History comes from the image config blob when the image has one (pulled, loaded, committed,
built): one row per instruction, newest first, with the size of the layer it made; an image
imported from a tarball has one row per layer instead.
"""
from __future__ import annotations

from typing import Any

from agent.images.config_blob import host_architecture, stored_config, timestamp
from agent.images.model import Image
from agent.images.store import ImageStore

MISSING = "<missing>"     # docker's id for rows of layers that are not images of their own


def inspect(store: ImageStore, image: Image, names: list[str] | None = None) -> dict[str, Any]:
    document = stored_config(store, image) or {}
    return {
        "Id": image.id,
        "RepoTags": names if names is not None else ([image.reference] if image.tagged else []),
        "RepoDigests": list(image.repo_digests),
        "Created": document.get("created") or timestamp(image.created),
        "Author": document.get("author", ""),
        "Comment": document.get("comment", ""),
        "Config": image.config.to_oci(),
        "Architecture": document.get("architecture") or host_architecture(),
        "Os": document.get("os") or "linux",
        "Size": image.size,
        "RootFS": {"Type": "layers", "Layers": list(image.layers)},
        "Metadata": {"LastTagTime": timestamp(image.created)},
    }


def history(store: ImageStore, image: Image) -> list[dict[str, Any]]:
    """docker's `GET /images/{name}/history` rows, newest first."""
    sizes = [_layer_size(store, digest) for digest in image.layers]
    document = stored_config(store, image) or {}
    entries = document.get("history")
    rows: list[dict[str, Any]] = []
    if isinstance(entries, list) and sum(1 for e in entries if isinstance(e, dict)
                                         and not e.get("empty_layer")) == len(sizes):
        layer = 0
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            size = 0
            if not entry.get("empty_layer"):
                size, layer = sizes[layer], layer + 1
            rows.append({"Id": MISSING, "Created": _seconds(entry.get("created"), image.created),
                         "CreatedBy": str(entry.get("created_by", "")), "Tags": None, "Size": size,
                         "Comment": str(entry.get("comment", ""))})
    else:
        rows = [{"Id": MISSING, "Created": int(image.created), "CreatedBy": "", "Tags": None, "Size": size,
                 "Comment": "layer"} for size in sizes]
    rows.reverse()
    if rows:
        rows[0].update(Id=image.id, Tags=[image.reference] if image.tagged else None)
    return rows


def _layer_size(store: ImageStore, digest: str) -> int:
    try:
        return int(store.layer_record(digest).get("size", 0))
    except (OSError, ValueError, TypeError):
        return 0


def _seconds(created: Any, default: float) -> int:
    import datetime
    if isinstance(created, str) and created:
        text = created.replace("Z", "+00:00")
        if "." in text:        # Go writes nanoseconds; fromisoformat takes at most micro
            head, _, tail = text.partition(".")
            digits = "".join(ch for ch in tail if ch.isdigit())
            text = f"{head}.{digits[:6]}{tail[len(digits):]}"
        try:
            return int(datetime.datetime.fromisoformat(text).timestamp())
        except ValueError:
            pass
    return int(default)
