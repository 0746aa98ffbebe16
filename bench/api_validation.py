"""What strict validation costs per request: decoding a body through its schema vs json.loads.

Bodies: a typical `corral run` ContainerSpec (a few env entries, a mount, a port, labels), a
large one (200 env entries, 50 mounts, 100 labels) and an exec request. Subjects, per body:
- `schema.decode` (depth check + msgspec typed decode with every bound and pattern), what the
  server does for each request with a body;
- `json.loads`, the anchor: what the server did before (and then built the dataclass by hand);
- msgspec's typed decode alone, to show what the bounds and patterns cost on top of it.
Each round times a batch of decodes of each subject, shuffled; ratios are paired per round.
Needs no root and no daemon: `python -m bench.api_validation`.
"""
from __future__ import annotations

import json
import time
from typing import Any, Callable

import msgspec

from agent import schema
from agent.api.bodies import ExecRequest
from agent.runtime.model import ContainerSpec
from bench.common import interleave, row_from

BATCH = 2000


class _Unbounded(msgspec.Struct, forbid_unknown_fields=True):
    """ContainerSpec's shape with plain types: msgspec's typed decode without bounds or patterns."""

    image: str
    command: list[str] = []
    name: str | None = None
    env: list[str] = []
    workdir: str | None = None
    mounts: list[dict[str, Any]] = []
    hostname: str | None = None
    memory: int | None = None
    cpus: float | None = None
    pids_limit: int | None = None
    network: str = "bridge"
    ports: list[dict[str, Any]] = []
    labels: dict[str, str] = {}
    auto_remove: bool = False
    entrypoint: list[str] | None = None


def bodies() -> dict[str, tuple[bytes, type]]:
    typical = {"image": "busybox:latest", "name": "web-1", "command": ["sh", "-c", "httpd -f -p 8080"],
               "env": ["PATH=/usr/bin:/bin", "MODE=prod", "TZ=UTC"], "workdir": "/srv",
               "mounts": [{"source": "/srv/www", "target": "/www", "readonly": True}],
               "hostname": "web-1", "memory": 64 << 20, "cpus": 0.5, "pids_limit": 100,
               "ports": [{"host_port": 8080, "container_port": 8080}], "labels": {"tier": "web", "team": "a"}}
    large = dict(typical, env=[f"VAR_{i}=value-{i}" for i in range(200)],
                 mounts=[{"source": f"/srv/d{i}", "target": f"/d{i}"} for i in range(50)],
                 labels={f"label.{i}": f"value {i}" for i in range(100)})
    exec_body = {"command": ["sh", "-c", "ls -l /"], "env": ["A=1"], "workdir": "/"}
    return {"run spec (typical)": (json.dumps(typical).encode(), ContainerSpec),
            "run spec (200 env, 50 mounts, 100 labels)": (json.dumps(large).encode(), ContainerSpec),
            "exec request": (json.dumps(exec_body).encode(), ExecRequest)}


def _batch(call: Callable[[], Any]) -> Callable[[], float]:
    def timed() -> float:
        start = time.perf_counter()
        for _ in range(BATCH):
            call()
        return (time.perf_counter() - start) / BATCH
    return timed


def run(rounds: int = 15) -> dict:
    rows, raw = [], {}
    for label, (body, kind) in bodies().items():
        # Default arguments bind this iteration's body and kind (the closures outlive it).
        subjects = {"schema": _batch(lambda body=body, kind=kind: schema.decode(body, kind)),
                    "json.loads": _batch(lambda body=body: json.loads(body))}
        if kind is ContainerSpec:
            subjects["msgspec plain"] = _batch(lambda body=body: msgspec.json.decode(body, type=_Unbounded))
        samples = interleave(subjects, rounds)
        raw[label] = {"bytes": len(body), **samples}
        rows.append(row_from("api", f"validate {label}, {len(body)} B", "us", samples["schema"], scale=1e6,
                             anchor_name="json.loads", anchor_values=samples["json.loads"]))
        rows.append(row_from("api", "  json.loads of the same", "us", samples["json.loads"], scale=1e6))
        if "msgspec plain" in samples:
            rows.append(row_from("api", "  msgspec typed, no bounds", "us", samples["msgspec plain"], scale=1e6,
                                 anchor_name="json.loads", anchor_values=samples["json.loads"]))
    return {"rows": [row.to_dict() for row in rows], "raw": raw}


if __name__ == "__main__":
    for row in run()["rows"]:
        ratio = f"  {row['ratio']:.2f}x {row['anchor']} ({row['ratio_p25']:.2f}-{row['ratio_p75']:.2f})" \
            if row.get("ratio") else ""
        print(f"{row['figure']:55} {row['median']:8.2f} {row['unit']} (p25-p75 {row['p25']:.2f}-{row['p75']:.2f}){ratio}")
