"""The policy history on disk: one JSON-lines file per container under `<root>/policy-history`,
so a daemon restart keeps what `corral policy replay` and `corral policy suggest` read.

Each line is one record: {"container": {...}} (its name, image and labels, written again when
they change), {"sample": {...}} (a SignalSample), {"syscalls": {name: [first, last, count]}}
or {"destinations": {...}} (what was seen; only new entries and ones whose last time moved a
minute or more). Appending costs one write per container and tick. A file is rewritten from
the history's ring once it holds a quarter more lines than the ring's capacity, so disk use
stays within about 1.25 times what the ring holds in memory; files of containers the history let go of are removed, and files older
than `max_age` are removed at load. A line that does not parse (a crash mid-write) is
skipped and counted in `skipped`; it never stops the load.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path

from agent.atomic_file import write_atomically
from agent.policy.engine import ContainerRef
from agent.policy.history import Seen, SignalHistory
from agent.policy.signals import SignalSample

log = logging.getLogger("corral.policy.history")

MIN_SLACK_LINES = 64             # lines past the capacity before a file is rewritten: at least this...
SLACK_SHARE = 0.25               # ... or this share of the capacity


def _ref_dict(ref: ContainerRef) -> dict:
    return {"id": ref.id, "name": ref.name, "image": ref.image, "labels": dict(ref.labels)}


def _sample_from(data: dict) -> SignalSample:
    return SignalSample(float(data["time"]), dict(data.get("values") or {}),
                        {k: (float(v[0]), float(v[1])) for k, v in (data.get("syscalls") or {}).items()},
                        data.get("frozen"))


class HistoryStore:
    """Writes a SignalHistory's records under `directory`; `load` fills a history from them."""

    def __init__(self, directory: Path | str, capacity: int, *, max_age: float = 7 * 86400.0) -> None:
        self.directory = Path(directory)
        self.capacity = capacity
        self.max_age = max_age
        self.skipped = 0                      # lines that did not parse at load
        self._lines: dict[str, int] = {}
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _path(self, container_id: str) -> Path:
        if not container_id or "/" in container_id or container_id.startswith("."):
            raise ValueError(f"container id {container_id!r}: not a file name")
        return self.directory / f"{container_id}.jsonl"

    def _append(self, container_id: str, record: dict) -> None:
        try:
            with open(self._path(container_id), "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record, separators=(",", ":")) + "\n")
        except OSError as exc:     # a full disk must not stop the policy tick
            log.warning("policy history of %s not written: %s", container_id, exc)
            return
        self._lines[container_id] = self._lines.get(container_id, 0) + 1

    # --- HistoryWriter --------------------------------------------------------------------------

    def container(self, ref: ContainerRef) -> None:
        self._append(ref.id, {"container": _ref_dict(ref)})

    def sample(self, container_id: str, sample: SignalSample) -> None:
        self._append(container_id, {"sample": sample.to_dict()})

    def seen(self, container_id: str, kind: str, changed: Mapping[str, Seen]) -> None:
        self._append(container_id, {kind: {k: v.to_list() for k, v in changed.items()}})

    def forget(self, container_id: str) -> None:
        self._lines.pop(container_id, None)
        try:
            self._path(container_id).unlink(missing_ok=True)
        except OSError as exc:
            log.warning("policy history of %s not removed: %s", container_id, exc)

    def compact_due(self, container_id: str) -> bool:
        slack = max(MIN_SLACK_LINES, int(self.capacity * SLACK_SHARE))
        return self._lines.get(container_id, 0) > self.capacity + slack

    def rewrite(self, ref: ContainerRef, samples: list[SignalSample], syscalls: Mapping[str, Seen],
                destinations: Mapping[str, Seen]) -> None:
        """Replace the container's file with exactly what the history holds."""
        lines = [{"container": _ref_dict(ref)}, {"syscalls": {k: v.to_list() for k, v in syscalls.items()}},
                 {"destinations": {k: v.to_list() for k, v in destinations.items()}}]
        lines.extend({"sample": s.to_dict()} for s in samples)
        text = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
        write_atomically(self._path(ref.id), text, mode=0o600, durable=False)
        self._lines[ref.id] = len(lines)

    # --- load -----------------------------------------------------------------------------------

    def load(self, history: SignalHistory, now: float | None = None) -> int:
        """Fill `history` from the files, oldest first; returns the containers restored."""
        now = time.time() if now is None else now
        files = []
        for path in self.directory.glob("*.jsonl"):
            try:
                modified = path.stat().st_mtime
            except OSError:
                continue
            if now - modified > self.max_age:
                path.unlink(missing_ok=True)
                continue
            files.append((modified, path))
        files.sort()
        restored = 0
        for _, path in files[-history.max_containers:]:
            if self._restore(path, history):
                restored += 1
        return restored

    def _restore(self, path: Path, history: SignalHistory) -> bool:
        ref: ContainerRef | None = None
        samples: list[SignalSample] = []
        seen: dict[str, dict[str, Seen]] = {"syscalls": {}, "destinations": {}}
        lines = 0
        try:
            with open(path, encoding="utf-8") as handle:
                for line in handle:
                    lines += 1
                    try:
                        record = json.loads(line)
                        if "container" in record:
                            c = record["container"]
                            ref = ContainerRef(str(c["id"]), str(c["name"]), str(c.get("image", "")),
                                               dict(c.get("labels") or {}))
                        elif "sample" in record:
                            samples.append(_sample_from(record["sample"]))
                        else:
                            for kind in ("syscalls", "destinations"):
                                for key, (first, last, count) in (record.get(kind) or {}).items():
                                    kept = seen[kind].get(key)
                                    seen[kind][key] = Seen(kept.first if kept else float(first), float(last),
                                                           int(count), written=float(last))
                    except (ValueError, KeyError, TypeError, AttributeError):
                        self.skipped += 1
        except OSError as exc:
            log.warning("policy history %s not read: %s", path, exc)
            return False
        if ref is None or ref.id != path.stem:
            self.skipped += lines
            path.unlink(missing_ok=True)
            return False
        history.restore(ref, samples[-self.capacity:], seen["syscalls"], seen["destinations"])
        self._lines[ref.id] = lines
        return True
