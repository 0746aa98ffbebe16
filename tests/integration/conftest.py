"""Fixtures shared by the privileged integration tests."""
from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator

import pytest

from tests.integration.corral_daemon import running_daemon


@pytest.fixture(scope="module")
def daemon():
    """A real daemon with its own root, shared by the tests of one module."""
    with running_daemon() as instance:
        yield instance


@pytest.fixture
def spawn() -> Iterator[Callable[..., subprocess.Popen]]:
    """Start processes for a test; every one is killed and reaped afterwards."""
    procs: list[subprocess.Popen] = []

    def start(*argv: str, **kwargs) -> subprocess.Popen:
        proc = subprocess.Popen(list(argv), **kwargs)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream:
                stream.close()
