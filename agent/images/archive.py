"""`corral save` and `corral load`: images as one tar, in the format `docker save` writes since
Docker 25 (an OCI image layout plus docker's `manifest.json`), so either tool reads the other's.

Save writes, per image, uncompressed layer tars (`blobs/sha256/<diff_id>`), the image config and
an OCI manifest; `index.json` names each manifest (`org.opencontainers.image.ref.name` and
containerd's `io.containerd.image.name`), `manifest.json` lists `Config`, `RepoTags` and `Layers`
as `docker load` wants them. A layer pulled from a registry is written from its kept blob,
decompressed, so its diff_id is the registry's; one that exists only extracted is written back
as a tar by `layer_tar` (names sorted, times as stored).

Load reads `manifest.json` when the archive has one (docker save of any version, podman save,
skopeo's docker-archive) and an OCI layout's `index.json` otherwise. The tar is read in place
(members are streamed into the store's staging, never extracted by path), and every layer is
checked against the config's diff_ids before anything is recorded.
"""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from agent.errors import InvalidArgument
from agent.images import layer_tar
from agent.images.config_blob import canonical, config_blob
from agent.images.extract import Extracted, remove_tree
from agent.images.model import UNTAGGED, Image, ImageConfig, parse_reference
from agent.images.store import ImageStore
from agent.images.streams import decompressor

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
_REF_NAME = "org.opencontainers.image.ref.name"
_CONTAINERD_NAME = "io.containerd.image.name"
_MAX_JSON = 64 << 20      # manifest.json, index.json or a config larger than this is not an image


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class _Blob:
    digest: str
    size: int
    path: Path | None = None      # a temporary file, or None when `data` holds it
    data: bytes = b""


class _Saver:
    """Collects the blobs of the images to save (each once), then writes the tar."""

    def __init__(self, store: ImageStore, work: Path) -> None:
        self.store = store
        self.work = work
        self.blobs: dict[str, _Blob] = {}
        self.index: list[dict[str, Any]] = []
        self.manifest_json: list[dict[str, Any]] = []
        self._layers: dict[str, _Blob] = {}      # stored layer digest -> the tar written for it

    def add(self, image: Image, names: list[str]) -> None:
        layers = [self._layer(digest) for digest in image.layers]
        config = self._keep(config_blob(self.store, image, [layer.digest for layer in layers]))
        manifest = canonical({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                               "config": {"mediaType": OCI_CONFIG, "digest": config.digest, "size": config.size},
                               "layers": [{"mediaType": OCI_LAYER, "digest": layer.digest, "size": layer.size}
                                          for layer in layers]})
        kept = self._keep(manifest)
        for name in names or [""]:
            annotations = {_CONTAINERD_NAME: name, _REF_NAME: name.rsplit(":", 1)[1]} if name else {}
            self.index.append({"mediaType": OCI_MANIFEST, "digest": kept.digest, "size": kept.size,
                               **({"annotations": annotations} if annotations else {})})
        self.manifest_json.append({"Config": _blob_name(config.digest), "RepoTags": names or None,
                                   "Layers": [_blob_name(layer.digest) for layer in layers]})

    def _keep(self, data: bytes) -> _Blob:
        digest = _digest(data)
        return self.blobs.setdefault(digest, _Blob(digest, len(data), data=data))

    def _layer(self, stored: str) -> _Blob:
        if stored in self._layers:
            return self._layers[stored]
        out = self.work / f"layer-{len(self._layers)}.tar"
        with open(out, "wb") as sink:
            diff_id, size = self._kept_blob(stored, sink) or layer_tar.write_plain(self.store.layer_dir(stored), sink)
        blob = self.blobs.setdefault(diff_id, _Blob(diff_id, size, path=out))
        self._layers[stored] = blob
        return blob

    def _kept_blob(self, stored: str, sink: IO[bytes]) -> tuple[str, int] | None:
        """The layer's registry blob decompressed, when the store kept one whose tar is the layer's."""
        record = self.store.layer_record(stored)
        for blob in record.get("blobs", []):
            path = self.store.blob_path(str(blob.get("digest", "")))
            if blob.get("diff_id", stored) != stored or not path.is_file():
                continue
            digest, size = hashlib.sha256(), 0
            with open(path, "rb") as raw, decompressor(raw, str(path)) as plain:
                while chunk := plain.read(layer_tar.CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    sink.write(chunk)
            if "sha256:" + digest.hexdigest() == stored:
                return stored, size
            sink.seek(0)
            sink.truncate()
        return None

    def write(self, out: IO[bytes]) -> None:
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:  # type: ignore[call-overload]
            _add_bytes(archive, "oci-layout", canonical({"imageLayoutVersion": "1.0.0"}))
            for blob in sorted(self.blobs.values(), key=lambda b: b.digest):
                info = tarfile.TarInfo(_blob_name(blob.digest))
                info.size, info.mode = blob.size, 0o444
                if blob.path is not None:
                    with open(blob.path, "rb") as handle:
                        archive.addfile(info, handle)
                else:
                    archive.addfile(info, io.BytesIO(blob.data))
            _add_bytes(archive, "index.json", canonical({"schemaVersion": 2, "mediaType": OCI_INDEX,
                                                          "manifests": self.index}))
            _add_bytes(archive, "manifest.json", canonical(self.manifest_json))


def _blob_name(digest: str) -> str:
    return "blobs/sha256/" + digest.split(":", 1)[1]


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), 0o444
    archive.addfile(info, io.BytesIO(data))


def save(store: ImageStore, references: list[str], out: IO[bytes]) -> None:
    """Write the images named by `references` (names or ids) to `out` as one tar."""
    if not references:
        raise InvalidArgument("save: name at least one image")
    chosen: dict[str, tuple[Image, list[str]]] = {}
    for reference in references:
        image = store.get(reference)
        names = chosen.setdefault(image.id, (image, []))[1]
        if image.tagged and image.reference not in names:
            names.append(image.reference)
    with tempfile.TemporaryDirectory(dir=store.dir / "tmp", prefix="save-") as work:
        saver = _Saver(store, Path(work))
        for image, names in chosen.values():
            saver.add(image, names)
        saver.write(out)


def save_stream(store: ImageStore, references: list[str]) -> Iterator[bytes]:
    """`save` as chunks for an HTTP answer. The tar is made in a temporary file first, so a bad
    name or a missing layer is an error before the first byte, not a torn archive."""
    for reference in references:
        store.get(reference)
    spool = tempfile.TemporaryFile(dir=store.dir / "tmp")
    try:
        save(store, references, spool)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return _chunks(spool)


def _chunks(spool: IO[bytes]) -> Iterator[bytes]:
    with spool:
        while chunk := spool.read(layer_tar.CHUNK):
            yield chunk


# -- load

@dataclass
class _Found:
    names: list[str]
    config: bytes
    layers: list[str]             # member names in the tar, lowest first


def load(store: ImageStore, path: Path | str) -> list[Image]:
    """Add every image of a `docker save` / `corral save` / OCI layout tar; the loaded images."""
    source = Path(path)
    try:
        archive = tarfile.open(source, mode="r:*")
    except (OSError, tarfile.TarError) as exc:
        raise InvalidArgument(f"load {str(source)!r}: not a readable tar archive ({exc})",
                              hint="give a file written by `corral save` or `docker save`") from None
    with archive:
        found = _docker_manifest(archive, source) or _oci_index(archive, source)
        return [_add(store, archive, source, image) for image in found]


def _member_bytes(archive: tarfile.TarFile, name: str, source: Path) -> bytes:
    try:
        member = archive.getmember(name[2:] if name.startswith("./") else name)
    except KeyError:
        raise InvalidArgument(f"load {str(source)!r}: the archive names {name!r} but does not hold it") from None
    if member.size > _MAX_JSON:
        raise InvalidArgument(f"load {str(source)!r}: {name!r} is {member.size} bytes, too large for image metadata")
    handle = archive.extractfile(member)
    if handle is None:
        raise InvalidArgument(f"load {str(source)!r}: {name!r} is not a file")
    return handle.read()


def _json(archive: tarfile.TarFile, name: str, source: Path) -> Any:
    try:
        return json.loads(_member_bytes(archive, name, source))
    except ValueError as exc:
        raise InvalidArgument(f"load {str(source)!r}: {name} is not JSON ({exc})") from None


def _docker_manifest(archive: tarfile.TarFile, source: Path) -> list[_Found] | None:
    if "manifest.json" not in archive.getnames():
        return None
    entries = _json(archive, "manifest.json", source)
    if not isinstance(entries, list) or not entries:
        raise InvalidArgument(f"load {str(source)!r}: manifest.json must be a non-empty list")
    found = []
    for number, entry in enumerate(entries):
        where = f"load {str(source)!r}: manifest.json[{number}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str) \
                or not isinstance(entry.get("Layers"), list):
            raise InvalidArgument(f"{where}: expected Config and Layers")
        names = entry.get("RepoTags") or []
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise InvalidArgument(f"{where}.RepoTags: expected a list of names")
        found.append(_Found(names, _member_bytes(archive, entry["Config"], source),
                            [str(layer) for layer in entry["Layers"]]))
    return found


def _oci_index(archive: tarfile.TarFile, source: Path) -> list[_Found]:
    if "index.json" not in archive.getnames():
        raise InvalidArgument(f"load {str(source)!r}: neither manifest.json nor index.json is in the archive",
                              hint="give a file written by `corral save`, `docker save` or an OCI layout tar")
    found = []
    for descriptor in _json(archive, "index.json", source).get("manifests") or []:
        manifest = _json(archive, _blob_name(str(descriptor.get("digest", ""))), source)
        annotations = descriptor.get("annotations") or {}
        name = annotations.get(_CONTAINERD_NAME) or ""
        if not name and annotations.get(_REF_NAME):
            name = str(annotations[_REF_NAME])
        if "manifests" in manifest:
            raise InvalidArgument(f"load {str(source)!r}: multi-platform indexes inside the layout are not "
                                  "supported; save one platform")
        config = _member_bytes(archive, _blob_name(str((manifest.get("config") or {}).get("digest", ""))), source)
        found.append(_Found([name] if name else [], config,
                            [_blob_name(str(layer.get("digest", ""))) for layer in manifest.get("layers") or []]))
    return found


def _familiar(name: str) -> str:
    """docker.io/library/busybox:1 -> busybox:1, as docker names Docker Hub's images."""
    for prefix in ("docker.io/library/", "index.docker.io/library/", "docker.io/", "index.docker.io/"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def _add(store: ImageStore, archive: tarfile.TarFile, source: Path, found: _Found) -> Image:
    where = f"load {str(source)!r}"
    try:
        document = json.loads(found.config)
        config = ImageConfig.from_oci(document.get("config"), f"{where}: image config")
        diff_ids = (document.get("rootfs") or {}).get("diff_ids") or []
    except (ValueError, AttributeError) as exc:
        raise InvalidArgument(f"{where}: the image config is not a JSON object ({exc})") from None
    if len(diff_ids) != len(found.layers):
        raise InvalidArgument(f"{where}: the config lists {len(diff_ids)} layers, the manifest {len(found.layers)}")
    names = [parse_reference(_familiar(name)) for name in found.names] or [(UNTAGGED, UNTAGGED)]
    staged: list[tuple[Path, Extracted]] = []
    try:
        for number, (member, diff_id) in enumerate(zip(found.layers, diff_ids)):
            handle = archive.extractfile(member)
            if handle is None:
                raise InvalidArgument(f"{where}: layer {member!r} is not a file in the archive")
            staged.append(store.stage_layer(handle, label=f"{where}: layer {number}"))
            if staged[-1][1].digest != diff_id:
                raise InvalidArgument(f"{where}: layer {number} unpacks to {staged[-1][1].digest}, "
                                      f"the config says {diff_id}", hint="the archive is corrupt; save it again")
        config_digest = store.save_blob(found.config)
        image = store.commit_image(staged, names[0][0], names[0][1], config, config_digest=config_digest)
        for name, tag in names[1:]:
            image = store.tag(image.id, f"{name}:{tag}")
        return image
    except KeyError as exc:
        raise InvalidArgument(f"{where}: the archive names {exc} but does not hold it") from None
    finally:
        for staging, _ in staged:
            remove_tree(staging)
