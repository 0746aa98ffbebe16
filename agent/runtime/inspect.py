"""`corral inspect`: a container described the way `docker inspect` does, plus Corral's own
sections (cgroup paths and v2 id, limits read back from the kernel, overlay layers)."""
from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

from agent.cgroups.driver import Limits
from agent.runtime.environment import DEFAULT_SHM_SIZE
from agent.runtime.model import LIVE, PAUSED, Container


def rfc3339(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat().replace("+00:00", "Z")


def describe(container: Container, limits: Limits | None, cgroup_driver: str,
             layers: list[str], state_dir: Path) -> dict:
    spec = container.spec
    return {
        "Id": container.id,
        "Name": container.name,
        "Created": rfc3339(container.created_at),
        "Path": container.command[0] if container.command else None,
        "Args": container.command[1:],
        "State": {
            "Status": container.state,
            "Running": container.state in LIVE,     # docker: a paused container is Running and Paused
            "Paused": container.state == PAUSED,
            "OOMKilled": container.oom_killed,
            "Pid": container.pid or 0,
            "ExitCode": container.exit_code if container.exit_code is not None else 0,
            "Error": container.error or "",
            "StartedAt": rfc3339(container.started_at),
            "FinishedAt": rfc3339(container.finished_at),
        },
        "RestartCount": container.restart_count,
        "Image": spec.image,
        "ImageId": container.image_id,
        "Config": {
            "Hostname": container.hostname,
            "Env": list(container.env),
            "Cmd": list(spec.command),
            "Entrypoint": spec.entrypoint,
            "WorkingDir": container.workdir,
            "Labels": dict(spec.labels),
            "User": container.user or spec.user or "",
            "Healthcheck": spec.healthcheck.to_dict() if spec.healthcheck else None,
            "StopSignal": spec.stop_signal or "SIGTERM",
            "StopTimeout": spec.stop_timeout,
            "Tty": spec.tty,
            "OpenStdin": spec.open_stdin,
            "StdinOnce": spec.stdin_once,
        },
        "HostConfig": {
            "Memory": spec.memory or 0,
            "NanoCpus": int((spec.cpus or 0) * 1e9),
            "PidsLimit": spec.pids_limit or 0,
            "NetworkMode": spec.network,
            "Binds": [f"{m.source}:{m.target}" + (":ro" if m.readonly else "")
                      for m in spec.mounts if m.type != "tmpfs"],
            "AutoRemove": spec.auto_remove,
            "RestartPolicy": {"Name": spec.restart_policy.name,
                              "MaximumRetryCount": spec.restart_policy.maximum_retry_count},
            **host_security(container, state_dir),
            **host_environment(container),
            **user_namespace(container),
        },
        "Labels": dict(spec.labels),
        "Cgroup": {
            "Driver": cgroup_driver,
            "Paths": container.cgroup,
            "Id": container.cgroup_id,
        },
        "Limits": dataclasses.asdict(limits) if limits else None,
        "Rootfs": {
            "Path": container.rootfs,
            "UpperDir": str(state_dir / "upper"),
            "LowerDirs": layers,
        },
        "Mounts": mounts(spec),
        "LogPath": str(state_dir / "container.log"),
        "NetworkSettings": network_settings(container),
    }


def host_security(container: Container, state_dir: Path) -> dict:
    """Docker's HostConfig security fields, SecurityOpt naming the seccomp profile in force
    (default, unconfined or custom with its digest) rather than echoing a profile's JSON."""
    from agent.security.container_filter import in_force
    from agent.security.options import of_spec

    spec = container.spec
    settings = of_spec(spec)
    record = in_force(state_dir) or {}
    options = [f"seccomp={record.get('profile', settings.seccomp_name)}", "no-new-privileges"]
    return {
        "Privileged": spec.privileged,
        "CapAdd": list(spec.cap_add) or None,
        "CapDrop": list(spec.cap_drop) or None,
        "Capabilities": sorted(settings.caps),
        "SecurityOpt": options,
        "SeccompDenied": record.get("denied", []),
        "ReadonlyRootfs": spec.read_only,
        "Tmpfs": dict(spec.tmpfs),
        "Warnings": [PRIVILEGED_WARNING] if spec.privileged else [],
    }


def host_environment(container: Container) -> dict:
    """Docker's HostConfig fields of users and environment (agent/runtime/environment.py)."""
    spec = container.spec
    return {
        "GroupAdd": list(spec.group_add) or None,
        "Init": spec.init,
        "Ulimits": [{"Name": u.name, "Soft": u.soft, "Hard": u.hard} for u in spec.ulimits] or None,
        "ShmSize": spec.shm_size or DEFAULT_SHM_SIZE,
        "Dns": list(spec.dns),
        "DnsSearch": list(spec.dns_search),
        "DnsOptions": list(spec.dns_options),
        "ExtraHosts": list(spec.extra_hosts) or None,
    }


def user_namespace(container: Container) -> dict:
    """UsernsMode as Docker names it ("host", or "auto" for a range of its own) and the
    mapping as podman shows it (IDMappings, CONTAINER:HOST:SIZE), plus how the image's files
    were given to the mapped ids (idmapped layers or chown)."""
    mapping = container.userns
    if not mapping:
        return {"UsernsMode": "host", "IDMappings": None}
    return {"UsernsMode": "auto",
            "IDMappings": {"UidMap": [f"0:{mapping['uid']}:{mapping['size']}"],
                           "GidMap": [f"0:{mapping['gid']}:{mapping['size']}"],
                           "Ownership": mapping.get("ownership", "")}}
def mounts(spec) -> list[dict]:
    """docker's Mounts: one entry per bind, volume and tmpfs mount (Source is a volume's name here,
    not its host directory: `corral volume inspect` shows that)."""
    return [{"Type": m.type, "Name": m.source if m.type == "volume" else "", "Source": m.source or "",
             "Destination": m.target, "RW": not m.readonly} for m in spec.mounts]


PRIVILEGED_WARNING = ("privileged: every capability, no seccomp profile, /proc, /sys and the cgroup files "
                      "writable: this container is not isolated from the host's kernel")


def network_settings(container: Container) -> dict:
    """docker's NetworkSettings: address, MAC and gateway; ports as {"80/tcp": [{HostIp, HostPort}]}."""
    attachment = container.network or {}
    ports: dict[str, list[dict]] = {}
    for port in attachment.get("ports", []):
        ports.setdefault(f"{port['container_port']}/{port['protocol']}", []).append(
            {"HostIp": port["host_ip"], "HostPort": str(port["host_port"])})
    from agent.runtime.connections import attachments_of, wanted
    attached = attachments_of(container)
    networks: dict[str, dict] = {} if attached else {endpoint.network: {   # not running: those asked for
        "IPAddress": "", "IPPrefixLen": 0, "Gateway": "", "MacAddress": "", "Interface": "", "HostVeth": "",
        "Aliases": list(endpoint.aliases)} for endpoint in wanted(container)}
    for found in attached:
        networks[found["network"]] = {
            "IPAddress": found["address"], "IPPrefixLen": found["prefix"],
            "Gateway": found["gateway"], "MacAddress": found["mac"],
            "Interface": found["interface"], "HostVeth": found["host_veth"], "Aliases": found.get("aliases", [])}
    return {
        "NetworkMode": container.spec.network,
        "IPAddress": attachment.get("address", ""),
        "IPPrefixLen": attachment.get("prefix", 0),
        "MacAddress": attachment.get("mac", ""),
        "Gateway": attachment.get("gateway", ""),
        "Ports": ports,
        "Networks": networks,
    }
