"""The image store: content-addressed layers, a JSON index of references, and the imports.

Layout under `<root>/images/`:

  layers/sha256/<hex>/       one extracted layer tree, used as an overlayfs lower directory;
                             <hex> is the sha256 of the layer's *uncompressed* tar stream, so
                             the same content imported twice (even compressed differently) is
                             stored once
  layers/sha256/<hex>.json   {"digest", "size", "created", "notes"} (notes: what was skipped)
  repositories/<name>/<tag>.json   one `Image` per reference (`Image.to_dict()`)
  untagged/<hex>.json        images whose name was moved to newer content but which may still
                             back containers (docker's dangling images); removed by id
  busybox/<hex>.json         which layer a busybox binary (by content hash) was built into
  tmp/                       staging: every layer is extracted here, then renamed into place
  lock                       flock(2) serialising changes to the index between processes

The parts live next door: `extract` writes a layer tree safely, `oci` reads OCI image layouts,
`busybox` builds the embedded default image's root, `records` reads and writes the JSON files,
`blobs` keeps what registries need (layer records, compressed blobs, manifests and configs).
This module is the facade over them: the index, references, lookups, removal and layer paths.
"""
from __future__ import annotations

import builtins  # ImageStore.list shadows `list` in the annotations of the methods after it
import contextlib
import dataclasses
import fcntl
import hashlib
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Iterator

from agent.errors import Conflict, CorralError, InvalidArgument, KernelError, NotFound
from agent.images import busybox, oci
from agent.images.blobs import LayerBlobs, hex_of
from agent.images.extract import Extracted, extract_layer, remove_tree
from agent.images.model import UNTAGGED, Image, ImageConfig, image_id, parse_reference
from agent.images.records import read_json, write_json
from agent.images.streams import Readable

log = logging.getLogger(__name__)

_LIST_HINT = "list images with `corral images`, or add one with `corral image import`"


class ImageStore(LayerBlobs):
    """Images and their layers under `<root>/images/`; the layer and blob records registries
    need are LayerBlobs' (agent/images/blobs.py)."""

    def __init__(self, root: Path) -> None:
        self.dir = Path(root) / "images"
        self.layers_dir = self.dir / "layers" / "sha256"
        self._repositories = self.dir / "repositories"
        self._untagged = self.dir / "untagged"
        self._tmp = self.dir / "tmp"
        # Parsed records by path, with the (inode, mtime, size) they were parsed from.
        self._parsed: dict[Path, tuple[tuple[int, int, int], Image]] = {}
        for directory in (self.layers_dir, self._repositories, self._untagged, self._tmp):
            directory.mkdir(parents=True, exist_ok=True)

    # -- index

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.dir / "lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _record_path(self, image: Image) -> Path:
        if image.tagged:
            return self._repositories / image.name / f"{image.tag}.json"
        return self._untagged / f"{hex_of(image.id)}.json"

    def _load(self, path: Path) -> Image:
        """The record at `path`, parsed once per version of the file: every create looks its
        image up, and reading and checking the record was ~0.3 ms of each. A record is only ever
        replaced by a rename (write_json), so a new version is a new inode."""
        status = os.stat(path)
        version = (status.st_ino, status.st_mtime_ns, status.st_size)
        cached = self._parsed.get(path)
        if cached is not None and cached[0] == version:
            return cached[1]
        image = Image.from_dict(read_json(path, "image record"), where=str(path))
        self._parsed[path] = (version, image)
        return image

    def _by_reference(self, name: str, tag: str) -> Image | None:
        path = self._repositories / name / f"{tag}.json"
        if not path.is_file():
            return None
        try:
            return self._load(path)
        except CorralError as exc:   # as if absent: an import or pull writes it again
            log.error("%s (%s)", exc, exc.hint)
            return None

    def _records(self) -> list[Image]:
        paths = sorted(self._repositories.rglob("*.json")) + sorted(self._untagged.glob("*.json"))
        images = []
        for path in paths:
            try:
                images.append(self._load(path))
            except CorralError as exc:   # one torn record must not hide every other image
                log.error("%s (%s)", exc, exc.hint)
        return images

    def _save(self, image: Image) -> Image:
        """Give `image.reference` to this content; the content it named before stays, untagged."""
        previous = self._by_reference(image.name, image.tag)
        if previous is not None and previous.id == image.id:
            if set(image.repo_digests) <= set(previous.repo_digests):
                return previous
            image = dataclasses.replace(previous, repo_digests=sorted(set(previous.repo_digests)
                                                                      | set(image.repo_digests)),
                                        manifest_digest=image.manifest_digest or previous.manifest_digest,
                                        config_digest=image.config_digest or previous.config_digest)
        if previous is not None and previous.id != image.id and not any(
                other.id == previous.id for other in self._records()
                                            if other.reference != previous.reference):
            write_json(self._record_path(_untag(previous)), _untag(previous).to_dict())
        write_json(self._record_path(image), image.to_dict())
        if image.tagged:        # the content has a name now: it is no longer dangling
            with contextlib.suppress(FileNotFoundError):
                (self._untagged / f"{hex_of(image.id)}.json").unlink()
        return image

    def list(self) -> list[Image]:
        """Every image, newest first."""
        return sorted(self._records(), key=lambda image: (-image.created, image.reference))

    def _resolve(self, query: str) -> tuple[Image, bool]:
        """(image, found by name) for a reference, `name@sha256:...`, a full id or an id prefix."""
        if "@" in query:
            pinned = self.by_repo_digest(query)
            if pinned is not None:
                return pinned, True
            raise NotFound(f"image {query!r} not found", hint="pull it with `corral pull`")
        try:
            name, tag = parse_reference(query)
        except InvalidArgument:
            name = tag = ""
        if name:
            found = self._by_reference(name, tag)
            if found is not None:
                return found, True
        prefix = query[len("sha256:"):] if query.startswith("sha256:") else query
        if prefix and all(char in "0123456789abcdef" for char in prefix):
            matches: dict[str, list[Image]] = {}
            for image in self._records():
                if hex_of(image.id).startswith(prefix):
                    matches.setdefault(image.id, []).append(image)
            if len(matches) > 1:
                raise InvalidArgument(f"image id prefix {query!r} is ambiguous: it matches "
                                      + ", ".join(sorted(hex_of(key)[:12] for key in matches)),
                                      hint="give more characters of the id")
            if matches:
                images = next(iter(matches.values()))
                return sorted(images, key=lambda image: (not image.tagged, image.reference))[0], False
        raise NotFound(f"image {query!r} not found", hint=_LIST_HINT)

    def get(self, reference_or_id: str) -> Image:
        """The image named `busybox:latest`/`busybox`, or with that id (`sha256:...`, or a prefix)."""
        return self._resolve(reference_or_id)[0]

    def remove(self, reference: str, in_use_by: builtins.list[str]) -> None:
        """Forget an image and delete the layers no other image uses.

        `in_use_by` names the containers created from it; any at all refuses the removal.
        """
        with self._locked():
            image, by_name = self._resolve(reference)
            if in_use_by:
                raise Conflict(f"image {reference!r} is in use by container(s) {', '.join(in_use_by)}",
                               hint="remove those containers first with `corral rm`")
            if by_name:
                doomed = [image]
            else:
                doomed = [other for other in self._records() if other.id == image.id]
                names = [other.reference for other in doomed if other.tagged]
                if len(names) > 1:
                    raise Conflict(f"image {reference!r} is named {', '.join(sorted(names))}",
                                   hint="remove it by name, one reference at a time")
            for record in doomed:
                with contextlib.suppress(FileNotFoundError):
                    self._record_path(record).unlink()
            self._prune_empty_repositories(image)
            still_used = {digest for other in self._records() for digest in other.layers}
            for digest in image.layers:
                if digest not in still_used:
                    self._remove_layer(digest)
            kept = {d for other in self._records() for d in (other.manifest_digest, other.config_digest) if d}
            for digest in {image.manifest_digest, image.config_digest} - kept - {""}:
                self.blob_path(digest).unlink(missing_ok=True)

    def _prune_empty_repositories(self, image: Image) -> None:
        if not image.tagged:
            return
        directory = self._repositories / image.name
        while directory != self._repositories:
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    # -- layers

    def layer_dir(self, digest: str) -> Path:
        return self.layers_dir / hex_of(digest)

    def layer_paths(self, image: Image) -> builtins.list[Path]:
        """The extracted layer directories of `image`, lowest first (overlayfs wants them reversed)."""
        paths = [self.layer_dir(digest) for digest in image.layers]
        for digest, path in zip(image.layers, paths):
            if not path.is_dir():
                raise NotFound(f"layer {hex_of(digest)[:12]} of image {image.reference} is missing from "
                               f"{str(self.layers_dir)!r}",
                               hint=f"remove the image (`corral rmi {image.short_id}`) and import it again")
        return paths

    def _remove_layer(self, digest: str) -> None:
        path = self.layer_dir(digest)
        if not path.exists():
            return
        # Renamed first so the layer disappears at once even if the removal is interrupted.
        doomed = Path(tempfile.mkdtemp(prefix="remove-", dir=self._tmp))
        os.rename(path, doomed / "tree")
        with contextlib.suppress(FileNotFoundError, CorralError):
            for blob in read_json(path.with_suffix(".json"), "layer record").get("blobs", []):
                if str(blob.get("digest", "")).startswith("sha256:"):
                    self.blob_path(blob["digest"]).unlink(missing_ok=True)
        with contextlib.suppress(FileNotFoundError):
            path.with_suffix(".json").unlink()
        remove_tree(doomed)

    def _stage(self, source: Path | Readable, *, whiteouts: bool,
               label: str | None = None) -> tuple[Path, Extracted]:
        """Extract into a private staging directory; the caller commits it or removes it."""
        staging = Path(tempfile.mkdtemp(prefix="layer-", dir=self._tmp))
        tree = staging / "tree"
        tree.mkdir(mode=0o755)
        try:
            return staging, extract_layer(source, tree, whiteouts=whiteouts, label=label)
        except BaseException:
            remove_tree(staging)
            raise

    def _commit_layer(self, staging: Path, extracted: Extracted) -> None:
        """Move a staged layer into place unless the same content is already there (dedupe)."""
        final = self.layer_dir(extracted.digest)
        if final.is_dir():
            return
        write_json(final.with_suffix(".json"), {
            "digest": extracted.digest, "size": extracted.size, "created": time.time(),
            "notes": extracted.notes})
        # The rename of the tree is the commit point: a layer directory is always complete.
        os.rename(staging / "tree", final)

    def commit_image(self, staged: builtins.list[tuple[Path, Extracted]], name: str, tag: str,
                     config: ImageConfig, *, config_digest: str = "") -> Image:
        """Move staged layers into place and record `name:tag` as those layers (an import or a
        load; commit and build make their layers with images/commit.layer_from_tree and record
        them with add_image); `config_digest` names the image's config blob, if any (save_blob)."""
        layers = [extracted.digest for _, extracted in staged]
        size = sum(extracted.size for _, extracted in staged)
        image = Image(id=image_id(layers, config), name=name, tag=tag, layers=layers, config=config,
                      created=time.time(), size=size, config_digest=config_digest)
        with self._locked():
            try:
                for staging, extracted in staged:
                    self._commit_layer(staging, extracted)
            except OSError as exc:
                raise KernelError(f"storing the layers of {image.reference} in {str(self.layers_dir)!r}: "
                                  f"{exc.strerror}") from None
            return self._save(image)

    # -- imports

    def import_tarball(self, path: Path | str, reference: str, config: ImageConfig | None = None) -> Image:
        """A root filesystem tarball (.tar, .tar.gz, .tar.xz, as `docker export` writes) as one layer."""
        name, tag = parse_reference(reference)
        staging, extracted = self._stage(Path(path), whiteouts=False)
        try:
            return self.commit_image([(staging, extracted)], name, tag, config or ImageConfig())
        finally:
            remove_tree(staging)

    def import_oci_layout(self, path: Path | str, reference: str | None = None) -> Image:
        """An OCI image layout directory: index.json -> manifest -> config and layers."""
        found = oci.read_layout(path, reference)
        staged: list[tuple[Path, Extracted]] = []
        try:
            for index, layer in enumerate(found.layers):
                blob = oci.blob_path(found.layout, layer)
                staging, extracted = self._stage(blob, whiteouts=True, label=f"{found.layout}: layer {index}")
                staged.append((staging, extracted))
                oci.check_layer(found, index, extracted)
            if not staged:
                raise InvalidArgument(f"{found.layout}: the manifest lists no layers")
            return self.commit_image(staged, found.name, found.tag, found.config)
        finally:
            for staging, _ in staged:
                remove_tree(staging)

    def clear_staging(self) -> int:
        """Remove what a killed daemon left half-made in tmp/ (staged layers, removals, busybox
        builds); layers are renamed into place whole, so nothing there is ever needed again.
        Partial downloads (downloads/) stay: the next pull resumes them. Call it only before
        anything can be staging (the daemon does, at start)."""
        stale = list(self._tmp.iterdir())
        for path in stale:
            if path.is_dir() and not path.is_symlink():
                remove_tree(path)
            else:
                path.unlink(missing_ok=True)
        if stale:
            log.warning("removed %d half-made entries from %s (a daemon stopped mid-import)", len(stale), self._tmp)
        return len(stale)

    def add_image(self, image: Image) -> Image:
        """Record an image whose layers are all in place (a pull's last step)."""
        for digest in image.layers:
            if not self.has_layer(digest):
                raise NotFound(f"layer {hex_of(digest)[:12]} of {image.reference} is not in the store")
        with self._locked():
            return self._save(image)

    def tag(self, source: str, target: str) -> Image:
        """Give `target` (NAME[:TAG]) to the content of `source`, as `docker tag` does."""
        image = self.get(source)
        name, tag = parse_reference(target)
        with self._locked():
            return self._save(dataclasses.replace(image, name=name, tag=tag, created=time.time()))

    def build_busybox(self, busybox_path: Path | str = "/bin/busybox",
                      reference: str = "busybox:latest") -> Image:
        """The embedded default image: a small root filesystem around a static busybox.

        Built once per busybox binary (by content); later calls return the stored image.
        """
        name, tag = parse_reference(reference)
        binary = Path(busybox_path)
        content, mtime = busybox.read_static_binary(binary)
        config = busybox.image_config()
        cache = self.dir / "busybox" / f"{hashlib.sha256(content).hexdigest()}.json"
        if cache.is_file():
            layer = read_json(cache, "busybox build record").get("layer", "")
            if layer and self.layer_dir(layer).is_dir():
                existing = self._by_reference(name, tag)
                if existing is not None and existing.layers == [layer] and existing.config == config:
                    return existing
                size = read_json(self.layer_dir(layer).with_suffix(".json"), "layer record")["size"]
                image = Image(id=image_id([layer], config), name=name, tag=tag, layers=[layer],
                              config=config, created=time.time(), size=size)
                with self._locked():
                    return self._save(image)
        workspace = Path(tempfile.mkdtemp(prefix="busybox-", dir=self._tmp))
        try:
            tarball = workspace / "rootfs.tar"
            busybox.write_rootfs_tar(tarball, content, mtime, busybox.list_applets(binary))
            image = self.import_tarball(tarball, reference, config)
            write_json(cache, {"binary": str(binary), "layer": image.layers[0]})
            return image
        finally:
            remove_tree(workspace)


def _untag(image: Image) -> Image:
    return Image(id=image.id, name=UNTAGGED, tag=UNTAGGED, layers=image.layers, config=image.config,
                 created=image.created, size=image.size)
