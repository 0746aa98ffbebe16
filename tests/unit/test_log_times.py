"""The log's time index, docker's time syntax and the line/tail/since/until reading of a log
(agent/runtime/log_file.py, agent/runtime/logs.py, agent/log_time.py), on files written here
the way the launcher writes them (launcher/logfile.c)."""
from __future__ import annotations

import struct
from datetime import datetime

import pytest

from agent.errors import InvalidArgument
from agent.log_time import NS, format_log_time, parse_log_time, parse_tail
from agent.runtime.log_file import LogFile, Record, encode_frame
from agent.runtime.logs import LineSplitter, LogQuery, read_log

T0 = 1_700_000_000 * NS


class ShimDouble:
    """Writes what launcher/logfile.c writes: the index record, then the frame."""

    def __init__(self, path):
        self.path = path
        self.index = path.with_name(path.name + ".idx")
        path.touch()
        self.index.touch()

    def frame(self, stream: int, data: bytes, at: int | None, index: bool = True) -> None:
        offset = self.path.stat().st_size
        if index and at is not None:
            with open(self.index, "ab") as handle:
                handle.write(struct.pack("<QQ", offset, at))
        with open(self.path, "ab") as handle:
            handle.write(encode_frame(stream, data))


def read(path, query: LogQuery) -> list[Record]:
    with LogFile.open(path) as log:
        return list(read_log(log, query, alive=lambda: False, wait=lambda _s: None))


def test_each_frame_gets_the_time_of_its_record(tmp_path):
    shim = ShimDouble(tmp_path / "container.log")
    shim.frame(1, b"a\n", T0)
    shim.frame(2, b"b\n", T0 + 5)
    assert read(shim.path, LogQuery()) == [Record(1, b"a\n", T0), Record(2, b"b\n", T0 + 5)]


def test_an_older_shims_log_has_no_times_and_since_leaves_it_out(tmp_path):
    path = tmp_path / "container.log"
    path.write_bytes(encode_frame(1, b"old\n"))
    assert read(path, LogQuery()) == [Record(1, b"old\n", None)]
    assert read(path, LogQuery(since=T0)) == []
    shown = LogQuery(timestamps=True).shown(Record(1, b"old\n", None))
    assert shown == b"0001-01-01T00:00:00.000000000Z old\n"


def test_a_torn_last_record_and_a_record_without_frame_are_ignored(tmp_path):
    shim = ShimDouble(tmp_path / "container.log")
    shim.frame(1, b"one\n", T0)
    # killed between the index record and its frame: a record pointing at the log's end
    with open(shim.index, "ab") as handle:
        handle.write(struct.pack("<QQ", shim.path.stat().st_size, T0 + 1))
    # a restart's shim writes its frame at that same offset, with a newer time
    shim.frame(1, b"two\n", T0 + 2)
    with open(shim.index, "ab") as handle:
        handle.write(b"\x01\x02\x03")            # torn last record
    assert [(r.data, r.time) for r in read(shim.path, LogQuery())] == [(b"one\n", T0), (b"two\n", T0 + 2)]


def test_a_frame_without_its_record_has_no_time(tmp_path):
    shim = ShimDouble(tmp_path / "container.log")
    shim.frame(1, b"one\n", T0)
    shim.frame(1, b"two\n", T0 + 1, index=False)
    shim.frame(1, b"three\n", T0 + 2)
    assert [r.time for r in read(shim.path, LogQuery())] == [T0, None, T0 + 2]


def test_lines_since_until_tail_and_streams(tmp_path):
    shim = ShimDouble(tmp_path / "container.log")
    shim.frame(1, b"one\ntw", T0)
    shim.frame(1, b"o\n", T0 + 10)
    shim.frame(2, b"err\n", T0 + 20)
    shim.frame(1, b"three\nfour", T0 + 30)
    lines = [(r.stream, r.data, r.time) for r in read(shim.path, LogQuery(tail=None, timestamps=True))]
    assert lines == [(1, b"one\n", T0), (1, b"two\n", T0 + 10), (2, b"err\n", T0 + 20),
                     (1, b"three\n", T0 + 30), (1, b"four", T0 + 30)]
    assert [r.data for r in read(shim.path, LogQuery(since=T0 + 10))] == [b"two\n", b"err\n", b"three\n", b"four"]
    assert [r.data for r in read(shim.path, LogQuery(since=T0 + 11, until=T0 + 20))] == [b"err\n"]
    assert [r.data for r in read(shim.path, LogQuery(tail=2))] == [b"three\n", b"four"]
    assert read(shim.path, LogQuery(tail=0)) == []
    # docker's order: tail counts the whole log, then streams filter
    assert [r.data for r in read(shim.path, LogQuery(tail=3, stdout=False))] == [b"err\n"]
    assert read(shim.path, LogQuery(since=T0 + 31)) == []


def test_a_long_line_is_cut_like_dockers_copier():
    splitter = LineSplitter()
    lines = splitter.feed(Record(1, b"x" * 40000, T0))
    assert [len(r.data) for r in lines] == [16384, 16384]
    assert [len(r.data) for r in splitter.flush()] == [40000 - 32768]


def test_follow_with_until_stops_at_the_first_later_line(tmp_path):
    shim = ShimDouble(tmp_path / "container.log")
    shim.frame(1, b"a\n", T0)
    shim.frame(1, b"b\n", T0 + 10)
    with LogFile.open(shim.path) as log:
        got = list(read_log(log, LogQuery(follow=True, until=T0 + 5), alive=lambda: True, wait=lambda _s: None))
    assert [r.data for r in got] == [b"a\n"]


def test_docker_time_syntax():
    now = T0 + 123
    assert parse_log_time("10m", now_ns=now) == now - 600 * NS
    assert parse_log_time("1h30m", now_ns=now) == now - 5400 * NS
    assert parse_log_time("1.5s", now_ns=now) == now - 1_500_000_000
    assert parse_log_time("1700000000") == T0
    assert parse_log_time("1700000000.5") == T0 + 500_000_000
    assert parse_log_time("1700000000.000000001") == T0 + 1
    assert parse_log_time("2023-11-14T22:13:20Z") == T0
    assert parse_log_time("2023-11-14T23:13:20.000000007+01:00") == T0 + 7
    assert parse_log_time("2023-11-14") == int(datetime(2023, 11, 14).timestamp()) * NS   # local, as docker
    assert parse_log_time(format_log_time(T0 + 42)) == T0 + 42
    with pytest.raises(InvalidArgument, match="--since.*'yesterday'"):
        parse_log_time("yesterday", field="--since")
    with pytest.raises(InvalidArgument, match="not a valid date"):
        parse_log_time("2023-13-40")


def test_timestamps_print_as_dockers_rfc3339nano_fixed():
    assert format_log_time(T0 + 5) == "2023-11-14T22:13:20.000000005Z"
    assert LogQuery(timestamps=True, details=True).shown(Record(1, b"x\n", T0)) == \
        b"2023-11-14T22:13:20.000000000Z  x\n"


def test_tail():
    assert parse_tail("all") is None
    assert parse_tail("3") == 3
    assert parse_tail("-1") is None
    with pytest.raises(InvalidArgument, match="--tail.*'many'"):
        parse_tail("many", field="--tail")


def test_tail_is_the_last_lines_of_a_whole_read_and_no_line_exceeds_16k(tmp_path):
    import random
    rng = random.Random(7)
    for case in range(40):
        shim = ShimDouble(tmp_path / f"log{case}")
        for i in range(rng.randint(0, 60)):
            pieces = [rng.choice([b"a", b"bb", b"\n", b"ccc\n", b"x" * rng.randint(0, 40000)]) for _ in range(3)]
            shim.frame(rng.choice([1, 2]), b"".join(pieces), T0 + i, index=rng.random() > 0.05)
        for count in (0, 1, 2, 5, 17):
            everything = list(read_log(LogFile.open(shim.path), LogQuery(timestamps=True), alive=lambda: False,
                                       wait=lambda _s: None))
            assert all(len(r.data) <= 16384 for r in everything)
            expected = everything[-count:] if count else []
            assert read(shim.path, LogQuery(tail=count)) == expected, (case, count)
