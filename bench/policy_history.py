"""What the policy history for `corral policy suggest` costs: one policy tick's records of 50
containers kept on disk (HistoryStore appends under /var/tmp) against the same records kept in
memory only (the replay history before it), and answering a suggestion over an hour of
history (3600 samples, 60 syscalls, 20 destinations) against replaying one policy over it.

Interleaved, in a temporary directory under /var/tmp (the daemon's filesystem here, ext4).
"""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from agent.policy.engine import ContainerRef
from agent.policy.history import SignalHistory
from agent.policy.history_store import HistoryStore
from agent.policy.model import Selector
from agent.policy.replay import replay
from agent.policy.signals import SignalSample
from agent.policy.suggest import observe, suggest
from agent.policy.suggest_report import SuggestRequest, suggest_report
from agent.policy.suggest_text import policy_yaml
from bench.common import Row, summary

CONTAINERS = 50
SYSCALLS = [f"s{n}" for n in range(60)]     # names need no table here: syscall_known is None


def _sample(t: float) -> SignalSample:
    return SignalSample(t, {"memory_bytes": 1e7, "cpu_percent": 3.0, "pids": 4.0, "syscalls_per_second": 500.0,
                            "tcp_connects_per_second": 1.0, "network_tx_bytes_per_second": 1e4},
                        {name: (5.0, 0.0) for name in SYSCALLS[:20]})


def _tick(history: SignalHistory, refs: list[ContainerRef], t: float) -> float:
    totals = {name: (int(t) + 1, 0) for name in SYSCALLS}
    destinations = {(f"10.0.0.{n}", 443): int(t) + 1 for n in range(20)}
    started = time.perf_counter()
    for ref in refs:
        history.record(ref, _sample(t), syscall_totals=totals, tcp_destinations=destinations)
    return time.perf_counter() - started


def run(rounds: int = 200) -> dict:
    directory = Path(tempfile.mkdtemp(prefix="corral-bench-history-", dir="/var/tmp"))
    refs = [ContainerRef(f"c{n:04d}", f"web-{n}") for n in range(CONTAINERS)]
    samples: dict[str, list[float]] = {"memory": [], "disk": [], "suggest": [], "replay": []}
    try:
        memory = SignalHistory(capacity=3600)
        disk = SignalHistory(capacity=3600, store=HistoryStore(directory, 3600))
        for t in range(rounds):
            samples["memory"].append(_tick(memory, refs, 1e9 + t))
            samples["disk"].append(_tick(disk, refs, 1e9 + t))
        hour = SignalHistory(capacity=3600)
        for t in range(3600):
            _tick(hour, refs[:1], 1e9 + t)
        behaviour = hour.behaviour(refs[0].id)
        assert behaviour is not None
        policy_text = policy_yaml(suggest(observe([behaviour], 1e9, 1e9 + 3600), Selector(names=("web-0",)),
                                          name="p"))
        from agent.policy.check import load_text
        policy = load_text(policy_text, "p.yaml").policies[0]
        for _ in range(max(3, rounds // 40)):
            started = time.perf_counter()
            suggest_report([behaviour], SuggestRequest(Selector(names=("web-0",))))
            samples["suggest"].append(time.perf_counter() - started)
            started = time.perf_counter()
            replay(policy, hour)
            samples["replay"].append(time.perf_counter() - started)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    ms = {name: summary([v * 1e3 for v in values]) for name, values in samples.items()}
    rows = [Row("history", f"policy tick records of {CONTAINERS} containers, kept on disk", "ms",
                ms["disk"]["median"], ms["disk"]["p25"], ms["disk"]["p75"], anchor="kept in memory only",
                ratio=ms["disk"]["median"] / ms["memory"]["median"]).to_dict(),
            Row("history", "policy suggest over an hour of history (3600 samples)", "ms",
                ms["suggest"]["median"], ms["suggest"]["p25"], ms["suggest"]["p75"],
                anchor="policy replay over it", ratio=ms["suggest"]["median"] / ms["replay"]["median"]).to_dict()]
    return {"ms": ms, "rows": rows}
