"""What a container will be, worked out before anything is made: `plan_container` checks a spec
against its image and the networks and names it (bad input fails here, leaving nothing), and
`launch_request` turns a created container into what the launcher is given. Pure: no kernel
calls but the checks that a path exists; the runtime (containers.py) does the making.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from agent.cgroups.devices import DeviceRule, container_rules, rule_for
from agent.cgroups.driver import Limits
from agent.errors import CorralError, InvalidArgument
from agent.images.model import Image
from agent.runtime import environment
from agent.runtime.attach import SOCKET_NAME as ATTACH_SOCKET
from agent.runtime.launch import LaunchRequest
from agent.runtime.model import Container, ContainerSpec
from agent.runtime.names import new_id, new_name
from agent.security import capabilities
from agent.security.options import Settings
from agent.userns.ranges import IdRange

if TYPE_CHECKING:
    from agent.network.manager import NetworkManager


def plan_container(spec: ContainerSpec, image: Image, networks: NetworkManager | None,
                   names: set[str]) -> tuple[Container, tuple[DeviceRule, ...]]:
    """The container `spec` describes (not yet stored) and its device rules; InvalidArgument
    naming the value when the spec cannot run."""
    if spec.network not in ("none", "host"):
        if networks is None:
            raise InvalidArgument(f"network {spec.network!r}: networking is not enabled in this daemon",
                                  hint="use --net none or --net host")
        if spec.network == "bridge":
            networks.ensure_default()
        else:
            networks.get(spec.network)       # NotFound now, not at start
    command = (spec.entrypoint if spec.entrypoint is not None else list(image.config.entrypoint)) \
        + (list(spec.command) or ([] if spec.entrypoint else list(image.config.cmd)))
    if not command:
        raise InvalidArgument(f"no command given and image {spec.image!r} has none",
                              hint="add a command after the image name")
    check_mounts(spec)
    rules = device_rules(spec)          # checked now: a bad path fails before anything is made
    container_id = new_id()
    name = spec.name or new_name(names)
    hostname = spec.hostname or container_id[:12]
    container = Container(id=container_id, name=name, spec=spec, image_id=image.id,
                          created_at=time.time(), command=command, hostname=hostname,
                          env=merge_env(image.config.env, spec.env, hostname),
                          workdir=spec.workdir or image.config.workdir or "/",
                          user=spec.user or image.config.user or "")
    return container, rules


def device_rules(spec: ContainerSpec) -> tuple[DeviceRule, ...]:
    """Docker's default device list plus each --device node; every device when privileged (as
    Docker: /dev still holds the defaults). Also for a cgroup made again after a reboot."""
    if spec.privileged:
        return (DeviceRule("a", None, None, "rwm"),)
    return container_rules(rule_for(device.host, device.access) for device in spec.devices)


def check_mounts(spec: ContainerSpec) -> None:
    """Bind sources exist; no two mounts (tmpfs included) share a target; nothing covers /."""
    seen: set[str] = set()
    targets = [(f"mounts[{i}]", m.target) for i, m in enumerate(spec.mounts)] + [("tmpfs", t) for t in spec.tmpfs]
    for where, target in targets:
        clean = os.path.normpath(target)
        if clean == "/":
            raise InvalidArgument(f"{where}.target: cannot mount over the container's root /", field=f"{where}.target")
        if clean in seen:
            raise InvalidArgument(f"{where}.target: duplicate mount point {clean}", field=f"{where}.target")
        seen.add(clean)
    for index, mount in enumerate(spec.mounts):
        if mount.type == "bind" and not os.path.exists(mount.source or ""):
            raise InvalidArgument(f"volume source {mount.source!r} does not exist on the host",
                                  hint="create it first or fix the path given to -v", field=f"mounts[{index}].source")


def mount_binds(spec: ContainerSpec, volume_dir: Callable[[str], Path]) -> list[str]:
    """The launcher's --bind SRC:DST[:ro] of each bind and volume mount (tmpfs mounts are --tmpfs)."""
    binds = []
    for mount in spec.mounts:
        if mount.type == "tmpfs" or not mount.source:
            continue
        source = mount.source if mount.type == "bind" else str(volume_dir(mount.source))
        binds.append(f"{source}:{mount.target}" + (":ro" if mount.readonly else ""))
    return binds


def launch_request(container: Container, directory: Path, networks: NetworkManager | None, security: Settings,
                   seccomp: Path | None, volume_dir: Callable[[str], Path]) -> LaunchRequest:
    """What the launcher is given to start `container`, whose state lives in `directory`;
    networked containers get their hostname, hosts and resolv.conf files there, bind-mounted."""
    networked = container.spec.network not in ("none", "host")
    if networked and networks is None:
        raise InvalidArgument(f"network {container.spec.network!r}: networking is not enabled in this daemon",
                              hint="use --net none or --net host")
    binds = mount_binds(container.spec, volume_dir)
    binds += [device.bind() for device in container.spec.devices]
    spec = container.spec
    if networked and networks is not None:
        # Bind-mounted files, so the hosts file can be rewritten as others join the network.
        (directory / "hostname").write_text(networks.hostname_file(container.hostname))
        (directory / "resolv.conf").write_text(environment.resolv_conf(
            networks.resolv_conf(), spec.dns, spec.dns_search, spec.dns_options))
        (directory / "hosts").write_text("")              # attach writes it in place()
        binds += [f"{directory / name}:/etc/{name}" for name in ("hostname", "hosts", "resolv.conf")]
    else:
        binds += environment.own_name_files(spec, directory)
    shm = environment.shm_tmpfs(spec)
    if container.rootfs is None:
        raise CorralError(f"container {container.name} has no root filesystem",
                          hint=f"`corral rm {container.name}` and run it again")
    request = LaunchRequest(
        rootfs=Path(container.rootfs),
        command=list(container.command),
        hostname=container.hostname,
        network="new" if networked else container.spec.network,
        env=list(container.env),
        workdir=container.workdir,
        binds=binds,
        log=directory / "container.log",
        exit_file=directory / "exit",
        seccomp=seccomp,
        caps=capabilities.mask(security.caps),
        user=container.user or security.user,
        read_only=security.read_only,
        privileged=security.privileged,
        tmpfs=[item.launcher_arg() for item in security.tmpfs] + ([shm] if shm else []),
        group_add=list(spec.group_add),
        ulimits=[limit.launcher_arg() for limit in spec.ulimits],
        init=spec.init,
        userns=idmap.launcher_option() if (idmap := IdRange.of(container.userns)) else None,
        tty=container.spec.tty,
        open_stdin=container.spec.open_stdin,
        attach_socket=directory / ATTACH_SOCKET,
        tty_size=tuple(container.spec.console_size) if container.spec.console_size else None,  # type: ignore[arg-type]
    )
    return request


def requested_limits(spec: ContainerSpec) -> Limits:
    """The limits the spec asks for, before policies tighten them."""
    return Limits.from_cpus(spec.memory, spec.cpus, spec.pids_limit)


def merge_env(base: list[str], extra: list[str], hostname: str) -> list[str]:
    """Image env, then the user's, later keys winning; HOSTNAME and a PATH always present."""
    merged: dict[str, str] = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                              "HOSTNAME": hostname}
    for item in [*base, *extra]:
        key, _, value = item.partition("=")
        merged[key] = value
    return [f"{k}={v}" for k, v in merged.items()]
