"""The one mount-table parser (agent/mount_table.py) that the doctor, the image store, the
cgroup drivers and the probes share."""
from __future__ import annotations

from agent.mount_table import mount_holding, mounted, mounted_at, parse_mountinfo, read_mount_table, read_mounts

TABLE = ("22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
         "30 22 0:26 / /sys/fs/cgroup ro shared:9 - tmpfs tmpfs ro,mode=755\n"
         "35 30 0:30 / /sys/fs/cgroup/memory rw shared:14 - cgroup cgroup rw,memory\n"
         "36 22 0:40 / /mnt/a\\040b\\134c rw - tmpfs tmpfs rw\n"
         "37 36 0:41 / /mnt/a\\040b\\134c rw - overlay overlay rw,lowerdir=/x\n"
         "not a mount line\n")


def test_entries_unescape_octal_paths_and_skip_junk():
    entries = parse_mountinfo(TABLE)
    assert [e.mount_point for e in entries] == ["/", "/sys/fs/cgroup", "/sys/fs/cgroup/memory",
                                                "/mnt/a b\\c", "/mnt/a b\\c"]
    assert entries[2].fstype == "cgroup" and entries[2].super_options == ("rw", "memory")


def test_the_mount_holding_a_path_is_the_longest_prefix_and_the_last_one_over_it():
    entries = parse_mountinfo(TABLE)
    holder = mount_holding(entries, "/sys/fs/cgroup/memory/corral")
    assert holder is not None and holder.fstype == "cgroup"
    holder = mount_holding(entries, "/sys/fs/cgroup/memoryx")
    assert holder is not None and holder.fstype == "tmpfs"
    holder = mount_holding(entries, "/mnt/a b\\c/d")
    assert holder is not None and holder.fstype == "overlay"


def test_exact_mount_points_and_types():
    entries = parse_mountinfo(TABLE)
    assert mounted_at(entries, "/mnt/a b\\c") and not mounted_at(entries, "/mnt")
    assert mounted(entries, "cgroup", "/nowhere", "/sys/fs/cgroup/memory") == "/sys/fs/cgroup/memory"
    assert mounted(entries, "cgroup2", "/sys/fs/cgroup/memory") is None


def test_reading_a_missing_table(tmp_path):
    (tmp_path / "mountinfo").write_text(TABLE)
    assert len(read_mount_table(tmp_path / "mountinfo")) == 5
    assert read_mounts(tmp_path / "missing") is None
