"""`corral`: the command line, a thin client of the daemon's API (as docker is to dockerd).

`main()` alone turns errors into exit codes and messages: a CorralError prints
`corral: <message>` (and its hint) on stderr and exits with its code (125); tracebacks only with
--debug. Every verb lives in its own module with a `register(verbs)` that adds its parsers;
a new verb group is one more entry in VERBS, and `corral VERB` imports only VERB's module. `daemon` and `doctor` are not clients:
their modules are imported only when asked for, so `corral ps` never loads BCC.
"""
from __future__ import annotations

import importlib
import os
import sys

from agent import __version__
from agent.api.client import DEFAULT_HOST, ApiClient
from agent.cli.format import error_text
from agent.errors import CorralError

TYPE_CHECKING = False   # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

    from agent.cli.parser import Parser

# Each verb's module (its `register(verbs)` adds the verb's parser): `corral VERB` imports and
# registers only that one, since building every verb's parser costs ~20 ms, more than the rest of
# the start. `corral`, `--help` and an unknown word build them all. tests/unit/test_cli.py checks
# the table against what the modules register; a new verb group is one more module here.
VERBS = {
    **dict.fromkeys(("run", "create"), "agent.cli.run"),
    **dict.fromkeys(("start", "ps", "stop", "kill", "rm", "wait", "inspect"), "agent.cli.containers"),
    **dict.fromkeys(("pause", "unpause", "rename", "restart", "update"), "agent.cli.lifecycle"),
    **dict.fromkeys(("container", "system"), "agent.cli.prune"),
    "logs": "agent.cli.logs",
    "exec": "agent.cli.exec",
    "attach": "agent.cli.attach",
    **dict.fromkeys(("images", "image"), "agent.cli.images"),
    **dict.fromkeys(("save", "load", "history", "commit"), "agent.cli.image_make"),
    "build": "agent.cli.build",
    **dict.fromkeys(("pull", "push", "tag", "login", "logout"), "agent.cli.registry"),
    "events": "agent.cli.events",
    "stats": "agent.cli.stats",
    "top": "agent.cli.top",
    **dict.fromkeys(("version", "info"), "agent.cli.system"),
    **dict.fromkeys(("network", "port"), "agent.cli.network"),
    "service": "agent.cli.service",
    **dict.fromkeys(("policy", "unfreeze"), "agent.cli.policy"),
    "incidents": "agent.cli.incidents",
    "volume": "agent.cli.volume",
    **dict.fromkeys(("cp", "diff", "export"), "agent.cli.files"),
}
VERB_MODULES = tuple(dict.fromkeys(VERBS.values()))
# Verbs handed whole to another program's main(argv): (module, help).
DELEGATED = {
    "daemon": ("agent.daemon", "run the Corral daemon (needs root); `corral daemon --help` for its options"),
    "doctor": ("agent.doctor", "check that this host can run Corral (needs no daemon)"),
}
_GLOBAL_WITH_VALUE = ("--host", "-H")
_GLOBAL_FLAGS = ("--debug", "-D")
EXIT_INTERRUPTED = 130


def build_parser(verb: str | None = None) -> Parser:
    """The parser of every verb, or of `verb` alone when it is one (a faster start), or of none
    for `--version`, which answers before any verb is looked at (every verb's parser is ~20 ms)."""
    from agent.cli.parser import Parser, ask_gettext_once
    ask_gettext_once()
    parser = Parser(prog="corral", description="Run and watch containers through the Corral daemon.")
    parser.add_argument("-H", "--host", default=None,
                        help=f"daemon socket (default: $CORRAL_HOST or {DEFAULT_HOST})")
    parser.add_argument("-D", "--debug", action="store_true", help="print tracebacks of errors")
    parser.add_argument("--version", action="version", version=f"corral version {__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="COMMAND")
    for name in [VERBS[verb]] if verb in VERBS else () if verb == "--version" else VERB_MODULES:
        module = importlib.import_module(name)
        # A module whose verbs' parsers are large builds only the one asked for (`run`: ~60 flags).
        register_one = getattr(module, "register_one", None)
        if verb in VERBS and register_one is not None:
            register_one(verbs, verb)
        else:
            module.register(verbs)
    for delegated, (_module, help_text) in DELEGATED.items() if verb != "--version" else ():
        verbs.add_parser(delegated, help=help_text, add_help=False)
    return parser


def quick_args(argv: list[str], verb_at: int) -> Namespace | None:
    """The arguments of a verb whose module parses a plain command line itself
    (`parse_quickly`: `run` and `create`, agent/cli/quick_parse.py), or None: then argparse."""
    parse_quickly = getattr(importlib.import_module(VERBS[argv[verb_at]]), "parse_quickly", None)
    values = None if parse_quickly is None else parse_quickly(argv[verb_at], argv[verb_at + 1:])
    if values is None:
        return None
    host, words = None, argv[:verb_at]      # the global options split_verb found
    for index, word in enumerate(words):
        if word in _GLOBAL_WITH_VALUE:
            host = words[index + 1]
        elif word.startswith("--host="):
            host = word[len("--host="):]
    return Namespace(host=host, debug=any(word in _GLOBAL_FLAGS for word in words), verb=argv[verb_at], **values)


class Namespace:
    """What argparse.Namespace is to a verb's function: the values as attributes."""

    def __init__(self, **values: object) -> None:
        self.__dict__.update(values)


def split_verb(argv: list[str]) -> int:
    """Index of the verb: the first word that is not a global option or its value."""
    index = 0
    while index < len(argv):
        word = argv[index]
        if word in _GLOBAL_WITH_VALUE:
            index += 2
        elif word in _GLOBAL_FLAGS or word.startswith("--host="):
            index += 1
        else:
            break
    return index


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verb_at = split_verb(argv)
    debug = any(word in _GLOBAL_FLAGS for word in argv[:verb_at])
    try:
        if verb_at < len(argv) and argv[verb_at] in DELEGATED:
            # Everything after the verb belongs to that program, --help included. Neither is
            # start-up bound: they get the site set-up the launcher (scripts/corral) skipped.
            if sys.flags.no_site:
                import site
                site.main()
            module = importlib.import_module(DELEGATED[argv[verb_at]][0])
            return int(module.main(argv[verb_at + 1:]) or 0)
        verb = argv[verb_at] if verb_at < len(argv) else None
        # argparse.Namespace, or the quick parse's (attributes alike)
        args: Any = quick_args(argv, verb_at) if verb in VERBS else None
        if args is None:
            parser = build_parser(verb)
            args = parser.parse_args(argv)
            if args.verb is None:
                parser.print_help()
                return 0
        client = ApiClient(args.host or os.environ.get("CORRAL_HOST") or DEFAULT_HOST)
        return int(args.func(args, client))
    except SystemExit as exc:   # --help and --version, and a delegated main that exits
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # stdout closed early (`corral ps | head -1`): not an error worth a message.
        _silence_stdout()
        return 0
    except CorralError as exc:
        if debug:
            _print_traceback()
        sys.stderr.write(error_text(exc))
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - a bug: say so in one line unless asked for more
        if debug:
            _print_traceback()
        sys.stderr.write(error_text(CorralError(f"internal error: {type(exc).__name__}: {exc}",
                                                hint="run with --debug for the traceback")))
        return CorralError.exit_code


def _print_traceback() -> None:
    import traceback  # only with --debug: it costs every start a few milliseconds
    traceback.print_exc()


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
