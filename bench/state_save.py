"""What durable state costs on the launch path: the saves of one container's life (add, the
create record, running, exited, removing) with the create record fsync'd (today) against the
same saves with none fsync'd (before) and with every one fsync'd; and one network record
through the one atomic writer against a bare rename (no fsync).

Run interleaved in a temporary directory under /var/tmp (the daemon's filesystem here, ext4).
"""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from agent.atomic_file import write_atomically
from agent.runtime.model import Container, ContainerSpec
from agent.runtime.state import ContainerStore
from bench.common import Row, summary


def _life(store: ContainerStore, number: int, durable: set[int]) -> float:
    container = Container(id=f"c{number:08d}", name=f"n{number}", spec=ContainerSpec(image="busybox"),
                          image_id="sha256:" + "0" * 64, created_at=time.time(), command=["/bin/true"])
    started = time.perf_counter()
    store.add(container)
    for index, state in enumerate(("created", "running", "exited", "removing"), start=1):
        container.state = state
        store.save(container, durable=index in durable)
    return time.perf_counter() - started


def _bare_rename(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def run(rounds: int = 300) -> dict:
    directory = Path(tempfile.mkdtemp(prefix="corral-bench-state-", dir="/var/tmp"))
    samples: dict[str, list[float]] = {"none": [], "create": [], "every": [], "atomic": [], "rename": []}
    try:
        store = ContainerStore(directory)
        record = directory / "record.json"
        text = '{"attachment": {"network": "corral0"}}\n' * 8
        for number in range(rounds):
            samples["none"].append(_life(store, 3 * number, set()))
            samples["create"].append(_life(store, 3 * number + 1, {1}))
            samples["every"].append(_life(store, 3 * number + 2, {1, 2, 3, 4}))
            started = time.perf_counter()
            write_atomically(record, text)
            samples["atomic"].append(time.perf_counter() - started)
            started = time.perf_counter()
            _bare_rename(record, text)
            samples["rename"].append(time.perf_counter() - started)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    ms = {name: summary([v * 1e3 for v in values]) for name, values in samples.items()}
    none = ms["none"]["median"]
    rows = [Row("state", f"container state saves, {label}", "ms", ms[key]["median"], ms[key]["p25"], ms[key]["p75"],
                anchor="none fsync'd", ratio=ms[key]["median"] / none).to_dict()
            for key, label in (("none", "none fsync'd (before)"), ("create", "create record fsync'd (now)"),
                               ("every", "every save fsync'd"))]
    rows.append(Row("state", "network record: atomic writer vs bare rename", "ms", ms["atomic"]["median"],
                    ms["atomic"]["p25"], ms["atomic"]["p75"], anchor="bare rename",
                    ratio=ms["atomic"]["median"] / ms["rename"]["median"]).to_dict())
    return {"ms": ms, "rows": rows}
