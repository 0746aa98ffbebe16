"""RUN: the command in a real Corral container (default seccomp profile, capabilities, network,
policies, probes and metrics like any other; labelled `corral.build`), whose upper directory
becomes the step's layer.

Before the upper directory is stored, what the launcher made only to mount over is taken out
(the empty `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname` files and the `/proc`, `/sys`,
`/dev` directories when the image lacked them): docker keeps those in an init layer it never
commits. With SOURCE_DATE_EPOCH set, every time in the layer later than it is clamped to it,
so a deterministic command gives the same layer digest twice.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from agent.api import frames
from agent.build.files import lookup
from agent.errors import CorralError
from agent.runtime.model import ContainerSpec
from agent.runtime.service import RuntimeService

_MOUNT_POINTS = ("etc/hosts", "etc/resolv.conf", "etc/hostname", "proc", "sys", "dev")


class RunFailed(CorralError):
    """A RUN command exited non-zero (the build stops there, as docker's does)."""


def run_command(runtime: RuntimeService, spec: ContainerSpec, layers: list[Path], output: Callable[[str], None],
                where: str) -> tuple[str, Path]:
    """Run `spec` to its end, streaming its output; the container's id and its upper directory,
    cleaned. The caller removes the container (`runtime.remove(id, force=True)`) once the layer
    is stored."""
    container = runtime.create(spec)
    try:
        runtime.start(container.id)
        decoder = frames.FrameDecoder()
        for chunk in runtime.logs(container.id, follow=True):
            for _stream, data in decoder.feed(chunk):
                output(data.decode(errors="replace"))
        finished = runtime.wait(container.id)
    except BaseException:
        runtime.remove(container.id, force=True)
        raise
    if finished.exit_code != 0:
        runtime.remove(container.id, force=True)
        code = finished.exit_code
        raise RunFailed(f"{where}: the command returned a non-zero code: {code}"
                        + (" (killed: out of memory)" if finished.oom_killed else ""))
    if not container.rootfs:
        runtime.remove(container.id, force=True)
        raise CorralError(f"{where}: the build container has no root filesystem")
    upper = Path(container.rootfs).parent / "upper"
    _drop_mount_points(upper, layers)
    return container.id, upper


def _drop_mount_points(upper: Path, layers: list[Path]) -> None:
    for relative in _MOUNT_POINTS:
        made = upper / relative
        if lookup(layers, "/" + relative) is not None or not os.path.lexists(made) or made.is_symlink():
            continue
        if made.is_dir():
            try:
                made.rmdir()            # only when empty: a RUN may have written there on purpose
            except OSError:
                pass
        elif made.is_file() and made.stat().st_size == 0:
            made.unlink()


def clamp_times(tree: Path, epoch: int) -> None:
    """Every time in `tree` later than `epoch` set to `epoch` (SOURCE_DATE_EPOCH)."""
    limit = epoch * 1_000_000_000
    for directory, subdirs, files in os.walk(tree, topdown=False):
        for name in files + subdirs:
            path = os.path.join(directory, name)
            status = os.lstat(path)
            if status.st_mtime_ns > limit:
                os.utime(path, ns=(limit, limit), follow_symlinks=False)
    status = os.lstat(tree)
    if status.st_mtime_ns > limit:
        os.utime(tree, ns=(limit, limit))
