"""`Budget`: what to shed, from the daemon's own CPU use and the series count of each scrape.

Shedding goes in SHED_ORDER, one level at a time, and is restored in reverse:

1. `latency_histograms`: the syscall latency histograms are neither read nor exported (each
   syscall of each container is 35 series of them);
2. `syscall_series`: the per-syscall series fall back to the SHED_TOP most called per
   container (`--syscall-metrics top:N` with N = SHED_TOP, unless a smaller N was chosen);
3. `exec_events`: exec events are counted, not logged (the event pump drops them).

Two figures decide, each with hysteresis so a level does not flap:
- series (`--series-budget`): the collector reports at each scrape how many series it would
  export at each level; the level is the lowest whose count fits the budget, and a level is
  only given back once the count at the lower level fits `restore` (80%) of it. Only levels 1
  and 2 change the series count, so this figure never sheds exec events.
- CPU (`--cpu-budget`, a fraction of one CPU): measured over `window` seconds of the daemon's
  own CPU time (user + system, all threads); above the budget one more level is shed, below
  `cpu_restore` (50%) of it one level is restored; at most one step per window.
The level in force is the higher of the two.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable

from agent.errors import InvalidArgument

log = logging.getLogger("corral.budget")

SHED_ORDER = ("latency_histograms", "syscall_series", "exec_events")
SHED_TOP = 10                   # syscalls per container kept while `syscall_series` is shed


def own_cpu_seconds() -> float:
    """CPU time of this process so far, every thread, user plus system."""
    times = os.times()
    return times.user + times.system


@dataclass(frozen=True)
class BudgetOptions:
    cpu: float = 0.0            # fraction of one CPU, like 0.25; 0: no CPU budget
    series: int = 0             # series per scrape; 0: no series budget
    window: float = 10.0        # seconds of CPU time per decision
    restore: float = 0.8        # series: give a level back below this share of the budget
    cpu_restore: float = 0.5    # CPU: give a level back below this share of the budget

    def __post_init__(self) -> None:
        if not 0 <= self.cpu <= 64:
            raise InvalidArgument(f"--cpu-budget {self.cpu}: expected a fraction of one CPU "
                                  "like 0.25 (0 for none)")
        if self.series < 0:
            raise InvalidArgument(f"--series-budget {self.series}: expected a number of series (0 for none)")
        if self.window <= 0 or not 0 < self.restore < 1 or not 0 < self.cpu_restore < 1:
            raise InvalidArgument("budget: window must be > 0 and restore shares between 0 and 1")

    @property
    def enabled(self) -> bool:
        return bool(self.cpu or self.series)


@dataclass(frozen=True)
class SeriesEstimate:
    """What one scrape would export at each level: `base` (everything the budget never sheds),
    the per-syscall series in full and at top:SHED_TOP, and the latency histogram series."""

    base: int
    syscalls_all: int
    syscalls_top: int
    latency: int

    def at_level(self, level: int) -> int:
        if level <= 0:
            return self.base + self.syscalls_all + self.latency
        if level == 1:
            return self.base + self.syscalls_all
        return self.base + self.syscalls_top


class Budget:
    """The shed level and why. `tick()` measures CPU (the daemon calls it every second from
    `start()`'s thread; tests call it with a fake clock); `observe_series()` is called at the
    end of each scrape."""

    def __init__(self, options: BudgetOptions, *, clock: Callable[[], float] = time.monotonic,
                 cpu_seconds: Callable[[], float] = own_cpu_seconds,
                 on_change: Callable[[tuple[str, ...]], None] | None = None) -> None:
        self.options = options
        self._clock = clock
        self._cpu_seconds = cpu_seconds
        self._on_change = on_change
        self._lock = threading.Lock()
        self._series_level = 0
        self._cpu_level = 0
        self._window_start = clock()
        self._cpu_start = cpu_seconds()
        self.cpu_fraction: float | None = None     # of the last full window
        self.series: int | None = None             # exported by the last scrape
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what is shed ------------------------------------------------------------------------

    @property
    def level(self) -> int:
        return max(self._series_level, self._cpu_level)

    def shed(self, what: str) -> bool:
        return SHED_ORDER.index(what) < self.level

    def shedding(self) -> dict[str, bool]:
        level = self.level
        return {what: index < level for index, what in enumerate(SHED_ORDER)}

    # -- what decides --------------------------------------------------------------------------

    def observe_series(self, estimate: SeriesEstimate, exported: int) -> None:
        """One scrape's figures: decide the series level."""
        budget = self.options.series
        with self._lock:
            before = self.level
            self.series = exported
            if budget:
                level = self._series_level
                while level < 2 and estimate.at_level(level) > budget:
                    level += 1
                while level > 0 and estimate.at_level(level - 1) <= self.options.restore * budget:
                    level -= 1
                self._series_level = level
            self._changed(before, "series", exported, budget)

    def tick(self) -> None:
        """Measure the CPU used since the window began; decide once the window is full."""
        now = self._clock()
        elapsed = now - self._window_start
        if elapsed < self.options.window:
            return
        used = self._cpu_seconds()
        fraction = (used - self._cpu_start) / elapsed
        with self._lock:
            before = self.level
            self.cpu_fraction = fraction
            self._window_start, self._cpu_start = now, used
            budget = self.options.cpu
            if budget:
                if fraction > budget:
                    self._cpu_level = min(len(SHED_ORDER), self._cpu_level + 1)
                elif fraction < self.options.cpu_restore * budget:
                    self._cpu_level = max(0, self._cpu_level - 1)
            self._changed(before, "cpu", round(fraction, 3), budget)

    def _changed(self, before: int, figure: str, value: float, budget: float) -> None:
        level = self.level
        if level == before:
            return
        shed = SHED_ORDER[:level]
        if level > before:
            log.warning("over budget (%s %s > %s): shedding %s", figure, value, budget, ", ".join(shed))
        else:
            log.info("load fell (%s %s): restored %s", figure, value, ", ".join(SHED_ORDER[level:before]))
        if self._on_change is not None:
            self._on_change(shed)

    # -- the daemon's thread ---------------------------------------------------------------------

    def start(self) -> None:
        if not self.options.cpu:
            return                              # nothing to measure
        self._thread = threading.Thread(target=self._run, name="corral-budget", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - a failed measurement must not end the budget
                log.exception("budget: measuring CPU failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
