"""The networks' state on disk, under `<root>/networks/<name>/`: `network.json` (the Network),
`addresses.json` (the allocator, see ipam.py) and `endpoints/<container id>.json` (each
Attachment, with the container's hostname and where its /etc/hosts file is kept so it can be
rewritten when neighbours come and go). Every write is atomic (agent.atomic_file)."""
from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

from agent.atomic_file import write_atomically
from agent.errors import CorralError, NotFound
from agent.network.ipam import AddressAllocator
from agent.network.model import Attachment, Network

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Endpoint:
    """One endpoint file: the attachment, and the container's hosts file to keep current."""

    attachment: Attachment
    hostname: str | None = None
    hosts_path: str | None = None
    extra_hosts: tuple[str, ...] = ()     # `--add-host NAME:IP`, kept through every rewrite


class NetworkStore:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    # ---- networks -----------------------------------------------------------------------

    def path(self, name: str) -> Path:
        return self.directory / name / "network.json"

    def exists(self, name: str) -> bool:
        return self.path(name).exists()

    def load(self, name: str) -> Network:
        path = self.path(name)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise NotFound(f"network {name} does not exist", hint="`corral network ls` lists networks") from None
        except (OSError, ValueError) as exc:
            raise CorralError(f"network file {path} is unreadable: {exc}") from None
        return Network.from_dict(data, where=str(path))

    def save(self, network: Network) -> None:
        write_atomically(self.path(network.name), json.dumps(network.to_dict(), indent=1) + "\n")

    def networks(self) -> list[Network]:
        """Every network; a torn file is logged and skipped, so it does not hide the others."""
        networks = []
        if self.directory.is_dir():
            for entry in sorted(self.directory.iterdir()):
                if (entry / "network.json").is_file():
                    try:
                        networks.append(self.load(entry.name))
                    except CorralError as exc:
                        log.error("%s; network %s is skipped until the file is fixed", exc, entry.name)
        return networks

    def forget(self, network: Network) -> None:
        shutil.rmtree(self.directory / network.name, ignore_errors=True)

    def allocator(self, network: Network) -> AddressAllocator:
        return AddressAllocator(self.directory / network.name / "addresses.json", network.subnet)

    # ---- endpoints ----------------------------------------------------------------------

    def endpoint_path(self, network: str, container_id: str) -> Path:
        return self.directory / network / "endpoints" / f"{container_id}.json"

    def endpoint_paths(self, network: str) -> list[Path]:
        folder = self.directory / network / "endpoints"
        return sorted(folder.glob("*.json")) if folder.is_dir() else []

    def save_endpoint(self, endpoint: Endpoint) -> None:
        attachment = endpoint.attachment
        record = {"attachment": attachment.to_dict(), "hostname": endpoint.hostname,
                  "hosts_path": endpoint.hosts_path, "extra_hosts": list(endpoint.extra_hosts)}
        # Not fsync'd, as the addresses (ipam.py): an endpoint lives only while its container runs.
        write_atomically(self.endpoint_path(attachment.network, attachment.container_id),
                         json.dumps(record, indent=1) + "\n", durable=False)

    @staticmethod
    def read_endpoint(path: Path) -> Endpoint:
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise CorralError(f"endpoint file {path} is unreadable: {exc}") from None
        return Endpoint(Attachment.from_dict(record["attachment"], where=str(path)), record.get("hostname"),
                        record.get("hosts_path"), tuple(record.get("extra_hosts") or ()))

    def endpoints(self, network: str) -> list[Endpoint]:
        return [self.read_endpoint(path) for path in self.endpoint_paths(network)]

    def find_endpoint(self, container_id: str, network: str | None = None) -> Endpoint | None:
        """The container's endpoint on `network`, or on the first network it is attached to."""
        if network is not None:
            path = self.endpoint_path(network, container_id)
            return self.read_endpoint(path) if path.is_file() else None
        found = self.find_endpoints(container_id)
        return found[0] if found else None

    def find_endpoints(self, container_id: str) -> list[Endpoint]:
        """The container's endpoints on every network it is attached to, by interface (eth0 first)."""
        found = []
        if self.directory.is_dir():
            for entry in self.directory.iterdir():
                path = entry / "endpoints" / f"{container_id}.json"
                if path.is_file():
                    found.append(self.read_endpoint(path))
        return sorted(found, key=lambda e: (len(e.attachment.interface), e.attachment.interface))

    def remove_endpoint(self, network: str, container_id: str) -> None:
        self.endpoint_path(network, container_id).unlink(missing_ok=True)
