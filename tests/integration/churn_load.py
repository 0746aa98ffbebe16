"""Churn load shared by the churn test (100 cycles) and `make bench churn` (1000): run/rm cycles
of /bin/true through the API, `workers` at a time, every other one on the default bridge with a
published port (veth, address, DNAT rules, hosts file), the rest with --net none."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from agent.api.client import ApiClient
from tests.integration.corral_daemon import free_port


@dataclass(frozen=True)
class Cycle:
    container_id: str
    bridge: bool
    seconds: float


def one_cycle(client: ApiClient, bridge: bool) -> Cycle:
    spec: dict = {"image": "busybox", "command": ["/bin/true"], "network": "none"}
    if bridge:
        spec.update(network="bridge", ports=[{"host_port": free_port(), "container_port": 80}])
    started = time.perf_counter()
    container = client.create_container(spec, start=True)
    result = client.wait_container(container["id"])
    client.remove_container(container["id"])
    elapsed = time.perf_counter() - started
    if result.get("exit_code") != 0:
        raise AssertionError(f"/bin/true in container {container['id'][:12]} exited {result}")
    return Cycle(container["id"], bridge, elapsed)


def churn(socket: Path, cycles: int, workers: int = 2, progress=None) -> list[Cycle]:
    """Run `cycles` cycles; the first error of any worker is raised once all have stopped."""
    done: list[Cycle] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    numbers = iter(range(cycles))

    def work() -> None:
        client = ApiClient(f"unix://{socket}", timeout=60)
        while not errors:
            with lock:
                number = next(numbers, None)
            if number is None:
                return
            try:
                cycle = one_cycle(client, bridge=number % 2 == 1)
            except BaseException as exc:  # stop every worker, report the first
                errors.append(exc)
                return
            with lock:
                done.append(cycle)
                if progress is not None:
                    progress(len(done))

    threads = [threading.Thread(target=work, name=f"churn-{i}") for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return done
