"""`corral policy prove [CONTAINER] [--repair]`: whether the kernel holds each enforcing rule of
the running containers now, read back from the kernel (agent/policy/prove.py); exit 1 when one
is not in force, so a CI job or a cron check can act on it. Threshold rules are listed with how
they are seen, `kernel` or `sampled` in the ENFORCED column, and never change the exit status."""
from __future__ import annotations

import argparse
import json

from agent.api.client import ApiClient

EXIT_NOT_ENFORCED = 1


def register(sub: argparse._SubParsersAction) -> None:
    prove = sub.add_parser("prove", help="check that the kernel holds every enforcing rule now (needs the daemon)",
                           description="For each enforcing rule of each running container (or of "
                                       "CONTAINER), read the kernel's side back: the kill table, the "
                                       "egress programs and table, the processes' seccomp filter, the "
                                       "cgroup limits. Exit 1 when a rule is not in force. Threshold "
                                       "rules show `kernel` (the rate_limits row holds their level, or "
                                       "a cgroup watch is armed) or `sampled`, with the reason.")
    prove.add_argument("container", nargs="?", metavar="CONTAINER", help="id, id prefix or name (default: all)")
    prove.add_argument("--repair", action="store_true",
                       help="put back what the kernel lost, then check again (the daemon does this every "
                            "--prove-interval seconds)")
    prove.add_argument("--canary", action="store_true",
                       help="also try each egress and syscall kill rule for real, with a short-lived process "
                            "in the container's cgroup and network namespace (docs/policies.md)")
    prove.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    prove.set_defaults(func=prove_policies)


def prove_policies(args: argparse.Namespace, client: ApiClient) -> int:
    proofs = client.policy_prove(args.container, repair=args.repair, canary=args.canary)
    if args.format == "json":
        print(json.dumps(proofs, indent=2))
    else:
        print(render(proofs))
    return EXIT_NOT_ENFORCED if any(p["applicable"] and not p["enforced"] for p in proofs) else 0


def render(proofs: list[dict]) -> str:
    if not proofs:
        return "no enforcing rules on running containers"
    rows = [("CONTAINER", "POLICY", "RULE", "KIND", "ENFORCED", "REASON")]
    for p in sorted(proofs, key=lambda p: (p["name"], p["policy"], p["rule"], p["kind"])):
        state = p.get("checked") or ("yes" if p["enforced"] else ("n/a" if not p["applicable"] else "NO"))
        rows.append((p["name"], p["policy"], p["rule"], p["kind"], state, p["reason"]))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r[:5], widths)) + ("  " + r[5] if r[5] else "")
                     for r in rows).rstrip()
