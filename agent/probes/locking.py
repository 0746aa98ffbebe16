"""`locked`: a method of a class whose instances keep a `threading.RLock` in `self._lock`,
run under that lock (ProbeSet: the collector reads from its scrape thread while the daemon
watches and unwatches)."""
from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar, cast

_Method = TypeVar("_Method", bound=Callable[..., Any])


def locked(method: _Method) -> _Method:
    """Run the method under `self._lock`."""
    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)
    return cast(_Method, wrapper)
