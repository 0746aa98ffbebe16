"""`corral policy test DIR`: run the policy unit tests in DIR/tests/ against DIR's policies
(agent/policy/testing.py), with no daemon and no root; exit 1 with a diff on a mismatch."""
from __future__ import annotations

import argparse
import os
import sys

from agent.errors import InvalidArgument

EXIT_FAILED = 1
MAX_TEST_FILE = 1 << 20


def register(sub: argparse._SubParsersAction) -> None:
    test = sub.add_parser("test", help="run policy unit tests (needs no daemon)",
                          description="Run the test cases in DIR/tests/*.yaml (or the given --tests files) "
                                      "against the policies of DIR; print a diff of each failing case and "
                                      "exit 1 when any fails (docs/policies.md, \"Testing policies\").")
    test.add_argument("directory", metavar="DIR", help="the policy folder")
    test.add_argument("--tests", action="append", default=[], metavar="FILE",
                      help="test files to run instead of DIR/tests/*.yaml (repeat for more)")
    test.add_argument("-q", "--quiet", action="store_true", help="print only failures")
    test.set_defaults(func=test_policies)


def test_policies(args: argparse.Namespace, client: object = None) -> int:
    import yaml

    from agent.policy.check import check_files
    from agent.policy.testing import parse_file, run_case

    loaded, problems = check_files([args.directory])
    if problems:
        for problem in problems:
            print(problem)
        sys.stderr.write("the policies have problems: fix them first (`corral policy check`)\n")
        return EXIT_FAILED
    policies = [policy for item in loaded for policy in item.policies]
    files = args.tests or _test_files(args.directory)
    if not files:
        raise InvalidArgument(f"no test files in {os.path.join(args.directory, 'tests')}",
                              hint="write DIR/tests/NAME.yaml (docs/policies.md, \"Testing policies\")")
    passed = failed = 0
    for file in files:
        if os.path.getsize(file) > MAX_TEST_FILE:
            raise InvalidArgument(f"{file}: larger than {MAX_TEST_FILE} bytes")
        with open(file, encoding="utf-8") as handle:
            try:
                data = yaml.safe_load(handle)
            except yaml.YAMLError as exc:
                raise InvalidArgument(f"{file}: not YAML: {exc}") from None
        for case in parse_file(data, file).tests:
            result = run_case(case, policies, file)
            if result.passed:
                passed += 1
                if not args.quiet:
                    print(f"ok    {file}: {case.name}")
                continue
            failed += 1
            print(f"FAIL  {file}: {case.name}\n  (- expected, + got)")
            print("\n".join(result.diff()))
    summary = f"{passed} passed, {failed} failed"
    print(summary if failed or not args.quiet else "", end="\n" if failed or not args.quiet else "")
    return EXIT_FAILED if failed else 0


def _test_files(directory: str) -> list[str]:
    folder = os.path.join(directory, "tests")
    if not os.path.isdir(folder):
        return []
    return sorted(os.path.join(folder, name) for name in os.listdir(folder)
                  if name.endswith((".yaml", ".yml")) and not name.startswith("."))
