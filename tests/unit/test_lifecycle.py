"""The pure parts of the life-cycle verbs: ps parsing for top, prune filters, df rows, the
update flags and the CLI's wiring of the new verbs."""
from __future__ import annotations

import argparse

import pytest

from agent.api.lifecycle_endpoints import parse_filters
from agent.cli.lifecycle import update_changes
from agent.cli.main import build_parser
from agent.cli.prune import disk_usage_rows, filters_of
from agent.errors import InvalidArgument
from agent.runtime.lifecycle import ps_table
from agent.runtime.prune import PruneFilter, until_time

PS = """UID          PID    PPID  C STIME TTY          TIME CMD
root           1       0  0 10:00 ?        00:00:01 /sbin/init
root         812     800  0 10:01 ?        00:00:00 sh -c sleep 300 & wait
root         813     812  0 10:01 ?        00:00:00 sleep 300
"""


def test_ps_table_keeps_the_containers_lines_and_the_command_whole():
    table = ps_table(PS, {812, 813}, ["-ef"])
    assert table["Titles"] == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert [p[-1] for p in table["Processes"]] == ["sh -c sleep 300 & wait", "sleep 300"]


def test_ps_table_needs_a_pid_column_and_some_output():
    with pytest.raises(InvalidArgument, match="no PID column"):
        ps_table("COMMAND\nsh\n", {1}, ["-o", "comm"])
    with pytest.raises(InvalidArgument, match="printed nothing"):
        ps_table("", {1}, ["-ef"])


def test_until_reads_timestamps_dates_and_durations():
    now = 1_700_000_000.0
    assert until_time("1600000000", now) == 1_600_000_000.0
    assert until_time("1h30m", now) == now - 5400
    assert until_time("2023-11-14T22:13:20Z", now) == 1_700_000_000.0
    with pytest.raises(InvalidArgument, match="until='soon'"):
        until_time("soon", now)


def test_prune_filters_match_labels_and_age():
    wanted = PruneFilter.parse({"label": ["tier=web"], "label!": ["keep"], "until": ["10m"]}, 1000.0)
    assert wanted.matches(100.0, {"tier": "web"})
    assert not wanted.matches(900.0, {"tier": "web"})           # younger than 10 minutes
    assert not wanted.matches(100.0, {"tier": "db"})
    assert not wanted.matches(100.0, {"tier": "web", "keep": ""})
    with pytest.raises(InvalidArgument, match="invalid filter 'colour'"):
        PruneFilter.parse({"colour": ["red"]}, 0.0)


def test_filters_from_flags_and_from_the_query():
    assert filters_of(["until=24h", "label=a=b", "label!=c"]) == {"until": ["24h"], "label": ["a=b"], "label!": ["c"]}
    with pytest.raises(InvalidArgument, match="NAME=VALUE"):
        filters_of(["until"])
    assert parse_filters('{"label": {"a=b": true}}') == {"label": ["a=b"]}
    assert parse_filters("") == {}
    for bad in ("[", "[1]", '{"label": "a"}'):
        with pytest.raises(InvalidArgument, match="filters"):
            parse_filters(bad)


def test_disk_usage_rows_count_active_and_reclaimable():
    usage = {"LayersSize": 1000,
             "Images": [{"Size": 600, "Containers": 2}, {"Size": 400, "Containers": 0}],
             "Containers": [{"State": "running", "SizeRw": 10}, {"State": "exited", "SizeRw": 30},
                            {"State": "paused", "SizeRw": 0}]}
    assert disk_usage_rows(usage) == [("Images", 2, 1, "1kB", "400B (40%)"),
                                      ("Containers", 3, 2, "40B", "30B (75%)")]
    assert disk_usage_rows({})[1] == ("Containers", 0, 0, "0B", "0B")


def test_update_flags_become_a_body_naming_bad_values():
    parse = build_parser().parse_args
    args = parse(["update", "-m", "64m", "--cpus", "0.5", "--pids-limit", "9", "--restart", "on-failure:2", "c"])
    assert update_changes(args) == {"memory": 64 << 20, "cpus": 0.5, "pids_limit": 9,
                                    "restart_policy": {"name": "on-failure", "maximum_retry_count": 2}}
    with pytest.raises(InvalidArgument, match="one or more of --memory"):
        update_changes(parse(["update", "c"]))
    with pytest.raises(InvalidArgument, match="--pids-limit"):
        update_changes(parse(["update", "--pids-limit", "0", "c"]))


def test_the_new_verbs_parse_like_dockers():
    parse = build_parser().parse_args
    assert parse(["top", "web", "-o", "pid,comm"]).ps_args == ["-o", "pid,comm"]
    assert parse(["top"]).container is None
    assert parse(["wait", "--condition", "removed", "a"]).condition == "removed"
    assert parse(["restart", "-t", "3", "a", "b"]).timeout == 3.0
    assert parse(["stop", "a"]).timeout is None
    assert parse(["stop", "-s", "HUP", "a"]).signal == "HUP" and parse(["restart", "-s", "9", "a"]).signal == "9"
    assert parse(["system", "prune", "-af"]).all is True
    assert isinstance(parse(["container", "prune", "--filter", "until=1h"]), argparse.Namespace)
    run = parse(["run", "--restart", "unless-stopped", "--stop-signal", "QUIT", "--stop-timeout", "-1", "busybox"])
    assert (run.restart, run.stop_signal, run.stop_timeout) == ("unless-stopped", "QUIT", -1)
