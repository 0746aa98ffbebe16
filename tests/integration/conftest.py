"""Fixtures shared by the privileged integration tests."""
from __future__ import annotations

import pytest

from tests.integration.corral_daemon import running_daemon


@pytest.fixture(scope="module")
def daemon():
    """A real daemon with its own root, shared by the tests of one module."""
    with running_daemon() as instance:
        yield instance
