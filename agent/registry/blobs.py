"""Blob downloads: streamed to disk while hashed, verified, resumed with `Range`.

A blob is written to `<partial dir>/<hex>.partial` as it arrives; when a transfer breaks, the
next attempt (in this pull or a later one) hashes what is on disk and asks for the rest with
`Range: bytes=N-`. A registry that ignores `Range` (answers 200) is read from the start again.
Nothing is handed on until the size and the sha256 match the descriptor: a mismatch removes the
file and fails naming both digests.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import httpx

from agent.errors import RegistryError
from agent.registry.manifest import Descriptor
from agent.registry.transport import Transport

CHUNK = 1 << 20
_ATTEMPTS = 5

Progress = Callable[[int], None]     # bytes of the blob on disk so far


def pull_scope(repository: str) -> str:
    return f"repository:{repository}:pull"


def _hash_existing(path: Path) -> tuple[hashlib._Hash, int]:
    hasher = hashlib.sha256()
    size = 0
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(CHUNK):
                hasher.update(chunk)
                size += len(chunk)
    except FileNotFoundError:
        pass
    return hasher, size


def partial_path(partial_dir: Path, blob: Descriptor) -> Path:
    return partial_dir / f"{blob.digest.split(':', 1)[1]}.partial"


def fetch(transport: Transport, repository: str, blob: Descriptor, partial_dir: Path,
          progress: Progress | None = None, restarted: Callable[[], None] | None = None) -> Path:
    """The verified blob on disk (the caller removes it when done). `progress` is called with
    the bytes on disk (flushed: a reader of the file sees them), `restarted` when the file is
    truncated to start over (a registry that ignored Range)."""
    partial_dir.mkdir(parents=True, exist_ok=True)
    path = partial_path(partial_dir, blob)
    hasher, written = _hash_existing(path)
    if written > blob.size:
        path.unlink()
        hasher, written = hashlib.sha256(), 0
    what = f"blob {blob.digest[:19]} of {repository}"
    for attempt in range(_ATTEMPTS):
        if written == blob.size:
            break
        headers = {"Range": f"bytes={written}-"} if written else {}
        response = transport.request("GET", f"/v2/{repository}/blobs/{blob.digest}", scopes=[pull_scope(repository)],
                                     headers=headers, ok=(200, 206), stream=True, what=what)
        try:
            if written and response.status_code == 200:     # Range ignored: start over
                hasher, written = hashlib.sha256(), 0
                if restarted:
                    restarted()
            mode = "ab" if written else "wb"
            with open(path, mode) as handle:
                for chunk in response.iter_bytes():      # as it arrives: a break keeps what came
                    handle.write(chunk)
                    hasher.update(chunk)
                    written += len(chunk)
                    if written > blob.size:
                        break
                    if progress:
                        handle.flush()
                        progress(written)
        except httpx.HTTPError:
            if attempt + 1 == _ATTEMPTS:
                raise RegistryError(f"registry {transport.host}: {what}: the transfer broke off at "
                                    f"{written} of {blob.size} bytes, {_ATTEMPTS} times") from None
            continue            # resume from what is on disk
        finally:
            response.close()
        if written >= blob.size:
            break
    actual = "sha256:" + hasher.hexdigest()
    if written != blob.size or actual != blob.digest:
        path.unlink(missing_ok=True)
        raise RegistryError(f"registry {transport.host}: {what}: digest mismatch: expected {blob.digest} "
                            f"({blob.size} bytes), got {actual} ({written} bytes)",
                            hint="the registry holds a corrupt blob, or something altered it on the way")
    return path


def fetch_small(transport: Transport, repository: str, blob: Descriptor, limit: int = 16 << 20) -> bytes:
    """A config blob, in memory, verified."""
    if blob.size > limit:
        raise RegistryError(f"registry {transport.host}: config blob {blob.digest} is {blob.size} bytes "
                            f"(more than {limit})")
    response = transport.request("GET", f"/v2/{repository}/blobs/{blob.digest}", scopes=[pull_scope(repository)],
                                 what=f"config {blob.digest[:19]} of {repository}")
    content = response.content
    actual = "sha256:" + hashlib.sha256(content).hexdigest()
    if actual != blob.digest:
        raise RegistryError(f"registry {transport.host}: config of {repository}: digest mismatch: expected "
                            f"{blob.digest}, got {actual}")
    return content
