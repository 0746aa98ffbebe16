"""What a create body mounts, as Corral's mounts: HostConfig.Binds, HostConfig.Mounts and
Config.Volumes.

- Binds `HOST:CTR[:opts]` bind a host path; `NAME:CTR[:opts]` mount the named volume NAME
  (made on first use); opts are ro, rw, nocopy (volumes), and z, Z, rprivate, private, which
  have no effect here (no SELinux; mounts are private).
- Mounts: type bind (Source, Target, ReadOnly), volume (Source a name, or empty for a new
  anonymous volume; VolumeOptions.NoCopy) and tmpfs (TmpfsOptions SizeBytes and Mode).
  VolumeOptions.Labels, a DriverConfig other than `local` without options and Subpath are
  refused by name: Corral makes a volume plainly, on first use.
- Config.Volumes `{"/path": {}}`: a new anonymous volume at each path no bind or mount covers
  (what `docker run -v /path` sends). The image's own VOLUMEs get theirs in the runtime.
"""
from __future__ import annotations

from typing import Any

from agent.errors import InvalidArgument

_BIND_OPTIONS = ("ro", "rw", "z", "Z", "rprivate", "private")
_VOLUME_OPTIONS = (*_BIND_OPTIONS, "nocopy")


def mounts_of(binds: Any, mounts: Any, volumes: Any) -> tuple[list[dict], dict[str, str]]:
    """Corral's mount dicts (ContainerSpec.mounts) and the tmpfs mounts (target: options)."""
    found = [_bind(index, text) for index, text in enumerate(_listed(binds, "HostConfig.Binds"))]
    tmpfs: dict[str, str] = {}
    for index, mount in enumerate(_listed(mounts, "HostConfig.Mounts")):
        where = f"HostConfig.Mounts[{index}]"
        if not isinstance(mount, dict):
            raise InvalidArgument(f"{where}: expected an object with Type, Source and Target", field=where)
        kind = mount.get("Type")
        if kind == "bind":
            found.append({"source": mount.get("Source"), "target": mount.get("Target"),
                          "readonly": bool(mount.get("ReadOnly"))})
        elif kind == "volume":
            found.append(_volume_mount(where, mount))
        elif kind == "tmpfs":
            sizes: dict = mount.get("TmpfsOptions") or {}
            text = ",".join(([f"size={sizes['SizeBytes']}"] if sizes.get("SizeBytes") else [])
                            + ([f"mode={sizes['Mode']:o}"] if sizes.get("Mode") else []))
            tmpfs[str(mount.get("Target") or "")] = text
        else:
            raise InvalidArgument(f"{where}.Type: Corral cannot honour {kind!r} mounts (bind, volume or tmpfs)",
                                  field=f"{where}.Type")
    if volumes is not None and not isinstance(volumes, dict):
        raise InvalidArgument(f"Config.Volumes: expected an object like {{\"/data\": {{}}}}, got {volumes!r}",
                              field="Config.Volumes")
    covered = {str(mount.get("target") or "").rstrip("/") for mount in found} | \
        {str(target).rstrip("/") for target in tmpfs}
    for target in volumes or {}:
        if str(target).rstrip("/") not in covered:
            found.append({"type": "volume", "target": target})
    return found, tmpfs


def _listed(value: Any, where: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidArgument(f"{where}: expected a list, got {value!r}", field=where)
    return value


def _bind(index: int, text: Any) -> dict:
    where = f"HostConfig.Binds[{index}]"
    parts = str(text).split(":")
    is_volume = not parts[0].startswith("/")
    allowed = _VOLUME_OPTIONS if is_volume else _BIND_OPTIONS
    options = parts[2].split(",") if len(parts) > 2 else []
    unknown = [option for option in options if option not in allowed]
    if len(parts) not in (2, 3) or not parts[0] or unknown:
        raise InvalidArgument(f"{where}: {text!r}: expected HOST:CONTAINER[:ro|rw] or VOLUME:CONTAINER[:ro|rw]"
                              + (f"; Corral cannot honour {','.join(unknown)}" if unknown else ""), field=where)
    found: dict = {"source": parts[0], "target": parts[1], "readonly": "ro" in options}
    if is_volume:
        found.update(type="volume", volume_nocopy="nocopy" in options)
    return found


def _volume_mount(where: str, mount: dict) -> dict:
    options = mount.get("VolumeOptions") or {}
    for key, value in options.items():
        if key == "NoCopy" or not value:
            continue
        if key == "DriverConfig" and (value.get("Name") or "local") == "local" and not value.get("Options"):
            continue
        raise InvalidArgument(f"{where}.VolumeOptions.{key}: Corral cannot honour {value!r} (a volume is made "
                              "plainly on first use; create it first with `docker volume create`)",
                              field=f"{where}.VolumeOptions.{key}")
    return {"type": "volume", "source": mount.get("Source") or None, "target": mount.get("Target"),
            "readonly": bool(mount.get("ReadOnly")), "volume_nocopy": bool(options.get("NoCopy"))}
