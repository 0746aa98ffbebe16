"""`corral build --progress tty`: the build's steps drawn as BuildKit draws them on a terminal.

Each step is a line `=> [stage k/n] INSTRUCTION` with its elapsed time, `CACHED` when the cache
had it; under the running step the last lines of its output (`=> => # ...`), dropped once it is
done (kept under a step that failed, so the error has its context); a summary line at the end.

Two parts: `BuildProgress` is the display's state, fed the build's events (agent/build/builder.py
marks them: `step`, `cached`, `layer`, `built`, `tagged`; any other `stream` is the running
step's output) and asked for lines at a given time and width, so it is tested without a
terminal; `TerminalDisplay` draws it: finished steps are printed once and scroll away like any
output, the running step and its output are redrawn in place (cursor up, clear) a few times a
second so its timer moves. Only those few lines are redrawn, so a long Dockerfile never
outgrows the window.
"""
from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

TAIL = 6                        # output lines shown under the running step
REDRAW = 0.1                    # seconds between redraws (the timer's resolution)
_ESCAPES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass
class Step:
    label: str                                      # "[build 2/4] RUN make"
    started: float
    ended: float | None = None
    cached: bool = False
    failed: bool = False
    output: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL))
    partial: str = ""                               # output after its last newline

    def elapsed(self, now: float) -> float:
        return (self.ended if self.ended is not None else now) - self.started


class BuildProgress:
    """What the display shows, from the build's events; the clock is passed in."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.steps: list[Step] = []
        self.built = ""
        self.tags: list[str] = []
        self.ended: float | None = None
        self._printed = 0                           # steps already handed out as finished

    @property
    def running(self) -> Step | None:
        step = self.steps[-1] if self.steps else None
        return step if step is not None and step.ended is None else None

    def feed(self, event: dict[str, Any], now: float) -> None:
        if "step" in event:
            self._finish(now)
            mark = event["step"]
            where = f"{mark['stage']} " if mark.get("stage") else ""
            self.steps.append(Step(f"[{where}{mark['number']}/{mark['count']}] {mark['text']}", now))
        elif event.get("cached") and self.steps:
            self.steps[-1].cached = True
        elif "built" in event:
            self._finish(now)
            self.built = str(event["built"])
        elif "tagged" in event:
            self.tags.append(str(event["tagged"]))
        elif "layer" in event:
            pass                                    # plain mode's ` ---> id`: the step line says enough
        elif "stream" in event and self.steps:
            self._output(self.steps[-1], str(event["stream"]))

    def fail(self, now: float) -> None:
        """The build stopped with an error: the running step is the one that failed."""
        step = self.running
        if step is not None:
            step.failed = True
        self._finish(now)
        self.ended = now

    def finish(self, now: float) -> None:
        self._finish(now)
        self.ended = now

    def _finish(self, now: float) -> None:
        step = self.running
        if step is None:
            return
        step.ended = now
        if step.partial:
            step.output.append(step.partial)
            step.partial = ""

    @staticmethod
    def _output(step: Step, text: str) -> None:
        lines = (step.partial + text).split("\n")
        step.partial = _clean(lines.pop())
        for line in lines:
            step.output.append(_clean(line))

    def take_finished(self, width: int) -> list[str]:
        """The lines of the steps finished since the last call: printed once, never redrawn."""
        lines: list[str] = []
        while self._printed < len(self.steps) and self.steps[self._printed].ended is not None:
            step = self.steps[self._printed]
            lines.append(_step_line(step, (step.ended or step.started) - step.started, width))
            if step.failed:
                lines += [_fit(f" => => # {line}", width) for line in step.output if line]
            self._printed += 1
        return lines

    def live(self, now: float, width: int) -> list[str]:
        """The running step with the tail of its output: redrawn in place."""
        step = self.running
        if step is None:
            return []
        shown = [*step.output, step.partial] if step.partial else list(step.output)
        return [_step_line(step, step.elapsed(now), width),
                *(_fit(f" => => # {line}", width) for line in shown[-TAIL:])]

    def summary(self, now: float) -> str:
        elapsed = (self.ended if self.ended is not None else now) - self.started
        cached = sum(1 for step in self.steps if step.cached)
        counts = f"{len(self.steps)} steps, {cached} cached"
        if self.built:
            named = f", tagged {', '.join(self.tags)}" if self.tags else ""
            return f"[+] Built {self.built[7:19] or self.built} in {elapsed:.1f}s ({counts}){named}"
        return f"[+] Build failed after {elapsed:.1f}s ({counts})"


def _step_line(step: Step, elapsed: float, width: int) -> str:
    mark = "ERROR " if step.failed else "CACHED " if step.cached else ""
    timer = f"{elapsed:.1f}s"
    left = _fit(f" => {mark}{step.label}", max(width - len(timer) - 1, 10))
    return left + " " * max(width - len(left) - len(timer), 1) + timer


def _fit(text: str, width: int) -> str:
    """`text` cut to `width` columns (one less than the window, so the line never wraps)."""
    return text if len(text) < width else text[:max(width - 1, 0)]


def _clean(line: str) -> str:
    """An output line as a terminal would leave it: the last `\\r` segment, no escape sequences
    or control characters (a RUN's colours or cursor moves must not move the display's)."""
    line = line.rstrip("\r").rsplit("\r", 1)[-1]
    return _CONTROLS.sub("", _ESCAPES.sub("", line)).replace("\t", "    ")


class TerminalDisplay:
    """`BuildProgress` drawn on a terminal: feed it events, then `close(ok)`."""

    def __init__(self, out: TextIO, width: Callable[[], int], clock: Callable[[], float] = time.monotonic) -> None:
        self.out = out
        self.width = width
        self.clock = clock
        self.progress = BuildProgress(clock())
        self._drawn = 0                             # live lines on screen, to go back over
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="build-progress", daemon=True)
        self.out.write("\x1b[?25l")                 # no cursor blinking through the redraws
        self._ticker.start()

    def feed(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.progress.feed(event, self.clock())
            if "step" in event or "built" in event:
                self._draw()

    def close(self, ok: bool) -> None:
        self._stop.set()
        self._ticker.join()
        with self._lock:
            now = self.clock()
            if ok:
                self.progress.finish(now)
            else:
                self.progress.fail(now)
            self._draw()
            self.out.write(_fit(self.progress.summary(now), self.width()) + "\n\x1b[?25h")
            self.out.flush()

    def _tick(self) -> None:
        while not self._stop.wait(REDRAW):
            with self._lock:
                self._draw()

    def _draw(self) -> None:
        width = max(self.width(), 20)
        now = self.clock()
        live = self.progress.live(now, width)
        lines = self.progress.take_finished(width) + live
        back = f"\x1b[{self._drawn}F" if self._drawn else "\r"
        self.out.write(back + "\x1b[J" + "".join(line + "\n" for line in lines))
        self._drawn = len(live)
        self.out.flush()
