"""`corral run` and `corral create`: the body of `POST /v1/containers` from docker's flags (the
daemon validates it), and the foreground run that streams the output, proxies Ctrl-C to the
container and exits with its code."""
from __future__ import annotations

import _signal
import os
import sys

from agent.api.client import ApiClient
from agent.api.run_client import run_container as run_stream
from agent.cli.logs import copy_frames
from agent.cli.run_environment import environment_fields
from agent.cli.run_flags import RM_HELP, flag_table, flags_of
from agent.errors import CorralError, InvalidArgument, NotFound

TYPE_CHECKING = False   # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    import argparse
    import signal
    from types import FrameType
    from typing import Any, Callable, TypeVar

    T = TypeVar("T")

# Ctrl-C is passed on to the container; this many in a row give up waiting for it.
_INTERRUPTS_TO_DETACH = 3
# The signals passed on to the container (docker's --sig-proxy), by the names the API takes.
_SIGNAL_NAMES = {_signal.SIGINT: "SIGINT", _signal.SIGTERM: "SIGTERM"}


def register(verbs: argparse._SubParsersAction) -> None:
    register_one(verbs, "run")
    register_one(verbs, "create")


def register_one(verbs: argparse._SubParsersAction, verb: str) -> None:
    """`run` or `create` alone (agent/cli/main.py), from the table of their flags
    (agent/cli/run_flags.py); a plain command line of either is parsed without argparse
    (`parse_quickly`)."""
    if verb == "run":
        parser = verbs.add_parser("run", help="create and start a container",
                                  description="Create and start a container. In the foreground its output is "
                                              "streamed and corral exits with its exit code.")
    else:
        parser = verbs.add_parser("create", help="create a container without starting it",
                                  description="Create a container and print its id; `corral start` starts it.")
    groups: dict[str, argparse._ArgumentGroup] = {}
    for group, names, options in flags_of(verb):
        target = parser if group is None else groups.get(group) or groups.setdefault(
            group, parser.add_argument_group(group))
        target.add_argument(*names, **({**options, "help": RM_HELP[verb]} if names == ("--rm",) else options))
    parser.set_defaults(func=VERB_FUNCS[verb], flag_table=flag_table(flags_of(verb)))


def parse_quickly(verb: str, words: list[str]) -> dict[str, Any] | None:
    """`corral run|create WORDS` as parse_args would make it, without argparse, or None where
    argparse must decide (--help, an abbreviation, an error, an unusual form): main() then
    builds the parser."""
    from agent.cli.quick_parse import parse
    flags = flags_of(verb)
    values = parse(flags, words)
    if values is None:
        return None
    return {**values, "func": VERB_FUNCS[verb], "flag_table": flag_table(flags)}


def env_items(items: list[str]) -> list[str]:
    """`-e K=V` as given; `-e K` takes K from this shell's environment and is dropped if unset."""
    result = []
    for item in items:
        if "=" in item:
            result.append(item)
        elif item in os.environ:
            result.append(f"{item}={os.environ[item]}")
    return result


def labels_of(items: list[str]) -> dict[str, str]:
    labels = {}
    for item in items:
        key, _, value = item.partition("=")
        if not key:
            raise InvalidArgument(f"--label {item!r}: expected KEY=VALUE")
        labels[key] = value
    return labels


def security_opts(items: list[str]) -> list[str]:
    """`seccomp=FILE` becomes `seccomp=<the file's JSON>`, as Docker's CLI sends it: the
    daemon may not see this machine's files."""
    result = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            key, sep, value = item.partition(":")
        if key == "seccomp" and value not in ("unconfined", "default", "builtin") and not value.lstrip().startswith("{"):
            try:
                with open(value, encoding="utf-8") as handle:
                    value = handle.read((1 << 20) + 1)
            except OSError as exc:
                raise InvalidArgument(f"--security-opt seccomp={value}: cannot read the profile: {exc.strerror}") from None
            item = f"seccomp={value}"
        result.append(item)
    return result


def tmpfs_of(items: list[str]) -> dict[str, str]:
    """`--tmpfs DIR[:OPTS]` as Docker's HostConfig.Tmpfs map."""
    return dict(item.partition(":")[::2] for item in items)


def mounts_of(items: list[str]) -> list[dict]:
    """`--mount` values as the body's mount objects (the parser is loaded only when given)."""
    if not items:
        return []
    from agent.runtime.mount_flags import parse_mount
    from agent.schema import to_builtins
    return [to_builtins(parse_mount(item)) for item in items]


def body_from_args(args: argparse.Namespace, *, auto_remove: bool) -> dict[str, Any]:
    """The body of `POST /v1/containers` the flags describe: only the fields they set, so the
    daemon's defaults stand for the rest. Nothing here imports the models (~35 ms of `run`'s
    start: msgspec, the security and userns checks): the daemon validates every body with the
    spec's strict schema and its error names the field (`workdir: expected an absolute path...`;
    `corral` adds the flag, see `flag_of`). A flag with a syntax of its own (-v, --mount, -p,
    --device, --restart, sizes) is parsed here, by a module loaded only when the flag is given,
    and its error names the flag and the value."""
    body: dict[str, Any] = {"image": args.image}
    if args.command:
        body["command"] = list(args.command)
    for key in ("name", "workdir", "hostname", "pids_limit", "user", "userns", "stop_signal", "stop_timeout"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    if args.entrypoint is not None:
        body["entrypoint"] = [args.entrypoint] if args.entrypoint else []
    mounts = mounts_of(args.mount)
    if args.volume:
        from agent.runtime.mount_flags import parse_volume
        from agent.schema import to_builtins
        mounts[:0] = [to_builtins(parse_volume(item)) for item in args.volume]
    if args.memory is not None or args.cpus is not None:
        from agent.units import parse_cpus, parse_size
        if args.memory is not None:
            body["memory"] = parse_size(args.memory, field="--memory")
        if args.cpus is not None:
            body["cpus"] = parse_cpus(args.cpus, field="--cpus")
    if args.net:
        body["network"] = args.net[0]        # else the spec's default
    further: list[dict[str, Any]] = [{"network": name} for name in (args.net or [])[1:]]
    if args.network_alias:
        further.insert(0, {"network": args.net[0] if args.net else "bridge", "aliases": args.network_alias})
    if args.restart != "no":
        from agent.runtime.model import RestartPolicy
        from agent.schema import to_builtins
        restart = RestartPolicy.parse(args.restart)
        if args.rm and restart.name != "no":     # the foreground run removes it itself: say so here too
            raise InvalidArgument(f"conflicting options: --restart {restart} and --rm")
        body["restart_policy"] = to_builtins(restart)
    lists = {
        "mounts": mounts,
        "networks": further,
        "devices": _parsed("DeviceMapping", args.device),
        "ports": _parsed("PortMapping", args.publish),
        "labels": labels_of(args.label),
        "cap_add": list(args.cap_add),
        "cap_drop": list(args.cap_drop),
        "security_opt": security_opts(args.security_opt),
        "tmpfs": tmpfs_of(args.tmpfs),
        **environment_fields(args, env_items(args.env)),
        **terminal_fields(args),
        "auto_remove": auto_remove,
        "privileged": args.privileged,
        "read_only": args.read_only,
    }
    body.update((key, value) for key, value in lists.items() if value)     # empty or false: the default
    return body


def _parsed(kind: str, items: list[str]) -> list[dict]:
    """`--device` or `-p` values as the body's objects (their model is loaded only when given)."""
    if not items:
        return []
    from agent.schema import to_builtins
    if kind == "PortMapping":
        from agent.network.model import PortMapping
        return [to_builtins(PortMapping.parse(item)) for item in items]
    from agent.runtime.model import DeviceMapping
    return [to_builtins(DeviceMapping.parse(item)) for item in items]


def terminal_fields(args: argparse.Namespace) -> dict[str, Any]:
    """-i and -t as Docker's Config: Tty, OpenStdin, and StdinOnce when stdin is attached now."""
    size = None
    if args.tty:
        from agent.cli.terminal import terminal_size
        size = terminal_size()
    return {"tty": args.tty, "open_stdin": args.interactive,
            # `create` has no --detach: its stdin stays open for whoever attaches, as docker's.
            "stdin_once": args.interactive and not getattr(args, "detach", True),
            "console_size": list(size) if size else None}


# The flags of the body's fields whose dest has another name; every other field is set by the
# flag whose dest is the field's name (--workdir: workdir). The flags themselves are read from
# the parser (`flag_table`), so a hint names what `--help` shows.
_FIELD_DESTS = {
    "env": ("env", "env_file"), "mounts": ("volume", "mount"), "network": ("net",),
    "networks": ("net", "network_alias"), "ports": ("publish",), "labels": ("label",), "devices": ("device",),
    "ulimits": ("ulimit",), "dns_options": ("dns_option",), "extra_hosts": ("add_host",),
    "restart_policy": ("restart",), "healthcheck": ("health_cmd", "health_interval", "health_timeout",
                                                    "health_start_period", "health_retries", "no_healthcheck"),
}


def flag_of(exc: CorralError, args: argparse.Namespace) -> CorralError:
    """The daemon's error about a body field, with the flag that set it as the hint: the flags
    of the field given on this command line, else every flag that can set it."""
    table: dict[str, tuple[str, Any]] = getattr(args, "flag_table", {})
    if isinstance(exc, InvalidArgument) and exc.field and not exc.hint:
        root = exc.field.split("[", 1)[0].split(".", 1)[0]
        dests = [dest for dest in _FIELD_DESTS.get(root, (root,)) if dest in table]
        given = [dest for dest in dests if getattr(args, dest, None) != table[dest][1]]
        if dests:
            exc.hint = "given by " + "/".join(table[dest][0] for dest in given or dests)
    return exc


def create_pulling(client: ApiClient, body: dict, args: argparse.Namespace, create: Callable[[], T]) -> T:
    """`create()` (a create, a create+start or a run), pulling the image first as `--pull`
    says, like docker run (agent/cli/registry.py, loaded only to pull); an invalid-argument
    error names the flag."""
    try:
        if args.pull == "missing":
            try:
                return create()
            except NotFound as exc:
                if not exc.message.startswith(f"image {body['image']!r} not found"):
                    raise
        from agent.cli.registry import pull_for_create
        pull_for_create(client, body["image"], args.pull)
        return create()
    except CorralError as exc:
        raise flag_of(exc, args) from None


def create_container(args: argparse.Namespace, client: ApiClient) -> int:
    body = body_from_args(args, auto_remove=args.rm)
    container = create_pulling(client, body, args, lambda: client.create_container(body))
    print(container["id"])
    return 0


def run_container(args: argparse.Namespace, client: ApiClient) -> int:
    # In the foreground the daemon removes the container once it has exited, after it has read
    # the exit code and before it sends it (`remove`); detached, it removes it at its exit.
    body = body_from_args(args, auto_remove=args.detach and args.rm)
    if (args.interactive or args.tty) and not args.detach:
        from agent.cli.attach import run_attached
        return run_attached(args, client, body)
    if args.detach:
        container = create_pulling(client, body, args, lambda: client.create_container(body, start=True))
        print(container["id"])
        return 0
    # One request: create, start, the output as it comes, then the exit code (agent/api/run_endpoints.py).
    container_id, stream = create_pulling(client, body, args, lambda: run_stream(client, body, remove=args.rm))
    with SignalProxy(client, container_id):
        code = copy_frames(stream)
    if code is None:
        raise CorralError(f"container {container_id[:12]}: the daemon's answer ended without its exit code",
                          hint="the daemon may have stopped; check its log")
    return code


class SignalProxy:
    """While the CLI waits in the foreground, SIGINT and SIGTERM go to the container
    (docker's --sig-proxy). The third Ctrl-C in a row stops waiting and leaves it running."""

    def __init__(self, client: ApiClient, container_id: str) -> None:
        self._client = client
        self._container_id = container_id
        # What signal.signal() returns: a handler, SIG_DFL/SIG_IGN, or None (not set from Python).
        # `_signal`, not `signal`, which builds its enums at import (and imports enum): ~3 ms of `run`.
        self._previous: dict[int, Callable[[int, FrameType | None], Any] | int | signal.Handlers | None] = {}
        self._count = 0

    def __enter__(self) -> SignalProxy:
        # Only the main thread may set handlers (ValueError elsewhere: then nothing is proxied);
        # asked of signal itself, not of threading, which `run` does not import otherwise.
        for number in _SIGNAL_NAMES:
            try:
                self._previous[number] = _signal.signal(number, self._forward)
            except ValueError:
                break
        return self

    def __exit__(self, *exc_info) -> None:
        for number, handler in self._previous.items():
            _signal.signal(number, handler)
        self._previous.clear()

    def _forward(self, number: int, _frame) -> None:
        self._count += 1
        if self._count >= _INTERRUPTS_TO_DETACH:
            print(f"corral: not waiting any more; container {self._container_id[:12]} may still be running",
                  file=sys.stderr)
            raise KeyboardInterrupt
        try:
            self._client.kill_container(self._container_id, signal=_SIGNAL_NAMES[number])
        except CorralError:
            pass   # it exited meanwhile: the wait that follows reports how


VERB_FUNCS = {"run": run_container, "create": create_container}
