"""The name-resolution files a container on a network gets: /etc/hosts (itself and the
other containers of each of its networks, with their aliases there), /etc/hostname and
/etc/resolv.conf; and the hosts files kept current from the endpoint records (store.py) as
containers come and go."""
from __future__ import annotations

import ipaddress
import logging
import os
from pathlib import Path
from typing import Sequence

from agent.errors import CorralError, KernelError
from agent.network.model import Attachment
from agent.network.store import Endpoint, NetworkStore

log = logging.getLogger(__name__)

LOCALHOST_LINES = ("127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback",
                   "fe00::0\tip6-localnet", "ff00::0\tip6-mcastprefix",
                   "ff02::1\tip6-allnodes", "ff02::2\tip6-allrouters")


def hosts_file(attachment: Attachment | Sequence[Attachment], peers: Sequence[Attachment] = (),
               hostname: str | None = None, extra_hosts: Sequence[str] = ()) -> str:
    """/etc/hosts of a container: localhost, itself (on each of its networks, with its aliases
    there), the other containers of each of its networks (with their aliases on that network),
    then its `--add-host` entries (host-gateway: the first network's gateway, the host's address
    on it). A peer on two of its networks has a line on each; the first network's comes first."""
    own = [attachment] if isinstance(attachment, Attachment) else list(attachment)
    lines = list(LOCALHOST_LINES)
    for index, mine in enumerate(own):
        first = [hostname, mine.container_name, mine.container_id[:12]] if index == 0 else [mine.container_name]
        names = [n for n in dict.fromkeys([*first, *mine.aliases]) if n]
        lines.append(f"{mine.address}\t{' '.join(names)}")
    ids = {mine.container_id for mine in own}
    for mine in own:
        others = sorted((p for p in peers if p.network == mine.network and p.container_id not in ids),
                        key=lambda p: p.container_name)
        if others:
            lines.append(f"# containers on network {mine.network}")
            lines += [f"{p.address}\t{' '.join(dict.fromkeys([p.container_name, p.container_id[:12], *p.aliases]))}"
                      for p in others]
    if extra_hosts and own:
        from agent.runtime.environment import extra_host_lines
        lines += ["# --add-host", *extra_host_lines(extra_hosts, own[0].gateway)]
    return "\n".join(lines) + "\n"


def hostname_file(hostname: str) -> str:
    return hostname + "\n"


def resolv_conf(host_file: Path = Path("/etc/resolv.conf"),
                fallback: Path = Path("/run/systemd/resolve/resolv.conf")) -> str:
    """The host's resolv.conf, unless its resolver listens on loopback (systemd-resolved's
    127.0.0.53, dnsmasq's 127.0.0.1), which a container cannot reach: then systemd-resolved's
    upstream list if there is one, else a file with no nameserver that says why."""
    for path in (host_file, fallback):
        try:
            text = path.read_text()
        except OSError:
            continue
        servers = [line.split()[1] for line in text.splitlines()
                   if line.split()[:1] == ["nameserver"] and len(line.split()) > 1]
        if servers and not any(_is_loopback(server) for server in servers):
            return text if text.endswith("\n") else text + "\n"
    return ("# corral: the host's resolver listens on loopback, which this container cannot reach;\n"
            "# no nameserver is set. Run the container with --net host, or bind-mount a resolv.conf.\n")


def _is_loopback(server: str) -> bool:
    try:
        return ipaddress.ip_address(server.split("%")[0]).is_loopback
    except ValueError:
        return False


def write_hosts(path: Path, text: str) -> None:
    """Rewrite a container's hosts file in place, not by rename: the file is bind-mounted into
    the container, and a bind mount follows the inode. Written over from offset 0 and then cut to
    its length, not truncated to 0 first: ext4 flushes a file truncated to 0 and written again when
    it is closed (auto_da_alloc), ~0.2 ms against ~0.01 ms here, on every start and every peer's."""
    data = text.encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            done = 0
            while done < len(data):
                done += os.pwrite(fd, data[done:], done)
            os.ftruncate(fd, len(data))
        finally:
            os.close(fd)
    except OSError as exc:
        raise KernelError(f"cannot write the hosts file {path}: {exc.strerror}") from exc


def refresh_hosts(store: NetworkStore, network_name: str, skip: str | None = None) -> None:
    """Rewrite the hosts file of every container of the network (best effort: a container
    whose file is gone is being removed). Each network's records are read once for all of them."""
    read: dict[str, list[Endpoint]] = {}
    for endpoint in _endpoints(store, network_name, read):
        if endpoint.hosts_path and endpoint.attachment.container_id != skip:
            write_container_hosts(store, endpoint.attachment.container_id, read=read)


def write_container_hosts(store: NetworkStore, container_id: str, *, strict: bool = False,
                          read: dict[str, list[Endpoint]] | None = None) -> None:
    """The container's hosts file: itself and its peers on each of its networks (`read`: the
    networks' records already read, by network)."""
    own = store.find_endpoints(container_id)
    keeper = next((e for e in own if e.hosts_path), None)
    if keeper is None:
        return
    read = {} if read is None else read
    peers = [e.attachment for name in dict.fromkeys(e.attachment.network for e in own)
             for e in _endpoints(store, name, read)]
    try:
        write_hosts(Path(keeper.hosts_path or ""), hosts_file([e.attachment for e in own], peers,
                                                              keeper.hostname, keeper.extra_hosts))
    except CorralError as exc:
        if strict:
            raise
        log.warning("cannot update the hosts file of container %s: %s", keeper.attachment.container_name, exc)


def _endpoints(store: NetworkStore, network: str, read: dict[str, list[Endpoint]]) -> list[Endpoint]:
    if network not in read:
        read[network] = store.endpoints(network)
    return read[network]
