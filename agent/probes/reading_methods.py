"""`ProbeReadings`: the methods of ProbeSet (loader.py) that read the watched containers'
counters when asked (at scrape or tick time), under the set's lock; readings.py does the
reading."""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from agent.probes import readings, setup_exemption
from agent.probes.compiled import CompiledProbes
from agent.probes.interface import NetCounters, ProcessCounters, TcpCounters
from agent.probes.locking import locked
from agent.probes.slots import Slots
from agent.probes.source import ProbeOptions


class ProbeReadings:
    """ProbeSet's readings; ProbeSet sets these attributes."""

    options: ProbeOptions
    _lock: threading.RLock
    _slots: Slots
    # The raw syscall counters last read per container, so unchanged ones are not summed again.
    _syscall_memo: readings.SyscallMemo

    if TYPE_CHECKING:
        def _require_loaded(self) -> CompiledProbes: ...

    @locked
    def syscall_counts(self) -> dict[int, dict[int, tuple[int, int]]]:
        return readings.syscall_counts(self._require_loaded(), self._slots.by_cgroup, self._syscall_memo)

    @locked
    def syscall_latency(self) -> dict[int, dict[int, list[int]]]:
        compiled = self._require_loaded()
        if not self.options.syscall_latency:
            return {}
        return readings.syscall_latency(compiled, self._slots.by_cgroup)

    @locked
    def network(self) -> dict[int, NetCounters]:
        return readings.network(self._require_loaded(), self._slots.by_cgroup, self.options.max_containers)

    @locked
    def tcp(self) -> dict[int, TcpCounters]:
        return readings.tcp(self._require_loaded(), self._slots.by_cgroup, self.options.max_containers)

    @locked
    def tcp_destinations(self) -> dict[int, dict[tuple[str, int], int]]:
        return readings.tcp_destinations(self._require_loaded(), self._slots.by_cgroup)

    @locked
    def processes(self) -> dict[int, ProcessCounters]:
        return readings.processes(self._require_loaded(), self._slots.by_cgroup, self.options.max_containers)

    @locked
    def oom_kills(self) -> dict[int, int]:
        return readings.oom_kills(self._require_loaded(), self._slots.by_cgroup, self.options.max_containers)

    @locked
    def map_entries(self) -> dict[str, int]:
        """Entries held for watched cgroups in each keyed map: all 0 once every container is
        gone, which is what leak checks look at."""
        compiled = self._require_loaded()
        result = readings.map_entries(compiled, self._slots.by_cgroup, self.options.syscall_latency)
        result.update(setup_exemption.entries(compiled.table("launcher_tasks"), compiled.table("setup_tasks")))
        return result
