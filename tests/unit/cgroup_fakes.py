"""A stand-in for `os` in agent.cgroups.files: a tmp dir behaves like a cgroup filesystem.

A new directory gets the files the kernel would populate (subclasses say which), rmdir removes
them as the kernel does, and writes to files named in `refuse` fail with EINVAL like a rejected
value in a real cgroup file.
"""
from __future__ import annotations

import errno
import os


class FakeCgroupfs:
    def __init__(self, real_os) -> None:
        self.os = real_os
        self.refuse: set[str] = set()

    def __getattr__(self, name):
        return getattr(self.os, name)

    def kernel_files(self, path: str) -> dict[str, str]:
        """The files (name -> content) the kernel creates in a new cgroup at `path`."""
        raise NotImplementedError

    def mkdir(self, path, mode=0o777):
        self.os.mkdir(path, mode)
        for name, text in self.kernel_files(path).items():
            with open(os.path.join(path, name), "w") as handle:
                handle.write(text)

    def rmdir(self, path):
        for entry in self.os.scandir(path):
            if entry.is_file():
                self.os.unlink(entry.path)
        self.os.rmdir(path)

    def open(self, path, flags, mode=0o777):
        if os.path.basename(path) in self.refuse:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL), path)
        return self.os.open(path, flags, mode)
