"""`corral pull`: resolve, choose the platform, fetch what the store lacks, extract, record.

The order is chosen for speed: the tag is resolved with a HEAD (its digest), and when the store
already holds that manifest nothing else is fetched. Otherwise the manifest is fetched by digest,
the config first, and every layer whose diff_id the store has is skipped ("Already exists",
zero bytes). The rest download in parallel, each extracted as soon as it is complete; a lock per
layer means two concurrent pulls never fetch or extract the same layer twice. Nothing is recorded
until each blob's size and digest and each layer's diff_id have been checked.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from agent.errors import CorralError, InvalidArgument, RegistryError
from agent.images.extract import Extracted
from agent.images.model import Image, ImageConfig, image_id
from agent.images.store import ImageStore
from agent.registry import blobs
from agent.registry import manifest as manifests
from agent.registry.auth import Credentials, TokenCache
from agent.registry.following import FollowedFile
from agent.registry.manifest import Descriptor, Index, Manifest, Platform
from agent.registry.platform import choose, host
from agent.registry.reference import Reference
from agent.registry.transport import RegistryOptions, Transport

Progress = Callable[[dict[str, Any]], None]
_WORKERS = 3


def _short(digest: str) -> str:
    return digest.split(":", 1)[1][:12]


def human(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.1f}{unit}" if unit != "B" else f"{int(size)}B"
        size /= 1000
    return f"{size:.1f}GB"


def image_config(raw: bytes, where: str) -> tuple[ImageConfig, list[str]]:
    """The run config and the diff_ids of an OCI/Docker image config blob."""
    try:
        data = json.loads(raw)
    except ValueError:
        raise RegistryError(f"{where}: the image config is not JSON") from None
    run = data.get("config")
    diff_ids = (data.get("rootfs") or {}).get("diff_ids") or []
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) for d in diff_ids):
        raise RegistryError(f"{where}: rootfs.diff_ids is not a list of digests")

    try:
        return ImageConfig.from_oci(run, f"{where}: config"), diff_ids
    except InvalidArgument as exc:
        raise RegistryError(f"{where}: {exc.message}") from None


class Puller:
    """Pulls into one image store; one per daemon (it holds the per-layer locks and the tokens)."""

    def __init__(self, store: ImageStore, options: RegistryOptions | None = None) -> None:
        self.store = store
        self.options = options or RegistryOptions()
        self.tokens = TokenCache()
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self.partial_dir = store.dir / "downloads"

    def _lock(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def _hosts(self, ref: Reference) -> list[str]:
        return [*self.options.mirrors.get(ref.registry, ()), ref.api_host]

    def pull(self, ref: Reference, credentials: Credentials | None = None, platform: Platform | None = None,
             progress: Progress | None = None) -> Image:
        emit = progress or (lambda _event: None)
        hosts = self._hosts(ref)
        for number, api_host in enumerate(hosts):
            transport = Transport(api_host, credentials if api_host == ref.api_host else None,
                                  self.options, self.tokens)
            try:
                return self._pull_from(transport, ref, platform or host(), emit)
            except CorralError:
                if number + 1 == len(hosts):
                    raise
            finally:
                transport.close()
        raise AssertionError("unreachable")

    # -- steps

    def _pull_from(self, transport: Transport, ref: Reference, wanted: Platform, emit: Progress) -> Image:
        repo = ref.repository
        scope = [blobs.pull_scope(repo)]
        emit({"status": f"Pulling from {repo}", "id": ref.version[:19] if ref.digest else ref.tag})
        digest, media = (ref.digest, "") if ref.digest else self._head(transport, ref)
        name, tag = ref.familiar_name, ref.tag or "<none>"
        known = self.store.by_repo_digest(f"{name}@{digest}") if digest else None
        # A single manifest known by digest is the image we have; an index must first be read
        # to know which of its platforms' manifests this pull wants.
        if (known is not None and media not in (manifests.OCI_INDEX, manifests.DOCKER_LIST)
                and self._complete(known, known.manifest_digest)):
            return self._up_to_date(known, name, tag, digest, ref, emit)
        body, digest = self._manifest(transport, repo, digest or ref.tag, scope, expected=digest)
        parsed = manifests.parse(body, "", f"{ref}")
        top_digest = digest
        if isinstance(parsed, Index):
            chosen = choose(parsed, wanted, str(ref))
            for candidate in self.store.list():
                if candidate.manifest_digest == chosen.digest and self._complete(candidate, chosen.digest):
                    return self._up_to_date(candidate, name, tag, top_digest, ref, emit)
            body, digest = self._manifest(transport, repo, chosen.digest, scope, expected=chosen.digest)
            parsed = manifests.parse(body, chosen.media_type, f"{ref} ({wanted})")
            if not isinstance(parsed, Manifest):
                raise RegistryError(f"{ref}: the index entry for {wanted} is itself an index")
        assert isinstance(parsed, Manifest)
        config_raw = blobs.fetch_small(transport, repo, parsed.config)
        config, diff_ids = image_config(config_raw, str(ref))
        if len(diff_ids) != len(parsed.layers):
            raise RegistryError(f"{ref}: the manifest lists {len(parsed.layers)} layers but the config "
                                f"{len(diff_ids)} diff_ids")
        if not parsed.layers:
            raise RegistryError(f"{ref}: the manifest lists no layers")
        self._layers(transport, ref, parsed.layers, diff_ids, emit)
        manifest_digest = self.store.save_blob(body)
        config_digest = self.store.save_blob(config_raw)
        size = sum(int(self.store.layer_record(d).get("size", 0)) for d in diff_ids)
        image = Image(id=image_id(diff_ids, config), name=name, tag=tag, layers=list(diff_ids), config=config,
                      created=time.time(), size=size, repo_digests=[f"{name}@{top_digest}"],
                      manifest_digest=manifest_digest, config_digest=config_digest)
        image = self._record(image, name, tag)
        emit({"status": f"Digest: {top_digest}"})
        emit({"status": f"Status: Downloaded newer image for {ref}"})
        return image

    def _complete(self, image: Image, manifest_digest: str) -> bool:
        return bool(manifest_digest) and all(self.store.has_layer(layer) for layer in image.layers)

    def _up_to_date(self, known: Image, name: str, tag: str, digest: str, ref: Reference, emit: Progress) -> Image:
        repo_digest = f"{name}@{digest}"
        image = self._record(dataclasses.replace(known, repo_digests=sorted({*known.repo_digests, repo_digest})),
                             name, tag)
        emit({"status": f"Digest: {digest}"})
        emit({"status": f"Status: Image is up to date for {ref}"})
        return image

    def _record(self, image: Image, name: str, tag: str) -> Image:
        if tag == "<none>":
            existing = [i for i in self.store.list() if i.id == image.id]
            if existing:
                return existing[0]
            from agent.images.model import UNTAGGED
            tag = name = UNTAGGED
        return self.store.add_image(Image(id=image.id, name=name, tag=tag, layers=image.layers,
                                          config=image.config, created=time.time(), size=image.size,
                                          repo_digests=image.repo_digests, manifest_digest=image.manifest_digest,
                                          config_digest=image.config_digest))

    def _download_extracting(self, transport: Transport, ref: Reference, layer: Descriptor,
                             downloading: Callable[[int], None]) -> tuple[Path, tuple[Path, Extracted] | None]:
        """Download a layer blob while a second thread extracts it from the file as it grows, so
        the network and the unpacking overlap. (blob path, staged extraction); the extraction is
        None when it had to give up (the registry restarted the blob), and the caller extracts
        the finished file instead. Nothing is committed here: the caller checks both digests."""
        followed = FollowedFile(blobs.partial_path(self.partial_dir, layer))
        outcome: dict[str, Any] = {}

        def extract() -> None:
            try:
                outcome["staged"] = self.store.stage_layer(followed, f"{ref}: layer {layer.digest}")
            except BaseException as exc:  # noqa: BLE001 - kept and reported after the download
                outcome["error"] = exc
            finally:
                followed.close()
        worker = threading.Thread(target=extract, name=f"extract-{layer.digest[7:19]}", daemon=True)
        worker.start()

        def grew(done: int) -> None:
            followed.grew(done)
            downloading(done)
        try:
            path = blobs.fetch(transport, ref.repository, layer, self.partial_dir, grew, restarted=followed.abort)
        except BaseException:
            followed.abort()
            worker.join()
            if "staged" in outcome:
                self.store.discard(outcome["staged"][0])
            raise
        followed.finish()
        worker.join()
        if "staged" in outcome:
            return path, outcome["staged"]
        # The stream was abandoned (restart), or the download was fine and the content is not a
        # layer: extracting the verified file again gives the real reason, or the layer.
        return path, None

    def _head(self, transport: Transport, ref: Reference) -> tuple[str, str]:
        """(digest, media type) the tag resolves to, from a HEAD (no body fetched)."""
        response = transport.request("HEAD", f"/v2/{ref.repository}/manifests/{ref.tag}",
                                     scopes=[blobs.pull_scope(ref.repository)],
                                     headers={"Accept": manifests.ACCEPT}, what=f"manifest of {ref}")
        media = response.headers.get("content-type", "").split(";")[0].strip()
        return response.headers.get("docker-content-digest", ""), media

    def _manifest(self, transport: Transport, repo: str, version: str, scope: list[str],
                  expected: str) -> tuple[bytes, str]:
        response = transport.request("GET", f"/v2/{repo}/manifests/{version}", scopes=scope,
                                     headers={"Accept": manifests.ACCEPT}, what=f"manifest {version} of {repo}")
        body = response.content
        actual = "sha256:" + hashlib.sha256(body).hexdigest()
        if expected and actual != expected:
            raise RegistryError(f"registry {transport.host}: manifest of {repo}: digest mismatch: expected "
                                f"{expected}, got {actual}")
        if len(body) > 4 << 20:
            raise RegistryError(f"registry {transport.host}: manifest of {repo} is larger than 4 MiB")
        return body, actual

    def _layers(self, transport: Transport, ref: Reference, layers: list[Descriptor], diff_ids: list[str],
                emit: Progress) -> None:
        missing = []
        for layer, diff_id in zip(layers, diff_ids):
            manifests.layer_compression(layer, f"{ref}: layer {layer.digest}")
            if self.store.has_layer(diff_id):
                emit({"status": "Already exists", "id": _short(layer.digest)})
            else:
                emit({"status": "Pulling fs layer", "id": _short(layer.digest)})
                missing.append((layer, diff_id))
        if not missing:
            return
        with ThreadPoolExecutor(max_workers=min(_WORKERS, len(missing))) as pool:
            futures = [pool.submit(self._layer, transport, ref, layer, diff_id, emit) for layer, diff_id in missing]
            errors = [future.exception() for future in futures]
        for error in errors:
            if error is not None:
                raise error

    def _layer(self, transport: Transport, ref: Reference, layer: Descriptor, diff_id: str, emit: Progress) -> None:
        short = _short(layer.digest)
        with self._lock(diff_id):
            if self.store.has_layer(diff_id):       # another pull stored it while we waited
                emit({"status": "Already exists", "id": short})
                return
            last = [0.0]

            def downloading(done: int) -> None:
                now = time.monotonic()
                if now - last[0] >= 0.1 or done == layer.size:
                    last[0] = now
                    emit({"status": "Downloading", "id": short,
                          "progressDetail": {"current": done, "total": layer.size},
                          "progress": f"{human(done)}/{human(layer.size)}"})
            path, staged = self._download_extracting(transport, ref, layer, downloading)
            emit({"status": "Verifying Checksum", "id": short})
            emit({"status": "Download complete", "id": short})
            try:
                emit({"status": "Extracting", "id": short})
                staging, extracted = staged or self.store.stage_layer(path, f"{ref}: layer {layer.digest}")
                try:
                    if extracted.blob_digest != layer.digest:
                        raise RegistryError(f"{ref}: layer {layer.digest} changed on disk before extraction")
                    if extracted.digest != diff_id:
                        raise RegistryError(f"{ref}: layer {layer.digest}: its content has digest "
                                            f"{extracted.digest}, the image config says {diff_id}")
                    self.store.commit_layer(staging, extracted, layer.to_dict())
                finally:
                    self.store.discard(staging)
                # The compressed blob is kept (as containerd keeps its content store): a push
                # of this image to any registry then sends the very bytes it was pulled as.
                self.store.keep_blob(path, layer.digest)
            finally:
                Path(path).unlink(missing_ok=True)
            emit({"status": "Pull complete", "id": short})


