"""Enforcement that outlives the daemon: the programs that enforce policy rules, pinned in bpffs.

Cgroup sock_addr programs (egress rules) stay attached to a container's directory after the
daemon exits: the cgroup holds them, and they hold their maps. The syscall kill rules run in
the raw tracepoint program on sys_exit, whose attachment is a BPF link that dies with the
daemon's fd, so that link is pinned. With it go the maps the next daemon reads: `events` (the
ring buffer, drained when that daemon retires this generation) and `event_loss` (events that
found the ring full, counted by why: `daemon_down` once nobody polled for a while).

Layout: `/sys/fs/bpf/corral/<root hash>/gen-<program id>/{sys_exit,events,event_loss,consumer,
owner}`, one `gen-` directory per loaded probe object (the id of its sys_exit program names it),
held only while some container has enforcement rules. `owner` is a one-entry array holding the
daemon's --root (bpffs holds no plain files): a starting daemon removes the generations whose
root no longer exists (`sweep_orphans`), so a test daemon's deleted root never leaves a program
on every syscall of the host. A starting daemon always loads its own
programs (a new version may have come); the generations it finds are retired once its own
rules are in force: attached first, then the old link unpinned (the kernel detaches it when
the last reference goes) and the directory removed.
"""
from __future__ import annotations

import ctypes as ct
import hashlib
import logging
import os
import time
from pathlib import Path
from typing import Callable, Mapping

from agent.probes import bpf_syscall
from agent.probes.structs import LOST_REASONS

log = logging.getLogger("corral.probes")

PIN_BASE = Path("/sys/fs/bpf/corral")
LINK = "sys_exit"
PINNED_MAPS = ("events", "event_loss", "consumer")
OWNER = "owner"
OWNER_SIZE = 256                    # bytes of the root path kept in `owner`
OWNERLESS_AGE = 60.0                # seconds after which a generation without an owner is swept


def pin_dir_of(root: Path, base: Path = PIN_BASE) -> Path:
    """The pin directory of the daemon whose state lives in `root` (several daemons, with
    their own roots, may share a host)."""
    return base / hashlib.sha256(str(Path(root).resolve()).encode()).hexdigest()[:16]


def generations(directory: Path) -> list[Path]:
    """The generation directories pinned in `directory`, oldest program first."""
    try:
        found = [p for p in directory.iterdir() if p.name.startswith("gen-") and p.is_dir()]
    except OSError:
        return []
    return sorted(found, key=lambda p: int(p.name[4:]) if p.name[4:].isdigit() else 0)


def remove_generation(path: Path) -> None:
    """Unpin everything in a generation directory and remove it (and its parent when empty)."""
    for entry in list(path.iterdir()) if path.is_dir() else []:
        try:
            entry.unlink()
        except OSError as error:
            log.warning("unpinning %s: %s", entry, error.strerror)
    for directory in (path, path.parent):
        try:
            directory.rmdir()
        except OSError:
            break                               # not empty: another generation is pinned there


def read_lost(path: Path, ncpus: int) -> dict[str, int]:
    """The event_loss counters pinned at `path`: reason -> events lost (summed over CPUs)."""
    try:
        fd = bpf_syscall.open_pinned(str(path))
    except OSError as error:
        log.warning("reading %s: %s", path, error.strerror)
        return {}
    try:
        result = {}
        for index, reason in enumerate(LOST_REASONS):
            values = (ct.c_uint64 * ncpus)()
            key = ct.c_uint32(index)
            result[reason] = sum(values) if bpf_syscall.lookup(fd, key, values) else 0
        return result
    finally:
        os.close(fd)


def pin_owner(path: Path, root: str) -> None:
    """Pin at `path` a one-entry array map holding `root` (the daemon's --root)."""
    value = ct.create_string_buffer(root.encode()[:OWNER_SIZE - 1], OWNER_SIZE)
    fd = bpf_syscall.create_array(OWNER_SIZE)
    try:
        bpf_syscall.update(fd, ct.c_uint32(0), value)
        bpf_syscall.pin(fd, str(path))
    finally:
        os.close(fd)


def read_owner(path: Path) -> str | None:
    """The root kept in an `owner` map; None when it cannot be read."""
    try:
        fd = bpf_syscall.open_pinned(str(path))
    except OSError:
        return None
    try:
        value = ct.create_string_buffer(OWNER_SIZE)
        return value.value.decode(errors="replace") if bpf_syscall.lookup(fd, ct.c_uint32(0), value) else None
    finally:
        os.close(fd)


def sweep_orphans(base: Path = PIN_BASE, *, now: float | None = None) -> list[Path]:
    """Remove the generations whose daemon root is gone (its daemon will never adopt them), and
    those without an owner (pinned by the first version of this code) older than OWNERLESS_AGE
    seconds (younger, another daemon may be pinning it: `hold` pins the owner first)."""
    removed = []
    now = time.time() if now is None else now
    for directory in sorted(base.iterdir()) if base.is_dir() else []:
        for generation in generations(directory):
            root = read_owner(generation / OWNER)
            try:
                ownerless_old = root is None and now - generation.stat().st_mtime > OWNERLESS_AGE
            except OSError:
                continue
            if ownerless_old or (root and not os.path.exists(root)):
                remove_generation(generation)
                removed.append(generation)
                log.info("removed the pinned enforcement %s of %s, a root that no longer exists",
                         generation, root)
    return removed


class PinnedEnforcement:
    """This daemon's generation (`hold`/`release`) and the ones it found (`retire_previous`).
    `directory` None: pinning is off (--no-pin); earlier generations are still retired."""

    def __init__(self, directory: Path | None, found_in: Path | None = None) -> None:
        self.directory = directory
        where = found_in or directory
        self.previous: list[Path] = generations(where) if where is not None else []
        self.held: Path | None = None
        self.adopted_lost = 0                   # events lost while no daemon ran (retired generations)

    def hold(self, generation: str, objects: Mapping[str, int], owner: str = "") -> None:
        """Pin `objects` (name -> fd) as generation `generation`, with `owner` (the daemon's
        root; "" for none); nothing when already held."""
        if self.directory is None or self.held is not None:
            return
        path = self.directory / generation
        path.mkdir(parents=True, exist_ok=True)
        try:
            if owner and not (path / OWNER).exists():
                pin_owner(path / OWNER, owner)      # first: a sweep never takes it for ownerless
            for name, fd in objects.items():
                if not (path / name).exists():
                    bpf_syscall.pin(fd, str(path / name))
        except OSError as error:
            remove_generation(path)
            log.warning("pinning the enforcing programs in %s: %s; rules stop with the daemon",
                        path, error.strerror)
            return
        self.held = path

    def release(self) -> None:
        """Unpin this daemon's generation: no container has rules that must outlive it."""
        if self.held is not None:
            remove_generation(self.held)
            self.held = None

    def retire_previous(self, ncpus: int, drain: Callable[[int], None]) -> int:
        """Retire the generations an earlier daemon left: read their loss counters, hand their
        ring buffer's fd to `drain`, unpin them. Returns the events they lost while no daemon
        ran (their `ring_full` losses were the earlier daemon's to report)."""
        lost = 0
        for path in self.previous:
            if path == self.held:
                continue
            lost += read_lost(path / "event_loss", ncpus).get("daemon_down", 0)
            try:
                fd = bpf_syscall.open_pinned(str(path / "events"))
            except OSError:
                fd = -1
            if fd >= 0:
                try:
                    drain(fd)
                finally:
                    os.close(fd)
            remove_generation(path)
            log.info("retired the enforcement generation %s a previous daemon left pinned", path.name)
        self.previous = []
        self.adopted_lost += lost
        return lost
