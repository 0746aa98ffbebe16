"""The real `docker` CLI pointed at a test daemon's Docker API socket."""
from __future__ import annotations

import os
import subprocess

from tests.host import require_tool


class DockerCli:
    """`docker ...` with DOCKER_HOST at the daemon's docker.sock and a config dir of its own."""

    def __init__(self, daemon, config_dir, binary: str = "docker", package: str = "docker.io") -> None:
        self.path = require_tool(binary, package)
        self.argv = [self.path]          # what every command starts with
        self.cwd: str | None = None
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{daemon.docker_socket}",
                    "DOCKER_CONFIG": str(config_dir), "DOCKER_CLI_HINTS": "false"}
        self.env.pop("DOCKER_API_VERSION", None)

    def run(self, *args: str, check: bool = True, timeout: float = 60, input: bytes | None = None
            ) -> subprocess.CompletedProcess:
        done = subprocess.run([*self.argv, *args], cwd=self.cwd, env=self.env, capture_output=True,
                              timeout=timeout, input=input)
        if check and done.returncode != 0:
            raise AssertionError(f"{os.path.basename(self.path)} {' '.join(args)} exited {done.returncode}:\n"
                                 f"stdout: {done.stdout.decode(errors='replace')}\n"
                                 f"stderr: {done.stderr.decode(errors='replace')}")
        return done

    def out(self, *args: str, **kwargs) -> str:
        return self.run(*args, **kwargs).stdout.decode().strip()

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([self.path, *args], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
