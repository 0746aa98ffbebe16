"""The daemon's configuration file: every flag has a key, flags override the file, and faults
name file:line."""
from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import COMMAND_LINE_ONLY, config_keys, load_config
from agent.daemon_config import build_parser, parse_args
from agent.errors import InvalidArgument

SHIPPED = Path(__file__).parents[2] / "deploy/corral.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "corral.yaml"
    path.write_text(text)
    return path


def test_every_daemon_flag_has_a_key_in_the_shipped_file():
    keys = set(config_keys(build_parser()))
    shipped = set(load_config(SHIPPED, build_parser()))
    # probes_dir is a hidden flag, but an installed daemon needs it: it is in the file too.
    assert keys == shipped, f"missing in deploy/corral.yaml: {sorted(keys - shipped)}"
    assert not keys & COMMAND_LINE_ONLY


def test_the_shipped_file_loads_into_a_daemon_config(tmp_path):
    config = parse_args(["--config", str(SHIPPED)])
    assert config.root == Path("/var/lib/corral") and config.observe is True
    assert config.metrics_addr == "127.0.0.1:9750" and config.probes_dir == Path("/opt/corral/share/probes")


def test_the_file_sets_values_and_flags_override_it(tmp_path):
    path = write(tmp_path, f"root: {tmp_path}/state\nlog_level: warning\nobserve: false\n"
                           "probes: false\nsyscall_metrics: top:5\ndrop_labels: [image]\n")
    config = parse_args(["--config", str(path)])
    assert (config.root, config.log_level, config.observe, config.probes) == (
        tmp_path / "state", "warning", False, False)
    assert config.metrics.syscall_metrics == "top:5" and config.metrics.drop_labels == ("image",)
    config = parse_args(["--config", str(path), "--log-level", "debug", "--observe", "--root", "/x",
                         "--drop-label", "id"])
    assert (config.log_level, config.observe, config.root) == ("debug", True, Path("/x"))
    assert config.metrics.drop_labels == ("image", "id")      # repeatable flags add to the file's list


def test_an_unknown_key_is_refused_with_file_and_line(tmp_path):
    path = write(tmp_path, "root: /var/lib/corral\n\nmetrics_address: 1.2.3.4:9\n")
    with pytest.raises(InvalidArgument, match=rf"{path}:3: unknown key 'metrics_address'"):
        parse_args(["--config", str(path)])


@pytest.mark.parametrize("text, message", [
    ("probes: maybe\n", r":1: probes: expected true or false \(flag --no-probes\)"),
    ("log_level: loud\n", r":1: log_level: expected one of debug, info, warning, error"),
    ("policy_interval: soon\n", r":1: policy_interval: could not convert"),
    ("drop_metrics: container_*\n", r":1: drop_metrics: expected a list of strings"),
    ("root: [a, b]\n", r":1: root: expected a single value"),
    ("- root\n", r":1: expected a mapping"),
    ("root: [\n", r"not valid YAML"),
])
def test_wrong_values_name_the_key_and_what_was_expected(tmp_path, text, message):
    with pytest.raises(InvalidArgument, match=message):
        load_config(write(tmp_path, text), build_parser())


def test_an_empty_file_sets_nothing(tmp_path):
    assert load_config(write(tmp_path, "# nothing here\n"), build_parser()) == {}


def test_a_missing_file_named_with_config_is_an_error(tmp_path):
    with pytest.raises(InvalidArgument, match="--config none"):
        parse_args(["--config", str(tmp_path / "absent.yaml")])


def test_config_none_reads_no_file(tmp_path, monkeypatch):
    import agent.config
    monkeypatch.setattr(agent.config, "DEFAULT_CONFIG", write(tmp_path, "log_level: error\n"))
    assert parse_args([]).log_level == "error"                  # the default file, when it exists
    assert parse_args(["--config", "none"]).log_level == "info"
