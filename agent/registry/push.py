"""`corral push`: blobs the registry lacks, then the manifest.

Each layer blob is first asked for with HEAD (present: "Layer already exists", nothing sent),
then mounted from another repository of the same registry that is known to hold it (the image's
repo digests name them), and only then uploaded (POST for a session, one PUT with the digest).
A pulled image keeps its compressed blobs, manifest and config, so it is pushed byte for byte
and keeps its digest; a layer that exists only extracted is written as a reproducible tar and
the image gets a new config and manifest naming those tars. The manifest goes last.
"""
from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent.errors import CorralError, NotFound
from agent.images import layer_tar
from agent.images.config_blob import config_blob
from agent.images.model import Image
from agent.images.store import ImageStore
from agent.registry.auth import Credentials, TokenCache
from agent.registry.manifest import (
    OCI_CONFIG,
    OCI_MANIFEST,
    Descriptor,
    Manifest,
    encode,
)
from agent.registry.reference import Reference, parse
from agent.registry.transport import RegistryOptions, Transport

Progress = Callable[[dict[str, Any]], None]
GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def _short(digest: str) -> str:
    return digest.split(":", 1)[1][:12]


class Pusher:
    def __init__(self, store: ImageStore, options: RegistryOptions | None = None,
                 tokens: TokenCache | None = None) -> None:
        self.store = store
        self.options = options or RegistryOptions()
        self.tokens = tokens or TokenCache()

    def push(self, ref: Reference, credentials: Credentials | None = None, progress: Progress | None = None,
             source: str | None = None) -> str:
        """Push the local image `source` (default: the reference's own name) as `ref`; its digest."""
        emit = progress or (lambda _event: None)
        image = self.store.get(source or f"{ref.familiar_name}:{ref.tag or 'latest'}")
        emit({"status": f"The push refers to repository [{ref.registry}/{ref.repository}]"})
        transport = Transport(ref.api_host, credentials, self.options, self.tokens)
        try:
            layers, rebuilt = self._layers(transport, ref, image, emit)
            config = config_blob(self.store, image, [diff_id for diff_id, _ in layers])
            config_descriptor = Descriptor(OCI_CONFIG, "sha256:" + _sha(config), len(config))
            self._send(transport, ref, image, config_descriptor, lambda: config, emit=None)
            manifest = self._manifest_bytes(image, rebuilt, config_descriptor, [d for _, d in layers])
            digest = "sha256:" + _sha(manifest)
            media = json.loads(manifest).get("mediaType", OCI_MANIFEST)
            transport.request("PUT", f"/v2/{ref.repository}/manifests/{ref.tag or digest}",
                              scopes=[_push_scope(ref.repository)], headers={"Content-Type": media},
                              content=manifest, ok=(201, 200), what=f"manifest of {ref}")
        finally:
            transport.close()
        repo_digest = f"{ref.familiar_name}@{digest}"
        if repo_digest not in image.repo_digests:
            from dataclasses import replace
            self.store.add_image(replace(image, repo_digests=[*image.repo_digests, repo_digest]))
        emit({"status": f"{ref.tag or 'latest'}: digest: {digest} size: {len(manifest)}"})
        return digest

    def _manifest_bytes(self, image: Image, rebuilt: bool, config: Descriptor, layers: list[Descriptor]) -> bytes:
        if not rebuilt and image.manifest_digest:
            stored = self.store.blob_path(image.manifest_digest)
            if stored.is_file():
                return stored.read_bytes()
        return encode(Manifest(OCI_MANIFEST, config, layers))

    def _layers(self, transport: Transport, ref: Reference, image: Image,
                emit: Progress) -> tuple[list[tuple[str, Descriptor]], bool]:
        """(diff_id, blob) per layer as pushed, and whether any had to be rebuilt from its tree."""
        result, rebuilt = [], False
        for diff_id in image.layers:
            record = self.store.layer_record(diff_id)
            kept = [b for b in record.get("blobs", []) if self.store.blob_path(b["digest"]).is_file()]
            if kept:
                blob = Descriptor(kept[0]["mediaType"], kept[0]["digest"], int(kept[0]["size"]))
                pushed_diff = str(kept[0].get("diff_id", diff_id))
                rebuilt = rebuilt or pushed_diff != diff_id
            else:
                pushed_diff, blob = self._rebuild(diff_id, record)
                rebuilt = True
            path = self.store.blob_path(blob.digest)
            self._send(transport, ref, image, blob, path.read_bytes, emit)
            result.append((pushed_diff, blob))
        return result, rebuilt

    def _rebuild(self, diff_id: str, record: dict[str, Any]) -> tuple[str, Descriptor]:
        with tempfile.TemporaryDirectory(dir=self.store.dir / "tmp") as work:
            out = Path(work) / "layer.tar.gz"
            tar_digest, blob_digest, size = layer_tar.write(self.store.layer_dir(diff_id), out)
            self.store.keep_blob(out, blob_digest)
        blob = {"mediaType": GZIP_LAYER, "digest": blob_digest, "size": size, "diff_id": tar_digest}
        self.store.add_layer_blob(diff_id, blob)
        return tar_digest, Descriptor(GZIP_LAYER, blob_digest, size)

    # -- uploads

    def _exists(self, transport: Transport, ref: Reference, digest: str) -> bool:
        try:
            transport.request("HEAD", f"/v2/{ref.repository}/blobs/{digest}", scopes=[_push_scope(ref.repository)],
                              what=f"blob {digest[:19]}")
            return True
        except NotFound:
            return False

    def _mount(self, transport: Transport, ref: Reference, image: Image, digest: str) -> tuple[str, str]:
        """("mounted", source) when a repository of the same registry lent the blob, else
        ("upload", the upload session's URL)."""
        # Any name this content has been pulled or pushed under may hold the blob.
        known = sorted({d for other in self.store.list() if other.id == image.id for d in other.repo_digests})
        for repo_digest in known:
            try:
                source = parse(repo_digest)
            except CorralError:
                continue
            if source.registry != ref.registry or source.repository == ref.repository:
                continue
            response = transport.request(
                "POST", f"/v2/{ref.repository}/blobs/uploads/",
                params={"mount": digest, "from": source.repository},
                scopes=[_push_scope(ref.repository), f"repository:{source.repository}:pull"],
                ok=(201, 202), what=f"mount of {digest[:19]}")
            if response.status_code == 201:
                return "mounted", source.familiar_name
            return "upload", response.headers["location"]
        response = transport.request("POST", f"/v2/{ref.repository}/blobs/uploads/",
                                     scopes=[_push_scope(ref.repository)], ok=(202,),
                                     what=f"upload of {digest[:19]}")
        return "upload", response.headers["location"]

    def _send(self, transport: Transport, ref: Reference, image: Image, blob: Descriptor,
              content: Callable[[], bytes], emit: Progress | None) -> None:
        """HEAD, else mount, else upload one blob; `content` is read only for an upload."""
        short = _short(blob.digest)
        say = emit or (lambda _event: None)
        if self._exists(transport, ref, blob.digest):
            say({"status": "Layer already exists", "id": short})
            return
        how, where = self._mount(transport, ref, image, blob.digest)
        if how == "mounted":
            say({"status": f"Mounted from {where}", "id": short})
            return
        say({"status": "Pushing", "id": short, "progressDetail": {"current": 0, "total": blob.size}})
        self._put(transport, ref, where, blob.digest, content())
        say({"status": "Pushed", "id": short})

    def _put(self, transport: Transport, ref: Reference, location: str, digest: str, content: bytes) -> None:
        separator = "&" if "?" in location else "?"
        transport.request("PUT", f"{location}{separator}digest={digest}", scopes=[_push_scope(ref.repository)],
                          headers={"Content-Type": "application/octet-stream"}, content=content,
                          ok=(201,), what=f"upload of {digest[:19]}")


def _push_scope(repository: str) -> str:
    return f"repository:{repository}:pull,push"


def _sha(content: bytes) -> str:
    import hashlib
    return hashlib.sha256(content).hexdigest()
