"""A real Alertmanager (Debian's prometheus-alertmanager) on loopback for the reaction bench.

It runs the repo's deploy/alertmanager/alertmanager.yml as a user would, with one change: every
receiver's webhook points at the bench's own HTTP server, so "breach -> Alertmanager" is timed
to the notification Alertmanager sends, not only to the agent's POST. Its data directory and
process go when the context ends.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

from bench.common import REPO, free_port

BINARY = "prometheus-alertmanager"


def available() -> bool:
    return shutil.which(BINARY) is not None


class Alertmanager:
    """`with Alertmanager(receiver_url) as am:` am.url is its base URL (API v2 at /api/v2)."""

    def __init__(self, receiver_url: str) -> None:
        self.receiver_url = receiver_url
        self.work = Path(tempfile.mkdtemp(prefix="corral-bench-am-", dir="/var/tmp"))
        self.url = ""
        self._process: subprocess.Popen | None = None

    def _config(self) -> Path:
        config = yaml.safe_load((REPO / "deploy/alertmanager/alertmanager.yml").read_text())
        for receiver in config["receivers"]:
            for webhook in receiver.get("webhook_configs", []):
                webhook["url"] = self.receiver_url
        path = self.work / "alertmanager.yml"
        path.write_text(yaml.safe_dump(config))
        return path

    def __enter__(self) -> Alertmanager:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self._process = subprocess.Popen(
            [BINARY, f"--config.file={self._config()}", f"--storage.path={self.work / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
            stdout=open(self.work / "alertmanager.log", "ab"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        self.__exit__()
        raise RuntimeError(f"Alertmanager did not become ready; see {self.work / 'alertmanager.log'}")

    def __exit__(self, *exc_info: object) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        shutil.rmtree(self.work, ignore_errors=True)
