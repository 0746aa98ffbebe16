"""What the `corral` CLI's unit tests share: a real ApiServer over an in-memory runtime, and
main() pointed at it (or at a socket where no daemon is)."""
from __future__ import annotations

import pytest

from agent.cli.main import main
from tests.unit.fake_runtime import FakeDaemon

NO_DAEMON = "unix:///tmp/corral-test-nobody-here/corral.sock"


@pytest.fixture
def daemon():
    with FakeDaemon() as running:
        yield running


def corral(daemon, *argv) -> int:
    return main(["--host", daemon.host, *argv])
