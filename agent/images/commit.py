"""`corral commit`: a container's changes (its overlay upper directory) as a new image.

The upper directory is already a layer in overlayfs' own form (whiteouts are 0/0 character
devices, opaque directories carry the xattr), which is how the store keeps every layer; it is
written as a reproducible tar (`layer_tar`) and that tar goes through the same staging and checks
as a pulled layer, so a committed image pushes, saves and runs like any other. Its config blob
carries the parent's history plus one row for the commit.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from agent.errors import CorralError
from agent.images import layer_tar
from agent.images.config_blob import new_config_blob, stored_config, timestamp
from agent.images.extract import remove_tree
from agent.images.model import Image, ImageConfig, image_id, parse_reference
from agent.images.store import ImageStore


def layer_from_tree(store: ImageStore, tree: Path, label: str) -> tuple[str, int]:
    """Store the layer tree `tree` (overlayfs form) as a layer; its (diff_id, size).

    The tree is written as a tar into a pipe that the store's extractor reads on the other
    side: the layer goes through the same checks as any download, with no temporary file and
    no compression (a push compresses it when it is first sent)."""
    reader, writer = os.pipe()
    written: dict[str, Any] = {}

    def write() -> None:
        try:
            with open(writer, "wb") as out:
                written["diff_id"], _ = layer_tar.write_plain(tree, out)
        except BaseException as exc:  # noqa: BLE001 - reported by the reading side
            written["error"] = exc
    thread = threading.Thread(target=write, name="layer-tar", daemon=True)
    thread.start()
    try:
        with open(reader, "rb") as source:
            staging, extracted = store.stage_layer(source, label=label)
    finally:
        thread.join()
    try:
        if "error" in written:
            raise CorralError(f"{label}: writing the layer failed: {written['error']}")
        if extracted.digest != written["diff_id"]:
            raise CorralError(f"{label}: the layer read back as {extracted.digest}, written as {written['diff_id']}")
        store.commit_layer(staging, extracted, None)
    finally:
        remove_tree(staging)
    return extracted.digest, extracted.size


def commit_tree(store: ImageStore, upper: Path, base: Image, reference: str, config: ImageConfig, *,
                comment: str = "", author: str = "", created_by: str = "") -> Image:
    """Record `upper` as a layer on top of `base`'s, named `reference` with `config`."""
    name, tag = parse_reference(reference)
    now = time.time()
    diff_id, size = layer_from_tree(store, upper, f"commit of {upper}")
    history = history_of(store, base) + [{"created": timestamp(now), "created_by": created_by,
                                          **({"comment": comment} if comment else {}),
                                          **({"author": author} if author else {})}]
    document = new_config_blob(config, [*base.layers, diff_id], now, history)
    image = Image(id=image_id([*base.layers, diff_id], config), name=name, tag=tag,
                  layers=[*base.layers, diff_id], config=config, created=now, size=base.size + size,
                  config_digest=store.save_blob(_with(document, author, comment)))
    return store.add_image(image)


def commit_container(store: ImageStore, cgroups: Any, container: Any, reference: str, changes: list[str], *,
                     pause: bool = True, comment: str = "", author: str = "") -> Image:
    """`container`'s changes (agent.runtime.model.Container) as the image `reference`, the
    container frozen while its upper directory is read when `pause` (as docker does); for
    `corral commit` and the Docker API's POST /commit alike."""
    from agent.cgroups.driver import CgroupPaths
    from agent.errors import InvalidArgument
    from agent.images.changes import apply_changes
    if container.observed or not container.rootfs:
        raise InvalidArgument(f"container {container.name} was not started by Corral: it has no layer to commit")
    base = store.get(container.image_id)
    config = apply_changes(base.config, changes)
    upper = Path(container.rootfs).parent / "upper"
    paths = CgroupPaths.from_dict(container.cgroup) if container.cgroup else None
    frozen = pause and container.state == "running" and paths is not None
    if frozen:
        cgroups.freeze(paths)
    try:
        return commit_tree(store, upper, base, reference, config, comment=comment, author=author,
                           created_by=" ".join(container.command))
    finally:
        if frozen:
            cgroups.thaw(paths)


def history_of(store: ImageStore, base: Image) -> list[dict[str, Any]]:
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
