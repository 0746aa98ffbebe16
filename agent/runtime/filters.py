"""docker's `--filter`: one parser for the `filters` query parameter and the matching rules for
containers, images and events (the Docker-compatible API reuses both).

The parameter is docker's JSON: `{"label": ["a=b"], "status": ["exited"]}`, or the map form
docker's own client sends, `{"label": {"a=b": true}}`. Values of one key are alternatives (any
may match), different keys must all match; `label` is the exception, as in docker: every
label asked for must be there. An unknown key, or a value a key cannot take
(`status=sleeping`, `exited=x`), is an InvalidArgument (400) naming it.
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from fnmatch import fnmatchcase
from typing import Any

from agent.errors import InvalidArgument, NotFound

Filters = dict[str, list[str]]

CONTAINER_KEYS = ("ancestor", "before", "exited", "health", "id", "label", "name", "network", "since",
                  "status", "volume")
IMAGE_KEYS = ("before", "dangling", "label", "reference", "since")
EVENT_KEYS = ("container", "event", "image", "label", "scope", "type")
VOLUME_KEYS = ("dangling", "driver", "label", "name")
NETWORK_KEYS = ("driver", "id", "label", "name", "scope", "type")
STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")
HEALTH = ("starting", "healthy", "unhealthy", "none")


def parse(text: str | None, keys: Iterable[str], what: str) -> Filters:
    """The `filters` parameter; {} when absent. `what` names the listing in errors."""
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        raise InvalidArgument(f"filters: expected a JSON object like {{\"label\": [\"a=b\"]}}, got {text!r}",
                              field="filters") from None
    if not isinstance(data, dict):
        raise InvalidArgument(f"filters: expected a JSON object, got {text!r}", field="filters")
    known = tuple(keys)
    filters: Filters = {}
    for key, values in data.items():
        if key not in known:
            raise InvalidArgument(f"filters: invalid filter {key!r} for {what} (known: {', '.join(known)})",
                                  field=f"filters.{key}")
        if isinstance(values, dict) and all(isinstance(v, bool) for v in values.values()):
            values = [value for value, wanted in values.items() if wanted]
        if not isinstance(values, list) or not all(isinstance(value, str) for value in values):
            raise InvalidArgument(f"filters.{key}: expected a list of strings, got {values!r}",
                                  field=f"filters.{key}")
        if values:
            filters[key] = list(values)
    for value in filters.get("status", []):
        if value not in STATUSES:
            raise _bad("status", value, f"one of {', '.join(STATUSES)}")
    for value in filters.get("health", []):
        if value not in HEALTH:
            raise _bad("health", value, f"one of {', '.join(HEALTH)}")
    for value in filters.get("exited", []):
        if not re.fullmatch(r"-?\d+", value):
            raise _bad("exited", value, "an exit code")
    for value in filters.get("dangling", []):
        if value.lower() not in ("true", "false", "1", "0"):
            raise _bad("dangling", value, "true or false")
    return filters


def _bad(key: str, value: str, expected: str) -> InvalidArgument:
    return InvalidArgument(f"filters: invalid filter '{key}={value}': expected {expected}", field=f"filters.{key}")


def _search(patterns: list[str], text: str) -> bool:
    """docker's Args.Match: an exact match or a regular expression found in the text."""
    for pattern in patterns:
        if pattern == text:
            return True
        try:
            if re.search(pattern, text):
                return True
        except re.error:
            continue
    return False


def labels_match(wanted: list[str], labels: dict) -> bool:
    """`label=k` (present) and `label=k=v` (equal), every one of them."""
    for item in wanted:
        key, equals, value = item.partition("=")
        if key not in labels or (equals and labels[key] != value):
            return False
    return True


# Containers (agent.runtime.model.Container)

def containers(items: list[Any], filters: Filters,
               health_of: Callable[[str], str | None] | None = None) -> list[Any]:
    """The containers `filters` keeps, in the order given. `health_of(id)` is a container's
    health status (starting, healthy, unhealthy; None without a health check)."""
    if not filters:
        return list(items)
    created_before = _bound(items, filters.get("before"), "before")
    created_since = _bound(items, filters.get("since"), "since")
    kept = []
    for container in items:
        if created_before is not None and container.created_at >= created_before:
            continue
        if created_since is not None and container.created_at <= created_since:
            continue
        if "health" in filters and ((health_of(container.id) if health_of else None) or "none") not in \
                filters["health"]:
            continue
        if all(test(container, filters[key]) for key, test in _CONTAINER_TESTS.items() if key in filters):
            kept.append(container)
    return kept


def _bound(items: list[Any], refs: list[str] | None, key: str) -> float | None:
    if not refs:
        return None
    ref = refs[-1]
    for container in items:
        if container.name == ref or container.id == ref:
            return container.created_at
    matches = [c for c in items if c.id.startswith(ref)]
    if len(matches) == 1:
        return matches[0].created_at
    raise NotFound(f"filters: {key}={ref}: no such container", field=f"filters.{key}")


def _ancestor(container: Any, refs: list[str]) -> bool:
    image, image_id = container.spec.image, container.image_id
    names = {image, image if ":" in image.rsplit("/", 1)[-1] else f"{image}:latest"}
    for ref in refs:
        bare = ref.split(":", 1)[-1] if ref.startswith("sha256:") else ref
        if ref in names or (":" not in ref.rsplit("/", 1)[-1] and f"{ref}:latest" in names):
            return True
        if len(bare) >= 4 and image_id.split(":", 1)[-1].startswith(bare):
            return True
    return False


def _networks(container: Any) -> set[str]:
    """The network asked for (`bridge`) and the one attached (the default's own name, corral0)."""
    attached = [container.network or {}, *getattr(container, "extra_attachments", [])]
    return {container.spec.network} | {a["network"] for a in attached if a.get("network")}


def _volumes(container: Any) -> set[str]:
    names = set()
    for mount in container.spec.mounts:
        names.update({getattr(mount, "source", ""), getattr(mount, "target", ""), getattr(mount, "name", "")})
    return names - {""}


_CONTAINER_TESTS: dict[str, Callable[[Any, list[str]], bool]] = {
    "label": lambda c, wanted: labels_match(wanted, dict(c.spec.labels)),
    "name": lambda c, wanted: _search(wanted, c.name),
    "id": lambda c, wanted: _search(wanted, c.id),
    "status": lambda c, wanted: c.state in wanted,
    "ancestor": _ancestor,
    "exited": lambda c, wanted: c.state == "exited" and str(c.exit_code) in wanted,
    "network": lambda c, wanted: bool(_networks(c) & set(wanted)),
    "volume": lambda c, wanted: bool(_volumes(c) & set(wanted)),
}


# Images (agent.images.model.Image)

def images(items: list[Any], filters: Filters) -> list[Any]:
    if not filters:
        return list(items)
    before = _image_bound(items, filters.get("before"), "before")
    since = _image_bound(items, filters.get("since"), "since")
    kept = []
    for image in items:
        if before is not None and image.created >= before:
            continue
        if since is not None and image.created <= since:
            continue
        if "dangling" in filters:
            dangling = not image.name or image.name == "<none>"
            if dangling != (filters["dangling"][-1].lower() in ("true", "1")):
                continue
        if "label" in filters and not labels_match(filters["label"], dict(image.config.labels)):
            continue
        if "reference" in filters and not any(_reference(image, pattern) for pattern in filters["reference"]):
            continue
        kept.append(image)
    return kept


def _reference(image: Any, pattern: str) -> bool:
    """docker's reference filter: a glob over NAME or NAME:TAG (`busy*`, `*:latest`)."""
    if ":" in pattern.rsplit("/", 1)[-1]:
        return fnmatchcase(f"{image.name}:{image.tag}", pattern)
    return fnmatchcase(image.name, pattern)


def _image_bound(items: list[Any], refs: list[str] | None, key: str) -> float | None:
    if not refs:
        return None
    ref = refs[-1]
    bare = ref.split(":", 1)[-1] if ref.startswith("sha256:") else ref
    for image in items:
        if ref in (image.name, f"{image.name}:{image.tag}") or image.id.split(":", 1)[-1].startswith(bare):
            return image.created
    raise NotFound(f"filters: {key}={ref}: no such image", field=f"filters.{key}")


# Volumes, as the API lists them (docker's shape: Name, Driver, Labels, UsageData.RefCount)

def volumes(items: list[dict], filters: Filters, users_of: Callable[[str], int] | None = None) -> list[dict]:
    """`users_of(name)` counts the containers using a volume (for `dangling`); without it the
    listing's UsageData.RefCount is read."""
    kept = []
    for volume in items:
        name = volume.get("Name", "")
        if "name" in filters and not _search(filters["name"], name):
            continue
        if "driver" in filters and volume.get("Driver", "local") not in filters["driver"]:
            continue
        if "label" in filters and not labels_match(filters["label"], dict(volume.get("Labels") or {})):
            continue
        if "dangling" in filters:
            users = users_of(name) if users_of else (volume.get("UsageData") or {}).get("RefCount", 0)
            if (users == 0) != (filters["dangling"][-1].lower() in ("true", "1")):
                continue
        kept.append(volume)
    return kept


# Networks, as the API lists them (name, driver, ...); a Corral network's id is its name.

def networks(items: list[dict], filters: Filters, builtin: str = "") -> list[dict]:
    """`builtin` names the default network (docker's `bridge`, a `type=builtin` network)."""
    for value in filters.get("type", []):
        if value not in ("custom", "builtin"):
            raise _bad("type", value, "custom or builtin")
    kept = []
    for network in items:
        name = network.get("name", "")
        if any(key in filters and not _search(filters[key], name) for key in ("name", "id")):
            continue
        if "driver" in filters and network.get("driver", "bridge") not in filters["driver"]:
            continue
        if "label" in filters and not labels_match(filters["label"], dict(network.get("labels") or {})):
            continue
        if "scope" in filters and "local" not in filters["scope"]:
            continue
        if "type" in filters and ("builtin" if name == builtin else "custom") not in filters["type"]:
            continue
        kept.append(network)
    return kept


# Events (agent.events.Event); `labels_of(id)` gives a container's labels, {} once it is gone.

def event_matches(event: Any, filters: Filters, labels_of: Callable[[str], dict] | None = None) -> bool:
    if not filters:
        return True
    if "type" in filters and event.type not in filters["type"]:
        return False
    if "event" in filters and event.action not in filters["event"]:
        return False
    if "scope" in filters and "local" not in filters["scope"]:
        return False
    if "container" in filters:
        if event.type != "container" and not event.id:
            return False
        if not any(ref in (event.id, event.name) or (len(ref) >= 4 and event.id.startswith(ref))
                   for ref in filters["container"]):
            return False
    if "image" in filters:
        image = str((event.attributes or {}).get("image", ""))
        names = {image, f"{image}:latest"} if image else set()
        if event.type == "image":
            names |= {event.id, event.name}
        if not names & set(filters["image"]) and not names & {f"{ref}:latest" for ref in filters["image"]}:
            return False
    if "label" in filters:
        labels = {key: str(value) for key, value in (event.attributes or {}).items()}
        if labels_of is not None and event.id:
            labels.update(labels_of(event.id))
        if not labels_match(filters["label"], labels):
            return False
    return True

