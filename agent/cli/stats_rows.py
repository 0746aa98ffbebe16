"""The rows of `corral stats` and `corral top`: rates from two cumulative /v1/stats snapshots.

Apart from the verbs' modules because a dataclass costs `import dataclasses` (and inspect),
which only these two verbs should pay for at start-up; they import this module when they run.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from agent.cli.format import human_size, short_id, table


@dataclass(frozen=True)
class StatsRow:
    id: str
    name: str
    cpu_percent: float | None           # of one CPU, as docker shows it
    memory_bytes: int | None
    memory_limit_bytes: int | None
    memory_percent: float | None
    net_rx_bytes: int | None             # None: unknown (not counted, or its read failed)
    net_tx_bytes: int | None
    pids: int | None
    syscalls_per_second: float | None
    syscall_errors_per_second: float | None
    frozen: bool | None = None
    top_syscalls: list[tuple[str, float, float]] = field(default_factory=list)  # name, calls/s, errors/s


def rates(previous: dict, current: dict) -> list[StatsRow]:
    """Rows for every container in `current` (a /v1/stats answer), using `previous` for rates."""
    before = {c["id"]: c for c in (previous or {}).get("containers", [])}
    rows = []
    for now in current.get("containers", []):
        then = before.get(now["id"])
        elapsed = (now["time"] - then["time"]) if then else 0.0

        def per_second(key: str) -> float | None:    # called in this iteration only: the loop variables are current
            if now.get(key) is None or (then and then.get(key) is None):  # noqa: B023
                return None
            if not then or elapsed <= 0:  # noqa: B023
                return 0.0
            return max(0.0, (now[key] - then[key]) / elapsed)  # noqa: B023

        cpu = None
        if then and elapsed > 0 and now.get("cpu_seconds") is not None and then.get("cpu_seconds") is not None:
            cpu = max(0.0, (now["cpu_seconds"] - then["cpu_seconds"]) / elapsed * 100.0)
        memory, limit = now.get("memory_bytes"), now.get("memory_limit_bytes")
        top = []
        if then and elapsed > 0:
            old = then.get("by_syscall", {})
            for name, (calls, errors) in now.get("by_syscall", {}).items():
                calls_before, errors_before = old.get(name, (0, 0))
                top.append((name, (calls - calls_before) / elapsed, (errors - errors_before) / elapsed))
            top.sort(key=lambda item: item[1], reverse=True)
        rows.append(StatsRow(
            id=now["id"], name=now["name"], cpu_percent=cpu, memory_bytes=memory,
            memory_limit_bytes=limit,
            memory_percent=(memory / limit * 100.0) if memory is not None and limit else None,
            net_rx_bytes=now.get("net_rx_bytes"), net_tx_bytes=now.get("net_tx_bytes"),
            pids=now.get("pids"), syscalls_per_second=per_second("syscalls"),
            syscall_errors_per_second=per_second("syscall_errors"), frozen=now.get("frozen"),
            top_syscalls=top))
    return rows


def rate(value: float | None) -> str:
    return "--" if value is None else f"{value:.0f}"


def percent(value: float | None) -> str:
    return "--" if value is None else f"{value:.2f}%"


def stats_table(rows: list[StatsRow]) -> str:
    return table(
        ["CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O", "PIDS", "SYSCALLS/S"],
        [[short_id(r.id), r.name, percent(r.cpu_percent),
          f"{human_size(r.memory_bytes)} / {human_size(r.memory_limit_bytes) if r.memory_limit_bytes else 'unlimited'}",
          percent(r.memory_percent), f"{human_size(r.net_rx_bytes)} / {human_size(r.net_tx_bytes)}",
          "--" if r.pids is None else r.pids, rate(r.syscalls_per_second)] for r in rows])


def select(rows: list[StatsRow], refs: list[str]) -> list[StatsRow]:
    if not refs:
        return rows
    return [r for r in rows if any(r.name == ref or r.id.startswith(ref) for ref in refs)]
