"""`corral policy check PATH...`: validate policy files locally, with no daemon.

Prints every problem as `file:line:col: path: message` and exits 1, or prints a summary and
exits 0, so it works as a git pre-commit hook and as a CI step (docs/policies.md). The
daemon-backed verbs (`ls`, `explain`, `replay`) register below, in `register`.
"""
from __future__ import annotations

import argparse
import json
import sys

from agent.api.client import ApiClient

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
    check.set_defaults(func=check_policies)

    # Daemon-backed verbs go here (the lead wires them to the API):
    #   ls                       -> client.policies()          (name, mode, file, containers selected)
    #   explain CONTAINER        -> client.policy_explain(id)   (EffectivePolicy.to_dict + rule states)
    #   replay FILE [--since 1h] -> client.policy_replay(text, since) (ReplayReport.to_dict)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 0


def check_policies(args: argparse.Namespace, client: ApiClient | None = None) -> int:
    # Imported here: `corral ps` must not pay for YAML and the syscall table.
    from agent.policy.check import check_paths, count_policies

    problems = check_paths(args.paths)
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
        policies, files = count_policies(args.paths)
        print(f"ok: {policies} polic{'ies' if policies != 1 else 'y'} in {files} file{'s' if files != 1 else ''}")
    return 0
