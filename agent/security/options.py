"""A container's security settings, from the spec's Docker-style fields.

`settings(spec)` turns `cap_add`, `cap_drop`, `privileged`, `security_opt`, `read_only`,
`tmpfs` and `user` into one `Settings` the runtime hands to the launcher; every bad value is
an InvalidArgument naming the field, so `corral create` fails before anything is made.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Mapping

from agent.errors import InvalidArgument
from agent.security import capabilities
from agent.security.profile import digest, from_docker_json

DEFAULT_PROFILE = "default"
UNCONFINED = "unconfined"
# mount(2) flags (include/uapi/linux/mount.h) for Docker's --tmpfs options.
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
TMPFS_FLAGS = {"ro": (MS_RDONLY, True), "rw": (MS_RDONLY, False), "nosuid": (MS_NOSUID, True),
               "suid": (MS_NOSUID, False), "nodev": (MS_NODEV, True), "dev": (MS_NODEV, False),
               "noexec": (MS_NOEXEC, True), "exec": (MS_NOEXEC, False)}
TMPFS_DATA = re.compile(r"^(size=\d+[kmgKMG%]?|nr_inodes=\d+[kmgKMG]?|mode=[0-7]{3,4}|uid=\d+|gid=\d+)$")
USER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,31})?$")


@dataclass(frozen=True)
class Tmpfs:
    target: str
    flags: int
    data: str

    def launcher_arg(self) -> str:
        return f"{self.target}:{self.flags}:{self.data}"


@dataclass(frozen=True)
class Settings:
    caps: frozenset[str]
    privileged: bool
    seccomp: str                      # "default", "unconfined", or a Docker-format profile (JSON)
    read_only: bool
    tmpfs: tuple[Tmpfs, ...]
    user: str | None

    @property
    def seccomp_name(self) -> str:
        """How inspect names the profile: default, unconfined or custom (sha256:...)."""
        if self.seccomp in (DEFAULT_PROFILE, UNCONFINED):
            return self.seccomp
        return f"custom (sha256:{digest(self.seccomp)[:12]})"


def parse_security_opt(items: Iterable[str]) -> str:
    """Docker's `--security-opt` values: `seccomp=unconfined|<profile JSON>` and
    `no-new-privileges[=true]` (always in force here). Returns the seccomp choice."""
    seccomp = DEFAULT_PROFILE
    for index, item in enumerate(items):
        key, sep, value = _split(item)
        where = f"security_opt[{index}]"
        if key == "no-new-privileges":
            if sep and value.lower() not in ("true", "1"):
                raise InvalidArgument(f"{where}: no-new-privileges cannot be turned off",
                                      hint="Corral sets no_new_privs for every container process")
        elif key == "seccomp":
            if value in (UNCONFINED, DEFAULT_PROFILE, "builtin"):
                seccomp = UNCONFINED if value == UNCONFINED else DEFAULT_PROFILE
            elif value.lstrip().startswith("{"):
                from_docker_json(value)          # checked now: a bad profile fails at create
                seccomp = value
            else:
                raise InvalidArgument(f"{where}: seccomp={value[:80]!r}: expected unconfined or a profile's JSON",
                                      hint="the CLI reads `seccomp=FILE` and sends the file's content")
        else:
            raise InvalidArgument(f"{where}: {item[:80]!r} is not supported",
                                  hint="supported: seccomp=unconfined, seccomp=PROFILE.json, no-new-privileges")
    return seccomp


def _split(item: str) -> tuple[str, str, str]:
    """`key=value`, or Docker's older `key:value`."""
    equals, colon = item.find("="), item.find(":")
    if colon != -1 and (equals == -1 or colon < equals):
        return item.partition(":")
    return item.partition("=")


def parse_tmpfs(target: str, options: str) -> Tmpfs:
    """One `--tmpfs TARGET[:OPTIONS]`: Docker's default flags are noexec,nosuid,nodev."""
    if not target.startswith("/") or target == "/" or ".." in target.split("/"):
        raise InvalidArgument(f"tmpfs {target!r}: expected an absolute path below /")
    flags = MS_NOSUID | MS_NODEV | MS_NOEXEC
    data = []
    for option in filter(None, options.split(",")):
        if option in TMPFS_FLAGS:
            bit, on = TMPFS_FLAGS[option]
            flags = flags | bit if on else flags & ~bit
        elif TMPFS_DATA.match(option):
            data.append(option)
        else:
            raise InvalidArgument(f"tmpfs {target!r}: option {option!r} is not supported",
                                  hint="ro, rw, [no]exec, [no]suid, [no]dev, size=, nr_inodes=, mode=, uid=, gid=")
    return Tmpfs(target=target, flags=flags, data=",".join(data))


def settings(*, cap_add: Iterable[str] = (), cap_drop: Iterable[str] = (), privileged: bool = False,
             security_opt: Iterable[str] = (), read_only: bool = False,
             tmpfs: Mapping[str, str] | None = None, user: str | None = None) -> Settings:
    seccomp = parse_security_opt(security_opt)
    if user is not None and not USER.match(user):
        raise InvalidArgument(f"user {user!r}: expected NAME, UID, NAME:GROUP or UID:GID")
    return Settings(
        caps=capabilities.resolve(cap_add, cap_drop, privileged=privileged),
        privileged=privileged,
        seccomp=UNCONFINED if privileged else seccomp,
        read_only=read_only,
        tmpfs=tuple(parse_tmpfs(target, options) for target, options in sorted((tmpfs or {}).items())),
        user=user,
    )


def of_spec(spec) -> Settings:
    """The settings of a ContainerSpec (fields named as in Docker's HostConfig, snake_case)."""
    return settings(cap_add=spec.cap_add, cap_drop=spec.cap_drop, privileged=spec.privileged,
                    security_opt=spec.security_opt, read_only=spec.read_only,
                    tmpfs={**spec.tmpfs, **{m.target: m.tmpfs_options() for m in spec.mounts if m.type == "tmpfs"}},
                    user=spec.user)
