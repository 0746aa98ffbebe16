"""FROM's pull: a base image the store lacks, from its registry without credentials (a build
consults no login), through one Puller made on first use (httpx is imported only by a daemon
that pulls)."""
from __future__ import annotations

import threading
from typing import Any

from agent.images.model import Image


class BasePull:
    def __init__(self, images: Any, options: Any) -> None:
        self._images = images
        self._options = options            # agent.registry.transport.RegistryOptions
        self._puller: Any = None
        self._guard = threading.Lock()

    def __call__(self, reference: str, emit: Any) -> Image:
        from agent.registry.reference import parse
        with self._guard:
            if self._puller is None:
                from agent.registry.pull import Puller
                self._puller = Puller(self._images, self._options)
        image: Image = self._puller.pull(parse(reference), None, None, emit)
        return image
