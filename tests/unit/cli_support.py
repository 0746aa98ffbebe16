"""What the `corral` CLI's unit tests share: a real ApiServer over an in-memory runtime, and
main() pointed at it (or at a socket where no daemon is)."""
from __future__ import annotations

import pytest

from agent.cli.main import build_parser, main
from tests.unit.fake_runtime import FakeDaemon

NO_DAEMON = "unix:///tmp/corral-test-nobody-here/corral.sock"


@pytest.fixture
def daemon():
    with FakeDaemon() as running:
        yield running


def corral(daemon, *argv) -> int:
    return main(["--host", daemon.host, *argv])


def spec_of(*argv: str, auto_remove: bool = False):
    """The ContainerSpec the daemon makes of the body `corral run ARGV` sends, validated as the
    daemon validates it (the CLI itself never builds one: agent/cli/run.py body_from_args)."""
    from agent.cli.run import body_from_args
    from agent.runtime.model import ContainerSpec
    return ContainerSpec.from_dict(body_from_args(build_parser().parse_args(["run", *argv]), auto_remove=auto_remove))
