"""`POST /containers/create`: Docker's Config, HostConfig and NetworkingConfig as a ContainerSpec.

Docker clients send every field, most at their zero value. The rule (docs/docker-api.md): a
field at its zero value is ignored; a field Corral honours is translated; a non-zero field
Corral cannot honour is refused with a 400 that names it (`HostConfig.OomScoreAdj`), so nothing
runs differently from what was asked. A few fields carry values that mean "the default" and
are accepted as such (`RestartPolicy.Name` "no", `NetworkMode` "default", `LogConfig.Type`
"json-file"); the Attach flags are the client's business, not the container's. Tty, OpenStdin
and StdinOnce go to Corral's terminals (agent/runtime/terminals.py), with ConsoleSize as the
terminal's size at start.
"""
from __future__ import annotations

from typing import Any

from agent.dockerapi.attach import console_size
from agent.dockerapi.mounts import mounts_of
from agent.errors import InvalidArgument
from agent.runtime.model import ContainerSpec

# Fields whose value is the client's business (sizes of its terminal, which streams it will
# attach, where it writes the id) or metadata with no behaviour of its own.
_CLIENT_SIDE = {"Config.AttachStdin", "Config.AttachStdout", "Config.AttachStderr", "Config.ArgsEscaped",
                "Config.ExposedPorts", "Config.Image", "HostConfig.ContainerIDFile"}
# Values that say "the default" for fields Corral has no other value for.
_DEFAULTS: dict[str, tuple[Any, ...]] = {
    "HostConfig.LogConfig.Type": ("json-file", "local"),
    "HostConfig.Isolation": ("default",),
    "HostConfig.CgroupnsMode": ("private", "host"),
    "HostConfig.IpcMode": ("private", "shareable"),
    "HostConfig.MemorySwappiness": (-1,),
    "HostConfig.PidsLimit": (-1,),
    "HostConfig.Runtime": ("corral", "runc"),
    "HostConfig.VolumeDriver": ("local",),
}
# Fields translated below.
_HONOURED = {
    "Config.Cmd", "Config.Entrypoint", "Config.Env", "Config.WorkingDir", "Config.Hostname", "Config.User",
    "Config.Labels", "Config.Healthcheck", "Config.StopSignal", "Config.StopTimeout", "HostConfig.RestartPolicy",
    "HostConfig.Binds", "HostConfig.NetworkMode", "HostConfig.PortBindings",
    "HostConfig.AutoRemove", "HostConfig.CapAdd", "HostConfig.CapDrop", "HostConfig.Privileged",
    "HostConfig.ReadonlyRootfs", "HostConfig.SecurityOpt", "HostConfig.Tmpfs", "HostConfig.Memory",
    "HostConfig.MemorySwap", "HostConfig.NanoCpus", "HostConfig.CpuQuota", "HostConfig.CpuPeriod",
    "HostConfig.PidsLimit", "HostConfig.Devices", "HostConfig.Mounts", "HostConfig.GroupAdd", "HostConfig.Init",
    "HostConfig.Ulimits", "HostConfig.ShmSize", "HostConfig.Dns", "HostConfig.DnsSearch", "HostConfig.DnsOptions",
    "HostConfig.ExtraHosts", "HostConfig.UsernsMode",
    "Config.Volumes",                                       # mounts.py
    "Config.Tty", "Config.OpenStdin", "Config.StdinOnce", "HostConfig.ConsoleSize",   # terminals
}
# Docker's spec field -> where a bad value came from, for error messages.
_ORIGIN = {"image": "Config.Image", "command": "Config.Cmd", "entrypoint": "Config.Entrypoint",
           "env": "Config.Env", "workdir": "Config.WorkingDir", "hostname": "Config.Hostname",
           "user": "Config.User", "labels": "Config.Labels", "mounts": "HostConfig.Binds",
           "network": "HostConfig.NetworkMode", "networks": "NetworkingConfig.EndpointsConfig", "ports": "HostConfig.PortBindings",
           "auto_remove": "HostConfig.AutoRemove", "cap_add": "HostConfig.CapAdd", "cap_drop": "HostConfig.CapDrop",
           "privileged": "HostConfig.Privileged", "read_only": "HostConfig.ReadonlyRootfs",
           "security_opt": "HostConfig.SecurityOpt", "tmpfs": "HostConfig.Tmpfs", "memory": "HostConfig.Memory",
           "cpus": "HostConfig.NanoCpus", "pids_limit": "HostConfig.PidsLimit", "devices": "HostConfig.Devices",
           "group_add": "HostConfig.GroupAdd", "init": "HostConfig.Init", "ulimits": "HostConfig.Ulimits",
           "shm_size": "HostConfig.ShmSize", "dns": "HostConfig.Dns", "dns_search": "HostConfig.DnsSearch",
           "dns_options": "HostConfig.DnsOptions", "extra_hosts": "HostConfig.ExtraHosts",
           "userns": "HostConfig.UsernsMode", "healthcheck": "Config.Healthcheck",
           "stop_signal": "Config.StopSignal", "stop_timeout": "Config.StopTimeout",
           "restart_policy": "HostConfig.RestartPolicy", "name": "name", "tty": "Config.Tty",
           "open_stdin": "Config.OpenStdin", "stdin_once": "Config.StdinOnce",
           "console_size": "HostConfig.ConsoleSize"}


def is_zero(value: Any) -> bool:
    return value is None or value is False or value == 0 or value == "" or value == [] or value == {}


def refuse_unhonoured(body: dict) -> None:
    """400 naming the first non-zero field Corral cannot honour."""
    config = {k: v for k, v in body.items() if k not in ("HostConfig", "NetworkingConfig")}
    for prefix, section in (("Config", config), ("HostConfig", body.get("HostConfig") or {})):
        if not isinstance(section, dict):
            raise InvalidArgument(f"{prefix}: expected an object")
        _check_section(prefix, section)


def _check_section(prefix: str, section: dict) -> None:
    for key, value in section.items():
        path = f"{prefix}.{key}"
        if path in _CLIENT_SIDE or path in _HONOURED or is_zero(value):
            continue
        if isinstance(value, dict) and path == "HostConfig.LogConfig":
            _check_section(path, value)
            continue
        if path in _DEFAULTS and value in _DEFAULTS[path]:
            continue
        raise InvalidArgument(f"{path}: Corral cannot honour {value!r} (see docs/docker-api.md for what the "
                              f"Docker API here supports)", field=path)


def spec_of(body: Any, name: str, default_network: str = "bridge") -> ContainerSpec:
    """The ContainerSpec a create body asks for; InvalidArgument naming Docker's field if not."""
    if not isinstance(body, dict):
        raise InvalidArgument("the create body must be a JSON object of Config fields with HostConfig")
    refuse_unhonoured(body)
    host = body.get("HostConfig") or {}
    image = body.get("Image")
    if not image:
        raise InvalidArgument("Config.Image: an image is required", field="Config.Image")
    fields: dict[str, Any] = {"image": image}
    _copy(fields, "command", body.get("Cmd"))
    if body.get("Entrypoint") is not None:
        entrypoint = body["Entrypoint"]
        fields["entrypoint"] = [entrypoint] if isinstance(entrypoint, str) else entrypoint
    _copy(fields, "env", body.get("Env"))
    _copy(fields, "workdir", body.get("WorkingDir"))
    _copy(fields, "hostname", body.get("Hostname"))
    _copy(fields, "user", body.get("User"))
    _copy(fields, "labels", body.get("Labels"))
    for key, docker_key in (("tty", "Tty"), ("open_stdin", "OpenStdin"), ("stdin_once", "StdinOnce")):
        _copy(fields, key, body.get(docker_key))
    size = console_size(host.get("ConsoleSize"), "HostConfig.ConsoleSize")
    if size and fields.get("tty"):
        fields["console_size"] = list(size)
    if not is_zero(body.get("Healthcheck")):
        from agent.health.model import HealthConfig
        try:
            check = HealthConfig.from_docker(body["Healthcheck"], "Config")
        except InvalidArgument as exc:
            raise InvalidArgument(f"Config.Healthcheck: {exc.message}", field="Config.Healthcheck") from None
        if check is not None:
            fields["healthcheck"] = check.to_dict()
    if name:
        fields["name"] = name.lstrip("/")
    fields["network"], networks = _network(host.get("NetworkMode"), body.get("NetworkingConfig"), fields.get("name", ""))
    if networks:
        fields["networks"] = networks
    _copy(fields, "auto_remove", host.get("AutoRemove"))
    for key, docker_key in (("cap_add", "CapAdd"), ("cap_drop", "CapDrop"), ("privileged", "Privileged"),
                            ("read_only", "ReadonlyRootfs"), ("security_opt", "SecurityOpt"), ("tmpfs", "Tmpfs")):
        _copy(fields, key, host.get(docker_key))
    _limits(fields, host)
    _copy(fields, "stop_signal", body.get("StopSignal"))
    if body.get("StopTimeout") is not None:
        fields["stop_timeout"] = body["StopTimeout"]
    policy = host.get("RestartPolicy") or {}
    if policy.get("Name") not in (None, "", "no"):
        fields["restart_policy"] = {"name": policy["Name"], "maximum_retry_count": policy.get("MaximumRetryCount") or 0}
    for key, docker_key in (("group_add", "GroupAdd"), ("init", "Init"), ("shm_size", "ShmSize"), ("dns", "Dns"),
                            ("dns_search", "DnsSearch"), ("dns_options", "DnsOptions"), ("extra_hosts", "ExtraHosts")):
        _copy(fields, key, host.get(docker_key))
    ulimits = host.get("Ulimits") or []
    if ulimits:
        fields["ulimits"] = [{"name": u.get("Name"), "soft": u.get("Soft"), "hard": u.get("Hard")}
                             for u in ulimits if isinstance(u, dict)]
    userns = host.get("UsernsMode") or ""
    if userns:
        if userns not in ("host", "auto"):
            raise InvalidArgument(f"HostConfig.UsernsMode: Corral cannot honour {userns!r} (host or auto)",
                                  field="HostConfig.UsernsMode")
        fields["userns"] = userns
    fields["ports"] = _ports(host.get("PortBindings") or {})
    mounts, tmpfs = mounts_of(host.get("Binds"), host.get("Mounts"), body.get("Volumes"))
    if mounts:
        fields["mounts"] = mounts
    if tmpfs:
        fields["tmpfs"] = {**fields.get("tmpfs", {}), **tmpfs}
    devices = host.get("Devices") or []
    if devices:
        fields["devices"] = [{"host": d.get("PathOnHost"), "container": d.get("PathInContainer") or None,
                              "access": d.get("CgroupPermissions") or "rwm"} for d in devices]
    try:
        return ContainerSpec.from_dict(fields)
    except InvalidArgument as exc:
        where = _ORIGIN.get((exc.field or "").split("[")[0].split(".")[0], "")
        if where and not exc.message.startswith(where):
            raise InvalidArgument(f"{where}: {exc.message}", hint=exc.hint, field=where) from None
        raise


def _copy(fields: dict, key: str, value: Any) -> None:
    if not is_zero(value):
        fields[key] = value


def _limits(fields: dict, host: dict) -> None:
    memory = host.get("Memory") or 0
    if memory:
        fields["memory"] = memory
    swap = host.get("MemorySwap") or 0
    if swap and swap != memory:
        # Corral gives a container no swap beyond its memory limit (and this host has none).
        raise InvalidArgument(f"HostConfig.MemorySwap: Corral cannot honour {swap} (no swap beyond "
                              f"Memory; set it equal to Memory or leave it 0)", field="HostConfig.MemorySwap")
    nano = host.get("NanoCpus") or 0
    quota, period = host.get("CpuQuota") or 0, host.get("CpuPeriod") or 0
    if nano and quota:
        raise InvalidArgument("HostConfig.NanoCpus: conflicts with CpuQuota; give one", field="HostConfig.NanoCpus")
    if nano:
        fields["cpus"] = nano / 1e9
    elif quota > 0:
        fields["cpus"] = quota / (period or 100000)
    elif period:
        raise InvalidArgument(f"HostConfig.CpuPeriod: Corral cannot honour {period} without CpuQuota",
                              field="HostConfig.CpuPeriod")
    pids = host.get("PidsLimit")
    if isinstance(pids, int) and pids > 0:
        fields["pids_limit"] = pids


def _network(mode: Any, networking: Any, name: str) -> tuple[str, list[dict]]:
    """NetworkMode, and the spec's `networks`: each further network of EndpointsConfig, and the
    aliases and IPv4 address asked for on any of them (NetworkMode's included)."""
    if is_zero(mode) or mode == "default":
        mode = "bridge"
    if not isinstance(mode, str):
        raise InvalidArgument(f"HostConfig.NetworkMode: expected a string, got {mode!r}")
    if mode.startswith("container:"):
        raise InvalidArgument(f"HostConfig.NetworkMode: Corral cannot honour {mode!r} (sharing another "
                              "container's network namespace is not supported)", field="HostConfig.NetworkMode")
    endpoints = (networking or {}).get("EndpointsConfig") or {}
    if not isinstance(endpoints, dict):
        raise InvalidArgument("NetworkingConfig.EndpointsConfig: expected an object of network -> endpoint",
                              field="NetworkingConfig.EndpointsConfig")
    networks = []
    for network, endpoint in endpoints.items():
        where = f"NetworkingConfig.EndpointsConfig.{network}"
        own = network == mode or (mode == "bridge" and network == "default")
        if mode in ("none", "host") and not own:
            raise InvalidArgument(f"{where}: a container with NetworkMode {mode} joins no other network",
                                  field="NetworkingConfig")
        entry = endpoint_settings(where, "bridge" if network == "default" else network, endpoint or {}, name)
        if not own or len(entry) > 1:        # NetworkMode's own entry only when it asks for something
            networks.append(entry)
    return mode, networks


def endpoint_settings(where: str, network: str, endpoint: Any, name: str) -> dict:
    """One EndpointsConfig entry as a NetworkEndpoint dict (network, aliases, ip)."""
    if not isinstance(endpoint, dict):
        raise InvalidArgument(f"{where}: expected an object", field=where)
    entry: dict[str, Any] = {"network": network}
    builtin = network in ("bridge", "none", "host")
    for key, value in endpoint.items():
        if key == "Aliases":
            aliases = [alias for alias in value or [] if alias != name]     # the name resolves anyway
            if aliases and builtin:
                raise InvalidArgument(f"{where}.Aliases: network-scoped aliases are supported only on "
                                      f"user-defined networks", field=f"{where}.Aliases")
            if aliases:
                entry["aliases"] = aliases
        elif key == "IPAMConfig":
            ipam = value or {}
            if ipam.get("IPv4Address"):
                if builtin:
                    raise InvalidArgument(f"{where}.IPAMConfig.IPv4Address: an address can be asked for only on "
                                          f"user-defined networks", field=f"{where}.IPAMConfig.IPv4Address")
                entry["ip"] = ipam["IPv4Address"]
            for other, setting in ipam.items():
                if other != "IPv4Address" and not is_zero(setting):
                    raise InvalidArgument(f"{where}.IPAMConfig.{other}: Corral cannot honour {setting!r}",
                                          field=f"{where}.IPAMConfig.{other}")
        elif not is_zero(value) and key not in ("NetworkID", "EndpointID", "DNSNames"):
            raise InvalidArgument(f"{where}.{key}: Corral cannot honour {value!r}", field=f"{where}.{key}")
    return entry


def _ports(bindings: Any) -> list[dict]:
    if not isinstance(bindings, dict):
        raise InvalidArgument("HostConfig.PortBindings: expected an object of {\"80/tcp\": [{HostIp, HostPort}]}")
    ports = []
    for key, targets in bindings.items():
        port, _, protocol = key.partition("/")
        for target in targets or []:
            host_port = (target or {}).get("HostPort") or ""
            if not host_port:
                raise InvalidArgument(f"HostConfig.PortBindings.{key}: Corral cannot pick a free host port; "
                                      "give HostPort", field=f"HostConfig.PortBindings.{key}")
            if not port.isdigit() or not host_port.isdigit():
                raise InvalidArgument(f"HostConfig.PortBindings.{key}: expected port numbers, got "
                                      f"{key!r} -> {host_port!r}", field=f"HostConfig.PortBindings.{key}")
            ports.append({"host_port": int(host_port), "container_port": int(port),
                          "protocol": protocol or "tcp", "host_ip": (target or {}).get("HostIp") or "0.0.0.0"})
    return ports

