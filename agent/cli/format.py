"""How `corral` shows things, the way docker does: aligned tables, "5 seconds ago",
"Up 3 minutes", "Exited (137) 2 seconds ago", sizes like "4.26MB" and quoted, cut commands."""
from __future__ import annotations

TYPE_CHECKING = False   # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from collections.abc import Sequence

_COLUMN_GAP = "   "
_SIZE_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns padded to their widest cell and three spaces apart, like docker's tabwriter."""
    cells = [list(map(str, headers))] + [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        padded = [cell.ljust(width) for cell, width in zip(row[:-1], widths)] + [row[-1]]
        lines.append(_COLUMN_GAP.join(padded).rstrip())
    return "\n".join(lines) + "\n"


def human_duration(seconds: float) -> str:
    """docker's (go-units) HumanDuration: "Less than a second", "About a minute", "3 days"."""
    whole = int(seconds)
    if whole < 1:
        return "Less than a second"
    if whole == 1:
        return "1 second"
    if whole < 60:
        return f"{whole} seconds"
    minutes = whole // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def ago(timestamp: float | None, now: float) -> str:
    if timestamp is None:
        return ""
    return f"{human_duration(max(0.0, now - timestamp))} ago"


def human_size(size: int | float | None) -> str:
    """Decimal units with three significant digits, as `docker images` shows: 4.26MB."""
    if size is None:
        return "-"
    value = float(size)
    unit = 0
    while value >= 1000 and unit < len(_SIZE_UNITS) - 1:
        value /= 1000
        unit += 1
    return f"{value:.3g}{_SIZE_UNITS[unit]}"


def ellipsis(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def short_id(identifier: str) -> str:
    """The 12 hex digits docker shows, with any "sha256:" removed."""
    return identifier.split(":", 1)[-1][:12]


def container_command(container: dict) -> str:
    words = container.get("command")   # resolved by the daemon: entrypoint + cmd
    if not words:
        spec = container.get("spec") or {}
        words = list(spec.get("entrypoint") or []) + list(spec.get("command") or [])
    return '"' + ellipsis(" ".join(words), 20) + '"'


def container_status(container: dict, now: float) -> str:
    status = _status(container, now)
    # Loud on purpose: a privileged container is not isolated from the host's kernel.
    return f"{status} (PRIVILEGED)" if (container.get("spec") or {}).get("privileged") else status


def _status(container: dict, now: float) -> str:
    state = container.get("state", "")
    if state == "running":
        health = container.get("health")       # docker's "(healthy)", "(health: starting)"
        suffix = "" if not health else " (health: starting)" if health == "starting" else f" ({health})"
        return f"Up {human_duration(max(0.0, now - (container.get('started_at') or now)))}{suffix}"
    if state == "paused":
        return f"Up {human_duration(max(0.0, now - (container.get('started_at') or now)))} (Paused)"
    if state == "exited":
        code = container.get("exit_code")
        finished = container.get("finished_at")
        when = f" {ago(finished, now)}" if finished else ""
        return f"Exited ({code if code is not None else '?'}){when}"
    if state == "removing":
        return "Removal In Progress"
    return state.capitalize() or "Unknown"


def containers_table(containers: list[dict], now: float) -> str:
    ordered = sorted(containers, key=lambda c: c.get("created_at") or 0, reverse=True)
    rows = [(short_id(c["id"]), (c.get("spec") or {}).get("image", ""), container_command(c),
             ago(c.get("created_at"), now), container_status(c, now), c.get("name", ""))
            for c in ordered]
    return table(("CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES"), rows)


def images_table(images: list[dict], now: float, digests: bool = False) -> str:
    ordered = sorted(images, key=lambda i: i.get("created") or 0, reverse=True)
    headers = ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
    rows = [[i.get("name", "<none>"), i.get("tag", "<none>"), short_id(i.get("id", "")),
             ago(i.get("created"), now), human_size(i.get("size"))] for i in ordered]
    if digests:                 # docker puts DIGEST after TAG
        headers.insert(2, "DIGEST")
        for row, image in zip(rows, ordered):
            row.insert(2, _repo_digest(image))
    return table(tuple(headers), rows)


def _repo_digest(image: dict) -> str:
    """The digest this image has in the registry of its own name, as `docker images --digests`."""
    for entry in image.get("repo_digests") or []:
        name, _, digest = entry.partition("@")
        if name == image.get("name"):
            return digest
    return "<none>"


def event_line(event: dict) -> str:
    """`2024-05-01T12:00:00.123456+00:00 container start <id> (name=web, exit_code=0)`."""
    from datetime import datetime  # here: every verb imports this module, few print a date
    when = datetime.fromtimestamp(event.get("time", 0)).astimezone().isoformat(timespec="microseconds")
    attributes = dict(event.get("attributes") or {})
    if event.get("name"):
        attributes["name"] = event["name"]
    detail = ", ".join(f"{key}={_plain(value)}" for key, value in sorted(attributes.items()))
    line = f"{when} {event.get('type', '')} {event.get('action', '')} {event.get('id', '')}".rstrip()
    return f"{line} ({detail})" if detail else line


def _plain(value: object) -> str:
    if isinstance(value, str):
        return value
    import json  # not at the top: every `corral` imports this module for its errors, and json imports re
    return json.dumps(value)


def key_values(data: object, indent: int = 0) -> str:
    """Nested dicts as `Key: value` lines, indented per level, like `docker info`."""
    pad = " " * indent
    if isinstance(data, dict):
        lines = []
        for key, value in data.items():
            if isinstance(value, (dict, list)) and value:
                lines.append(f"{pad}{key}:")
                lines.append(key_values(value, indent + 1).rstrip("\n"))
            else:
                lines.append(f"{pad}{key}: {_scalar(value)}")
        return "\n".join(lines) + "\n"
    if isinstance(data, list):
        out = []
        for item in data:
            if isinstance(item, (dict, list)) and item:
                block = key_values(item, indent + 2)
                out.append(f"{pad}- {block[indent + 2:]}")   # the dash takes the first line's padding
            else:
                out.append(f"{pad}- {_scalar(item)}\n")
        return "".join(out)
    return f"{pad}{_scalar(data)}\n"


def _scalar(value: object) -> str:
    if value is None or value == [] or value == {}:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def error_text(exc: Exception) -> str:
    """`corral: <message>` and, when the error has one, a second line with the hint."""
    message = getattr(exc, "message", None) or str(exc)
    hint = getattr(exc, "hint", None)
    return f"corral: {message}\nhint: {hint}\n" if hint else f"corral: {message}\n"
