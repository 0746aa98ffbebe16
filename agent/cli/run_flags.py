"""The flags of `corral run` and `corral create`, as data: the argparse parsers are built from
this table (agent/cli/run.py), and so is the quick parse of a plain command line
(agent/cli/quick_parse.py), which starts `run` without importing argparse: argparse with re,
enum and gettext is ~8 ms of a ~23 ms `corral run` client (bench/README.md, "CLI start-up").
Each entry is add_argument's arguments, with the title of its group (None: the verb's own)."""
from __future__ import annotations

TYPE_CHECKING = False   # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from typing import Any

    Flag = tuple[str | None, tuple[str, ...], dict[str, Any]]

REMAINDER = "..."      # argparse.REMAINDER: every word after IMAGE is the command's
SECURITY = "security (docs/security.md)"
USERS = "users and environment (docs/cli.md)"
HEALTH = "health check (docs/cli.md)"
LIFECYCLE = "life cycle (docs/cli.md)"
RM_HELP = {"run": "remove the container when it exits",
           "create": "have the daemon remove the container when it exits"}


def _flag(group: str | None, *names: str, **options: Any) -> Flag:
    return group, names, options


RUN_ONLY = (
    _flag(None, "-d", "--detach", action="store_true", help="run in the background and print the id"),
    _flag(None, "--detach-keys", metavar="KEYS",
                help="keys that detach from a terminal, like ctrl-a,x (default: ctrl-p,ctrl-q)"),
)
# The --rm entry's help is RM_HELP's for the verb. The order is --help's.
SPEC = (
    _flag(None, "--rm", action="store_true", help=None),
    _flag(None, "-i", "--interactive", action="store_true",
                help="keep stdin open: this terminal's input (or a pipe) goes to the container"),
    _flag(None, "-t", "--tty", action="store_true",
                help="give the container a terminal (its size follows this window)"),
    _flag(None, "--name", help="container name (default: a generated adjective_animal)"),
    _flag(None, "-e", "--env", action="append", default=[], metavar="K=V",
                help="set an environment variable; a bare K takes the value from this shell"),
    _flag(None, "-w", "--workdir", metavar="DIR", help="working directory inside the container"),
    _flag(None, "-v", "--volume", action="append", default=[], metavar="SRC:CTR[:ro]",
                help="bind mount a host directory (/host/dir:/ctr), mount a volume (NAME:/ctr, created "
                     "and filled from the image on first use) or a new anonymous volume (/ctr)"),
    _flag(None, "--mount", action="append", default=[], metavar="type=...,target=...",
                help="docker's --mount: type=bind|volume|tmpfs,source=,target=,readonly,volume-nocopy,"
                     "tmpfs-size=,tmpfs-mode= (docs/volumes.md)"),
    _flag(None, "--device", action="append", default=[], metavar="HOST[:CTR[:rwm]]",
                help="expose a host device node (repeat for more); others cannot be opened"),
    _flag(None, "--hostname", metavar="H", help="hostname inside the container (default: short id)"),
    _flag(None, "-m", "--memory", metavar="SIZE", help="memory limit, like 64m or 1g"),
    _flag(None, "--cpus", metavar="N", help="CPU limit, like 0.5"),
    _flag(None, "--pids-limit", type=int, metavar="N", help="maximum number of processes"),
    _flag(None, "--net", "--network", dest="net", action="append", metavar="NET",
                help="none (only lo), host, bridge (the default network) or a network's name "
                     "(repeat to join several)"),
    _flag(None, "--network-alias", action="append", default=[], metavar="NAME",
                help="another name the first network's containers reach it by (repeat)"),
    _flag(None, "-p", "--publish", action="append", default=[], metavar="[IP:]HOST:CTR[/udp]",
                help="publish a container port on the host, like 8080:80 (repeat for more)"),
    _flag(None, "-l", "--label", action="append", default=[], metavar="K=V",
                help="set a label (repeat for more)"),
    _flag(None, "--entrypoint", metavar="CMD", help="override the image's entrypoint ('' clears it)"),
    _flag(SECURITY, "--cap-add", action="append", default=[], metavar="CAP",
                    help="add a capability, like NET_ADMIN, or ALL (repeat for more)"),
    _flag(SECURITY, "--cap-drop", action="append", default=[], metavar="CAP",
                    help="drop a capability, like NET_RAW, or ALL (repeat for more)"),
    _flag(SECURITY, "--privileged", action="store_true",
                    help="every capability, no seccomp profile, /sys and cgroups writable: no isolation "
                         "from the host's kernel"),
    _flag(SECURITY, "--security-opt", action="append", default=[], metavar="OPT",
                    help="seccomp=unconfined, seccomp=PROFILE.json (Docker's format) or no-new-privileges"),
    _flag(SECURITY, "--read-only", action="store_true", help="mount the container's root read-only"),
    _flag(SECURITY, "--tmpfs", action="append", default=[], metavar="DIR[:OPTS]",
                    help="mount a tmpfs, like /run or /tmp:size=64m,mode=1777 (repeat for more)"),
    _flag(SECURITY, "-u", "--user", metavar="USER[:GROUP]",
                    help="user to run as: a name from the image's /etc/passwd or a uid, optionally :group"),
    _flag(USERS, "--group-add", action="append", default=[], metavar="GROUP",
                 help="an extra group for the container's processes: a name from the image's "
                      "/etc/group or a gid (repeat for more)"),
    _flag(USERS, "--env-file", action="append", default=[], metavar="FILE",
                 help="read KEY=VALUE lines from a file (docker's format; -e wins over it)"),
    _flag(USERS, "--init", action="store_true",
                 help="run a tiny init as pid 1 that forwards signals and reaps zombies"),
    _flag(USERS, "--ulimit", action="append", default=[], metavar="NAME=SOFT[:HARD]",
                 help="a resource limit, like nofile=1024:2048 (-1 is unlimited; repeat for more)"),
    _flag(USERS, "--shm-size", metavar="SIZE", help="size of /dev/shm, like 128m (default 64m)"),
    _flag(USERS, "--dns", action="append", default=[], metavar="IP", help="a DNS server (repeat for more)"),
    _flag(USERS, "--dns-search", action="append", default=[], metavar="DOMAIN",
                 help="a DNS search domain (repeat for more)"),
    _flag(USERS, "--dns-option", action="append", default=[], metavar="OPT",
                 help="a resolver option, like ndots:2 (repeat for more)"),
    _flag(USERS, "--add-host", action="append", default=[], metavar="NAME:IP",
                 help="add a line to /etc/hosts; IP may be host-gateway (repeat for more)"),
    _flag(HEALTH, "--health-cmd", metavar="CMD", help="command run by a shell in the container to check health"),
    _flag(HEALTH, "--health-interval", metavar="DURATION", help="time between checks, like 30s (default)"),
    _flag(HEALTH, "--health-timeout", metavar="DURATION",
                  help="time a check may run before it counts as failed (default 30s)"),
    _flag(HEALTH, "--health-start-period", metavar="DURATION",
                  help="failures in this time after the start do not count (default 0s)"),
    _flag(HEALTH, "--health-retries", type=int, metavar="N",
                  help="failures in a row that make the container unhealthy (default 3)"),
    _flag(HEALTH, "--no-healthcheck", action="store_true", help="disable any health check, the image's too"),
    _flag(SECURITY, "--userns", choices=("auto", "host"), default=None,
                    help="auto: container root is an unprivileged host uid from a range of its own "
                         "(/etc/subuid, user corral); host: the host's ids. Default: the daemon's "
                         "--userns (host unless set). Unlike Docker, per container"),
    _flag(LIFECYCLE, "--restart", metavar="POLICY", default="no",
                     help="restart policy: no (default), always, unless-stopped or on-failure[:N]"),
    _flag(LIFECYCLE, "--stop-signal", metavar="SIGNAL", help="signal `stop` sends first (default TERM)"),
    _flag(LIFECYCLE, "--stop-timeout", type=int, metavar="SECS",
                     help="seconds `stop` waits before SIGKILL (default 10; -1 waits for ever)"),
    _flag(None, "--pull", choices=("missing", "always", "never"), default="missing",
                help="pull the image before creating: missing (default), always or never"),
    _flag(None, "image", metavar="IMAGE", help="image name, like busybox or busybox:latest"),
    _flag(None, "command", metavar="CMD", nargs=REMAINDER,
                help="command and arguments (default: the image's)"),
)


def flags_of(verb: str) -> tuple[Flag, ...]:
    """`run`'s flags or `create`'s (the same without -d and --detach-keys)."""
    return RUN_ONLY + SPEC if verb == "run" else SPEC


def dest_of(names: tuple[str, ...], options: dict[str, Any]) -> str:
    """The attribute argparse stores a flag under: `dest`, else the first long option (or the
    first option, or the positional's name) with - as _."""
    if "dest" in options:
        return str(options["dest"])
    if not names[0].startswith("-"):
        return names[0]
    long = next((name for name in names if name.startswith("--")), names[0])
    return long.lstrip("-").replace("-", "_")


def flag_table(flags: tuple[Flag, ...]) -> dict[str, tuple[str, Any]]:
    """dest -> (its first option string, or a positional's metavar; its default): the hint of a
    daemon's error about a field names the flag that set it (agent/cli/run.py flag_of)."""
    return {dest_of(names, options): (names[0] if names[0].startswith("-") else str(options.get("metavar")),
                                      options.get("default", False if options.get("action") == "store_true" else None))
            for _group, names, options in flags}
