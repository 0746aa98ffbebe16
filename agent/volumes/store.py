"""The volumes on disk: `<root>/volumes/<name>/volume.json` (the record) and `_data/` (what
containers see), as docker lays out /var/lib/docker/volumes.

Create makes the directory, then `_data`, then writes the record durably (agent.atomic_file):
a directory without a record is a create cut short, ignored by `list` and finished by the next
create of that name. Remove deletes the record first, so a removal cut short never leaves a
record naming missing data. Names are checked against the schema before any path is built.
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import time
from pathlib import Path

from agent import schema
from agent.atomic_file import write_atomically
from agent.errors import CorralError, InvalidArgument, KernelError, NotFound
from agent.images.extract import remove_tree
from agent.volumes.model import VOLUME_NAME, Volume

log = logging.getLogger(__name__)
RECORD = "volume.json"
DATA = "_data"


class VolumeStore:
    def __init__(self, root: Path) -> None:
        self.directory = Path(root) / "volumes"
        self._lock = threading.Lock()

    @staticmethod
    def check_name(name: str) -> str:
        if not isinstance(name, str) or not VOLUME_NAME.match(name):
            raise InvalidArgument(f"volume name {name!r}: expected 2 to 128 letters, digits, '_', '.' or '-', "
                                  "starting with a letter or digit", field="name")
        return name

    def data_dir(self, name: str) -> Path:
        return self.directory / self.check_name(name) / DATA

    def create(self, name: str | None = None, labels: dict[str, str] | None = None, *,
               anonymous: bool = False) -> tuple[Volume, bool]:
        """The volume `name` (made now unless it exists) and whether it was made; without a
        name, a new volume with a random 64-hex-digit name (docker's anonymous names)."""
        name = self.check_name(name) if name is not None else secrets.token_hex(32)
        with self._lock:
            try:
                return self.get(name), False
            except NotFound:
                pass
            base = self.directory / name
            try:
                # o+x, no listing: a container in a user namespace (not host root) binds _data
                # from inside it, so it must be able to pass through (docker's volumes/ is 0701).
                self.directory.mkdir(mode=0o711, parents=True, exist_ok=True)
                base.mkdir(mode=0o711, exist_ok=True)
                (base / DATA).mkdir(mode=0o755, exist_ok=True)
            except OSError as exc:
                raise KernelError(f"cannot create volume {name} in {str(base)!r}: {exc.strerror}") from None
            volume = Volume(name=name, mountpoint=str(base / DATA), created_at=time.time(),
                            labels=dict(labels or {}), anonymous=anonymous)
            write_atomically(base / RECORD, json.dumps(volume.to_dict(), indent=1) + "\n", 0o600)
            return volume, True

    def get(self, name: str) -> Volume:
        path = self.directory / self.check_name(name) / RECORD
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise NotFound(f"volume {name} does not exist", hint="`corral volume ls` lists volumes",
                           field="name") from None
        except (OSError, ValueError) as exc:
            raise CorralError(f"volume record {path} is unreadable: {exc}") from None
        return schema.convert(data, Volume, str(path))

    def list(self) -> list[Volume]:
        """Every volume; an unreadable record is logged and skipped, so it hides no other."""
        volumes = []
        try:
            entries = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return []
        for entry in entries:
            if not VOLUME_NAME.match(entry) or not (self.directory / entry / RECORD).is_file():
                continue
            try:
                volumes.append(self.get(entry))
            except CorralError as exc:
                log.warning("skipping volume %s: %s", entry, exc)
        return volumes

    def remove(self, name: str) -> None:
        base = self.directory / self.check_name(name)
        with self._lock:
            try:
                (base / RECORD).unlink()
            except FileNotFoundError:
                raise NotFound(f"volume {name} does not exist", hint="`corral volume ls` lists volumes",
                               field="name") from None
            remove_tree(base)

    @staticmethod
    def is_empty(volume: Volume) -> bool:
        try:
            with os.scandir(volume.mountpoint) as entries:
                return next(entries, None) is None
        except FileNotFoundError:
            return True
