"""Docker's `-v` and `--mount` syntaxes as Mount objects; a bad value names the flag and the key.

    -v /host/dir:/ctr[:ro]             a bind mount
    -v NAME:/ctr[:ro][,nocopy]         a volume, created on first use
    -v /ctr                            a new anonymous volume
    --mount type=bind|volume|tmpfs,source=...,target=...,readonly,volume-nocopy,
            tmpfs-size=64m,tmpfs-mode=1777
"""
from __future__ import annotations

from agent import schema
from agent.errors import InvalidArgument
from agent.runtime.model import Mount
from agent.units import parse_size

_TRUE = ("", "1", "true")
_FALSE = ("0", "false")
_KEYS = {"type": "type", "source": "source", "src": "source", "target": "target", "destination": "target",
         "dst": "target", "readonly": "readonly", "ro": "readonly", "volume-nocopy": "volume_nocopy",
         "tmpfs-size": "tmpfs_size", "tmpfs-mode": "tmpfs_mode"}
# Accepted and without effect here, as on docker for Linux.
_IGNORED = ("consistency",)


def parse_volume(text: str) -> Mount:
    where = f"-v {text!r}"
    parts = text.split(":")
    if len(parts) == 1:
        if not text.startswith("/"):
            raise InvalidArgument(f"{where}: expected HOST:CONTAINER[:ro], NAME:CONTAINER[:ro] or /CONTAINER",
                                  field="volume")
        return _mount({"type": "volume", "target": text}, where)
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise InvalidArgument(f"{where}: expected HOST:CONTAINER[:ro], NAME:CONTAINER[:ro] or /CONTAINER",
                              field="volume")
    source, target = parts[0], parts[1]
    if not target.startswith("/"):
        raise InvalidArgument(f"{where}: the container path {target!r} must be absolute", field="volume")
    kind = "bind" if source.startswith("/") else "volume"
    fields: dict = {"type": kind, "source": source, "target": target}
    for option in (parts[2].split(",") if len(parts) == 3 else []):
        if option in ("ro", "rw"):
            fields["readonly"] = option == "ro"
        elif option == "nocopy" and kind == "volume":
            fields["volume_nocopy"] = True
        else:
            raise InvalidArgument(f"{where}: option {option!r} is not supported",
                                  hint="ro, rw, and nocopy for volumes", field="volume")
    return _mount(fields, where)


def parse_mount(text: str) -> Mount:
    where = f"--mount {text!r}"
    fields: dict = {"type": "volume"}       # docker's default type
    for item in text.split(","):
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if key in _IGNORED:
            continue
        if key not in _KEYS:
            raise InvalidArgument(f"{where}: unknown key {key!r}",
                                  hint="keys: type, source (src), target (dst, destination), readonly (ro), "
                                       "volume-nocopy, tmpfs-size, tmpfs-mode", field="mount")
        name = _KEYS[key]
        if name in ("readonly", "volume_nocopy"):
            if value.lower() not in _TRUE + _FALSE:
                raise InvalidArgument(f"{where}: {key}={value!r}: expected true or false", field="mount")
            fields[name] = value.lower() in _TRUE
        elif not sep or not value:
            raise InvalidArgument(f"{where}: key {key!r} needs a value, like {key}=...", field="mount")
        elif name == "type":
            if value not in ("bind", "volume", "tmpfs"):
                raise InvalidArgument(f"{where}: type {value!r} is not supported", hint="bind, volume or tmpfs",
                                      field="mount")
            fields["type"] = value
        elif name == "tmpfs_size":
            fields[name] = parse_size(value, field=f"--mount {key}")
        elif name == "tmpfs_mode":
            try:
                fields[name] = int(value, 8)
            except ValueError:
                raise InvalidArgument(f"{where}: tmpfs-mode={value!r}: expected an octal mode like 1777",
                                      field="mount") from None
        else:
            fields[name] = value
    if "target" not in fields:
        raise InvalidArgument(f"{where}: target is required, like target=/data", field="mount")
    if not fields["target"].startswith("/"):
        raise InvalidArgument(f"{where}: target {fields['target']!r} must be an absolute path", field="mount")
    if fields["type"] == "bind" and "source" not in fields:
        raise InvalidArgument(f"{where}: a bind mount needs source=/host/path", field="mount")
    return _mount(fields, where)


def _mount(fields: dict, where: str) -> Mount:
    return schema.convert(fields, Mount, where)
