"""The image verbs the runtime serves: through the runtime because it knows which containers
use an image (a used one is not removed) and it writes the event log."""
from __future__ import annotations

from pathlib import Path

from agent.errors import InvalidArgument
from agent.events import Event, EventLog
from agent.images.store import ImageStore
from agent.runtime.state import ContainerStore


class ImageVerbs:
    """A mixin: the Runtime sets these attributes."""

    images: ImageStore
    store: ContainerStore
    events: EventLog

    def list_images(self) -> list:
        return self.images.list()

    def import_image(self, path: str, reference: str):
        source = Path(path)
        if not source.exists():
            raise InvalidArgument(f"image source {path!r} does not exist on the daemon's host")
        image = self.images.import_oci_layout(source, reference) if source.is_dir() \
            else self.images.import_tarball(source, reference)
        self.events.emit(Event("image", "import", image.id, f"{image.name}:{image.tag}"))
        return image

    def remove_image(self, ref: str) -> None:
        image = self.images.get(ref)
        users = [c.name for c in self.store.all() if c.image_id == image.id]
        self.images.remove(ref, in_use_by=users)
        self.events.emit(Event("image", "delete", image.id, ref))
