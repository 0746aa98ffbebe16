"""docker-py 7 (the `docker` package from PyPI) against Corral's Docker Engine API."""
from __future__ import annotations

import pytest

from tests.integration.corral_daemon import running_daemon

pytestmark = pytest.mark.privileged
docker = pytest.importorskip("docker")


@pytest.fixture(scope="module")
def daemon():
    with running_daemon() as instance:
        yield instance


@pytest.fixture(scope="module")
def client(daemon):
    client = docker.DockerClient(base_url=f"unix://{daemon.docker_socket}", version="auto", timeout=60)
    yield client
    client.close()


@pytest.fixture(autouse=True)
def clean(daemon):
    yield
    daemon.remove_all()


def test_ping_and_version(client):
    assert client.ping() is True
    assert client.version()["ApiVersion"] >= "1.44"
    assert client.api.api_version == client.version()["ApiVersion"]


def test_run_returns_output_and_raises_on_failure(client):
    assert client.containers.run("busybox", ["echo", "hello"], remove=True) == b"hello\n"
    with pytest.raises(docker.errors.ContainerError) as caught:
        client.containers.run("busybox", ["sh", "-c", "echo bad >&2; exit 2"], remove=True)
    assert caught.value.exit_status == 2 and b"bad" in caught.value.stderr


def test_detached_container_exec_demux_logs_and_lifecycle(daemon, client):
    container = client.containers.run("busybox", ["sh", "-c", "echo started; sleep 300"], detach=True,
                                      name="pyweb", labels={"app": "py"}, mem_limit="64m")
    container.reload()
    assert container.status == "running" and container.name == "pyweb" and container.labels == {"app": "py"}
    assert container.attrs["HostConfig"]["Memory"] == 64 * 1024 * 1024
    assert container.id.startswith(daemon.out("ps", "-q"))
    result = container.exec_run(["sh", "-c", "echo out; echo err >&2; exit 5"], demux=True)
    assert result.exit_code == 5 and result.output == (b"out\n", b"err\n")
    assert client.containers.list(filters={"label": "app=py"})[0].id == container.id
    assert client.containers.list(filters={"label": "app=other"}) == []
    for _ in range(50):
        if container.logs() == b"started\n":
            break
        import time
        time.sleep(0.1)
    assert container.logs() == b"started\n"
    assert container.top()["Processes"]
    stats = container.stats(stream=False)
    assert stats["memory_stats"]["limit"] == 64 * 1024 * 1024 and stats["precpu_stats"]["cpu_usage"]["total_usage"] > 0
    container.stop(timeout=1)
    container.reload()
    assert container.status == "exited"
    assert container.wait()["StatusCode"] in (137, 143)
    container.remove()
    with pytest.raises(docker.errors.NotFound):
        client.containers.get("pyweb")


def test_errors_carry_dockers_classes(client):
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get("nothing-here:1")
    with pytest.raises(docker.errors.NotFound):
        client.containers.get("nothing-here")
    client.containers.create("busybox", ["true"], name="taken")
    with pytest.raises(docker.errors.APIError) as caught:
        client.containers.create("busybox", ["true"], name="taken")
    assert caught.value.status_code == 409
    with pytest.raises(docker.errors.APIError) as refused:
        client.containers.create("busybox", ["true"], oom_score_adj=100)
    assert refused.value.status_code == 400 and "HostConfig.OomScoreAdj" in str(refused.value)


def test_images_networks_and_volumes(client):
    busybox = client.images.get("busybox")
    assert "busybox:latest" in busybox.tags
    assert busybox.tag("pytest/renamed", "v1")
    assert "pytest/renamed:v1" in client.images.get("pytest/renamed:v1").tags
    assert any("pytest/renamed:v1" in image.tags for image in client.images.list())
    assert busybox.history()
    client.images.remove("pytest/renamed:v1")
    network = client.networks.create("pynet", labels={"owner": "pytest"})
    try:
        assert client.networks.get(network.id).attrs["Labels"] == {"owner": "pytest"}
        assert [n.name for n in client.networks.list(names=["pynet"])] == ["pynet"]
        container = client.containers.run("busybox", ["sleep", "300"], detach=True, network="pynet", name="onnet")
        container.reload()
        assert container.attrs["NetworkSettings"]["Networks"]["pynet"]["IPAddress"]
        container.remove(force=True)
    finally:
        network.remove()
    assert client.volumes.list() == []
    with pytest.raises(docker.errors.NotFound):
        client.volumes.get("nothing")


def test_volumes_create_get_list_remove(client):
    volume = client.volumes.create("pyvol", labels={"owner": "pytest"})
    try:
        assert volume.name == "pyvol" and client.volumes.get("pyvol").attrs["Labels"] == {"owner": "pytest"}
        assert [v.name for v in client.volumes.list(filters={"label": "owner=pytest"})] == ["pyvol"]
        written = client.containers.run("busybox", ["sh", "-c", "echo py > /v/f; cat /v/f"], remove=True,
                                        volumes={"pyvol": {"bind": "/v", "mode": "rw"}})
        assert written == b"py\n"
        holder = client.containers.run("busybox", ["sleep", "300"], detach=True, volumes=["pyvol:/v:ro"])
        assert client.containers.run("busybox", ["cat", "/v/f"], remove=True, volumes=["pyvol:/v:ro"]) == b"py\n"
        with pytest.raises(docker.errors.APIError) as caught:
            volume.remove()
        assert caught.value.status_code == 409
        holder.remove(force=True, v=True)              # v: anonymous volumes only; pyvol stays
        assert client.volumes.get("pyvol").name == "pyvol"
        volume.remove()
        with pytest.raises(docker.errors.NotFound):
            client.volumes.get("pyvol")
    finally:
        for left in client.volumes.list():
            left.remove(force=True)


def _tar(files: dict[str, bytes]) -> bytes:
    import io
    import tarfile
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in files.items():
            member = tarfile.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


def test_put_and_get_archive(client):
    import io
    import tarfile
    container = client.containers.run("busybox", ["sleep", "300"], detach=True, name="pyfiles")
    try:
        assert container.put_archive("/tmp", _tar({"hello.txt": b"hi\n", "sub/deep.txt": b"deep\n"})) is True
        assert container.exec_run(["cat", "/tmp/sub/deep.txt"]).output == b"deep\n"
        chunks, stat = container.get_archive("/tmp/hello.txt")
        assert (stat["name"], stat["size"]) == ("hello.txt", 3)
        archive = tarfile.open(fileobj=io.BytesIO(b"".join(chunks)))
        assert archive.extractfile("hello.txt").read() == b"hi\n"
        with pytest.raises(docker.errors.NotFound):
            container.get_archive("/nothing")
        with pytest.raises(docker.errors.APIError) as refused:
            container.put_archive("/tmp/hello.txt", _tar({"x": b"x"}))
        assert refused.value.status_code == 400 and "not a directory" in str(refused.value)
    finally:
        container.remove(force=True)


def test_run_with_a_restart_policy_counts_restarts(client):
    import time
    container = client.containers.run("busybox", ["sh", "-c", "exit 3"], detach=True, name="pyrestarts",
                                      restart_policy={"Name": "on-failure", "MaximumRetryCount": 2})
    deadline = time.monotonic() + 60
    while True:
        container.reload()
        if container.attrs["RestartCount"] == 2 and container.status == "exited":
            break
        assert time.monotonic() < deadline, f"restarts never settled: {container.attrs['State']}"
        time.sleep(0.2)
    assert container.attrs["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert container.attrs["State"]["ExitCode"] == 3
    container.remove()
