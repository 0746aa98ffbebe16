"""The address allocator of one network, kept in a JSON file so addresses survive restarts.

The gateway is the first address of the subnet (the bridge holds it); containers get the
lowest free address after it, so an address released is the next one given again (its MAC is
derived from it, so neighbours' ARP caches stay right). Every change holds an exclusive
`flock` on a lock file next to the state file and replaces the file atomically (write a
temporary file, rename), so a crash of the daemon leaves the old or the new state, never half
of one, and two processes cannot hand out the same address. It is not fsync'd (that was ~3 ms
of each start and exit on the bridge): only a power loss could lose a change, and it stops
every container, whose addresses the next start's reconcile frees.
"""
from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
from pathlib import Path
from typing import Collection, Iterator

from agent.atomic_file import write_atomically
from agent.errors import Conflict, CorralError, KernelError


def gateway_of(subnet: str) -> str:
    """The first usable address of the subnet."""
    return str(ipaddress.IPv4Network(subnet).network_address + 1)


class AddressAllocator:
    """Addresses of one subnet, keyed by container id, persisted in `path`."""

    def __init__(self, path: Path, subnet: str) -> None:
        self.path = Path(path)
        self.subnet = ipaddress.IPv4Network(subnet)
        self.gateway = ipaddress.IPv4Address(gateway_of(subnet))

    def allocate(self, container_id: str, wanted: str | None = None, *, avoid: Collection[str] = ()) -> str:
        """The container's address: the one it already has, else `wanted` (which must be a free
        container address of the subnet), else the lowest free one, not one of `avoid` if another
        is free (those exited containers will want back: pooled.py)."""
        if wanted is not None:
            self.reserve(container_id, wanted)
            return wanted
        with self._locked() as addresses:
            if container_id in addresses:
                return addresses[container_id]
            taken = set(addresses.values())
            for skip in (taken | set(avoid), taken):
                for host in self.subnet.hosts():
                    if host != self.gateway and str(host) not in skip:
                        addresses[container_id] = str(host)
                        self._write(addresses)
                        return str(host)
        raise Conflict(f"network subnet {self.subnet} has no free address left "
                       f"({len(taken)} containers hold one)",
                       hint="remove stopped containers, or create a network with a larger --subnet")

    def reserve(self, container_id: str, address: str) -> None:
        """Record that `container_id` holds `address` (reconcile: the runtime says so)."""
        ip = ipaddress.IPv4Address(address)
        if ip not in self.subnet or ip in (self.gateway, self.subnet.network_address, self.subnet.broadcast_address):
            raise Conflict(f"address {address} of container {container_id[:12]} is not a container "
                           f"address of {self.subnet}")
        with self._locked() as addresses:
            holder = next((cid for cid, held in addresses.items() if held == address and cid != container_id), None)
            if holder is not None:
                raise Conflict(f"address {address} is held by container {holder[:12]}, "
                               f"not {container_id[:12]}")
            if addresses.get(container_id) != address:
                addresses[container_id] = address
                self._write(addresses)

    def hand_over(self, holder: str, container_id: str) -> str | None:
        """Give `holder`'s address to `container_id` (which lets go of any other it held), in one
        locked change: a pool item's address to the container that takes it (pooled.py). None,
        and nothing changed, when `holder` holds none."""
        with self._locked() as addresses:
            address = addresses.pop(holder, None)
            if address is not None:
                addresses[container_id] = address
                self._write(addresses)
            return address

    def release(self, container_id: str) -> None:
        """Give the container's address back; releasing twice is not an error."""
        with self._locked() as addresses:
            if addresses.pop(container_id, None) is not None:
                self._write(addresses)

    def addresses(self) -> dict[str, str]:
        """container id -> address."""
        with self._locked() as addresses:
            return dict(addresses)

    # ---- the file -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, str]]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock = os.open(f"{self.path}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise KernelError(f"cannot open the address lock of {self.path}: {exc.strerror}") from exc
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield self._read()
        finally:
            os.close(lock)   # closing drops the flock

    def _read(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise CorralError(f"address file {self.path} is unreadable: {exc}",
                              hint="fix or remove it; `corral` rebuilds it from running containers at start") from None
        if data.get("subnet") != str(self.subnet):
            raise CorralError(f"address file {self.path} is for subnet {data.get('subnet')!r}, not {self.subnet}",
                              hint="remove it; the daemon rebuilds it from running containers at start")
        return dict(data.get("addresses") or {})

    def _write(self, addresses: dict[str, str]) -> None:
        text = json.dumps({"subnet": str(self.subnet), "addresses": dict(sorted(addresses.items()))}, indent=1)
        # Atomic, not fsync'd: the addresses are those of running containers, and a power loss
        # stops them all; the next start's reconcile frees what no running container holds.
        write_atomically(self.path, text + "\n", durable=False)

    def remove(self) -> None:
        """Delete the state and lock files (the network is being removed)."""
        for path in (self.path, Path(f"{self.path}.lock")):
            path.unlink(missing_ok=True)
