"""`corral top`: a live full-screen view of every container (curses), sortable, with the top
syscalls of the selected one. Keys: up/down select, c/m/s/n sort by CPU, memory, syscalls, name;
q quits. `corral top CONTAINER [ps OPTIONS]` is docker's: the host's ps over its processes."""
from __future__ import annotations

import argparse
import time

from agent.api.client import ApiClient
from agent.cli.format import human_size

TYPE_CHECKING = False   # typing.TYPE_CHECKING without importing typing (start-up time)
if TYPE_CHECKING:
    from agent.cli.stats_rows import StatsRow

SORTS = {
    "c": ("CPU", lambda r: -(r.cpu_percent or 0.0)),
    "m": ("MEM", lambda r: -(r.memory_bytes or 0)),
    "s": ("SYSCALLS", lambda r: -(r.syscalls_per_second or 0.0)),
    "n": ("NAME", lambda r: r.name),
}


def register(verbs: argparse._SubParsersAction) -> None:
    parser = verbs.add_parser("top", help="live full-screen view of containers and their top syscalls; "
                                          "with a CONTAINER, its processes (as docker top)",
                              usage="corral top [--interval SECS] | corral top CONTAINER [ps OPTIONS]")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between readings (default 1)")
    parser.add_argument("container", metavar="CONTAINER", nargs="?",
                        help="show this container's processes, like docker top")
    parser.add_argument("ps_args", metavar="ps OPTIONS", nargs=argparse.REMAINDER,
                        help="options of the host's ps (default -ef)")
    parser.set_defaults(func=run_top)


def run_top(args: argparse.Namespace, client: ApiClient) -> int:
    if args.container is not None:
        return container_processes(client, args.container, " ".join(args.ps_args))
    import curses  # only here: every other verb starts without it
    curses.wrapper(_screen, client, max(0.2, args.interval))
    return 0


def container_processes(client: ApiClient, ref: str, ps_args: str) -> int:
    """docker top: ps's titles and the container's lines, in aligned columns."""
    from agent.cli.format import table

    answer = client.top_container(ref, ps_args)
    print(table(answer["Titles"], answer["Processes"]), end="")
    return 0


def render(rows: list[StatsRow], selected: int, sort_key: str, width: int, height: int) -> list[str]:
    """The screen's lines; pure, so tests can check it without a terminal."""
    from agent.cli.stats_rows import percent, rate

    lines = [f"corral top - {time.strftime('%H:%M:%S')} - {len(rows)} containers - sorted by "
             f"{SORTS[sort_key][0]} (c/m/s/n sort, arrows select, q quit)", ""]
    header = f"{'NAME':<24} {'CPU %':>8} {'MEM':>10} {'LIMIT':>10} {'NET RX':>9} {'NET TX':>9} {'PIDS':>5} {'SYSC/S':>9}"
    lines.append(header)
    for index, row in enumerate(rows):
        marker = ">" if index == selected else " "
        lines.append(f"{marker}{row.name[:23]:<23} {percent(row.cpu_percent):>8} {human_size(row.memory_bytes):>10} "
                     f"{human_size(row.memory_limit_bytes) if row.memory_limit_bytes else 'unlimited':>10} "
                     f"{human_size(row.net_rx_bytes):>9} {human_size(row.net_tx_bytes):>9} "
                     f"{'--' if row.pids is None else row.pids:>5} {rate(row.syscalls_per_second):>9}")
    if rows:
        chosen = rows[min(selected, len(rows) - 1)]
        lines += ["", f"top syscalls of {chosen.name}:", f"  {'SYSCALL':<20} {'CALLS/S':>10} {'ERRORS/S':>10}"]
        for name, calls, errors in chosen.top_syscalls[:max(0, height - len(lines) - 1)]:
            lines.append(f"  {name:<20} {calls:>10.0f} {errors:>10.0f}")
    return [line[:width - 1] for line in lines[:height]]


def _screen(screen, client: ApiClient, interval: float) -> None:
    import curses

    from agent.cli.stats_rows import rates

    curses.curs_set(0)
    screen.timeout(100)
    sort_key, selected = "c", 0
    previous = client.stats(syscalls=True)
    next_reading = time.monotonic() + interval
    rows: list[StatsRow] = []
    while True:
        if time.monotonic() >= next_reading:
            current = client.stats(syscalls=True)
            rows = sorted(rates(previous, current), key=SORTS[sort_key][1])
            previous, next_reading = current, time.monotonic() + interval
        height, width = screen.getmaxyx()
        screen.erase()
        for y, line in enumerate(render(rows, selected, sort_key, width, height)):
            screen.addstr(y, 0, line)
        screen.refresh()
        key = screen.getch()
        if key in (ord("q"), 27):
            return
        if key == curses.KEY_DOWN:
            selected = min(selected + 1, max(0, len(rows) - 1))
        elif key == curses.KEY_UP:
            selected = max(0, selected - 1)
        elif key != -1 and chr(key) in SORTS:
            sort_key = chr(key)
            rows = sorted(rows, key=SORTS[sort_key][1])
