"""Fixtures shared by the privileged integration tests."""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.integration.corral_daemon import CorralDaemon


@pytest.fixture(scope="module")
def daemon():
    """A real daemon with its own root, shared by the tests of one module."""
    if os.geteuid() != 0:
        pytest.skip("needs root: runs a real daemon")
    root = Path(tempfile.mkdtemp(prefix="corral-it-", dir="/var/tmp"))
    # CORRAL_TEST_DAEMON_ARGS adds daemon flags, e.g. "--syscall-latency" or "--no-probes".
    instance = CorralDaemon(root, *os.environ.get("CORRAL_TEST_DAEMON_ARGS", "").split())
    instance.start()
    try:
        yield instance
    finally:
        try:
            instance.remove_all()
        finally:
            instance.stop()
            shutil.rmtree(root, ignore_errors=True)
