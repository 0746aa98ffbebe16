"""Parsers, readers and writers of cgroup files, on fixture files in a temp dir."""
from __future__ import annotations

import errno
import os

import pytest

from agent.cgroups import files, kept_files
from agent.cgroups.driver import Pressure
from agent.errors import InvalidArgument, KernelError


def test_limits_read_unlimited_as_none():
    assert files.parse_max("max\n") is None
    assert files.parse_max("67108864\n") == 64 << 20
    assert files.parse_v1_limit("9223372036854771712\n") is None   # v1 "no limit", 4 KiB pages
    assert files.parse_v1_limit("-1\n") is None                     # cpu.cfs_quota_us
    assert files.parse_v1_limit("max\n") is None                    # v1 pids.max
    assert files.parse_v1_limit("1048576\n") == 1 << 20


def test_keyed_files_skip_lines_that_are_not_key_and_integer():
    text = "anon 4096\nfile 8192\nweird line here\nnot_a_number x\n\ninactive_file 10\n"
    assert files.parse_keyed(text) == {"anon": 4096, "file": 8192, "inactive_file": 10}


def test_cpu_max():
    assert files.parse_cpu_max("max 100000\n") == (None, 100_000)
    assert files.parse_cpu_max("50000 100000\n") == (50_000, 100_000)
    with pytest.raises(ValueError):
        files.parse_cpu_max("50000\n")


def test_pressure_totals_are_microseconds():
    text = ("some avg10=1.98 avg60=0.74 avg300=0.77 total=5234163\n"
            "full avg10=0.00 avg60=0.00 avg300=0.00 total=1500000\n")
    assert files.parse_pressure(text) == Pressure(some_seconds=5.234163, full_seconds=1.5)
    # cpu.pressure before 5.13 has no "full" line.
    assert files.parse_pressure("some avg10=0.00 avg60=0.00 avg300=0.00 total=2000000\n") == Pressure(2.0, 0.0)
    with pytest.raises(ValueError):
        files.parse_pressure("nonsense\n")


def test_pids():
    assert files.parse_pids("12\n345\n") == [12, 345]
    assert files.parse_pids("") == []


def test_optional_readers_answer_none_for_missing_or_malformed_files(tmp_path):
    (tmp_path / "good").write_text("42\n")
    (tmp_path / "bad").write_text("forty-two\n")
    assert files.optional_int(str(tmp_path / "good")) == 42
    assert files.optional_int(str(tmp_path / "bad")) is None
    assert files.optional_int(str(tmp_path / "missing")) is None
    assert files.optional_int("") is None
    assert files.optional_keyed(str(tmp_path / "missing")) == {}


def test_write_value_replaces_the_content(tmp_path):
    target = tmp_path / "memory.max"
    target.write_text("max\n")
    files.write_value(str(target), 1 << 20)
    assert target.read_text() == "1048576"


def test_write_value_names_file_and_value_and_never_creates(tmp_path):
    target = tmp_path / "pids.max"
    with pytest.raises(KernelError) as caught:
        files.write_value(str(target), 10)
    assert str(target) in str(caught.value) and "'10'" in str(caught.value)
    assert caught.value.hint   # ENOENT says where to look
    assert not target.exists()


def test_check_name_refuses_anything_but_one_path_component():
    assert files.check_name("web-1") == "web-1"
    for bad in ("", ".", "..", "../etc", "a/b", "x\0y"):
        with pytest.raises(InvalidArgument):
            files.check_name(bad)


def test_make_dir(tmp_path):
    path = str(tmp_path / "c")
    assert files.make_dir(path, exist_ok=False) is True
    assert files.make_dir(path, exist_ok=True) is False
    with pytest.raises(FileExistsError):
        files.make_dir(path, exist_ok=False)
    with pytest.raises(KernelError, match="cannot create cgroup"):
        files.make_dir(str(tmp_path / "no" / "such"), exist_ok=True)


def test_make_dir_makes_a_missing_parent_only_when_asked(tmp_path):
    path = str(tmp_path / "corral" / "c")
    assert files.make_dir(path, exist_ok=False, parent=True) is True
    assert files.make_dir(str(tmp_path / "corral" / "d"), exist_ok=False, parent=True) is True
    with pytest.raises(KernelError, match="cannot create cgroup"):      # the hierarchy itself is gone
        files.make_dir(str(tmp_path / "no" / "such" / "c"), exist_ok=False, parent=True)


def test_empty_cgroups_are_removed_and_a_busy_one_is_left_to_the_caller(tmp_path, monkeypatch):
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    dirs = [str(tmp_path / name) for name in ("a", "missing", "b")]
    assert files.remove_empty_cgroups(dirs, None) is True
    assert sorted(os.listdir(tmp_path)) == ["c"]
    (tmp_path / "c" / "child").mkdir()                    # a child cgroup: rmdir answers EBUSY on cgroupfs
    monkeypatch.setattr(files.os, "rmdir", BusyRmdir(busy_times=1))
    assert files.remove_empty_cgroups([str(tmp_path / "c")], None) is False
    assert (tmp_path / "c" / "child").exists()


def test_remove_tree_removes_children_first_and_ignores_missing(tmp_path):
    (tmp_path / "c" / "sub" / "deeper").mkdir(parents=True)
    files.remove_tree(str(tmp_path / "c"), timeout=0)
    assert not (tmp_path / "c").exists()
    files.remove_tree(str(tmp_path / "c"), timeout=0)


class BusyRmdir:
    """rmdir that answers EBUSY a number of times, as the kernel does while tasks exit."""

    def __init__(self, busy_times: int) -> None:
        self.busy_times = busy_times
        self.calls = 0
        self.real_rmdir = os.rmdir   # monkeypatch replaces os.rmdir itself

    def __call__(self, path):
        self.calls += 1
        if self.calls <= self.busy_times:
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), path)
        self.real_rmdir(path)


def test_remove_tree_retries_while_busy(tmp_path, monkeypatch):
    (tmp_path / "c").mkdir()
    rmdir = BusyRmdir(busy_times=3)
    monkeypatch.setattr(files.os, "rmdir", rmdir)
    files.remove_tree(str(tmp_path / "c"), timeout=10)
    assert not (tmp_path / "c").exists()
    assert rmdir.calls == 4


def test_remove_tree_gives_up_after_the_timeout(tmp_path, monkeypatch):
    (tmp_path / "c").mkdir()
    monkeypatch.setattr(files.os, "rmdir", BusyRmdir(busy_times=10**9))
    with pytest.raises(KernelError, match="cannot remove cgroup"):
        files.remove_tree(str(tmp_path / "c"), timeout=0)
    assert (tmp_path / "c").exists()


def test_wait_for():
    answers = iter([False, False, True])
    assert files.wait_for(lambda: next(answers), timeout=10, interval=0)
    assert files.wait_for(lambda: False, timeout=0) is False


# --- the stats path: bytes readers and parsers, kept-open files ---------------------------------

MEMORY_STAT = (b"cache 753664\nrss 28053504\nrss_huge 0\ninactive_file 12\ntotal_cache 753664\n"
               b"total_rss 28053504\ntotal_rss_huge 0\ntotal_inactive_file 4096\nweird x\n")


def test_keyed_value_finds_whole_keys_only():
    assert files.keyed_value(MEMORY_STAT, b"cache") == 753664           # first line
    assert files.keyed_value(MEMORY_STAT, b"rss") == 28053504           # not rss_huge, not total_rss
    assert files.keyed_value(MEMORY_STAT, b"total_inactive_file") == 4096
    assert files.keyed_value(MEMORY_STAT, b"inactive_file") == 12
    assert files.keyed_value(b"frozen 1", b"frozen") == 1                # no final newline
    assert files.keyed_value(MEMORY_STAT, b"weird") is None             # not an integer
    assert files.keyed_value(MEMORY_STAT, b"swap") is None
    assert files.keyed_value(None, b"rss") is None
    assert files.keyed_value(b"\0\0garbage", b"nr_periods") is None


def test_byte_parsers_answer_none_for_unread_or_malformed_files():
    assert files.as_int(b"42\n") == 42 and files.as_int(b"x\n") is None and files.as_int(None) is None
    assert files.as_max(b"max\n") is None and files.as_max(b"100\n") == 100
    assert files.as_v1_limit(b"9223372036854771712\n") is None and files.as_v1_limit(b"-1\n") is None
    assert files.as_v1_limit(b"max\n") is None and files.as_v1_limit(b"1048576\n") == 1 << 20
    assert files.pids_of(b"12\n345\n") == [12, 345] and files.pids_of(b"") == []
    assert files.pids_of(b"1\nx\n") is None and files.pids_of(None) is None


def test_pressure_of_reads_the_same_totals_as_parse_pressure():
    text = ("some avg10=1.98 avg60=0.74 avg300=0.77 total=5234163\n"
            "full avg10=0.00 avg60=0.00 avg300=0.00 total=1500000\n")
    assert files.pressure_of(text.encode()) == files.parse_pressure(text) == Pressure(5.234163, 1.5)
    assert files.pressure_of(b"some avg10=0.00 avg60=0.00 avg300=0.00 total=2000000\n") == Pressure(2.0, 0.0)
    assert files.pressure_of(b"nonsense\n") is None and files.pressure_of(None) is None


def test_read_bytes_reads_files_larger_than_one_chunk(tmp_path):
    big = tmp_path / "cgroup.procs"
    content = "".join(f"{pid}\n" for pid in range(100_000)).encode()   # ~590 KB
    big.write_bytes(content)
    assert files.read_bytes(str(big)) == content
    assert kept_files.OpenFiles(max_open=4).read(str(big)) == content


def test_open_files_read_the_content_of_now(tmp_path):
    target = tmp_path / "memory.usage_in_bytes"
    target.write_text("100\n")
    kept = kept_files.OpenFiles(max_open=8)
    assert kept.read(str(target)) == b"100\n"
    files.write_value(str(target), 200)      # in place, as the kernel changes a cgroup file
    assert kept.read(str(target)) == b"200"
    assert len(kept) == 1
    kept.close()
    assert len(kept) == 0


def test_open_files_keep_at_most_max_open_and_still_read_the_rest(tmp_path):
    paths = []
    for index in range(5):
        (tmp_path / f"f{index}").write_text(f"{index}\n")
        paths.append(str(tmp_path / f"f{index}"))
    kept = kept_files.OpenFiles(max_open=2)
    assert [kept.read(p) for p in paths] == [f"{i}\n".encode() for i in range(5)]
    assert len(kept) == 2
    with pytest.raises(FileNotFoundError):
        kept.read(str(tmp_path / "missing"))
    kept.close()


def test_forget_closes_the_files_of_one_directory(tmp_path):
    for name in ("a", "ab"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "pids.current").write_text("1\n")
    kept = kept_files.OpenFiles(max_open=8)
    kept.read(str(tmp_path / "a" / "pids.current"))
    kept.read(str(tmp_path / "ab" / "pids.current"))
    kept.forget(str(tmp_path / "a"))
    assert len(kept) == 1                    # "ab" is not below "a"
    kept.close()


def test_a_kept_file_that_fails_is_opened_again(tmp_path, monkeypatch):
    """A removed cgroup's files answer ENODEV; the path may name a cgroup made anew since."""
    target = tmp_path / "cpu.stat"
    target.write_text("usage_usec 1\n")
    kept = kept_files.OpenFiles(max_open=8)
    kept.read(str(target))
    failures = []
    real_pread = os.pread

    def pread(fd, size, offset):
        if not failures:   # the kept file fails once, as a removed cgroup's file does
            failures.append(fd)
            raise OSError(errno.ENODEV, os.strerror(errno.ENODEV))
        return real_pread(fd, size, offset)
    monkeypatch.setattr(files.os, "pread", pread)
    target.write_text("usage_usec 2\n")
    assert kept.read(str(target)) == b"usage_usec 2\n"
    assert len(failures) == 1 and len(kept) == 1
    kept.close()


def test_on_cgroupfs_goes_by_the_mount_holding_the_path(tmp_path):
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(
        "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
        "30 22 0:26 / /sys/fs/cgroup ro shared:9 - tmpfs tmpfs ro,mode=755\n"
        "35 30 0:30 / /sys/fs/cgroup/memory rw shared:14 - cgroup cgroup rw,memory\n"
        "31 30 0:27 / /sys/fs/cgroup/unified rw shared:10 - cgroup2 cgroup2 rw\n")
    assert kept_files.on_cgroupfs("/sys/fs/cgroup/memory/corral", str(mountinfo))
    assert kept_files.on_cgroupfs("/sys/fs/cgroup/unified", str(mountinfo))
    assert not kept_files.on_cgroupfs("/sys/fs/cgroup", str(mountinfo))          # the tmpfs
    assert not kept_files.on_cgroupfs("/sys/fs/cgroup/memoryx", str(mountinfo))
    assert not kept_files.on_cgroupfs(str(tmp_path), str(mountinfo))
    assert not kept_files.on_cgroupfs("/", str(tmp_path / "missing"))
    # Every hierarchy at once, from one read of the table: one path off cgroupfs is enough to say no.
    assert kept_files.all_on_cgroupfs(["/sys/fs/cgroup/memory/corral", "/sys/fs/cgroup/unified"], str(mountinfo))
    assert not kept_files.all_on_cgroupfs(["/sys/fs/cgroup/memory/corral", "/sys/fs/cgroup"], str(mountinfo))
    assert not kept_files.all_on_cgroupfs(["/sys/fs/cgroup/unified"], str(tmp_path / "missing"))
