"""`corral policy check PATH...`: validate policy files locally, with no daemon.

Prints every problem as `file:line:col: path: message` and exits 1, or prints a summary and
exits 0, so it works as a git pre-commit hook and as a CI step (docs/policies.md). The
daemon-backed verbs `policy ls`, `policy explain CONTAINER`, `policy replay FILE --since 1h`,
`policy suggest CONTAINER` (agent/cli/policy_suggest.py) and `unfreeze CONTAINER` ask the
daemon's API.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime

from agent.api.client import ApiClient
from agent.cli.format import event_line, table
from agent.errors import InvalidArgument, PolicyError

EXIT_PROBLEMS = 1


def register(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser("policy", help="check, list, explain and replay policies",
                              description="Work with Corral policies (YAML files; see docs/policies.md).")
    sub = parser.add_subparsers(dest="policy_verb", metavar="VERB")
    parser.set_defaults(func=lambda args, client: _usage(parser))

    check = sub.add_parser("check", help="validate policy files and folders (needs no daemon)",
                           description="Report every problem in the given files and folders (their "
                                       "*.yaml and *.yml files) as file:line:col: path: message; "
                                       "exit 1 when there is any.")
    check.add_argument("paths", nargs="+", metavar="PATH", help="policy files or folders")
    check.add_argument("--format", choices=("text", "json"), default="text",
                       help="text: one line per problem; json: a list of problem objects")
    check.add_argument("-q", "--quiet", action="store_true", help="print nothing when all is well")
    check.add_argument("--max-size", default="1Mi", metavar="SIZE",
                       help="refuse files larger than this, like the daemon's --policy-max-size "
                            "(default %(default)s)")
    check.set_defaults(func=check_policies)

    ls = sub.add_parser("ls", help="list the policies in force (needs the daemon)",
                        description="List the daemon's policies: mode, running containers selected, "
                                    "file and its git commit; files that failed to load are listed "
                                    "after (their previous version stays in force).")
    ls.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    ls.set_defaults(func=list_policies)

    explain = sub.add_parser("explain", help="which policies and rules apply to a container (or each replica "
                                             "of a service), and why",
                             description="Show the effective policy of a container: where each limit "
                                         "and rule comes from, each threshold's state and current "
                                         "value, and the policy events of the container.")
    explain.add_argument("container", metavar="CONTAINER", help="id, id prefix or name; or a service's name")
    explain.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    explain.set_defaults(func=explain_policies)

    replay = sub.add_parser("replay", help="what a proposed policy would have done (needs the daemon)",
                            description="Evaluate the policies of FILE against the signal history "
                                        "the daemon keeps and print what they would have done and "
                                        "when, without acting.")
    replay.add_argument("file", metavar="FILE", help="a policy file")
    replay.add_argument("--since", default="1h", metavar="WHEN",
                        help="a duration back from now (10m, 1h), a UNIX timestamp or ISO date (default 1h)")
    replay.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    replay.set_defaults(func=replay_policy)
    from agent.cli.policy_test import register as register_test
    register_test(sub)
    from agent.cli.policy_prove import register as register_prove
    register_prove(sub)
    from agent.cli.policy_suggest import register as register_suggest
    register_suggest(sub)

    unfreeze = verbs.add_parser("unfreeze", help="thaw a container a policy froze",
                                description="Thaw a container frozen by a policy's freeze action; the "
                                            "rules that froze it resolve (and freeze again after their "
                                            "`for:` if their condition still holds).")
    unfreeze.add_argument("container", metavar="CONTAINER", help="id, id prefix or name")
    unfreeze.set_defaults(func=unfreeze_container)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 0


def check_policies(args: argparse.Namespace, client: ApiClient | None = None) -> int:
    # Imported here: `corral ps` must not pay for YAML and the syscall table.
    from agent.policy.check import check_files
    from agent.policy.yaml_source import YamlLimits
    from agent.units import parse_size

    loaded, problems = check_files(args.paths, limits=YamlLimits(max_bytes=parse_size(args.max_size,
                                                                                      field="--max-size")))
    if args.format == "json":
        print(json.dumps([p.to_dict() for p in problems], indent=2))
        return EXIT_PROBLEMS if problems else 0
    for problem in problems:
        print(problem)
    if problems:
        files = len({p.file for p in problems})
        sys.stderr.write(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} "
                         f"in {files} file{'s' if files != 1 else ''}\n")
        return EXIT_PROBLEMS
    if not args.quiet:
        policies, files = sum(len(item.policies) for item in loaded), len(loaded)
        print(f"ok: {policies} polic{'ies' if policies != 1 else 'y'} in {files} file{'s' if files != 1 else ''}")
    return 0


def list_policies(args: argparse.Namespace, client: ApiClient) -> int:
    answer = client.policies()
    if args.format == "json":
        print(json.dumps(answer, indent=2))
        return 0
    rows = []
    for policy in answer["policies"]:
        commit = policy.get("commit") or "-"
        if policy.get("modified"):
            commit += " (modified)"
        rows.append((policy["name"], policy["mode"], ",".join(policy["containers"]) or "-",
                     os.path.basename(policy["file"]), commit))
    sys.stdout.write(table(("NAME", "MODE", "CONTAINERS", "FILE", "COMMIT"), rows))
    in_force = {policy["file"] for policy in answer["policies"]}
    for file, problems in sorted(answer.get("problems", {}).items()):
        kept = "previous version kept" if file in in_force else "never loaded"
        sys.stderr.write(f"broken, {kept}: {file}\n")
        for problem in problems:
            sys.stderr.write(f"  {problem}\n")
    return 0


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp).astimezone().strftime("%H:%M:%S")


def _number(value) -> str:
    return "-" if value is None else f"{value:g}"


def explain_policies(args: argparse.Namespace, client: ApiClient) -> int:
    answer = client.policy_explain(args.container)
    if args.format == "json":
        print(json.dumps(answer, indent=2))
        return 0
    if "service" in answer:          # a service: each replica's explanation
        print(f"Service: {answer['service']} ({len(answer['replicas'])} replicas)")
        for replica in answer["replicas"]:
            print()
            print("\n".join(explanation(replica)))
        return 0
    print("\n".join(explanation(answer)))
    return 0


def explanation(answer: dict) -> list[str]:
    """The text of one container's `policy explain`."""
    effective = answer["effective"]
    out = [f"Container: {answer['name']} ({answer['id'][:12]}, {answer['image']}, {answer['state']})"]
    policies = effective["policies"]
    out.append("Policies: " + (", ".join(p["name"] + (" (audit)" if p["mode"] == "audit" else "")
                                         for p in policies) or "none select it"))
    out.append("Limits:")
    in_force = answer.get("limits_in_force") or {}
    enforcement = answer.get("enforcement") or {}
    for resource, value in effective["limits"].items():
        if value is not None:
            out.append(f"  {resource}: {value['value']:g}  from {value['from']}")
    for item in effective["audit_limits"]:
        out.append(f"  {item['resource']}: {item['value']:g}  from {item['from']} (not applied)")
    if in_force:
        out.append("  in force: " + ", ".join(f"{k}={'unlimited' if v is None else v}" for k, v in in_force.items()))
    if effective["syscalls"]:
        out.append("Syscalls:")
        for rule in effective["syscalls"]:
            out.append(f"  {rule['action']:<6} {rule['syscall']:<20} from {rule['from']}")
        out.append(f"  seccomp filter in force: {answer['seccomp']['filter_in_force']}")
        kill = enforcement.get("syscall_kill")
        if kill:
            out.append(f"  kill rules: {kill.get('state', 'unknown')}")
    if effective["egress"]:
        out.append(f"Egress ({enforcement.get('egress', {}).get('state', 'unknown')}):")
        for part in effective["egress"]:
            out.append(f"  default {part['default']} from {part['from']}")
            for rule in part["rules"]:
                out.append(f"    {rule['action']} {rule['cidr']} ports={rule['ports'] or 'all'} "
                           f"protocol={rule['protocol'] or 'any'} ({rule['rule']})")
    states = {f"{s['policy']}/{s['rule']}": s for s in answer["states"]}
    detection = {d["rule"]: d for d in answer.get("detection") or []}
    values = (answer.get("signals") or {}).get("values", {})
    syscalls = (answer.get("signals") or {}).get("syscalls", {})
    if effective["thresholds"]:
        out.append("Thresholds:")
        for rule in effective["thresholds"]:
            key = rule["rule"].split(" ")[0]
            if rule["syscall"]:
                current = (syscalls.get(rule["syscall"]) or [0, 0])[0 if rule["signal"] == "syscalls_per_second" else 1]
            else:
                current = values.get(rule["signal"])
            state = states.get(key)
            phase = "ok" if state is None else state["phase"]
            if state and state["phase"] == "firing":
                phase += f" since {_when(state['fired_at'])} ({', '.join(state['taken'])})"
            elif state:
                phase += f" since {_when(state['since'])}"
            signal = rule["signal"] + (f"({rule['syscall']})" if rule["syscall"] else "")
            out.append(f"  {rule['rule']}: {signal} > {rule['above']:g} for {rule['for']:g}s "
                       f"-> {', '.join(rule['actions'])}; now {_number(current)}: {phase}")
            seen = detection.get(rule["rule"])
            if seen:
                out.append(f"    checked: {seen['checked']} ({seen['by']}: {seen['detail']})")
    if answer["events"]:
        out.append("Recent policy events:")
        out.extend("  " + event_line(event) for event in answer["events"])
    return out


def replay_policy(args: argparse.Namespace, client: ApiClient) -> int:
    from agent.cli.events import parse_since
    from agent.policy.check import read_capped
    from agent.policy.yaml_source import SyntaxProblem, YamlLimits, decode
    limits = YamlLimits()
    try:
        raw = read_capped(args.file, limits)
    except OSError as exc:
        raise InvalidArgument(f"policy file {args.file!r}: cannot read it: {exc.strerror or exc}") from None
    text = decode(raw, args.file, limits)   # what is not text is not sent to the daemon
    if isinstance(text, SyntaxProblem):
        raise PolicyError(f"{text.file}:{text.mark.line}:{text.mark.col}: (file): {text.message}",
                          hint=f"`corral policy check {args.file}` shows every problem")
    reports = client.policy_replay(text, args.file, since=parse_since(args.since, time.time()))
    if args.format == "json":
        print(json.dumps(reports, indent=2))
        return 0
    for report in reports:
        print(f"policy {report['policy']} ({report['mode']}): {report['samples']} samples of "
              f"{len(report['containers'])} container{'s' if len(report['containers']) != 1 else ''} "
              f"({', '.join(report['containers']) or 'none selected'})")
        rows = [(_when(e["time"]), e["container_name"], e["rule"], e["kind"], _number(e["value"]),
                 ",".join(e["actions"]) or "-", e["detail"]) for e in report["events"]]
        if rows:
            sys.stdout.write(table(("TIME", "CONTAINER", "RULE", "WHAT", "VALUE", "ACTIONS", "DETAIL"), rows))
        else:
            print("  it would have done nothing")
        print(f"note: {report['note']}")
    return 0


def unfreeze_container(args: argparse.Namespace, client: ApiClient) -> int:
    answer = client.unfreeze_container(args.container)
    print(answer["name"])
    return 0
