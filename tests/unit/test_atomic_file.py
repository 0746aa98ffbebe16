"""The one atomic writer: the old content or the new, never half; nothing left on failure."""
import os

import pytest

from agent.atomic_file import replacing, write_atomically
from agent.errors import KernelError


def test_replaces_the_content_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "record.json"
    write_atomically(target, "one")
    write_atomically(target, b"two", mode=0o600)
    assert target.read_text() == "two"
    assert os.stat(target).st_mode & 0o777 == 0o600
    assert os.listdir(target.parent) == ["record.json"]


def test_a_failure_inside_the_block_keeps_the_old_file(tmp_path):
    target = tmp_path / "record.json"
    write_atomically(target, "old")
    with pytest.raises(RuntimeError):
        with replacing(target) as handle:
            handle.write(b"half of the new")
            raise RuntimeError("cut short")
    assert target.read_text() == "old"
    assert os.listdir(tmp_path) == ["record.json"]


def test_not_durable_still_replaces(tmp_path):
    target = tmp_path / "filter.bpf"
    write_atomically(target, b"\0\1", durable=False)
    assert target.read_bytes() == b"\0\1"


def test_an_os_error_names_the_file(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(KernelError, match="record.json"):
        write_atomically(tmp_path / "file" / "record.json", "x")    # a file where a directory should be
