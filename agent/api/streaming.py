"""Long work answered as a stream of JSON lines: pull, push and build report as they go."""
from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Iterator

from agent.errors import CorralError


def streamed(work: Callable[[Callable[[dict], None]], dict], name: str = "api-work") -> Iterator[bytes]:
    """Run `work(emit)` in a thread; yield each emitted event, then its result or its error
    (the status line has gone out before the work is done, so an error is the last line)."""
    events: queue.Queue = queue.Queue()
    done = object()

    def run() -> None:
        try:
            events.put(work(events.put))
        except CorralError as exc:
            events.put(exc.to_dict())
        except Exception as exc:  # noqa: BLE001 - a bug must still end the stream with a message
            events.put(CorralError(f"internal error: {type(exc).__name__}: {exc}").to_dict())
        events.put(done)
    threading.Thread(target=run, name=name, daemon=True).start()
    while (event := events.get()) is not done:
        yield json.dumps(event).encode() + b"\n"
