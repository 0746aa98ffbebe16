"""A container's users and environment beyond its spec's basics: supplementary groups
(`--group-add`), resource limits (`--ulimit`), the size of /dev/shm (`--shm-size`), its
resolver (`--dns`, `--dns-search`, `--dns-option`) and extra /etc/hosts entries (`--add-host`).

Their bounded types and checks are with ContainerSpec (agent/runtime/model.py, which the CLI
loads); this turns them into what the launcher is given and into the files bind-mounted at
/etc/resolv.conf and /etc/hosts.
docs/cli.md says where each differs from docker's.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from agent.runtime.model import HOST_GATEWAY

if TYPE_CHECKING:
    from agent.runtime.model import ContainerSpec

# Docker's /dev/shm: 64 MiB unless --shm-size says otherwise.
DEFAULT_SHM_SIZE = 64 * 1024 * 1024
_SHM_FLAGS = 2 | 4 | 8            # MS_NOSUID | MS_NODEV | MS_NOEXEC, as the launcher's default /dev/shm


def split_extra_host(entry: str) -> tuple[str, str]:
    """`NAME:IP` split at the first ':' (an IPv6 address keeps its colons), as docker does."""
    name, _, address = entry.partition(":")
    return name, address


def extra_host_lines(extra_hosts: Sequence[str], gateway: str | None) -> list[str]:
    """/etc/hosts lines of `--add-host`, host-gateway read as `gateway`."""
    lines = []
    for entry in extra_hosts:
        name, address = split_extra_host(entry)
        if address == HOST_GATEWAY:
            if not gateway:
                continue            # refused at create for --net none; nothing to point it at
            address = gateway
        lines.append(f"{address}\t{name}")
    return lines


def resolv_conf(base: str, servers: Sequence[str], search: Sequence[str], options: Sequence[str]) -> str:
    """`base` (what the container would get) with each kind docker's flags name replaced when
    given: nameservers by --dns, the search list by --dns-search, options by --dns-option."""
    replaced = {"nameserver": bool(servers), "search": bool(search), "domain": bool(search),
                "options": bool(options)}
    lines = [line for line in base.splitlines() if not replaced.get(line.split()[0] if line.split() else "", False)]
    if search:
        lines.append("search " + " ".join(search))
    lines += [f"nameserver {server}" for server in servers]
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def wants_resolver(spec: ContainerSpec) -> bool:
    return bool(spec.dns or spec.dns_search or spec.dns_options)


def shm_tmpfs(spec: ContainerSpec) -> str | None:
    """The launcher's `--tmpfs` for /dev/shm of `--shm-size`, mounted over the default one;
    None without one, or when a `--tmpfs /dev/shm` of the user's says it all."""
    if spec.shm_size is None or "/dev/shm" in spec.tmpfs:
        return None
    return f"/dev/shm:{_SHM_FLAGS}:mode=1777,size={spec.shm_size}"


def own_name_files(spec: ContainerSpec, directory: Path, host_etc: Path = Path("/etc")) -> list[str]:
    """For `--net none` and `--net host` (a network's containers get theirs from it): the
    resolv.conf and hosts files that `--dns*` and `--add-host` ask for, written in the state
    `directory`; the launcher's `--bind`s of those written (none when not asked for, so the
    image's own files stay)."""
    from agent.network.rendering import LOCALHOST_LINES
    from agent.network.rendering import resolv_conf as host_resolv_conf
    binds = []
    if wants_resolver(spec):
        base = _read(host_etc / "resolv.conf") if spec.network == "host" else host_resolv_conf(host_etc / "resolv.conf")
        (directory / "resolv.conf").write_text(resolv_conf(base, spec.dns, spec.dns_search, spec.dns_options))
        binds.append(f"{directory / 'resolv.conf'}:/etc/resolv.conf")
    if spec.extra_hosts:
        # host: the host's own file, and host-gateway is the host itself; none: localhost only.
        base_lines = _read(host_etc / "hosts").splitlines() if spec.network == "host" else list(LOCALHOST_LINES)
        gateway = "127.0.0.1" if spec.network == "host" else None
        lines = [*base_lines, "# --add-host", *extra_host_lines(spec.extra_hosts, gateway)]
        (directory / "hosts").write_text("\n".join(lines) + "\n")
        binds.append(f"{directory / 'hosts'}:/etc/hosts")
    return binds


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
