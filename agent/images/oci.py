"""Reading an OCI image layout: index.json -> manifest -> config and layer blobs, all checked
against their digests. What to import comes back as a `LayoutImage`; the store extracts it."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from agent.errors import InvalidArgument
from agent.images.config_blob import host_architecture
from agent.images.extract import Extracted
from agent.images.model import ImageConfig, parse_reference
from agent.images.records import read_json

_INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
                "application/vnd.docker.distribution.manifest.list.v2+json")


@dataclass(frozen=True)
class LayoutImage:
    """The image an OCI layout holds: its name, its config and its layers, lowest first."""
    layout: Path
    name: str
    tag: str
    config: ImageConfig
    layers: list            # the manifest's layer descriptors
    diff_ids: list          # the config's rootfs.diff_ids: digests of the uncompressed layers


def read_layout(path: Path | str, reference: str | None = None) -> LayoutImage:
    """The manifest to import (by `reference`, else for this machine's platform), its config and name."""
    layout = Path(path)
    if not (layout / "oci-layout").is_file() or not (layout / "index.json").is_file():
        raise InvalidArgument(f"{str(layout)!r} is not an OCI image layout (no oci-layout or index.json)",
                              hint="create one with `skopeo copy docker://IMAGE oci:DIR:TAG`")
    descriptor, annotated = _choose_manifest(layout, reference)
    manifest = _read_blob_json(layout, descriptor)
    if manifest.get("mediaType") in _INDEX_TYPES or "manifests" in manifest:
        descriptor, _ = _choose_manifest(layout, reference, index=manifest)
        manifest = _read_blob_json(layout, descriptor)
    config_doc = _read_blob_json(layout, manifest.get("config") or {})
    name, tag = parse_reference(reference) if reference else _layout_reference(layout, annotated)
    config = _image_config(config_doc, layout)
    diff_ids = (config_doc.get("rootfs") or {}).get("diff_ids") or []
    return LayoutImage(layout=layout, name=name, tag=tag, config=config,
                       layers=manifest.get("layers") or [], diff_ids=diff_ids)


def check_layer(image: LayoutImage, index: int, extracted: Extracted) -> None:
    """The extracted layer `index` is what the manifest and the config say it is."""
    layout, layer, diff_ids = image.layout, image.layers[index], image.diff_ids
    if extracted.blob_digest != layer["digest"]:
        raise InvalidArgument(f"{layout}: layer {index} has digest {extracted.blob_digest}, "
                              f"the manifest says {layer['digest']}",
                              hint="the layout is corrupt; export it again")
    if index < len(diff_ids) and diff_ids[index] != extracted.digest:
        raise InvalidArgument(f"{layout}: layer {index} unpacks to {extracted.digest}, "
                              f"the config's rootfs.diff_ids says {diff_ids[index]}",
                              hint="the layout is corrupt; export it again")


def blob_path(layout: Path, descriptor: dict) -> Path:
    """The file in `layout` holding the blob `descriptor` names (sha256 digests only)."""
    digest = descriptor.get("digest") if isinstance(descriptor, dict) else None
    if not isinstance(digest, str) or ":" not in digest:
        raise InvalidArgument(f"{layout}: descriptor {descriptor!r} has no digest")
    algorithm, hexdigest = digest.split(":", 1)
    if algorithm != "sha256" or len(hexdigest) != 64 or not all(c in "0123456789abcdef" for c in hexdigest):
        raise InvalidArgument(f"{layout}: unsupported digest {digest!r} (only sha256 is supported)")
    path = layout / "blobs" / "sha256" / hexdigest
    if not path.is_file():
        raise InvalidArgument(f"{layout}: blob {digest} is missing (expected {path})",
                              hint="the layout is incomplete; export it again")
    return path


def _read_blob_json(layout: Path, descriptor: dict) -> dict:
    path = blob_path(layout, descriptor)
    data = path.read_bytes()
    if "sha256:" + hashlib.sha256(data).hexdigest() != descriptor["digest"]:
        raise InvalidArgument(f"{layout}: blob {descriptor['digest']} does not match its digest",
                              hint="the layout is corrupt; export it again")
    try:
        document = json.loads(data)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"{layout}: blob {descriptor['digest']} is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidArgument(f"{layout}: blob {descriptor['digest']} is not a JSON object")
    return document


def _choose_manifest(layout: Path, reference: str | None, index: dict | None = None) -> tuple[dict, str | None]:
    """The manifest descriptor to import, and the name its annotations give it."""
    if index is None:
        index = read_json(layout / "index.json", "OCI index", hint="the layout is corrupt; export it again")
    manifests = [m for m in index.get("manifests") or [] if isinstance(m, dict)]
    if not manifests:
        raise InvalidArgument(f"{layout}: index.json lists no manifests")

    def annotation(descriptor: dict) -> str | None:
        notes = descriptor.get("annotations") or {}
        return notes.get("io.containerd.image.name") or notes.get("org.opencontainers.image.ref.name")

    if reference and len(manifests) > 1:
        wanted_tag = parse_reference(reference)[1]
        named = [m for m in manifests if annotation(m) in (reference, wanted_tag)
                 or (m.get("annotations") or {}).get("org.opencontainers.image.ref.name") == wanted_tag]
        if len(named) == 1:
            return named[0], annotation(named[0])
    if len(manifests) > 1:
        arch = host_architecture()
        matching = [m for m in manifests if (m.get("platform") or {}).get("os", "linux") == "linux"
                    and (m.get("platform") or {}).get("architecture", arch) == arch]
        if len(matching) != 1:
            names = sorted(filter(None, (annotation(m) for m in manifests)))
            raise InvalidArgument(f"{layout}: the index holds {len(manifests)} manifests and none or several "
                                  f"are for linux/{arch}" + (f" ({', '.join(names)})" if names else ""),
                                  hint="give the reference of the one to import")
        return matching[0], annotation(matching[0])
    return manifests[0], annotation(manifests[0])


def _layout_reference(layout: Path, annotated: str | None) -> tuple[str, str]:
    """(name, tag) when the user gave none: from the index's annotation, else the directory name."""
    directory = layout.resolve().name.lower()
    if annotated and (":" in annotated or "/" in annotated):
        return parse_reference(annotated)
    candidate = f"{directory}:{annotated}" if annotated else directory
    try:
        return parse_reference(candidate)
    except InvalidArgument:
        raise InvalidArgument(f"{layout}: no usable image name in the layout ({candidate!r})",
                              hint="give a reference, like `corral image import DIR myimage:1.0`") from None


def _image_config(document: dict, layout: Path) -> ImageConfig:
    return ImageConfig.from_oci(document.get("config"), f"{layout}: image config")
