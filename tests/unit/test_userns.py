"""User-namespace ranges: parsing /etc/subuid, choosing disjoint ranges, the mode of a spec
(pure logic; the kernel side is tests/integration/test_userns.py)."""
from __future__ import annotations

import threading

import pytest

from agent.errors import Conflict, InvalidArgument
from agent.runtime.inspect import user_namespace
from agent.runtime.launch import LaunchRequest
from agent.runtime.model import Container, ContainerSpec
from agent.userns.allocator import AUTO, HOST, UsernsAllocator, in_use, mode_of
from agent.userns.ranges import RANGE_SIZE, IdRange, Span, choose, free_blocks, parse_subids

SUBIDS = "# comment\nalice:100000:65536\ncorral:1000000:262144\n\n999:5000000:65536\n"


def test_only_the_users_lines_count_by_name_or_uid():
    assert parse_subids(SUBIDS, "corral", None, "/etc/subuid") == [Span(1000000, 262144)]
    assert parse_subids(SUBIDS, "corral", 999, "/etc/subuid") == [Span(1000000, 262144), Span(5000000, 65536)]
    assert parse_subids(SUBIDS, "bob", None, "/etc/subuid") == []


@pytest.mark.parametrize("line", ["corral:abc:65536", "corral:1000", "corral:1000:0", "corral:4294967000:65536"])
def test_a_malformed_line_of_the_user_names_file_and_line(line):
    with pytest.raises(InvalidArgument, match=r"/etc/subuid:2: expected corral:START:COUNT"):
        parse_subids("alice:1:2\n" + line, "corral", None, "/etc/subuid")


def test_other_users_bad_lines_are_not_ours_to_judge():
    assert parse_subids("alice:x:y\ncorral:65536:65536", "corral", None, "f") == [Span(65536, 65536)]


def test_blocks_fit_wholly_inside_the_spans():
    assert list(free_blocks([Span(0, 3 * RANGE_SIZE - 1), Span(10 * RANGE_SIZE, RANGE_SIZE)], RANGE_SIZE)) == \
        [0, RANGE_SIZE, 10 * RANGE_SIZE]
    assert list(free_blocks([Span(0, RANGE_SIZE - 1)], RANGE_SIZE)) == []


def test_each_container_gets_the_lowest_free_disjoint_range():
    uids = gids = [Span(1000000, 4 * RANGE_SIZE)]
    first = choose(uids, gids, [])
    assert first == IdRange(1000000, 1000000)
    second = choose(uids, gids, [first])
    assert second == IdRange(1000000 + RANGE_SIZE, 1000000 + RANGE_SIZE)
    # A freed range (its container removed) is handed out again; held ones never.
    third = choose(uids, gids, [second])
    assert third == first
    held = [IdRange(1000000 + i * RANGE_SIZE, 1000000 + i * RANGE_SIZE) for i in range(4)]
    assert choose(uids, gids, held) is None


def test_a_range_overlapping_one_in_use_is_skipped_even_when_misaligned():
    uids = gids = [Span(0, 3 * RANGE_SIZE)]
    odd = IdRange(RANGE_SIZE // 2, 5, 10)          # e.g. from an older daemon or another size
    assert choose(uids, gids, [odd]) == IdRange(RANGE_SIZE, RANGE_SIZE)


def test_uids_and_gids_come_from_their_own_files():
    chosen = choose([Span(100000, RANGE_SIZE)], [Span(700000, RANGE_SIZE)], [])
    assert chosen == IdRange(100000, 700000)
    assert chosen.host_uid(0) == 100000 and chosen.host_gid(65535) == 700000 + 65535
    assert chosen.host_uid(RANGE_SIZE) == RANGE_SIZE            # past the range: left as is
    assert chosen.launcher_option() == f"100000:700000:{RANGE_SIZE}"
    assert IdRange.from_dict(chosen.to_dict()) == chosen


@pytest.fixture
def files(tmp_path):
    (tmp_path / "subuid").write_text("corral:1000000:131072\n")
    (tmp_path / "subgid").write_text("corral:2000000:131072\n")
    return tmp_path


def test_the_allocator_reads_the_files_and_refuses_when_full(files):
    allocator = UsernsAllocator(files / "subuid", files / "subgid", user="corral")
    first = allocator.allocate([])
    second = allocator.allocate([first])
    assert (first.uid, first.gid, second.uid, second.gid) == (1000000, 2000000, 1065536, 2065536)
    with pytest.raises(Conflict, match="every range of 65536 ids for user 'corral'"):
        allocator.allocate([first, second])


@pytest.mark.parametrize("content", [None, "", "corral:1000000:1000\n", "alice:0:100000\n"])
def test_no_usable_range_is_an_error_naming_the_file_and_the_fix(files, content):
    path = files / "subgid"
    if content is None:
        path.unlink()
    else:
        path.write_text(content)
    with pytest.raises(InvalidArgument) as caught:
        UsernsAllocator(files / "subuid", path, user="corral").allocate([])
    assert f"{path} lists no range of 65536 ids for user 'corral'" in caught.value.message
    assert caught.value.field == "userns" and "scripts/setup.sh" in caught.value.hint


def test_concurrent_allocations_under_the_lock_never_share_a_range(files):
    (files / "subuid").write_text(f"corral:0:{64 * RANGE_SIZE}\n")
    (files / "subgid").write_text(f"corral:0:{64 * RANGE_SIZE}\n")
    allocator = UsernsAllocator(files / "subuid", files / "subgid", user="corral")
    records: list[IdRange] = []

    def create() -> None:
        for _ in range(8):
            with allocator.lock:
                records.append(allocator.allocate(records))

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({r.uid for r in records}) == len(records) == 32


def spec(**fields) -> ContainerSpec:
    return ContainerSpec.checked(**{"image": "busybox", "network": "none", **fields})


def test_the_mode_is_the_containers_else_the_daemons():
    assert mode_of(spec(), HOST) == HOST
    assert mode_of(spec(), AUTO) == AUTO
    assert mode_of(spec(userns="host"), AUTO) == HOST
    assert mode_of(spec(userns="auto"), HOST) == AUTO
    # --privileged and --net host opt out explicitly under a daemon default of auto.
    assert mode_of(spec(privileged=True, userns="host"), AUTO) == HOST


@pytest.mark.parametrize("fields, flag", [({"privileged": True}, "--privileged"), ({"network": "host"}, "--net host")])
def test_privileged_and_host_network_cannot_have_a_user_namespace(fields, flag):
    with pytest.raises(InvalidArgument, match=f"userns: {flag} cannot be used with --userns auto") as caught:
        spec(userns="auto", **fields)
    assert caught.value.field == "userns"
    with pytest.raises(InvalidArgument, match=f"{flag} cannot be used with the daemon's default --userns auto"):
        mode_of(spec(**fields), AUTO)


def test_a_bad_mode_is_refused_naming_the_field():
    with pytest.raises(InvalidArgument) as caught:
        ContainerSpec.from_dict({"image": "busybox", "userns": "remap"})
    assert caught.value.field == "userns"


def container(userns=None) -> Container:
    return Container(id="a" * 64, name="c", spec=spec(), image_id="i", created_at=0.0, userns=userns)


def test_in_use_lists_the_records_ranges():
    held = IdRange(1000000, 1000000).to_dict()
    assert in_use([container(), container({**held, "ownership": "idmapped"})]) == [IdRange(1000000, 1000000)]


def test_inspect_shows_the_mode_and_the_mapping():
    assert user_namespace(container()) == {"UsernsMode": "host", "IDMappings": None}
    shown = user_namespace(container({"uid": 1000000, "gid": 2000000, "size": 65536, "ownership": "chown"}))
    assert shown == {"UsernsMode": "auto", "IDMappings": {"UidMap": ["0:1000000:65536"],
                                                          "GidMap": ["0:2000000:65536"], "Ownership": "chown"}}


def test_the_launcher_is_given_the_map():
    request = LaunchRequest(rootfs="/r", command=["true"], hostname="h", network="none", env=[], workdir="/",
                            userns="1000000:1000000:65536")
    argv = request.argv("/launcher")
    assert argv[argv.index("--userns") + 1] == "1000000:1000000:65536" and argv[-2:] == ["--", "true"]


# ---- corral doctor ---------------------------------------------------------------------------

def doctor(files, **seams):
    from agent.doctor.result import HostPaths
    from agent.doctor.userns import check_userns
    allocator = UsernsAllocator(files / "subuid", files / "subgid", user="corral")
    return check_userns(HostPaths(), allocator, **{"try_unshare": lambda flag: 0,
                                                    "try_idmap": lambda paths: None, **seams})


def test_doctor_says_the_host_can(files):
    result = doctor(files)
    assert result.status == "ok" and not result.required
    assert result.found.startswith("2 ranges of 65536 ids for 'corral'")


def test_doctor_names_missing_ranges_and_the_fix(files):
    (files / "subuid").write_text("")
    result = doctor(files)
    assert result.status == "warn" and "lists no range" in result.found and "scripts/setup.sh" in result.fix


def test_doctor_reports_user_namespaces_refused(files):
    import errno
    result = doctor(files, try_unshare=lambda flag: errno.ENOSPC)
    assert result.status == "warn" and "cannot create a user namespace" in result.found
    assert result.fix == "sysctl -w user.max_user_namespaces=10000"
    assert "CONFIG_USER_NS" in doctor(files, try_unshare=lambda flag: errno.EINVAL).fix


def test_doctor_warns_of_the_chown_fallback(files):
    result = doctor(files, try_idmap=lambda paths: "mount_setattr: Invalid argument")
    assert result.status == "warn" and "chowned instead" in result.found and "Invalid argument" in result.found


def test_add_gives_auto_containers_a_free_range_and_stores_them(files):
    class Store(list):
        def all(self):
            return list(self)

        def add(self, record):
            self.append(record)

    store = Store()
    allocator = UsernsAllocator(files / "subuid", files / "subgid", user="corral", default=AUTO)
    first, second, opted_out = container(), container(), container()
    opted_out.spec = spec(userns="host")
    for record in (first, second, opted_out):
        allocator.add(record, store)
    assert store == [first, second, opted_out]
    assert (first.userns["uid"], second.userns["uid"], opted_out.userns) == (1000000, 1065536, None)
    assert IdRange.of(first.userns) == IdRange(1000000, 2000000) and IdRange.of(None) is None
