"""The life-cycle routes from the caller's side (agent/api/lifecycle_endpoints.py); part of
ApiClient, which holds the transport (`_json`)."""
from __future__ import annotations

TYPE_CHECKING = False   # typing.TYPE_CHECKING without importing typing (CLI start-up time)
if TYPE_CHECKING:
    from typing import Any


def _ref(ref: str) -> str:
    from agent.api.client import _percent
    return _percent(ref)


class LifecycleCalls:
    """Mixed into ApiClient: one method per life-cycle route."""

    def _json(self, method: str, path: str, *, body: Any = None, query: dict | None = None) -> Any:
        raise NotImplementedError    # ApiClient's

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



def _filters(filters: dict[str, list[str]] | None) -> dict:
    from agent.api.client import _filters as query_of
    return query_of(filters)
