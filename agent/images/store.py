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

Extraction never trusts the archive: absolute names, `..`, writing through a symbolic link,
hard links to anything outside the tree and relative symlinks that climb above the root are
refused with an error naming the member. Absolute symlinks are kept as they are: they are
resolved inside the container's root, and extraction itself never follows a link. Device nodes
are skipped (a container gets its /dev from the launcher) and noted in the layer's metadata.
"""
from __future__ import annotations

import bz2
import contextlib
import fcntl
import gzip
import hashlib
import io
import json
import lzma
import os
import platform
import shutil
import stat
import struct
import subprocess
import tarfile
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterator

from agent.errors import Conflict, CorralError, InvalidArgument, KernelError, NotFound
from agent.images.model import (
    DEFAULT_PATH, UNTAGGED, Image, ImageConfig, image_id, parse_reference,
)

_LIST_HINT = "list images with `corral images`, or add one with `corral image import`"
_OPAQUE_XATTR = "trusted.overlay.opaque"
_WHITEOUT_PREFIX = ".wh."
_OPAQUE_MARKER = ".wh..wh..opq"
_MAX_NOTES = 20
_CHUNK = 1 << 20
# PAX xattrs applied to extracted files; trusted.* is left out on purpose: trusted.overlay.*
# from an archive would let an image forge overlayfs redirects and whiteouts.
_XATTR_NAMESPACES = ("user.", "security.")

_INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
                "application/vnd.docker.distribution.manifest.list.v2+json")
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le",
           "s390x": "s390x", "riscv64": "riscv64"}


# ---------------------------------------------------------------- extraction


class _HashingReader:
    """A read-only stream that hashes and counts every byte read through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.hash = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self.raw.read(size)
        self.hash.update(data)
        return data

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


def _decompressor(raw: IO[bytes], source: str) -> IO[bytes]:
    """The uncompressed stream of a tar, tar.gz, tar.xz or tar.bz2, told apart by magic bytes."""
    head = raw.read(6)
    rest = io.BufferedReader(_Prefixed(head, raw))
    if head.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=rest, mode="rb")
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(rest)
    if head.startswith(b"BZh"):
        return bz2.BZ2File(rest)
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        raise InvalidArgument(f"{source}: zstd-compressed layers are not supported",
                              hint="decompress it first (`zstd -d`) or re-export it as .tar or .tar.gz")
    return rest


class _Prefixed(io.RawIOBase):
    """Bytes already read from a stream (to sniff its format) followed by the rest of it."""

    def __init__(self, head: bytes, raw: IO[bytes]) -> None:
        self.head = head
        self.raw = raw

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.head:
            count = min(len(buffer), len(self.head))
            buffer[:count] = self.head[:count]
            self.head = self.head[count:]
            return count
        data = self.raw.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


@dataclass
class _Extracted:
    digest: str                     # sha256 of the uncompressed tar stream
    size: int                       # bytes of regular files
    notes: list[str] = field(default_factory=list)
    blob_digest: str = ""           # sha256 of the file as given (compressed)


class _LayerWriter:
    """Writes tar members into a fresh directory, refusing anything that would escape it."""

    def __init__(self, root: Path, source: str, *, whiteouts: bool) -> None:
        self.root = root
        self.source = source
        self.whiteouts = whiteouts
        self.as_root = os.geteuid() == 0
        self.size = 0
        self.notes: list[str] = []
        self.skipped = 0
        self.directories: list[tuple[Path, tarfile.TarInfo]] = []

    # -- checks

    def _refuse(self, member: str, why: str) -> InvalidArgument:
        return InvalidArgument(f"{self.source}: member {member!r} {why}; refusing to import",
                               hint="the archive may be malicious; build it from a root filesystem "
                                    "with relative paths (docker export does)")

    def _relative(self, name: str, member: str) -> str:
        if name.startswith("/"):
            raise self._refuse(member, "has an absolute path")
        parts = [part for part in name.split("/") if part not in ("", ".")]
        if ".." in parts:
            raise self._refuse(member, "climbs out of the root with '..'")
        return "/".join(parts)

    def _parent(self, rel: str, member: str, *, create: bool = True) -> Path:
        """The directory that holds `rel`, created as needed, never reached through a symlink."""
        current = self.root
        walked: list[str] = []
        for part in rel.split("/")[:-1]:
            current = current / part
            walked.append(part)
            try:
                info = os.lstat(current)
            except FileNotFoundError:
                if not create:
                    raise self._refuse(member, f"refers to {'/'.join(walked)!r}, which does not exist") from None
                os.mkdir(current, 0o755)
                continue
            if stat.S_ISLNK(info.st_mode):
                raise self._refuse(member, f"would be written through the symbolic link {'/'.join(walked)!r}")
            if not stat.S_ISDIR(info.st_mode):
                raise self._refuse(member, f"is below {'/'.join(walked)!r}, which is not a directory")
        return current

    def _clear(self, path: Path, *, keep_directory: bool = False) -> None:
        """Make room for a member: a later entry for the same path replaces the earlier one."""
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(info.st_mode):
            if not keep_directory:
                remove_tree(path)
        else:
            os.unlink(path)

    def _note(self, text: str) -> None:
        if len(self.notes) < _MAX_NOTES:
            self.notes.append(text)
        else:
            self.skipped += 1

    # -- members

    def add(self, member: tarfile.TarInfo, data: IO[bytes] | None) -> None:
        rel = self._relative(member.name, member.name)
        base = rel.rsplit("/", 1)[-1]
        if self.whiteouts and base.startswith(_WHITEOUT_PREFIX):
            self._whiteout(rel, base, member.name)
            return
        if rel == "":
            if member.isdir():
                self.directories.append((self.root, member))
            return
        path = self._parent(rel, member.name) / base
        if member.isdir():
            self._clear(path, keep_directory=True)
            if not path.is_dir():
                os.mkdir(path, 0o700)
            self.directories.append((path, member))
        elif member.isreg():
            self._clear(path)
            self._write_file(path, member, data)
        elif member.issym():
            self._symlink(path, rel, member)
        elif member.islnk():
            self._hardlink(path, member)
        elif member.isfifo():
            self._clear(path)
            os.mkfifo(path, 0o600)
            self._finish(path, member)
        elif member.ischr() or member.isblk():
            kind = "character" if member.ischr() else "block"
            self._note(f"skipped {kind} device {rel} ({member.devmajor}:{member.devminor})")
        else:
            self._note(f"skipped {rel}: unsupported tar entry type {member.type!r}")

    def _write_file(self, path: Path, member: tarfile.TarInfo, data: IO[bytes] | None) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as out:
            if data is not None:
                shutil.copyfileobj(data, out, _CHUNK)
        self.size += member.size
        self._finish(path, member)

    def _symlink(self, path: Path, rel: str, member: tarfile.TarInfo) -> None:
        target = member.linkname
        if not target:
            raise self._refuse(member.name, "is a symbolic link with an empty target")
        if not target.startswith("/"):
            # Resolved lexically from the link's directory: a relative target that climbs
            # above the root is never meaningful in a root filesystem, only an attack.
            depth = rel.count("/")
            for part in target.split("/"):
                if part == "..":
                    depth -= 1
                    if depth < 0:
                        raise self._refuse(member.name, f"is a symbolic link to {target!r}, outside the root")
                elif part not in ("", "."):
                    depth += 1
        self._clear(path)
        os.symlink(target, path)
        self._finish(path, member)

    def _hardlink(self, path: Path, member: tarfile.TarInfo) -> None:
        if member.linkname.startswith("/") or ".." in member.linkname.split("/"):
            raise self._refuse(member.name, f"is a hard link to {member.linkname!r}, outside the root")
        target_rel = self._relative(member.linkname, member.name)
        if not target_rel:
            raise self._refuse(member.name, "is a hard link to the root directory")
        target = self._parent(target_rel, member.name, create=False) / target_rel.rsplit("/", 1)[-1]
        try:
            info = os.lstat(target)
        except FileNotFoundError:
            raise self._refuse(member.name, f"is a hard link to {member.linkname!r}, "
                                            "which is not earlier in the archive") from None
        if stat.S_ISDIR(info.st_mode):
            raise self._refuse(member.name, f"is a hard link to the directory {member.linkname!r}")
        with contextlib.suppress(FileNotFoundError):
            existing = os.lstat(path)
            if (existing.st_dev, existing.st_ino) == (info.st_dev, info.st_ino):
                return
        self._clear(path)
        os.link(target, path, follow_symlinks=False)

    def _whiteout(self, rel: str, base: str, member: str) -> None:
        """OCI whiteouts become what overlayfs reads: a 0/0 char device, or an opaque xattr."""
        parent = self._parent(rel, member)
        if base == _OPAQUE_MARKER:
            try:
                os.setxattr(parent, _OPAQUE_XATTR, b"y", follow_symlinks=False)
            except OSError as exc:
                raise KernelError(f"{self.source}: marking directory {rel.rsplit('/', 1)[0] or '/'!r} opaque "
                                  f"({_OPAQUE_XATTR}): {exc.strerror}",
                                  hint="importing OCI layers with whiteouts needs root (CAP_SYS_ADMIN) "
                                       "on a filesystem with xattrs") from None
            return
        hidden = base[len(_WHITEOUT_PREFIX):]
        if not hidden or hidden in (".", ".."):
            raise self._refuse(member, "is a whiteout of nothing")
        path = parent / hidden
        self._clear(path)
        try:
            os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(0, 0))
        except OSError as exc:
            raise KernelError(f"{self.source}: creating the overlayfs whiteout for "
                              f"{str(Path(rel).parent / hidden)!r}: {exc.strerror}",
                              hint="importing OCI layers with whiteouts needs root (CAP_MKNOD)") from None

    # -- metadata

    def _finish(self, path: Path, member: tarfile.TarInfo) -> None:
        """Owner, then mode (chown clears set-uid bits), xattrs and mtime, never following links."""
        link = member.issym()
        if self.as_root:
            os.chown(path, member.uid, member.gid, follow_symlinks=False)
        if not link:
            os.chmod(path, member.mode & 0o7777)
            for key, value in member.pax_headers.items():
                if key.startswith("SCHILY.xattr."):
                    name = key[len("SCHILY.xattr."):]
                    if name.startswith(_XATTR_NAMESPACES):
                        try:
                            os.setxattr(path, name, value.encode("utf-8", "surrogateescape"),
                                        follow_symlinks=False)
                        except OSError as exc:
                            self._note(f"xattr {name} not kept on {member.name}: {exc.strerror}")
        os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)

    def close(self) -> None:
        # Deepest first: setting a directory's mtime before filling it would be undone, and a
        # read-only directory must not be made so before its children are written.
        for path, member in sorted(self.directories, key=lambda item: len(item[0].parts), reverse=True):
            self._finish(path, member)
        if self.skipped:
            self.notes.append(f"... and {self.skipped} more")


def extract_layer(source: Path, dest: Path, *, whiteouts: bool, label: str | None = None) -> _Extracted:
    """Extract the tar (optionally compressed) at `source` into the empty directory `dest`."""
    label = label or str(source)
    try:
        raw_file = open(source, "rb")
    except FileNotFoundError:
        raise NotFound(f"archive {label!r} not found",
                       hint="give the path of a tar file, like the one `docker export` writes") from None
    except OSError as exc:
        raise KernelError(f"reading archive {label!r}: {exc.strerror}") from None
    with raw_file:
        blob = _HashingReader(raw_file)
        writer = _LayerWriter(dest, label, whiteouts=whiteouts)
        try:
            stream = _decompressor(blob, label)  # type: ignore[arg-type]
            with stream:
                tar_bytes = _HashingReader(stream)
                with tarfile.open(fileobj=tar_bytes, mode="r|") as archive:  # type: ignore[call-overload]
                    for member in archive:
                        writer.add(member, archive.extractfile(member) if member.isreg() else None)
                writer.close()
                tar_bytes.drain()       # the end-of-archive blocks are part of the digest
            blob.drain()
        except (tarfile.TarError, EOFError, lzma.LZMAError, gzip.BadGzipFile, OSError, zlib.error) as exc:
            if isinstance(exc, OSError) and exc.errno is not None:
                raise KernelError(f"extracting {label!r} into {str(dest)!r}: {exc.strerror}"
                                  + (f": {exc.filename}" if exc.filename else "")) from None
            raise InvalidArgument(f"{label!r} is not a readable tar archive: {exc}",
                                  hint="accepted: .tar, .tar.gz, .tar.xz (docker export writes .tar)") from None
    return _Extracted(digest=tar_bytes.digest, size=writer.size, notes=writer.notes,
                      blob_digest=blob.digest)


def remove_tree(path: Path) -> None:
    """rm -rf that also copes with read-only directories; a missing path is fine."""
    def retry(function: Any, name: str, _exc: Any) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(name), 0o700)
            function(name)
    with contextlib.suppress(FileNotFoundError):
        if os.path.islink(path) or not os.path.isdir(path):
            os.unlink(path)
            return
        shutil.rmtree(path, onerror=retry)


# ---------------------------------------------------------------- the store


def _write_json(path: Path, data: Any) -> None:
    """Atomically: readers see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


def _read_json(path: Path, what: str,
               hint: str = "remove the file; the image it describes must then be imported again") -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CorralError(f"{what} {str(path)!r} is corrupt: {exc}", hint=hint) from None


def _hex(digest: str) -> str:
    return digest.split(":", 1)[1]


class ImageStore:
    """Images and their layers under `<root>/images/`."""

    def __init__(self, root: Path) -> None:
        self.dir = Path(root) / "images"
        self.layers_dir = self.dir / "layers" / "sha256"
        self._repositories = self.dir / "repositories"
        self._untagged = self.dir / "untagged"
        self._tmp = self.dir / "tmp"
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
        return self._untagged / f"{_hex(image.id)}.json"

    def _load(self, path: Path) -> Image:
        return Image.from_dict(_read_json(path, "image record"), where=str(path))

    def _by_reference(self, name: str, tag: str) -> Image | None:
        path = self._repositories / name / f"{tag}.json"
        return self._load(path) if path.is_file() else None

    def _records(self) -> list[Image]:
        paths = sorted(self._repositories.rglob("*.json")) + sorted(self._untagged.glob("*.json"))
        return [self._load(path) for path in paths]

    def _save(self, image: Image) -> Image:
        """Give `image.reference` to this content; the content it named before stays, untagged."""
        previous = self._by_reference(image.name, image.tag)
        if previous is not None and previous.id == image.id:
            return previous
        if previous is not None and not any(other.id == previous.id for other in self._records()
                                            if other.reference != previous.reference):
            _write_json(self._record_path(_untag(previous)), _untag(previous).to_dict())
        _write_json(self._record_path(image), image.to_dict())
        with contextlib.suppress(FileNotFoundError):
            (self._untagged / f"{_hex(image.id)}.json").unlink()
        return image

    def list(self) -> list[Image]:
        """Every image, newest first."""
        return sorted(self._records(), key=lambda image: (-image.created, image.reference))

    def _resolve(self, query: str) -> tuple[Image, bool]:
        """(image, found by name) for a reference, a full id or an id prefix."""
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
                if _hex(image.id).startswith(prefix):
                    matches.setdefault(image.id, []).append(image)
            if len(matches) > 1:
                raise InvalidArgument(f"image id prefix {query!r} is ambiguous: it matches "
                                      + ", ".join(sorted(_hex(key)[:12] for key in matches)),
                                      hint="give more characters of the id")
            if matches:
                images = next(iter(matches.values()))
                return sorted(images, key=lambda image: (not image.tagged, image.reference))[0], False
        raise NotFound(f"image {query!r} not found", hint=_LIST_HINT)

    def get(self, reference_or_id: str) -> Image:
        """The image named `busybox:latest`/`busybox`, or with that id (`sha256:...`, or a prefix)."""
        return self._resolve(reference_or_id)[0]

    def remove(self, reference: str, in_use_by: list[str]) -> None:
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
        return self.layers_dir / _hex(digest)

    def layer_paths(self, image: Image) -> list[Path]:
        """The extracted layer directories of `image`, lowest first (overlayfs wants them reversed)."""
        paths = [self.layer_dir(digest) for digest in image.layers]
        for digest, path in zip(image.layers, paths):
            if not path.is_dir():
                raise NotFound(f"layer {_hex(digest)[:12]} of image {image.reference} is missing from "
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
        with contextlib.suppress(FileNotFoundError):
            path.with_suffix(".json").unlink()
        remove_tree(doomed)

    def _stage(self, source: Path, *, whiteouts: bool, label: str | None = None) -> tuple[Path, _Extracted]:
        """Extract into a private staging directory; the caller commits it or removes it."""
        staging = Path(tempfile.mkdtemp(prefix="layer-", dir=self._tmp))
        tree = staging / "tree"
        tree.mkdir(mode=0o755)
        try:
            return staging, extract_layer(source, tree, whiteouts=whiteouts, label=label)
        except BaseException:
            remove_tree(staging)
            raise

    def _commit_layer(self, staging: Path, extracted: _Extracted) -> None:
        """Move a staged layer into place unless the same content is already there (dedupe)."""
        final = self.layer_dir(extracted.digest)
        if final.is_dir():
            return
        _write_json(final.with_suffix(".json"), {
            "digest": extracted.digest, "size": extracted.size, "created": time.time(),
            "notes": extracted.notes})
        # The rename of the tree is the commit point: a layer directory is always complete.
        os.rename(staging / "tree", final)

    def _commit_image(self, staged: list[tuple[Path, _Extracted]], name: str, tag: str,
                      config: ImageConfig) -> Image:
        layers = [extracted.digest for _, extracted in staged]
        image = Image(id=image_id(layers, config), name=name, tag=tag, layers=layers, config=config,
                      created=time.time(), size=sum(extracted.size for _, extracted in staged))
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
            return self._commit_image([(staging, extracted)], name, tag, config or ImageConfig())
        finally:
            remove_tree(staging)

    def import_oci_layout(self, path: Path | str, reference: str | None = None) -> Image:
        """An OCI image layout directory: index.json -> manifest -> config and layers."""
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
        staged: list[tuple[Path, _Extracted]] = []
        try:
            for index, layer in enumerate(manifest.get("layers") or []):
                blob = _blob_path(layout, layer)
                staging, extracted = self._stage(blob, whiteouts=True, label=f"{layout}: layer {index}")
                staged.append((staging, extracted))
                if extracted.blob_digest != layer["digest"]:
                    raise InvalidArgument(f"{layout}: layer {index} has digest {extracted.blob_digest}, "
                                          f"the manifest says {layer['digest']}",
                                          hint="the layout is corrupt; export it again")
                if index < len(diff_ids) and diff_ids[index] != extracted.digest:
                    raise InvalidArgument(f"{layout}: layer {index} unpacks to {extracted.digest}, "
                                          f"the config's rootfs.diff_ids says {diff_ids[index]}",
                                          hint="the layout is corrupt; export it again")
            if not staged:
                raise InvalidArgument(f"{layout}: the manifest lists no layers")
            return self._commit_image(staged, name, tag, config)
        finally:
            for staging, _ in staged:
                remove_tree(staging)

    def build_busybox(self, busybox_path: Path | str = "/bin/busybox",
                      reference: str = "busybox:latest") -> Image:
        """The embedded default image: a small root filesystem around a static busybox.

        Built once per busybox binary (by content); later calls return the stored image.
        """
        name, tag = parse_reference(reference)
        binary = Path(busybox_path)
        try:
            content = binary.read_bytes()
            mtime = int(binary.stat().st_mtime)
        except OSError as exc:
            raise NotFound(f"busybox binary {str(binary)!r}: {exc.strerror}",
                           hint="install it with `apt-get install busybox-static`, or give its path") from None
        _require_static(content, binary)
        config = ImageConfig(cmd=["sh"], env=[DEFAULT_PATH])
        cache = self.dir / "busybox" / f"{hashlib.sha256(content).hexdigest()}.json"
        if cache.is_file():
            layer = _read_json(cache, "busybox build record").get("layer", "")
            if layer and self.layer_dir(layer).is_dir():
                existing = self._by_reference(name, tag)
                if existing is not None and existing.layers == [layer] and existing.config == config:
                    return existing
                size = _read_json(self.layer_dir(layer).with_suffix(".json"), "layer record")["size"]
                image = Image(id=image_id([layer], config), name=name, tag=tag, layers=[layer],
                              config=config, created=time.time(), size=size)
                with self._locked():
                    return self._save(image)
        workspace = Path(tempfile.mkdtemp(prefix="busybox-", dir=self._tmp))
        try:
            tarball = workspace / "rootfs.tar"
            _write_busybox_tar(tarball, content, mtime, _applets(binary))
            image = self.import_tarball(tarball, reference, config)
            _write_json(cache, {"binary": str(binary), "layer": image.layers[0]})
            return image
        finally:
            remove_tree(workspace)


def _untag(image: Image) -> Image:
    return Image(id=image.id, name=UNTAGGED, tag=UNTAGGED, layers=image.layers, config=image.config,
                 created=image.created, size=image.size)


# ---------------------------------------------------------------- OCI layouts


def _blob_path(layout: Path, descriptor: dict) -> Path:
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
    path = _blob_path(layout, descriptor)
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
        index = _read_json(layout / "index.json", "OCI index", hint="the layout is corrupt; export it again")
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
        arch = _GOARCH.get(platform.machine(), platform.machine())
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
    settings = document.get("config") or {}
    where = f"{layout}: image config"
    for key in ("Entrypoint", "Cmd", "Env"):
        value = settings.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise InvalidArgument(f"{where}: {key} must be a list of strings, got {value!r}")
    workdir = settings.get("WorkingDir") or "/"
    if not isinstance(workdir, str):
        raise InvalidArgument(f"{where}: WorkingDir must be a string, got {workdir!r}")
    return ImageConfig(entrypoint=list(settings.get("Entrypoint") or []), cmd=list(settings.get("Cmd") or []),
                       env=list(settings.get("Env") or [DEFAULT_PATH]), workdir=workdir)


# ---------------------------------------------------------------- busybox


def _require_static(content: bytes, path: Path) -> None:
    """A dynamically linked busybox would not run inside a root with no libc."""
    if content[:4] != b"\x7fELF":
        raise InvalidArgument(f"busybox binary {str(path)!r} is not an ELF executable",
                              hint="install busybox-static, or give the path of a static busybox")
    wide, endian = content[4] == 2, "<" if content[5] == 1 else ">"
    if wide:
        phoff, = struct.unpack_from(endian + "Q", content, 0x20)
        entsize, count = struct.unpack_from(endian + "HH", content, 0x36)
    else:
        phoff, = struct.unpack_from(endian + "I", content, 0x1C)
        entsize, count = struct.unpack_from(endian + "HH", content, 0x2A)
    for index in range(count):
        p_type, = struct.unpack_from(endian + "I", content, phoff + index * entsize)
        if p_type == 3:  # PT_INTERP: needs a dynamic loader
            raise InvalidArgument(f"busybox binary {str(path)!r} is dynamically linked",
                                  hint="install busybox-static (`apt-get install busybox-static`)")


def _applets(binary: Path) -> list[str]:
    try:
        result = subprocess.run([str(binary), "--list"], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        raise InvalidArgument(f"busybox binary {str(binary)!r}: `--list` failed: {exc}") from None
    return sorted({line.strip() for line in result.stdout.splitlines()
                   if line.strip() and "/" not in line and line.strip() not in ("busybox", ".", "..")})


_PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
_GROUP = "root:x:0:\nnobody:x:65534:\n"
_HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
_DIRECTORIES = {"bin": 0o755, "dev": 0o755, "etc": 0o755, "home": 0o755, "proc": 0o555, "root": 0o700,
                "sys": 0o555, "tmp": 0o1777, "var": 0o755}


def _write_busybox_tar(path: Path, busybox: bytes, mtime: int, applets: list[str]) -> None:
    """A deterministic tar of the busybox root (same binary, same bytes, same layer digest)."""
    def entry(name: str, kind: bytes, mode: int, **extra: Any) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = kind, mode, mtime
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        for key, value in extra.items():
            setattr(info, key, value)
        return info

    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as archive:
        for name, mode in sorted(_DIRECTORIES.items()):
            archive.addfile(entry(name, tarfile.DIRTYPE, mode))
        archive.addfile(entry("bin/busybox", tarfile.REGTYPE, 0o755, size=len(busybox)), io.BytesIO(busybox))
        for applet in applets:
            archive.addfile(entry(f"bin/{applet}", tarfile.SYMTYPE, 0o777, linkname="busybox"))
        for name, text in (("etc/passwd", _PASSWD), ("etc/group", _GROUP), ("etc/hostname", "corral\n"),
                           ("etc/hosts", _HOSTS), ("etc/resolv.conf", "")):
            data = text.encode()
            archive.addfile(entry(name, tarfile.REGTYPE, 0o644, size=len(data)), io.BytesIO(data))
