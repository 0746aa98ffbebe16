"""Cgroup BPF attachments (cgroup_skb counters, sock_addr egress rules): attach, detach, and
ask the kernel what is attached to a directory.

BCC attaches and detaches; this module adds what BCC lacks, through the bpf() syscall:
BPF_PROG_QUERY (which programs sit on a cgroup), and a program's name by id, so a restarted
daemon can find and detach the programs a crashed one left behind (cgroup attachments outlive
the process that made them). Programs are attached with BPF_F_ALLOW_MULTI so Corral's counters
coexist with other programs of the same attach type on the same directory.
"""
from __future__ import annotations

import ctypes as ct
import errno
import os

from agent.errors import KernelError
from agent.probes.bpf_syscall import bpf as _bpf
from agent.probes.bpf_syscall import new_attr, object_info
from agent.probes.bpf_syscall import put as _put

CGROUP_INET_INGRESS = 0
CGROUP_INET_EGRESS = 1
CGROUP_INET4_CONNECT = 10
CGROUP_INET6_CONNECT = 11
CGROUP_UDP4_SENDMSG = 14
CGROUP_UDP6_SENDMSG = 15
BPF_F_ALLOW_MULTI = 1 << 1

_BPF_PROG_ATTACH, _BPF_PROG_DETACH = 8, 9
_BPF_PROG_GET_FD_BY_ID, _BPF_PROG_QUERY = 13, 16
_PROG_INFO_SIZE = 80             # struct bpf_prog_info up to and including name[16]
_PROG_INFO_ID, _PROG_INFO_NAME = 4, 64


def open_directory(directory: str) -> int:
    try:
        return os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as error:
        raise KernelError(f"cgroup directory {directory}: {error.strerror}",
                          hint="give the container's cgroup v2 (unified) directory") from None


def attached_programs(directory: str, attach_type: int) -> list[int]:
    """Ids of the programs attached directly to `directory` for `attach_type`."""
    fd = open_directory(directory)
    try:
        ids = (ct.c_uint32 * 64)()
        attr = new_attr()
        _put(attr, 0, ct.c_uint32, fd)
        _put(attr, 4, ct.c_uint32, attach_type)
        _put(attr, 16, ct.c_uint64, ct.addressof(ids))
        _put(attr, 24, ct.c_uint32, len(ids))
        try:
            _bpf(_BPF_PROG_QUERY, attr)
        except OSError as error:
            raise KernelError(f"BPF_PROG_QUERY on {directory}: {error.strerror}") from None
        count = ct.c_uint32.from_buffer(attr, 24).value
        return list(ids[:min(count, len(ids))])
    finally:
        os.close(fd)


def _program_info(prog_fd: int) -> bytes:
    return object_info(prog_fd, _PROG_INFO_SIZE)


def program_id(prog_fd: int) -> int:
    """The kernel's id of a loaded program."""
    return int.from_bytes(_program_info(prog_fd)[_PROG_INFO_ID:_PROG_INFO_ID + 4], "little")


def _program_fd(prog_id: int) -> int:
    attr = new_attr()
    _put(attr, 0, ct.c_uint32, prog_id)
    return _bpf(_BPF_PROG_GET_FD_BY_ID, attr)


def _attach_or_detach(command: int, directory: str, prog_fd: int, attach_type: int,
                      flags: int) -> None:
    fd = open_directory(directory)
    try:
        attr = new_attr()
        _put(attr, 0, ct.c_uint32, fd)
        _put(attr, 4, ct.c_uint32, prog_fd)
        _put(attr, 8, ct.c_uint32, attach_type)
        _put(attr, 12, ct.c_uint32, flags)
        _bpf(command, attr)
    finally:
        os.close(fd)


def attach(directory: str, prog_fd: int, attach_type: int) -> None:
    """Attach a loaded cgroup program to a v2 directory, beside any other program."""
    try:
        _attach_or_detach(_BPF_PROG_ATTACH, directory, prog_fd, attach_type, BPF_F_ALLOW_MULTI)
    except OSError as error:
        raise KernelError(f"attaching a cgroup BPF program (type {attach_type}) to {directory}: {error.strerror}",
                          hint="the directory must be in the cgroup v2 (unified) tree") from None


def detach(directory: str, prog_fd: int, attach_type: int) -> bool:
    """Detach one program; False when it was not attached (or the cgroup is gone)."""
    try:
        _attach_or_detach(_BPF_PROG_DETACH, directory, prog_fd, attach_type, 0)
    except OSError as error:
        if error.errno in (errno.ENOENT, errno.EBADF):
            return False
        raise KernelError(f"detaching a cgroup BPF program (type {attach_type}) from {directory}: {error.strerror}") from None
    except KernelError:
        return False                 # the directory was removed: its attachments went with it
    return True


def detach_stale(directory: str, attach_type: int, names: set[str], keep_id: int) -> int:
    """Detach programs called one of `names` that are not `keep_id`: leftovers of a crashed
    daemon. Returns how many were detached."""
    detached = 0
    for prog_id in attached_programs(directory, attach_type):
        if prog_id == keep_id:
            continue
        try:
            prog_fd = _program_fd(prog_id)
        except OSError:
            continue                 # detached meanwhile
        try:
            info = _program_info(prog_fd)
            name = info[_PROG_INFO_NAME:_PROG_INFO_NAME + 16].split(b"\0", 1)[0].decode()
            if name in names and detach(directory, prog_fd, attach_type):
                detached += 1
        finally:
            os.close(prog_fd)
    return detached
