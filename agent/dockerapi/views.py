"""Corral's containers and images in Docker's shapes: the list summaries, inspect, and the
server-formatted `Status` ("Up 5 seconds", "Exited (0) 3 minutes ago") clients print as is."""
from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime
from typing import Any

from agent.cli.format import human_duration
from agent.errors import CorralError
from agent.runtime.model import CREATED, EXITED, PAUSED, REMOVING, RUNNING, Container

ZERO_TIME = "0001-01-01T00:00:00Z"
DEFAULT_NETWORK_NAME = "bridge"       # what docker calls the default network (Corral's corral0)
# What inspect and info name the log driver: Corral's log is a file of Docker's stream frames,
# not JSON, but it is read back through the API as json-file's is, and clients decide by this
# name whether logs can be read (docker-py's run and Compose read them only for json-file).
LOG_DRIVER = "json-file"


def timestamp(seconds: float | None) -> str:
    if not seconds:
        return ZERO_TIME
    moment = datetime.fromtimestamp(seconds, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond:06d}000Z"


def status_text(container: Container, now: float | None = None) -> str:
    now = time.time() if now is None else now
    if container.state == RUNNING:
        return f"Up {human_duration(now - (container.started_at or now))}"
    if container.state == PAUSED:
        return f"Up {human_duration(now - (container.started_at or now))} (Paused)"
    if container.state == EXITED:
        return f"Exited ({container.exit_code if container.exit_code is not None else 0}) " \
               f"{human_duration(now - (container.finished_at or now))} ago"
    if container.state == REMOVING:
        return "Removal In Progress"
    return "Created" if container.state == CREATED else container.state.capitalize()


def network_name(corral_name: str, default: str) -> str:
    return DEFAULT_NETWORK_NAME if corral_name == default else corral_name


def network_id(name: str) -> str:
    """A stable 64-hex id per network name (Corral's networks are known by name)."""
    return hashlib.sha256(f"corral-network:{name}".encode()).hexdigest()


def endpoint_id(container_id: str, network: str) -> str:
    return hashlib.sha256(f"{container_id}:{network}".encode()).hexdigest()


def _default_network(parts) -> str:
    networks = getattr(parts, "networks", None)
    return networks.default_network if networks is not None else "corral0"


def endpoints(container: Container, parts) -> dict[str, dict]:
    """NetworkSettings.Networks: every network the container is on (asked for, when it does not
    run), with real ids, its address there and its aliases."""
    from agent.runtime.connections import attachments_of, wanted
    spec_network = container.spec.network
    if spec_network in ("none", "host"):
        return {spec_network: _endpoint(container, spec_network, {}, None)}
    default = _default_network(parts)
    attached = attachments_of(container)
    if attached:
        return {network_name(a["network"], default): _endpoint(container, network_name(a["network"], default), a,
                                                               a.get("aliases") or [])
                for a in attached}
    found = {}
    for endpoint in wanted(container):
        name = DEFAULT_NETWORK_NAME if endpoint.network in ("bridge", "default") else network_name(endpoint.network, default)
        found[name] = _endpoint(container, name, {}, list(endpoint.aliases), endpoint.ip)
    return found


def _endpoint(container: Container, name: str, attachment: dict, aliases: list[str] | None,
              ip: str | None = None) -> dict:
    names = None if aliases is None or name == DEFAULT_NETWORK_NAME else [*aliases, container.name, container.id[:12]]
    return {
        "IPAMConfig": {"IPv4Address": ip} if ip else None, "Links": None,
        "Aliases": None if names is None else list(aliases or []) or None,
        "MacAddress": attachment.get("mac", ""),
        "DriverOpts": None, "NetworkID": network_id(name),
        "EndpointID": endpoint_id(container.id, name) if attachment else "",
        "Gateway": attachment.get("gateway", ""), "IPAddress": attachment.get("address", ""),
        "IPPrefixLen": attachment.get("prefix", 0), "IPv6Gateway": "", "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0, "DNSNames": names,
    }


def port_list(container: Container) -> list[dict]:
    """The summary's Ports: published ones while running, as docker lists them."""
    ports = []
    for port in (container.network or {}).get("ports", []):
        ports.append({"IP": port["host_ip"], "PrivatePort": port["container_port"],
                      "PublicPort": port["host_port"], "Type": port["protocol"]})
    return ports


def port_map(container: Container) -> dict[str, Any]:
    ports: dict[str, Any] = {}
    for port in container.spec.ports:
        ports.setdefault(f"{port.container_port}/{port.protocol}", None)
    for port in (container.network or {}).get("ports", []):
        key = f"{port['container_port']}/{port['protocol']}"
        ports[key] = (ports.get(key) or []) + [{"HostIp": port["host_ip"], "HostPort": str(port["host_port"])}]
    return ports


def mounts(container: Container, parts=None) -> list[dict]:
    found = []
    for mount in container.spec.mounts:
        entry = {"Type": mount.type, "Source": mount.source or "", "Destination": mount.target,
                 "Mode": "ro" if mount.readonly else "", "RW": not mount.readonly, "Propagation": "rprivate"}
        if mount.type == "volume" and mount.source:
            # Source is the volume's directory on the host, as dockerd shows it.
            volumes = getattr(getattr(parts, "runtime", None), "volumes", None)
            entry.update(Name=mount.source, Driver="local", Propagation="", Mode="z" if not mount.readonly else "ro",
                         Source=str(volumes.data_dir(mount.source)) if volumes is not None else "")
        elif mount.type == "tmpfs":
            entry["Propagation"] = ""
        found.append(entry)
    for target in container.spec.tmpfs:
        found.append({"Type": "tmpfs", "Source": "", "Destination": target, "Mode": "", "RW": True, "Propagation": ""})
    return found


def _anonymous_volumes(container: Container, parts) -> set[str]:
    """The container's volumes made for it (`-v /path`, the image's VOLUMEs)."""
    found = set()
    for mount in container.spec.mounts:
        if mount.type == "volume" and mount.source:
            try:
                if parts.runtime.volumes.store.get(mount.source).anonymous:
                    found.add(mount.source)
            except CorralError:
                continue                # a volume removed meanwhile: nothing to show
    return found


def container_summary(container: Container, parts) -> dict:
    spec = container.spec
    network_mode = "default" if spec.network == "bridge" else spec.network
    return {
        "Id": container.id, "Names": [f"/{container.name}"], "Image": spec.image, "ImageID": container.image_id,
        "Command": " ".join(container.command), "Created": int(container.created_at),
        "Ports": port_list(container), "Labels": dict(spec.labels), "State": container.state,
        "Status": status_text(container) + _health_suffix(container, parts), "HostConfig": {"NetworkMode": network_mode},
        "NetworkSettings": {"Networks": endpoints(container, parts)}, "Mounts": mounts(container, parts),
        "SizeRw": 0, "SizeRootFs": 0,
    }


def _health_suffix(container: Container, parts) -> str:
    """docker's " (healthy)" after a running container's status when it has a check."""
    health = getattr(parts, "health", None)
    if health is None or container.state != RUNNING:
        return ""
    status = health.status(container.id)
    return f" ({'health: starting' if status == 'starting' else status})" if status else ""


def image_summary(image, tags: list[str] | None = None) -> dict:
    """One image id as docker lists it: Corral keeps a record per name, docker one per id with
    every name in RepoTags (`tags`, from `names_by_id`)."""
    tags = tags if tags is not None else ([image.reference] if image.tagged else [])
    digests = list(image.repo_digests)
    return {"Id": image.id, "ParentId": "", "RepoTags": tags, "RepoDigests": digests,
            "Created": int(image.created), "Size": image.size, "SharedSize": -1, "VirtualSize": image.size,
            "Labels": {}, "Containers": -1}


def container_inspect(container: Container, parts) -> dict:
    """`GET /containers/{id}/json`: Docker's fields, from Corral's record of the container."""
    spec = container.spec
    directory = parts.runtime.store.directory(container.id)
    networked = spec.network not in ("none", "host")
    attachment = container.network or {}
    state = {
        "Status": container.state, "Running": container.state in (RUNNING, PAUSED),
        "Paused": container.state == PAUSED, "Restarting": False, "OOMKilled": container.oom_killed,
        "Dead": False, "Pid": container.pid or 0,
        "ExitCode": container.exit_code if container.exit_code is not None else 0,
        "Error": container.error or "", "StartedAt": timestamp(container.started_at),
        "FinishedAt": timestamp(container.finished_at),
    }
    health = getattr(parts, "health", None)
    described = health.describe(container.id) if health is not None else None
    if described is not None:
        state["Health"] = described
    network_mode = "default" if spec.network == "bridge" else spec.network
    anonymous = _anonymous_volumes(container, parts)
    host_config = {
        "Binds": [f"{m.source}:{m.target}" + (":ro" if m.readonly else "") for m in spec.mounts
                  if m.type == "bind" or m.type == "volume" and m.source not in anonymous] or None,
        "ContainerIDFile": "", "LogConfig": {"Type": LOG_DRIVER, "Config": {}},
        "NetworkMode": network_mode, "PortBindings": _port_bindings(container),
        "RestartPolicy": {"Name": spec.restart_policy.name,
                          "MaximumRetryCount": spec.restart_policy.maximum_retry_count},
        "AutoRemove": spec.auto_remove,
        "VolumeDriver": "", "VolumesFrom": None, "CapAdd": list(spec.cap_add) or None,
        "CapDrop": list(spec.cap_drop) or None, "CgroupnsMode": "private", "Dns": list(spec.dns),
        "DnsOptions": list(spec.dns_options), "DnsSearch": list(spec.dns_search),
        "ExtraHosts": list(spec.extra_hosts) or None, "GroupAdd": list(spec.group_add) or None, "IpcMode": "private", "Cgroup": "",
        "Links": None, "OomScoreAdj": 0, "PidMode": "", "Privileged": spec.privileged,
        "PublishAllPorts": False, "ReadonlyRootfs": spec.read_only,
        "SecurityOpt": list(spec.security_opt) or None, "Tmpfs": dict(spec.tmpfs) or None, "UTSMode": "",
        "UsernsMode": spec.userns or "", "ShmSize": spec.shm_size or 67108864, "Runtime": "corral", "Isolation": "",
        "CpuShares": 0, "Memory": spec.memory or 0, "NanoCpus": int(round((spec.cpus or 0) * 1e9)),
        "CgroupParent": "", "BlkioWeight": 0, "CpuPeriod": 0, "CpuQuota": 0, "CpusetCpus": "",
        "CpusetMems": "", "Devices": [{"PathOnHost": d.host, "PathInContainer": d.target,
                                       "CgroupPermissions": d.access} for d in spec.devices],
        "MemoryReservation": 0, "MemorySwap": 0, "MemorySwappiness": None, "OomKillDisable": False,
        "PidsLimit": spec.pids_limit or None,
        "Ulimits": [{"Name": u.name, "Soft": u.soft, "Hard": u.hard} for u in spec.ulimits] or None,
        "Init": spec.init or None,
        "MaskedPaths": None, "ReadonlyPaths": None,
    }
    config: dict = {
        "Hostname": container.hostname, "Domainname": "", "User": spec.user or "",
        "AttachStdin": False, "AttachStdout": True, "AttachStderr": True,
        "ExposedPorts": {f"{p.container_port}/{p.protocol}": {} for p in spec.ports} or None,
        "Tty": spec.tty, "OpenStdin": spec.open_stdin, "StdinOnce": spec.stdin_once, "Env": list(container.env),
        "Cmd": list(spec.command) or None, "Image": spec.image,
        "Volumes": {m.target: {} for m in spec.mounts if m.source in anonymous} or None,
        "WorkingDir": container.workdir if container.workdir != "/" else "",
        "Entrypoint": list(spec.entrypoint) if spec.entrypoint is not None else None,
        "OnBuild": None, "Labels": dict(spec.labels), "StopSignal": spec.stop_signal or "SIGTERM",
        **({"StopTimeout": spec.stop_timeout} if spec.stop_timeout is not None else {}),
        "Healthcheck": _docker_healthcheck(spec.healthcheck),
    }
    layers = []
    try:
        layers = [str(p) for p in parts.images.layer_paths(parts.images.get(container.image_id))]
    except Exception:  # noqa: BLE001 - an image removed since (docker keeps it; Corral refuses): no layers to show
        pass
    return {
        "Id": container.id, "Created": timestamp(container.created_at),
        "Path": container.command[0] if container.command else "", "Args": container.command[1:],
        "State": state, "Image": container.image_id,
        "ResolvConfPath": str(directory / "resolv.conf") if networked else "",
        "HostnamePath": str(directory / "hostname") if networked else "",
        "HostsPath": str(directory / "hosts") if networked else "",
        "LogPath": str(directory / "container.log"), "Name": f"/{container.name}",
        "RestartCount": container.restart_count,
        "Driver": "overlay2", "Platform": "linux", "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "",
        "ExecIDs": None, "HostConfig": host_config,
        "GraphDriver": {"Name": "overlay2", "Data": {"LowerDir": ":".join(layers), "MergedDir": container.rootfs or "",
                                                     "UpperDir": str(directory / "upper"),
                                                     "WorkDir": str(directory / "work")}},
        "Mounts": mounts(container, parts), "Config": config,
        "NetworkSettings": {
            "Bridge": "", "SandboxID": "", "SandboxKey": f"/proc/{container.pid}/ns/net" if container.pid else "",
            "Ports": port_map(container), "HairpinMode": False, "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0, "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None,
            "EndpointID": endpoint_id(container.id, spec.network) if attachment else "",
            "Gateway": attachment.get("gateway", ""), "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "IPAddress": attachment.get("address", ""), "IPPrefixLen": attachment.get("prefix", 0),
            "IPv6Gateway": "", "MacAddress": attachment.get("mac", ""),
            "Networks": endpoints(container, parts),
        },
    }


def _docker_healthcheck(check) -> dict | None:
    if check is None:
        return None
    nanos = {"Interval": check.interval, "Timeout": check.timeout, "StartPeriod": check.start_period}
    return {"Test": list(check.test), **{k: int(v * 1e9) for k, v in nanos.items() if v is not None},
            **({"Retries": check.retries} if check.retries is not None else {})}


def _port_bindings(container: Container) -> dict[str, list[dict]]:
    bindings: dict[str, list[dict]] = {}
    for port in container.spec.ports:
        host_ip = "" if port.host_ip == "0.0.0.0" else port.host_ip
        bindings.setdefault(f"{port.container_port}/{port.protocol}", []).append(
            {"HostIp": host_ip, "HostPort": str(port.host_port)})
    return bindings


def names_by_id(images) -> dict[str, list[str]]:
    names: dict[str, list[str]] = {}
    for image in images:
        names.setdefault(image.id, [])
        if image.tagged:
            names[image.id].append(image.reference)
    return names
