"""The image routes from the caller's side (pull, push, build, save, load, commit, login...);
part of ApiClient."""
from __future__ import annotations

from collections.abc import Iterator

from agent.api.transport import Transport, _filters, _ref

TYPE_CHECKING = False   # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from typing import Any


class ImageCalls(Transport):
    """Mixed into ApiClient: one method per image route."""

    def list_images(self, filters: dict | None = None) -> list[dict]:
        return self._json("GET", "/v1/images", query=_filters(filters))

    def import_image(self, path: str, reference: str) -> dict:
        return self._json("POST", "/v1/images/import", body={"path": path, "reference": reference})

    def remove_image(self, ref: str) -> None:
        self._json("DELETE", f"/v1/images/{_ref(ref)}")

    def pull_image(self, reference: str, platform: str = "", auth: dict | None = None) -> Iterator[dict]:
        """Progress lines of a pull; the last is {"image": ...} or an error object."""
        body: dict[str, Any] = {"reference": reference, "platform": platform}
        if auth:
            body["auth"] = auth
        return self._lines("POST", "/v1/images/pull", body=body)

    def push_image(self, reference: str, auth: dict | None = None) -> Iterator[dict]:
        body: dict[str, Any] = {"reference": reference}
        if auth:
            body["auth"] = auth
        return self._lines("POST", "/v1/images/push", body=body)

    def tag_image(self, source: str, target: str) -> dict:
        return self._json("POST", "/v1/images/tag", body={"source": source, "target": target})

    def inspect_image(self, ref: str) -> dict:
        return self._json("GET", f"/v1/images/{_ref(ref)}/json")

    def image_history(self, ref: str) -> list[dict]:
        return self._json("GET", f"/v1/images/{_ref(ref)}/history")

    def save_images(self, names: list[str]) -> Iterator[bytes]:
        """The tar of `docker save`'s format, in chunks as they arrive."""
        response = self._open("POST", "/v1/images/save", body={"names": list(names)})
        try:
            while chunk := self._read(response):
                yield chunk
        finally:
            response.close()

    def load_images(self, path: str) -> list[dict]:
        return self._json("POST", "/v1/images/load", body={"path": path})["images"]

    def prune_images(self, every: bool = False) -> dict:
        return self._json("POST", "/v1/images/prune", query={"all": every})

    def commit(self, ref: str, reference: str, changes: list[str], pause: bool = True, comment: str = "",
               author: str = "") -> dict:
        return self._json("POST", f"/v1/containers/{_ref(ref)}/commit",
                          body={"reference": reference, "changes": list(changes), "pause": pause,
                                "comment": comment, "author": author})

    def build(self, body: dict) -> Iterator[dict]:
        """Progress lines of a build; the last is {"image": ...} or an error object."""
        return self._lines("POST", "/v1/build", body=body)

    def login(self, registry: str, auth: dict) -> dict:
        return self._json("POST", "/v1/auth", body={"registry": registry, "auth": auth})
