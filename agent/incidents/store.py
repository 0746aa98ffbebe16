"""Where incident bundles live: `<root>/incidents/<id>/incident.json`, at most `keep` of them
(the oldest go first), each written atomically so a crash never leaves half a bundle.

An id says when, which container and what: `20261204-181502-123-3f2a9c1b7d4e-kill`. It is made
from the event itself (`incident_id`), so the alert about the event can name its bundle before
or without reading the store.
"""
from __future__ import annotations

import io
import json
import re
import shutil
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.atomic_file import write_atomically
from agent.errors import InvalidArgument, NotFound

_ID = re.compile(r"^\d{8}-\d{6}-\d{3}-[0-9a-zA-Z_.-]{1,64}-[a-z-]{1,32}$")
DEFAULT_KEEP = 200


def incident_id(container_id: str, kind: str, when: float) -> str:
    stamp = datetime.fromtimestamp(when, UTC)
    return f"{stamp:%Y%m%d-%H%M%S}-{stamp.microsecond // 1000:03d}-{container_id[:12]}-{kind}"


class IncidentStore:
    def __init__(self, root: Path, keep: int = DEFAULT_KEEP) -> None:
        self.dir = Path(root) / "incidents"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.keep = keep

    def _path(self, incident: str) -> Path:
        if not _ID.match(incident):
            raise InvalidArgument(f"incident id {incident!r} is not one Corral made",
                                  hint="list them with `corral incidents ls`")
        return self.dir / incident

    def write(self, bundle: dict[str, Any]) -> Path:
        path = self._path(bundle["id"])
        path.mkdir(exist_ok=True)
        write_atomically(path / "incident.json", json.dumps(bundle, indent=2, sort_keys=True) + "\n")
        self._trim()
        return path

    def _trim(self) -> None:
        bundles = sorted(p for p in self.dir.iterdir() if p.is_dir() and _ID.match(p.name))
        for old in bundles[:-self.keep] if len(bundles) > self.keep else []:
            shutil.rmtree(old, ignore_errors=True)

    def list(self) -> list[dict[str, Any]]:
        """Newest first: id, time, kind, container and trigger of each bundle."""
        found = []
        for path in sorted(self.dir.iterdir(), reverse=True):
            if not (path.is_dir() and _ID.match(path.name)):
                continue
            try:
                bundle = json.loads((path / "incident.json").read_text())
            except (OSError, ValueError):
                continue        # being written, or damaged: `show` says which
            found.append({key: bundle.get(key) for key in ("id", "time", "kind", "container", "trigger")})
        return found

    def get(self, incident: str) -> dict[str, Any]:
        path = self._path(incident) / "incident.json"
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise NotFound(f"incident {incident!r} not found", hint="list them with `corral incidents ls`") from None
        except ValueError as exc:
            raise InvalidArgument(f"incident {incident!r}: {path} is damaged: {exc}") from None

    def export(self, incident: str) -> bytes:
        """The bundle as a .tar.gz: its folder, for a ticket or a colleague."""
        folder = self._path(incident)
        if not folder.is_dir():
            raise NotFound(f"incident {incident!r} not found", hint="list them with `corral incidents ls`")
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            archive.add(folder, arcname=incident)
        return buffer.getvalue()
