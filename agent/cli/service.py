"""`corral service create|ls|ps|inspect|logs|scale|update|rollback|rm` (docs/services.md).

create, scale, update and rollback wait until the service has converged (running == desired,
no update in progress), as `docker service create` does; `-d` returns at once.
"""
from __future__ import annotations

import argparse
import json
import sys
import time

from agent.api.client import ApiClient
from agent.cli.containers import for_each
from agent.cli.format import ago, table
from agent.cli.logs import copy_frames
from agent.cli.run import env_items, labels_of
from agent.errors import CorralError, InvalidArgument
from agent.units import parse_cpus, parse_duration, parse_size

MAX_REPLICAS = 100      # agent.services.model.MAX_REPLICAS, without importing msgspec here
CONVERGE_TIMEOUT = 300.0


def register(verbs: argparse._SubParsersAction) -> None:
    service = verbs.add_parser("service", help="manage services: N replicas of an image behind one port",
                               description="Services: replicas of one image, kept running, balanced behind "
                                           "one published port, scaled and updated without a failed request.")
    actions = service.add_subparsers(dest="service_action", metavar="ACTION", required=True)

    create = actions.add_parser("create", help="create a service",
                                description="Create a service and wait until its replicas run.")
    create.add_argument("--name", required=True, help="service name (letters, digits, '_' and '-')")
    create.add_argument("--replicas", default="1", metavar="N", help=f"number of replicas, 0 to {MAX_REPLICAS} "
                                                                     "(default 1)")
    create.add_argument("-p", "--publish", metavar="[IP:]HOST:CTR[/udp]",
                        help="the one published port, balanced over the ready replicas, like 8080:80")
    create.add_argument("-e", "--env", action="append", default=[], metavar="K=V", help="environment variable")
    create.add_argument("-m", "--memory", metavar="SIZE", help="memory limit of each replica, like 64m")
    create.add_argument("--cpus", metavar="N", help="CPU limit of each replica, like 0.5")
    create.add_argument("-l", "--label", action="append", default=[], metavar="K=V",
                        help="label of each replica (corral.service and corral.service.slot are added)")
    create.add_argument("--network", "--net", dest="network", default="bridge", metavar="NET",
                        help="bridge (default) or a network's name")
    create.add_argument("--health-cmd", metavar="CMD", help="health check run in a replica (sh -c): a replica "
                                                            "takes traffic once healthy, is replaced when unhealthy")
    create.add_argument("--health-interval", metavar="DURATION", help="time between health checks (default 30s)")
    create.add_argument("--health-retries", metavar="N", type=int,
                        help="failed checks in a row that make a replica unhealthy (default 3)")
    create.add_argument("--restart-condition", choices=("any", "on-failure", "none"), default="any",
                        help="when an exited replica is replaced (default any)")
    create.add_argument("--stop-grace-period", metavar="DURATION", default="10s",
                        help="after the drain, SIGTERM then SIGKILL after this (default 10s)")
    add_update_flags(create)
    create.add_argument("-d", "--detach", action="store_true", help="do not wait for the replicas to run")
    create.add_argument("image", metavar="IMAGE")
    create.add_argument("command", metavar="CMD", nargs=argparse.REMAINDER, help="command (default: the image's)")
    create.set_defaults(func=create_service)

    ls = actions.add_parser("ls", help="list services")
    ls.add_argument("--format", choices=("table", "json"), default="table")
    ls.set_defaults(func=list_services)

    ps = actions.add_parser("ps", help="list a service's replicas, current and past")
    ps.add_argument("name", metavar="SERVICE")
    ps.set_defaults(func=service_ps)

    inspect = actions.add_parser("inspect", help="show services' details as a JSON array")
    inspect.add_argument("names", metavar="SERVICE", nargs="+")
    inspect.set_defaults(func=inspect_services)

    logs = actions.add_parser("logs", help="every replica's output, each line prefixed with the replica")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing")
    logs.add_argument("name", metavar="SERVICE")
    logs.set_defaults(func=service_logs)

    scale = actions.add_parser("scale", help="set the number of replicas: SERVICE=N ...")
    scale.add_argument("pairs", metavar="SERVICE=N", nargs="+")
    scale.add_argument("-d", "--detach", action="store_true", help="do not wait")
    scale.set_defaults(func=scale_services)

    update = actions.add_parser("update", help="change a service; replicas are replaced by a rolling update",
                                description="Change a service. A new image, command, environment or health "
                                            "check replaces the replicas by a rolling update (--update-* flags).")
    update.add_argument("--image", help="new image")
    update.add_argument("--replicas", metavar="N", help="number of replicas")
    update.add_argument("--env-add", action="append", default=[], metavar="K=V", help="add or change a variable")
    update.add_argument("--env-rm", action="append", default=[], metavar="K", help="remove a variable")
    update.add_argument("--health-cmd", metavar="CMD", help="new health check command (sh -c)")
    update.add_argument("--args", metavar="COMMAND", help="new command, split as a shell would (like docker's)")
    add_update_flags(update, defaults=False)
    update.add_argument("-d", "--detach", action="store_true", help="do not wait for the update to finish")
    update.add_argument("name", metavar="SERVICE")
    update.set_defaults(func=update_service)

    rollback = actions.add_parser("rollback", help="go back to the service's previous spec")
    rollback.add_argument("-d", "--detach", action="store_true", help="do not wait")
    rollback.add_argument("name", metavar="SERVICE")
    rollback.set_defaults(func=rollback_service)

    rm = actions.add_parser("rm", help="remove services: replicas leave the balancer, drain and stop")
    rm.add_argument("names", metavar="SERVICE", nargs="+")
    rm.set_defaults(func=remove_services)


def add_update_flags(parser: argparse.ArgumentParser, defaults: bool = True) -> None:
    group = parser.add_argument_group("rolling update")
    group.add_argument("--update-parallelism", metavar="N", type=int,
                       help="replicas replaced at a time (default 1)")
    group.add_argument("--update-delay", metavar="DURATION", help="wait between batches (default 0s)")
    group.add_argument("--update-order", choices=("stop-first", "start-first"),
                       help="start-first keeps capacity: the new replica serves before the old one stops "
                            "(default stop-first)")
    group.add_argument("--update-failure-action", choices=("pause", "rollback"),
                       help="when a new replica fails: pause the update or roll back (default pause)")
    group.add_argument("--update-monitor", metavar="DURATION",
                       help="a new replica exiting within this fails the update (default 5s)")


def update_config(args: argparse.Namespace) -> dict | None:
    config: dict = {}
    if args.update_parallelism is not None:
        config["parallelism"] = args.update_parallelism
    if args.update_delay is not None:
        config["delay"] = parse_duration(args.update_delay, field="--update-delay")
    if args.update_order is not None:
        config["order"] = args.update_order
    if args.update_failure_action is not None:
        config["failure_action"] = args.update_failure_action
    if args.update_monitor is not None:
        config["monitor"] = parse_duration(args.update_monitor, field="--update-monitor")
    return config or None


def replicas_of(text: str, flag: str = "--replicas") -> int:
    try:
        count = int(text)
    except ValueError:
        count = -1
    if not 0 <= count <= MAX_REPLICAS:
        raise InvalidArgument(f"{flag} {text!r}: expected a whole number from 0 to {MAX_REPLICAS}")
    return count


def spec_of(args: argparse.Namespace) -> dict:
    """The ServiceSpec the flags describe, validated here so a bad value names its flag."""
    from agent.network.model import PortMapping
    from agent.services.model import ServiceSpec
    spec: dict = {"name": args.name, "image": args.image, "command": list(args.command),
                  "replicas": replicas_of(args.replicas), "env": env_items(args.env),
                  "labels": labels_of(args.label), "network": args.network,
                  "restart_condition": args.restart_condition,
                  "stop_grace_period": parse_duration(args.stop_grace_period, field="--stop-grace-period")}
    if args.publish:
        spec["port"] = PortMapping.parse(args.publish).to_dict()
    if args.memory:
        spec["memory"] = parse_size(args.memory, field="--memory")
    if args.cpus:
        spec["cpus"] = parse_cpus(args.cpus, field="--cpus")
    if args.health_cmd:
        spec["health_cmd"] = args.health_cmd
    if args.health_interval:
        spec["health_interval"] = parse_duration(args.health_interval, field="--health-interval")
    if args.health_retries is not None:
        spec["health_retries"] = args.health_retries
    config = update_config(args)
    if config:
        spec["update"] = config
    return ServiceSpec.from_dict(spec).to_dict()


def converge(client: ApiClient, name: str, timeout: float = CONVERGE_TIMEOUT,
             failed: tuple[str, ...] = ("paused", "rollback_completed")) -> int:
    """Wait until running == desired and no update runs; 1 when the update ended in a `failed` state."""
    deadline = time.monotonic() + timeout
    while True:
        service = client.inspect_service(name)
        running = [t for t in service["tasks"] if t["state"] == "running" and t["current"]]
        state = service["update_state"]
        if state in failed and service.get("update_message"):
            sys.stderr.write(f"corral: service {name}: {service['update_message']}\n")
            return 1
        if len(running) == service["replicas"] == service["running"] and state not in ("updating", "rollback_started"):
            return 0
        if time.monotonic() > deadline:
            raise CorralError(f"service {name}: {len(running)}/{service['replicas']} replicas running after "
                              f"{timeout:.0f}s", hint=f"`corral service ps {name}` shows why")
        time.sleep(0.2)


def create_service(args: argparse.Namespace, client: ApiClient) -> int:
    service = client.create_service(spec_of(args))
    print(service["spec"]["name"])
    return 0 if args.detach else converge(client, args.name)


def list_services(args: argparse.Namespace, client: ApiClient) -> int:
    services = client.list_services()
    if args.format == "json":
        print(json.dumps(services, indent=2))
        return 0
    rows = [(s["name"], s["image"], f"{s['running']}/{s['replicas']}", s["port"], s["update_state"] or "-")
            for s in services]
    sys.stdout.write(table(("NAME", "IMAGE", "REPLICAS", "PORT", "UPDATE"), rows))
    return 0


def service_ps(args: argparse.Namespace, client: ApiClient) -> int:
    now = time.time()
    rows = [(t["name"], t["slot"], t["image"], t["version"], t["state"], "yes" if t["current"] else "no",
             t["address"] or "-", ago(t["since"], now)) for t in client.service_tasks(args.name)]
    sys.stdout.write(table(("NAME", "SLOT", "IMAGE", "VERSION", "STATE", "CURRENT", "ADDRESS", "SINCE"), rows))
    return 0


def inspect_services(args: argparse.Namespace, client: ApiClient) -> int:
    found: list[dict] = []
    code = for_each(args.names, lambda name: found.append(client.inspect_service(name)))
    print(json.dumps(found, indent=4))
    return code


def service_logs(args: argparse.Namespace, client: ApiClient) -> int:
    copy_frames(client.service_logs(args.name, follow=args.follow))
    return 0


def scale_services(args: argparse.Namespace, client: ApiClient) -> int:
    wanted = []
    for pair in args.pairs:
        name, sep, count = pair.partition("=")
        if not sep or not name:
            raise InvalidArgument(f"scale {pair!r}: expected SERVICE=N, like web=3")
        wanted.append((name, replicas_of(count, f"{name}=")))
    for name, count in wanted:
        client.scale_service(name, count)
        print(f"{name} scaled to {count}")
    return 0 if args.detach else max(converge(client, name) for name, _ in wanted)


def update_service(args: argparse.Namespace, client: ApiClient) -> int:
    change: dict = {}
    if args.image:
        change["image"] = args.image
    if args.replicas is not None:
        change["replicas"] = replicas_of(args.replicas)
    if args.env_add:
        change["env_add"] = env_items(args.env_add)
    if args.env_rm:
        change["env_rm"] = list(args.env_rm)
    if args.health_cmd:
        change["health_cmd"] = args.health_cmd
    if args.args is not None:
        import shlex
        try:
            change["command"] = shlex.split(args.args)
        except ValueError as exc:
            raise InvalidArgument(f"--args {args.args!r}: {exc}") from None
    config = update_config(args)
    if config:
        current = client.inspect_service(args.name)["spec"]["update"]
        change["update"] = {**current, **config}
    if not change:
        raise InvalidArgument("service update: nothing to change", hint="see `corral service update --help`")
    client.update_service(args.name, change)
    print(args.name)
    return 0 if args.detach else converge(client, args.name)


def rollback_service(args: argparse.Namespace, client: ApiClient) -> int:
    client.rollback_service(args.name)
    print(args.name)
    return 0 if args.detach else converge(client, args.name, failed=("paused",))


def remove_services(args: argparse.Namespace, client: ApiClient) -> int:
    return for_each(args.names, client.remove_service, say=str)
