"""What loading a policy file costs, and what refusing a hostile one costs.

In-process, interleaved against the anchor of plain `yaml.load` with libyaml's safe loader on
the same text (what a loader without limits or checks would pay): the shipped
web-guardrails.yaml, a 100-policy file near the node limit, and the corpus's billion laughs
(the anchor composes it quickly, sharing the aliased lists; it is walking them that explodes).
Through the CLI, `corral policy check` of the billion laughs against `corral version` (the
CLI's start-up). No daemon, no root needed.

    .venv/bin/python -m bench policies        (or: .venv/bin/python bench/policy_load.py)
"""
from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml

from agent.policy.check import load_text
from agent.syscall_table import known_syscall, load_syscall_table
from bench.common import REPO, interleave, row_from, timed_command

CORRAL = str(Path(sys.executable).parent / "corral")
LAUGHS = REPO / "tests" / "data" / "hostile-policies" / "billion-laughs.yaml"


def _many() -> str:
    doc = ("---\napiVersion: corral/v1\nkind: Policy\nmetadata: {name: p%d}\nspec:\n  syscalls:\n"
           "    - {action: alert, names: [" + ", ".join(["ptrace"] * 150) + "]}\n")
    return "".join(doc % i for i in range(100))


def _timer(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def _subjects(text: str, known: Callable[[str], bool]) -> dict[str, Callable[[], float]]:
    def corral() -> float:
        return _timer(lambda: load_text(text, "f.yaml", known))

    def libyaml() -> float:
        return _timer(lambda: list(yaml.load_all(text, Loader=yaml.CSafeLoader)))

    return {"corral": corral, "libyaml": libyaml}


def run(rounds: int = 20) -> dict:
    known = known_syscall(load_syscall_table())
    texts = {"web-guardrails.yaml": (REPO / "policies" / "web-guardrails.yaml").read_text(),
             "100 policies, 15,000 nodes": _many(),
             "billion-laughs.yaml (refused)": LAUGHS.read_text()}
    rows, raw = [], {}
    for figure, text in texts.items():
        samples = interleave(_subjects(text, known), rounds)
        raw[figure] = samples
        rows.append(row_from("policies", f"load+check {figure}", "ms", samples["corral"], scale=1e3,
                             anchor_name="libyaml", anchor_values=samples["libyaml"]))
    cli = interleave({
        "check": lambda: timed_command([CORRAL, "policy", "check", str(LAUGHS)], check=False),
        "version": lambda: timed_command([CORRAL, "version"], check=False),
    }, max(3, rounds // 4))
    raw["cli"] = cli
    rows.append(row_from("policies", "CLI: policy check billion-laughs.yaml", "ms", cli["check"], scale=1e3,
                         anchor_name="corral version", anchor_values=cli["version"],
                         note="the tests' subprocess timeout is 2 s"))
    return {"rows": [r.to_dict() for r in rows], "raw": raw}


if __name__ == "__main__":
    result = run()
    for row in result["rows"]:
        print(json.dumps(row))
