"""CLI start-up (issue 20 item 3): what a person waits for at each `corral` command.

Subjects, one of each per round in a shuffled order, against one daemon with a few containers:
  corral_ps    `corral ps`: the interpreter, the imports `ps` needs, one API call, the table
  corral_run   `corral run --rm --net none busybox true`: start-up plus a whole container's life
  corral_run_client  the same with no daemon at --host: the client's start up to its connect
  python       the venv's `python -c pass`: the interpreter alone (what no import change can cut)
  podman_ps    `podman ps -a` on a private store (anchor)
  podman_run   `podman run --rm --network none` of the same rootfs (anchor; runc, as bench/launch.py)

Targets: `corral ps` <= 40 ms; `corral run --rm` <= 0.3x podman. `corral VERB` builds only
VERB's parser (agent/cli/main.py VERBS): every verb's parser costs ~20 ms. Profile with
`python -X importtime -m agent.cli ps`.

Corral's modules are compiled first (compileall, as pip does at install): where
PYTHONDONTWRITEBYTECODE is set, a module edited since its last .pyc would otherwise be compiled
again at every `corral` start (~3 ms for run.py alone).
"""
from __future__ import annotations

import compileall
import sys
from pathlib import Path

from bench.common import CORRAL, BenchDaemon, interleave, row_from, timed_command
from bench.launch import BUSYBOX, OciAnchors

PS_TARGET_MS = 40.0
RUN_TARGET = 0.3
NO_DAEMON = "unix:///tmp/corral-bench-nobody-here/corral.sock"
RUN = ["run", "--rm", "--net", "none", BUSYBOX, "true"]


def run(rounds: int = 20) -> dict:
    ms = 1e3
    compileall.compile_dir(str(Path(__file__).parents[1] / "agent"), quiet=1)
    with BenchDaemon("--no-probes", "--no-observe", name="cli-startup") as daemon:
        for number in range(3):         # `ps` lists something, as it would on a used host
            daemon.run({"image": BUSYBOX, "command": ["sleep", "600"], "name": f"listed-{number}", "network": "none"})
        anchors = OciAnchors(daemon.root, daemon.root / "anchors")
        try:
            subjects = {
                "corral_ps": lambda: timed_command([CORRAL, "ps"], env=daemon.env),
                "corral_run": lambda: timed_command([CORRAL, *RUN], env=daemon.env),
                "corral_run_client": lambda: timed_command([CORRAL, "--host", NO_DAEMON, *RUN], check=False),
                "python": lambda: timed_command([sys.executable, "-c", "pass"]),
            }
            if anchors.podman_ready():
                subjects["podman_ps"] = anchors.podman_ps
                subjects["podman_run"] = anchors.podman
            samples = interleave(subjects, rounds, warmup=2, progress="cli start-up")
        finally:
            problems = anchors.close()
            daemon.remove_all()
    rows = []
    podman_ps, podman_run = samples.get("podman_ps"), samples.get("podman_run")
    anchor = ("podman ps", podman_ps) if podman_ps else ("python -c pass", samples["python"])
    ps_row = row_from("cli", "`corral ps` (3 containers)", "ms", samples["corral_ps"], scale=ms,
                      anchor_name=anchor[0], anchor_values=anchor[1], target=f"<= {PS_TARGET_MS:.0f} ms")
    ps_row.met = ps_row.median <= PS_TARGET_MS
    rows.append(ps_row)
    if podman_run:
        rows.append(row_from("cli", "`corral run --rm --net none busybox true`", "ms", samples["corral_run"],
                             scale=ms, anchor_name="podman run", anchor_values=podman_run,
                             target=f"<= {RUN_TARGET}x podman", limit=RUN_TARGET))
    else:
        rows.append(row_from("cli", "`corral run --rm --net none busybox true`", "ms", samples["corral_run"],
                             scale=ms, anchor_name="python -c pass", anchor_values=samples["python"],
                             note=f"no podman anchor: {anchors.podman_problem}"))
    rows.append(row_from("cli", "`corral run` client alone (no daemon: start to connect)", "ms",
                         samples["corral_run_client"], scale=ms, anchor_name=anchor[0], anchor_values=anchor[1]))
    rows.append(row_from("cli", "venv `python -c pass` (interpreter alone)", "ms", samples["python"], scale=ms,
                         anchor_name=anchor[0], anchor_values=anchor[1]))
    for name, label in (("podman_ps", "anchor: podman ps -a"), ("podman_run", "anchor: podman run --rm")):
        if name in samples:
            rows.append(row_from("cli", label, "ms", samples[name], scale=ms,
                                 anchor_name="python -c pass", anchor_values=samples["python"]))
    raw = {name: [round(v * ms, 3) for v in values] for name, values in samples.items()}
    return {"rows": [r.to_dict() for r in rows], "samples_ms": raw, "rounds": rounds,
            "podman_problem": anchors.podman_problem, "cleanup_problems": problems}


if __name__ == "__main__":
    from bench.__main__ import main
    sys.exit(main(["cli", *sys.argv[1:]]))
