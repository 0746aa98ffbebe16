"""Platforms, normalised the way containerd does, and the choice of one manifest from an index.

`aarch64` is `arm64` (variant v8 is the default and dropped), `x86_64` is `amd64`, `armhf` is
`arm/v7`, `armel` is `arm/v6`; a host that runs arm/v7 also runs v6 and v5 images, and takes the
best it is offered. A refused choice lists the platforms on offer.
"""
from __future__ import annotations

import os
import platform as host_platform

from agent.errors import InvalidArgument, NotFound
from agent.registry.manifest import Descriptor, Index, Platform

_ARCH_ALIASES = {
    "x86_64": "amd64", "x86-64": "amd64", "amd64": "amd64",
    "i386": "386", "i486": "386", "i586": "386", "i686": "386", "386": "386",
    "aarch64": "arm64", "arm64": "arm64", "armhf": "arm", "armel": "arm", "arm": "arm",
}
_ARM_VARIANTS = ("v8", "v7", "v6", "v5")


def normalize(value: Platform) -> Platform:
    os_name = value.os.lower() or "linux"
    if os_name == "macos":
        os_name = "darwin"
    raw_arch = value.architecture.lower()
    arch = _ARCH_ALIASES.get(raw_arch, raw_arch)
    variant = value.variant.lower()
    if variant and not variant.startswith("v"):
        variant = "v" + variant
    if arch == "arm64" and variant in ("v8", "v8.0"):
        variant = ""
    elif arch == "arm":
        if raw_arch == "armhf":
            variant = variant or "v7"
        elif raw_arch == "armel":
            variant = variant or "v6"
        variant = variant or "v7"
    return Platform(os_name, arch, variant)


def parse(text: str) -> Platform:
    """`os/arch[/variant]` as `--platform` takes it."""
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise InvalidArgument(f"--platform {text!r}: expected os/arch[/variant], like linux/arm64 or linux/arm/v7")
    return normalize(Platform(*parts))


def host() -> Platform:
    """This machine's platform (CORRAL_PLATFORM overrides it, for tests of other platforms)."""
    if os.environ.get("CORRAL_PLATFORM"):
        return parse(os.environ["CORRAL_PLATFORM"])
    return normalize(Platform("linux", host_platform.machine()))


def _compatible_variants(wanted: Platform) -> tuple[str, ...]:
    if wanted.architecture == "arm" and wanted.variant in _ARM_VARIANTS:
        return _ARM_VARIANTS[_ARM_VARIANTS.index(wanted.variant):]
    return (wanted.variant,)


def choose(index: Index, wanted: Platform, where: str) -> Descriptor:
    """The index entry for `wanted`: an exact match first, then an older compatible variant."""
    offered = [(entry, normalize(entry.platform)) for entry in index.manifests if entry.platform is not None]
    for variant in _compatible_variants(wanted):
        for entry, candidate in offered:
            if (candidate.os, candidate.architecture, candidate.variant) == (wanted.os, wanted.architecture, variant):
                return entry
    # An amd64 host asked for plain amd64 also runs amd64/v2.. images only if the CPU can: stay exact.
    names = sorted({str(candidate) for _, candidate in offered
                    if not (candidate.os == "unknown" or candidate.architecture == "unknown")})
    raise NotFound(f"{where}: no image for platform {wanted}; on offer: {', '.join(names) or 'none'}",
                   hint="choose one with --platform")
