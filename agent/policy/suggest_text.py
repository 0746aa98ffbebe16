"""A Suggestion (agent/policy/suggest.py) as the user gets it: a policy file with a comment on
each rule saying which observation it comes from, and a Docker-format seccomp profile that
allows only the syscalls seen (plus the baseline).

The YAML is written as text, not dumped, so each comment sits above the rule it explains;
every scalar that could need quoting is written as a JSON string, which YAML reads as is.
`corral policy check` accepts the result (tests/unit/test_policy_suggest.py checks it).
"""
from __future__ import annotations

import json
import platform
from datetime import UTC, datetime

from agent.policy.suggest import BASELINE, RATE_HEADROOM, Suggestion

MiB = 1024 * 1024
# Docker's architecture names for the profile: the native one and its 32-bit companions.
PROFILE_ARCHES = {"x86_64": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
                  "aarch64": ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]}


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _q(value: str) -> str:
    return json.dumps(value)


def _size(value: int) -> str:
    return f"{value // MiB}Mi" if value % MiB == 0 else str(value)


def _number(value: float) -> str:
    """Exactly, without an exponent (`:g` would write 1.04858e+06)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _wrap(items: list[str], indent: str, width: int = 96) -> list[str]:
    """A flow list `[a, b, ...]` broken over lines of at most `width` characters."""
    lines, line = [], indent + "names: ["
    for i, item in enumerate(items):
        piece = item + (", " if i < len(items) - 1 else "]")
        if len(line) + len(piece) > width and not line.endswith("["):
            lines.append(line.rstrip())
            line = indent + "        "
        line += piece
    lines.append(line)
    return lines


def policy_yaml(s: Suggestion, *, holdout_note: str = "", observed: tuple[str, ...] = ()) -> str:
    """The policy file; `observed` names containers Corral did not start (deny rules skip them)."""
    o = s.observed
    out = [
        f"# Suggested by `corral policy suggest` from {o.samples} samples of "
        f"{', '.join(o.containers) or 'no container'}",
        f"# between {_when(o.start)} and {_when(o.end)}.",
        *([f"# {holdout_note}"] if holdout_note else []),
        "# Review it, try it with `corral policy replay FILE`, then copy it into the policy folder.",
        "apiVersion: corral/v1",
        "kind: Policy",
        "metadata:",
        f"  name: {s.name}",
        f"  description: {_q('least privilege for ' + ', '.join(o.containers) + ', from what it was seen doing')}",
        "spec:",
        "  # enforce: limits apply, deny rules fail with EPERM; audit would only alert",
        f"  mode: {s.mode}",
    ]
    out.extend(_selector(s))
    out.extend(_limits(s))
    if observed and s.denied:
        out.append(f"  # deny rules do not reach {', '.join(observed)}: Corral did not start "
                   f"{'it' if len(observed) == 1 else 'them'}, and seccomp is installed by its launcher")
    out.extend(_syscalls(s))
    out.extend(_network(s))
    out.extend(_thresholds(s))
    return "\n".join(out) + "\n"


def _selector(s: Suggestion) -> list[str]:
    out = ["  selector:"]
    sel = s.selector
    if sel.names is not None:
        out.append(f"    names: [{', '.join(_q(n) for n in sel.names)}]")
    if sel.images is not None:
        out.append(f"    images: [{', '.join(_q(i) for i in sel.images)}]")
    if sel.services is not None:
        out.append(f"    services: [{', '.join(_q(i) for i in sel.services)}]")
    if sel.labels:
        out.append("    labels: {" + ", ".join(f"{_q(k)}: {_q(v)}" for k, v in sorted(sel.labels.items())) + "}")
    return out if len(out) > 1 else ["  # no selector: applies to every container"]


def _limits(s: Suggestion) -> list[str]:
    if not s.limits:
        return ["  # limits: none suggested (no memory, CPU or pids figures were recorded)"]
    out = ["  limits:"]
    for limit in s.limits:
        if limit.resource == "memory":
            out.append(f"    # peak {limit.peak / MiB:.1f} MiB x {limit.headroom:g}, at least {_size(int(limit.floor))}")
            out.append(f"    memory: {_size(int(limit.value))}")
        elif limit.resource == "cpus":
            out.append(f"    # peak {limit.peak:.3f} CPUs x {limit.headroom:g}, at least {limit.floor:g}")
            out.append(f"    cpus: {limit.value:g}")
        else:
            out.append(f"    # peak {limit.peak:g} processes x {limit.headroom:g}, at least {limit.floor:g}")
            out.append(f"    pids: {int(limit.value)}")
    return out


def _syscalls(s: Suggestion) -> list[str]:
    out = []
    for name, calls in s.dangerous_used:
        out.append(f"  # {name} is not denied: it was called ({calls} calls seen)")
    if not s.denied:
        return out
    out.append("  syscalls:")
    out.append("    # never called in the window; each is a usual step of an escape or of host tampering")
    out.append("    # (the seccomp profile written with --seccomp allows only the syscalls seen)")
    out.append("    - name: never-used-dangerous")
    out.extend(_wrap(list(s.denied), "      "))
    out.append("      action: deny")
    return out


def _network(s: Suggestion) -> list[str]:
    if s.egress is None:
        return ["  # network: none suggested (this daemon's probes do not record destinations)"]
    out = ["  network:", "    egress:",
           "      # only the TCP destinations it connected to; UDP is not recorded, so it stays allowed",
           "      default: deny", "      rules:"]
    for i, rule in enumerate(s.egress):
        out.append(f"        # {rule.connects} connect{'s' if rule.connects != 1 else ''} seen")
        out.append(f"        - {{name: seen-{i}, action: allow, cidr: {rule.cidr}, "
                   f"ports: [{', '.join(str(p) for p in rule.ports)}], protocol: {rule.protocol}}}")
    out.append("        # UDP (DNS and the like) is not recorded by the probes")
    out.append("        - {name: udp-v4, action: allow, cidr: 0.0.0.0/0, protocol: udp}")
    out.append("        - {name: udp-v6, action: allow, cidr: \"::/0\", protocol: udp}")
    return out


def _thresholds(s: Suggestion) -> list[str]:
    if not s.thresholds:
        return []
    out = ["  thresholds:"]
    for t in s.thresholds:
        out.append(f"    # peak {t.peak:.4g} {t.what} x {RATE_HEADROOM:g}, at least {_number(t.floor)}: alert only")
        out.append(f"    - {{name: {t.signal.replace('_', '-')}, signal: {t.signal}, above: {_number(t.above)}, "
                   f"for: 10s, actions: [alert]}}")
    return out


def seccomp_profile(s: Suggestion, machine: str | None = None) -> dict:
    """Docker's format: everything not listed fails with EPERM."""
    machine = machine or platform.machine()
    return {
        "comment": (f"suggested by `corral policy suggest` for {', '.join(s.observed.containers)}: the "
                    f"syscalls seen between {_when(s.observed.start)} and {_when(s.observed.end)} plus "
                    f"{', '.join(BASELINE)}"),
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 1,
        "architectures": PROFILE_ARCHES.get(machine, []),
        "syscalls": [{"names": list(s.allowed), "action": "SCMP_ACT_ALLOW"}] if s.allowed else [],
    }
