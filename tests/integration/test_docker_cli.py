"""The real `docker` CLI drives Corral through the Docker Engine API (agent/dockerapi).

Each test runs what a user types, with DOCKER_HOST as the only change, and checks what the
user sees (output, exit codes) and that Corral itself sees the same containers.
"""
from __future__ import annotations

import json
import re
import socket
import time
import urllib.request

import pytest

from tests.integration.corral_daemon import free_port, running_daemon, until
from tests.integration.docker_support import DockerCli

pytestmark = pytest.mark.privileged


@pytest.fixture(scope="module")
def daemon():
    with running_daemon() as instance:
        yield instance


@pytest.fixture(scope="module")
def docker(daemon, tmp_path_factory):
    return DockerCli(daemon, tmp_path_factory.mktemp("docker-config"))


@pytest.fixture(autouse=True)
def clean(daemon):
    yield
    daemon.remove_all()


def _raw(daemon, request: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(daemon.docker_socket))
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        return data


def test_ping_version_and_errors_speak_dockers_protocol(daemon, docker):
    head = _raw(daemon, b"HEAD /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n").decode()
    assert head.startswith("HTTP/1.1 200")
    for header in ("Api-Version: 1.4", "Docker-Experimental: false", "Ostype: linux", "Builder-Version:"):
        assert header in head
    version = json.loads(_raw(daemon, b"GET /v1.44/version HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
                         .split(b"\r\n\r\n", 1)[1])
    assert tuple(map(int, version["ApiVersion"].split("."))) >= (1, 44)
    assert version["MinAPIVersion"] == "1.24"
    missing = _raw(daemon, b"GET /v1.44/containers/nothere/json HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
    assert missing.startswith(b"HTTP/1.1 404")
    assert json.loads(missing.split(b"\r\n\r\n", 1)[1]) == {"message": "No such container: nothere"}
    too_new = _raw(daemon, b"GET /v1.99/info HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
    assert too_new.startswith(b"HTTP/1.1 400") and b"Maximum supported API version" in too_new
    swarm = _raw(daemon, b"GET /swarm HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
    assert swarm.startswith(b"HTTP/1.1 503")
    assert "Server Version:" in docker.out("info")
    assert "Corral" in docker.out("version")


def test_run_rm_prints_and_leaves_nothing(daemon, docker):
    assert docker.out("run", "--rm", "busybox", "echo", "hi") == "hi"
    assert docker.out("ps", "-a", "-q") == ""
    assert daemon.out("ps", "-a", "-q") == ""


def test_exit_codes_and_stderr(docker):
    done = docker.run("run", "--name", "fails", "busybox", "sh", "-c", "echo oops >&2; exit 3", check=False)
    assert done.returncode == 3
    assert done.stderr.decode().strip() == "oops"
    assert docker.out("inspect", "-f", "{{.State.ExitCode}} {{.State.Status}}", "fails") == "3 exited"
    assert docker.out("ps", "-a", "--filter", "exited=3", "--format", "{{.Names}} {{.Status}}").startswith("fails Exited (3)")


def test_detached_container_is_a_corral_container(daemon, docker):
    cid = docker.out("run", "-d", "--name", "web", "--label", "team=a", "--memory", "64m", "busybox", "sleep", "300")
    assert len(cid) == 64
    assert cid.startswith(daemon.out("ps", "-q"))     # Corral sees it as its own
    assert docker.out("ps", "--filter", "label=team=a", "--format", "{{.Names}}") == "web"
    assert docker.out("ps", "--filter", "label=team=b", "-q") == ""
    assert docker.out("ps", "--filter", "name=we", "--filter", "status=running", "-q") == cid[:12]
    assert docker.out("ps", "--filter", "ancestor=busybox", "-q") == cid[:12]
    assert docker.out("ps", "--format", "{{.Status}}").startswith("Up ")
    fields = docker.out("inspect", "-f", "{{.State.Running}} {{.Name}} {{.HostConfig.Memory}} "
                                         "{{.HostConfig.LogConfig.Type}} {{.Config.Labels.team}}", "web")
    assert fields == "true /web 67108864 json-file a"
    networks = json.loads(docker.out("inspect", "-f", "{{json .NetworkSettings.Networks}}", "web"))
    assert networks["bridge"]["IPAddress"].startswith("10.")
    assert len(networks["bridge"]["NetworkID"]) == 64
    exec_done = docker.run("exec", "web", "sh", "-c", "echo out; echo err >&2; exit 4", check=False)
    assert (exec_done.returncode, exec_done.stdout, exec_done.stderr) == (4, b"out\n", b"err\n")
    top = docker.out("top", "web")
    assert "PID" in top.splitlines()[0] and "sleep 300" in top
    stats = docker.out("stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}} {{.PIDs}}", "web")
    name, usage, pids = stats.split(" ", 1)[0], stats.split(" ", 1)[1], stats.rsplit(" ", 1)[1]
    assert name == "web" and "64MiB" in usage and pids == "1"
    assert docker.out("stop", "-t", "1", "web") == "web"
    assert docker.out("inspect", "-f", "{{.State.Status}}", "web") == "exited"
    assert docker.out("rm", "web") == "web"
    assert docker.run("inspect", "web", check=False).returncode == 1


def test_logs_follow_and_tail(docker):
    docker.run("run", "-d", "--name", "talker", "busybox", "sh", "-c", "echo one; echo two; sleep 1; echo three")
    follow = docker.run("logs", "-f", "talker", timeout=30)
    assert follow.stdout == b"one\ntwo\nthree\n"
    assert docker.out("logs", "--tail", "1", "talker") == "three"
    stamp, _, text = docker.out("logs", "-t", "--tail", "1", "talker").partition(" ")
    assert text == "three" and stamp.endswith("Z") and len(stamp) == 30   # more in test_logs_time.py


def test_a_field_corral_cannot_honour_is_refused_by_name(daemon, docker):
    done = docker.run("run", "--oom-score-adj", "500", "busybox", "true", check=False)
    assert done.returncode == 125
    assert "HostConfig.OomScoreAdj" in done.stderr.decode()
    assert docker.out("ps", "-a", "-q") == "" and daemon.out("ps", "-a", "-q") == ""


def test_published_port_reaches_the_container(docker):
    port = free_port()
    docker.run("run", "-d", "--name", "httpd", "-p", f"127.0.0.1:{port}:8080", "busybox",
               "sh", "-c", "mkdir -p /www && echo hello > /www/index.html && httpd -f -p 8080 -h /www")
    assert docker.out("port", "httpd") == f"8080/tcp -> 127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/index.html", timeout=2) as answer:
                assert answer.read() == b"hello\n"
                break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_network_create_and_names_resolve_between_containers(docker):
    docker.run("network", "create", "--label", "purpose=test", "itnet")
    try:
        assert "itnet" in docker.out("network", "ls", "--format", "{{.Name}}").split()
        assert docker.out("network", "inspect", "-f", "{{.Labels.purpose}}", "itnet") == "test"
        docker.run("run", "-d", "--name", "server", "--network", "itnet", "busybox", "sleep", "300")
        done = docker.run("run", "--rm", "--network", "itnet", "busybox", "ping", "-c", "1", "-W", "5", "server",
                          check=False)
        assert done.returncode == 0, done.stdout + done.stderr
        docker.run("rm", "-f", "server")
    finally:
        docker.run("rm", "-f", "server", check=False)
        docker.run("network", "rm", "itnet", check=False)
    assert "itnet" not in docker.out("network", "ls", "--format", "{{.Name}}").split()


def test_events_show_a_containers_life(docker):
    since = str(int(time.time()) - 1)
    docker.run("run", "--rm", "--name", "brief", "busybox", "true")
    until = str(int(time.time()) + 1)
    lines = docker.out("events", "--since", since, "--until", until, "--filter", "container=brief",
                       "--format", "{{.Type}} {{.Action}}").splitlines()
    assert lines[:2] == ["container create", "container start"]
    assert "container die" in lines and lines[-1] == "container destroy"


def test_volume_and_system_views_answer(docker):
    assert docker.out("volume", "ls", "-q") == ""
    assert "Images" in docker.out("system", "df")
    assert docker.run("volume", "inspect", "nothing", check=False).returncode == 1


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    from tests.integration.registry_support import Layout, Registry
    server = Registry(tmp_path_factory.mktemp("registry"))
    layout = Layout(tmp_path_factory.mktemp("layout") / "app")
    busybox = open("/bin/busybox", "rb").read()
    layout.add_image([{"bin/busybox": busybox, "bin/sh": busybox, "hello.txt": b"from the registry\n"}],
                     cmd=["/bin/sh", "-c", "cat /hello.txt"])
    layout.write_single("v1")
    server.push_layout(layout.path, "v1", "test/app")
    yield server
    server.stop()


def test_pull_run_tag_push_and_remove_images(docker, registry):
    name = f"{registry.host}/test/app"
    pulled = docker.run("pull", f"{name}:v1", timeout=120)
    assert f"Status: Downloaded newer image for {name}:v1" in pulled.stdout.decode()
    assert docker.out("run", "--rm", f"{name}:v1") == "from the registry"
    docker.run("tag", f"{name}:v1", f"{name}:copy")
    listed = docker.out("images", "--format", "{{.Repository}}:{{.Tag}}").split()
    assert f"{name}:v1" in listed and f"{name}:copy" in listed
    pushed = docker.run("push", f"{name}:copy", timeout=120)
    assert "digest: sha256:" in pushed.stdout.decode()
    assert docker.out("image", "inspect", "-f", "{{index .RepoTags 0}}", f"{name}:copy").startswith(name)
    docker.run("rmi", f"{name}:copy", f"{name}:v1")
    assert name not in docker.out("images", "--format", "{{.Repository}}")
    again = docker.run("pull", f"{name}:copy", timeout=120)       # what push sent is there
    assert again.returncode == 0
    docker.run("rmi", f"{name}:copy")
    missing = docker.run("pull", f"{registry.host}/test/none:v1", check=False, timeout=120)
    assert missing.returncode != 0 and missing.stderr


def test_save_load_and_host_config_fields_corral_now_honours(docker, tmp_path):
    archive = tmp_path / "busybox.tar"
    docker.run("save", "-o", str(archive), "busybox")
    assert archive.stat().st_size > 1_000_000
    docker.run("tag", "busybox", "saved/busybox:kept")
    docker.run("rmi", "saved/busybox:kept")
    loaded = docker.out("load", "-i", str(archive))
    assert "Loaded image" in loaded
    # Only the added entry: a bare `grep db` also matched the container's own line whenever its
    # id (its hostname) began with "db".
    hosts_entry = r"grep -E '^10\.9\.8\.7[[:space:]]+db([[:space:]]|$)' /etc/hosts"
    out = docker.out("run", "--rm", "--ulimit", "nofile=512:1024", "--add-host", "db:10.9.8.7",
                     "--shm-size", "8m", "busybox", "sh", "-c", f"ulimit -n; {hosts_entry}; df -k /dev/shm | tail -1")
    lines = out.splitlines()
    assert lines[0] == "512" and lines[1].split()[:2] == ["10.9.8.7", "db"] and " 8192 " in f" {lines[2]} "


def test_debians_older_client_negotiates_down_and_works(daemon, tmp_path):
    older = DockerCli(daemon, tmp_path, binary="docker-debian")      # docker.io 20.10: API 1.41
    assert "1.41" in older.out("version", "--format", "{{.Client.APIVersion}}")
    assert older.out("run", "--rm", "busybox", "echo", "from 20.10") == "from 20.10"
    older.run("run", "-d", "--name", "old", "busybox", "sleep", "300")
    assert older.out("ps", "--format", "{{.Names}}") == "old"
    assert older.out("exec", "old", "echo", "inside") == "inside"
    older.run("rm", "-f", "old")
    assert older.out("ps", "-a", "-q") == ""


def test_commit_makes_an_image_of_a_containers_changes(docker):
    docker.run("run", "--name", "maker", "busybox", "sh", "-c", "echo made > /made")
    image_id = docker.out("commit", "--change", 'CMD ["cat", "/made"]', "maker", "committed/made:1")
    assert image_id.startswith("sha256:")
    assert docker.out("run", "--rm", "committed/made:1") == "made"
    docker.run("rm", "maker")
    docker.run("rmi", "committed/made:1")


def test_health_checks_show_in_inspect_and_ps(docker):
    docker.run("run", "-d", "--name", "checked", "--health-cmd", "true", "--health-interval", "1s",
               "busybox", "sleep", "300")
    deadline = time.monotonic() + 30
    while docker.out("inspect", "-f", "{{.State.Health.Status}}", "checked") != "healthy":
        assert time.monotonic() < deadline, "the container never turned healthy"
        time.sleep(0.3)
    assert docker.out("ps", "--format", "{{.Status}}", "--filter", "name=checked").endswith("(healthy)")
    assert docker.out("ps", "--filter", "health=healthy", "--format", "{{.Names}}") == "checked"
    assert docker.out("ps", "--filter", "health=unhealthy", "-q") == ""
    docker.run("run", "-d", "--name", "unchecked", "busybox", "sleep", "300")
    assert docker.out("ps", "--filter", "health=none", "--format", "{{.Names}}") == "unchecked"
    health = json.loads(docker.out("inspect", "-f", "{{json .State.Health}}", "checked"))
    assert health["FailingStreak"] == 0 and health["Log"][-1]["ExitCode"] == 0
    assert docker.out("inspect", "-f", "{{index .Config.Healthcheck.Test 0}}", "checked") == "CMD-SHELL"


def test_restart_on_failure_counts_restarts(docker):
    docker.run("run", "-d", "--name", "failing", "--restart", "on-failure:2", "busybox", "sh", "-c", "exit 3")
    deadline = time.monotonic() + 60
    while docker.out("inspect", "-f", "{{.RestartCount}} {{.State.Status}}", "failing") != "2 exited":
        assert time.monotonic() < deadline, "the container was not restarted twice"
        time.sleep(0.2)
    assert docker.out("inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}:{{.HostConfig.RestartPolicy.MaximumRetryCount}}"
                      " {{.State.ExitCode}}", "failing") == "on-failure:2 3"
    docker.run("update", "--restart", "always", "failing")
    assert docker.out("inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", "failing") == "always"


def test_life_cycle_verbs(docker):
    docker.run("run", "-d", "--name", "cycled", "--restart", "on-failure:2", "busybox", "sleep", "300")
    assert docker.out("inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", "cycled") == "on-failure"
    docker.run("pause", "cycled")
    assert docker.out("inspect", "-f", "{{.State.Status}} {{.State.Paused}}", "cycled") == "paused true"
    assert docker.out("ps", "--format", "{{.Status}}").endswith("(Paused)")
    docker.run("unpause", "cycled")
    docker.run("rename", "cycled", "renamed")
    assert docker.out("ps", "--format", "{{.Names}}") == "renamed"
    docker.run("update", "--memory", "96m", "renamed")
    assert docker.out("inspect", "-f", "{{.HostConfig.Memory}}", "renamed") == str(96 * 1024 * 1024)
    docker.run("restart", "-t", "1", "renamed")
    assert docker.out("inspect", "-f", "{{.State.Running}}", "renamed") == "true"
    docker.run("stop", "-t", "1", "renamed")
    docker.run("start", "renamed")                      # an exited container starts again
    assert docker.out("inspect", "-f", "{{.State.Running}}", "renamed") == "true"
    docker.run("rm", "-f", "renamed")


UNITS = {"B": 1, "kB": 1e3, "MB": 1e6, "GB": 1e9}


def block_io(docker, name: str) -> tuple[float, float]:
    """(read, written) bytes of the BLOCK I/O column, e.g. "0B / 2.1MB"."""
    text = docker.out("stats", "--no-stream", "--format", "{{.BlockIO}}", name)
    sizes = re.fullmatch(r"([\d.]+)(B|kB|MB|GB) / ([\d.]+)(B|kB|MB|GB)", text)
    assert sizes, text
    return float(sizes[1]) * UNITS[sizes[2]], float(sizes[3]) * UNITS[sizes[4]]


def test_direct_writes_to_a_volume_show_in_block_io(daemon, docker):
    """BLOCK I/O from the container's blkio cgroup (agent/cgroups/io.py): 2 MiB written with
    O_DIRECT to a volume (a disk, not a tmpfs) show; a container that writes nothing shows 0."""
    docker.run("run", "-d", "--name", "writer", "-v", "blk:/data", "busybox", "sh", "-c",
               "dd if=/dev/zero of=/data/f bs=64k count=32 oflag=direct && echo written && sleep 300")
    docker.run("run", "-d", "--name", "idle", "busybox", "sleep", "300")
    until(lambda: "written" in docker.out("logs", "writer"), "the direct write")
    _read, written = block_io(docker, "writer")
    assert written >= 2 * 1024 * 1024
    assert block_io(docker, "idle") == (0, 0)
    reading = json.loads(_raw(daemon, b"GET /v1.44/containers/writer/stats?stream=false&one-shot=true HTTP/1.1\r\n"
                                      b"Host: d\r\nConnection: close\r\n\r\n").split(b"\r\n\r\n", 1)[1])
    entries = reading["blkio_stats"]["io_service_bytes_recursive"]
    assert any(e["op"].lower() == "write" and e["value"] >= 2 * 1024 * 1024 for e in entries)
    operations = reading["blkio_stats"]["io_serviced_recursive"]
    assert any(e["op"].lower() == "write" and e["value"] >= 32 for e in operations)   # 32 direct writes of 64 KiB
    docker.run("rm", "-f", "writer", "idle")
    docker.run("volume", "rm", "blk")
