"""What registries need of the image store: layer records keyed by diff_id, the compressed
blobs a layer was pulled or pushed as, and small blobs (manifests, configs) kept by digest so a
push re-sends them byte for byte.

Layout under `<root>/images/` (next to the store's own, agent/images/store.py):

  layers/sha256/<hex>.json   the layer record; its "blobs" list the compressed forms known
  blobs/sha256/<hex>         manifests, configs and verified downloaded blobs, by digest

`LayerBlobs` is a part of ImageStore (its base class): it uses the store's lock, staging and
layer paths, declared below, and keeps the registry-facing methods in a file of their own.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import Any

from agent.atomic_file import write_atomically
from agent.images.extract import Extracted, remove_tree
from agent.images.model import Image
from agent.images.records import read_json, write_json
from agent.images.streams import Readable


class LayerBlobs:
    dir: Path

    # The store's own, used here (agent/images/store.py defines them).
    def layer_dir(self, digest: str) -> Path:
        raise NotImplementedError

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        raise NotImplementedError

    def _stage(self, source: Path | Readable, *, whiteouts: bool, label: str | None = None) -> tuple[Path, Extracted]:
        raise NotImplementedError

    def _commit_layer(self, staging: Path, extracted: Extracted) -> None:
        raise NotImplementedError

    def _records(self) -> list[Image]:
        raise NotImplementedError

    # -- agent/registry pulls and pushes through these

    def has_layer(self, diff_id: str) -> bool:
        return self.layer_dir(diff_id).is_dir()

    def stage_layer(self, blob: Path | Readable, label: str) -> tuple[Path, Extracted]:
        """Extract a downloaded layer blob into staging; `commit_layer` or `discard` it after checks."""
        return self._stage(blob, whiteouts=True, label=label)

    def commit_layer(self, staging: Path, extracted: Extracted, blob: dict[str, Any] | None) -> None:
        """Move a verified layer into place; `blob` (digest, mediaType, size), if any, is kept
        for push (a layer made here has none until a push writes one)."""
        with self._locked():
            self._commit_layer(staging, extracted)
        if blob is not None:
            self.add_layer_blob(extracted.digest, blob)

    def add_layer_blob(self, diff_id: str, blob: dict[str, Any]) -> None:
        """Remember a compressed blob of a layer (digest, mediaType, size, and the diff_id of the
        tar inside when it is not the layer's own)."""
        with self._locked():
            record_path = self.layer_dir(diff_id).with_suffix(".json")
            record = read_json(record_path, "layer record")
            blobs = [b for b in record.get("blobs", []) if b.get("digest") != blob["digest"]]
            record["blobs"] = blobs + [blob]
            write_json(record_path, record)

    def discard(self, staging: Path) -> None:
        remove_tree(staging)

    def layer_record(self, diff_id: str) -> dict[str, Any]:
        return read_json(self.layer_dir(diff_id).with_suffix(".json"), "layer record")

    def blob_path(self, digest: str) -> Path:
        return self.dir / "blobs" / "sha256" / hex_of(digest)

    def save_blob(self, content: bytes) -> str:
        """A small blob (manifest, config) kept by digest, so a push re-sends it byte for byte."""
        digest = "sha256:" + hashlib.sha256(content).hexdigest()
        path = self.blob_path(digest)
        if not path.is_file():
            write_atomically(path, content)
        return digest

    def keep_blob(self, path: Path, digest: str) -> None:
        """Move a verified blob file into the blob store (a no-op if it is there already)."""
        target = self.blob_path(digest)
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)

    def by_repo_digest(self, reference: str) -> Image | None:
        """The image pulled as `name@sha256:...` (the familiar name), if the store has it."""
        for image in self._records():
            if reference in image.repo_digests:
                return image
        return None


def hex_of(digest: str) -> str:
    """`sha256:<hex>`'s hex: the file name of a layer or blob."""
    return digest.split(":", 1)[1]
