import pytest

from agent.errors import InvalidArgument
from agent.units import format_size, parse_cpus, parse_duration, parse_signal, parse_size


@pytest.mark.parametrize("text, expected", [
    ("64m", 64 << 20), ("64M", 64 << 20), ("64MiB", 64 << 20), ("256Mi", 256 << 20),
    ("1g", 1 << 30), ("1.5G", 3 << 29), ("1024", 1024), (4096, 4096), ("10k", 10240),
])
def test_sizes(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["64x", "", "lots", "-1m", "0", "m"])
def test_bad_sizes_name_the_value(text):
    with pytest.raises(InvalidArgument) as error:
        parse_size(text, field="memory")
    assert "memory" in str(error.value) and repr(text) in str(error.value)


def test_cpus_and_durations():
    assert parse_cpus("0.5") == 0.5
    with pytest.raises(InvalidArgument, match="abc"):
        parse_cpus("abc")
    with pytest.raises(InvalidArgument):
        parse_cpus("0")
    assert parse_duration("500ms") == 0.5
    assert parse_duration("10s") == 10 and parse_duration("5m") == 300 and parse_duration("1h") == 3600
    assert parse_duration(3) == 3.0
    with pytest.raises(InvalidArgument, match="10x"):
        parse_duration("10x")


def test_signals():
    assert parse_signal("KILL") == 9 and parse_signal("sigterm") == 15 and parse_signal("2") == 2
    with pytest.raises(InvalidArgument, match="NOPE"):
        parse_signal("NOPE")
    with pytest.raises(InvalidArgument):
        parse_signal("999")


def test_format_size():
    assert format_size(512) == "512B"
    assert format_size(64 << 20) == "64.0MiB"
    assert format_size(None) == "-"
