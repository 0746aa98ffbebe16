"""The life-cycle routes from the caller's side (agent/api/lifecycle_endpoints.py); part of
ApiClient; the requests are agent/api/transport.py's."""
from __future__ import annotations

from agent.api.transport import Transport, _filters, _ref

TYPE_CHECKING = False   # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from typing import Any


class LifecycleCalls(Transport):
    """Mixed into ApiClient: one method per life-cycle route."""

    def pause_container(self, ref: str) -> dict:
        return self._json("POST", f"/v1/containers/{_ref(ref)}/pause")

    def unpause_container(self, ref: str) -> dict:
        return self._json("POST", f"/v1/containers/{_ref(ref)}/unpause")

    def rename_container(self, ref: str, name: str) -> dict:
        return self._json("POST", f"/v1/containers/{_ref(ref)}/rename", query={"name": name})

    def restart_container(self, ref: str, timeout: float | None = None, signal: str | None = None) -> dict:
        query: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        if signal is not None:
            query["signal"] = signal
        return self._json("POST", f"/v1/containers/{_ref(ref)}/restart", query=query)

    def update_container(self, ref: str, changes: dict) -> dict:
        """`changes`: memory (bytes), cpus, pids_limit, restart_policy {name, maximum_retry_count}."""
        return self._json("POST", f"/v1/containers/{_ref(ref)}/update", body=changes)

    def top_container(self, ref: str, ps_args: str = "") -> dict:
        """{"Titles": [...], "Processes": [[...], ...]}, as docker's API answers."""
        query = {"ps_args": ps_args} if ps_args else {}
        return self._json("GET", f"/v1/containers/{_ref(ref)}/top", query=query)

    def prune_containers(self, filters: dict[str, list[str]] | None = None) -> dict:
        return self._json("POST", "/v1/containers/prune", query=_filters(filters))

    def prune_networks(self, filters: dict[str, list[str]] | None = None) -> dict:
        return self._json("POST", "/v1/networks/prune", query=_filters(filters))

    def disk_usage(self) -> dict:
        return self._json("GET", "/v1/system/df")
