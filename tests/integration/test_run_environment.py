"""Users and environment flags for real: -u and --group-add resolved in the container's
/etc/passwd and /etc/group, --env-file, --init reaping zombies and passing the exit code on,
--ulimit, --shm-size, --dns* and --add-host in the container's files; exec gets the same
groups and limits. Bad values exit 125 naming the flag and leave nothing behind."""
from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.integration.corral_daemon import CORRAL

pytestmark = pytest.mark.privileged

PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1234:1234:app:/home/app:/bin/sh\n"
GROUP = "root:x:0:\napp:x:1234:\nstaff:x:50:app\naudio:x:29:\n"


@pytest.fixture
def etc(tmp_path):
    """An /etc/passwd and /etc/group with a named user, bind-mounted over the image's."""
    (tmp_path / "passwd").write_text(PASSWD)
    (tmp_path / "group").write_text(GROUP)
    return ["-v", f"{tmp_path / 'passwd'}:/etc/passwd:ro", "-v", f"{tmp_path / 'group'}:/etc/group:ro"]


def run(daemon, *args: str, check: bool = True):
    return daemon.cli("run", "--rm", "--net", "none", *args, check=check)


def test_uid_and_uid_gid_and_a_named_user_of_the_image(daemon, etc):
    assert run(daemon, "-u", "1000", "busybox", "id", "-u").stdout.decode().strip() == "1000"
    assert run(daemon, "-u", "1000:1000", "busybox", "id").stdout.decode().strip() == "uid=1000 gid=1000 groups=1000"
    named = run(daemon, *etc, "-u", "app", "busybox", "sh", "-c", "id -u; id -g; id -G; echo $HOME")
    uid, gid, groups, home = named.stdout.decode().splitlines()
    assert (uid, gid, sorted(groups.split()), home) == ("1234", "1234", ["1234", "50"], "/home/app")


def test_group_add_by_name_and_number_shows_in_id(daemon, etc):
    result = run(daemon, *etc, "-u", "app", "--group-add", "audio", "--group-add", "4242", "busybox", "id", "-G")
    assert sorted(result.stdout.decode().split(), key=int) == ["29", "50", "1234", "4242"]
    as_root = run(daemon, *etc, "--group-add", "audio", "busybox", "id", "-G")
    assert sorted(as_root.stdout.decode().split(), key=int) == ["0", "29"]
    unknown = run(daemon, *etc, "--group-add", "ghosts", "busybox", "true", check=False)
    assert unknown.returncode == 125
    assert "unable to find group ghosts" in unknown.stderr.decode()


def test_env_file_in_dockers_format_with_e_winning(daemon, tmp_path):
    env_file = tmp_path / "app.env"
    env_file.write_text("# a comment\n\nGREETING=hello world  \nFROM_SHELL\nOVERRIDDEN=file\nUNSET_HERE\n")
    result = subprocess.run(
        [CORRAL, "run", "--rm", "--net", "none", "--env-file", str(env_file), "-e", "OVERRIDDEN=flag",
         "busybox", "sh", "-c", 'echo "[$GREETING]" "$FROM_SHELL" "$OVERRIDDEN" "${UNSET_HERE-none}"'],
        env={**daemon.env, "FROM_SHELL": "shell value"}, capture_output=True, timeout=60, check=True)
    assert result.stdout.decode().strip() == "[hello world  ] shell value flag none"
    missing = daemon.cli("run", "--rm", "--env-file", str(tmp_path / "nope.env"), "busybox", "true", check=False)
    assert missing.returncode == 125 and "--env-file" in missing.stderr.decode()


def zombies(daemon, *flags: str) -> int:
    """Zombies in a container whose main process never waits: the subshell's `sleep` is
    orphaned, re-parented to pid 1, and only an init that reaps makes it go away."""
    cid = daemon.out("run", "-d", "--net", "none", *flags, "busybox", "sh", "-c", "(sleep 0.2 &); exec sleep 30")
    try:
        result = daemon.cli("exec", cid, "sh", "-c", "sleep 1.5; ps -o stat,comm | grep -c '^Z' || true")
        return int(result.stdout.decode().split()[-1])
    finally:
        daemon.cli("rm", "-f", cid, check=False)


def test_init_reaps_zombies_and_passes_the_exit_code(daemon):
    assert zombies(daemon) >= 1                  # `sleep` as pid 1 never reaps the orphan
    assert zombies(daemon, "--init") == 0
    assert run(daemon, "--init", "busybox", "sh", "-c", "exit 7", check=False).returncode == 7
    killed = run(daemon, "--init", "busybox", "sh", "-c", "kill -KILL $$", check=False)
    assert killed.returncode == 137
    assert run(daemon, "--init", "busybox", "cat", "/proc/1/comm").stdout.decode().strip() == "init"


def test_init_forwards_stop_to_the_command(daemon):
    # A shell as pid 1 ignores SIGTERM; under --init it gets it and dies at once.
    cid = daemon.out("run", "-d", "--net", "none", "--init", "busybox", "sh", "-c",
                     "trap 'exit 3' TERM; while true; do sleep 0.1; done")
    try:
        time.sleep(0.5)
        daemon.cli("kill", "--signal", "TERM", cid)
        assert daemon.cli("wait", cid, timeout=30).stdout.decode().strip() == "3"
    finally:
        daemon.cli("rm", "-f", cid, check=False)


def test_ulimit_is_seen_by_the_command_and_by_exec(daemon):
    result = run(daemon, "--ulimit", "nofile=512:1024", "busybox", "sh", "-c", "ulimit -n; ulimit -Hn")
    assert result.stdout.decode().split() == ["512", "1024"]
    cid = daemon.out("run", "-d", "--net", "none", "--ulimit", "nofile=256", "--group-add", "4242",
                     "busybox", "sleep", "30")
    try:
        inside = daemon.cli("exec", cid, "sh", "-c", "ulimit -n; id -G").stdout.decode().split()
        assert inside[0] == "256" and sorted(inside[1:]) == ["0", "4242"]
        host = json.loads(daemon.out("inspect", cid))[0]["HostConfig"]
        assert host["Ulimits"] == [{"Name": "nofile", "Soft": 256, "Hard": 256}]
        assert host["GroupAdd"] == ["4242"]
    finally:
        daemon.cli("rm", "-f", cid, check=False)
    bad = run(daemon, "--ulimit", "nofile=2048:1024", "busybox", "true", check=False)
    assert bad.returncode == 125 and "soft limit 2048 is above the hard limit 1024" in bad.stderr.decode()
    unknown = run(daemon, "--ulimit", "files=1", "busybox", "true", check=False)
    assert unknown.returncode == 125 and "--ulimit 'files=1'" in unknown.stderr.decode()


def test_shm_size_is_the_size_of_dev_shm(daemon):
    sized = run(daemon, "--shm-size", "128m", "busybox", "df", "-k", "/dev/shm").stdout.decode().splitlines()
    assert sized[-1].split()[1] == str(128 * 1024)
    default = run(daemon, "busybox", "df", "-k", "/dev/shm").stdout.decode().splitlines()
    assert default[-1].split()[1] == str(64 * 1024)


def test_dns_and_add_host_in_the_containers_files(daemon):
    flags = ["--dns", "192.0.2.53", "--dns-search", "corp.example", "--dns-option", "ndots:2",
             "--add-host", "db:192.0.2.10", "--add-host", "gw:host-gateway"]
    bridged = daemon.cli("run", "--rm", *flags, "busybox", "cat", "/etc/resolv.conf", "/etc/hosts")
    text = bridged.stdout.decode()
    assert "nameserver 192.0.2.53\n" in text and "search corp.example\n" in text and "options ndots:2\n" in text
    assert text.count("nameserver") == 1
    assert "192.0.2.10\tdb\n" in text
    gateway_line = next(line for line in text.splitlines() if line.endswith("\tgw"))
    assert gateway_line.startswith("10.")           # the default network's gateway, the host's address
    isolated = run(daemon, "--dns", "192.0.2.53", "--add-host", "db:192.0.2.10", "busybox",
                   "cat", "/etc/resolv.conf", "/etc/hosts").stdout.decode()
    assert "nameserver 192.0.2.53\n" in isolated and "192.0.2.10\tdb\n" in isolated
    refused = run(daemon, "--add-host", "gw:host-gateway", "busybox", "true", check=False)
    assert refused.returncode == 125 and "host-gateway needs a network" in refused.stderr.decode()
    bad = run(daemon, "--dns", "not-an-ip", "busybox", "true", check=False)
    assert bad.returncode == 125 and "dns" in bad.stderr.decode()
    assert daemon.out("ps", "-a", "-q") == ""


def test_the_images_user_is_the_default(daemon):
    # USER of the image (here set by `corral commit --change`), as docker: -u still wins.
    source = daemon.out("create", "--net", "none", "busybox", "true")
    try:
        daemon.cli("commit", "--change", "USER nobody", source, "as-nobody:1")
        assert run(daemon, "as-nobody:1", "id", "-u").stdout.decode().strip() == "65534"
        assert run(daemon, "-u", "0", "as-nobody:1", "id", "-u").stdout.decode().strip() == "0"
        cid = daemon.out("run", "-d", "--net", "none", "as-nobody:1", "sleep", "30")
        try:
            assert daemon.cli("exec", cid, "id", "-u").stdout.decode().strip() == "65534"
            assert json.loads(daemon.out("inspect", cid))[0]["Config"]["User"] == "nobody"
        finally:
            daemon.cli("rm", "-f", cid, check=False)
    finally:
        daemon.cli("rm", "-f", source, check=False)
        daemon.cli("image", "rm", "as-nobody:1", check=False)
