"""`docker build` (the classic builder) and docker-py's `images.build` through the Docker API's
`POST /build`, which is Corral's own builder: the image runs, Corral's CLI sees it, the cache is
shared with `corral build`, errors come back as docker's, BuildKit's `/session` stays refused.

What a user sees: output, exit codes, what runs, and what is left behind (no containers).
"""
from __future__ import annotations

import copy
import io
import json
import socket
import tarfile

import pytest

from tests.integration.test_docker_cli import clean, daemon, docker  # noqa: F401 - the same fixtures

pytestmark = pytest.mark.privileged

DOCKERFILE = """\
FROM busybox
ARG WHO=nobody
COPY hello.txt /hello.txt
RUN echo "built for $WHO" > /made && cat /hello.txt
CMD ["cat", "/made"]
"""


def _context(tmp_path, dockerfile: str = DOCKERFILE, **files: str):
    context = tmp_path / "context"
    context.mkdir(parents=True)
    (context / "Dockerfile").write_text(dockerfile)
    (context / "hello.txt").write_text("hello from the context\n")
    for name, text in files.items():
        (context / name).write_text(text)
    return context


@pytest.fixture
def legacy(docker):  # noqa: F811 - the imported fixture
    """The docker CLI with its classic builder, as DOCKER_BUILDKIT=0 asks."""
    cli = copy.copy(docker)
    cli.env = {**docker.env, "DOCKER_BUILDKIT": "0"}
    return cli


def test_docker_build_tags_runs_caches_and_corral_sees_it(daemon, legacy, tmp_path):  # noqa: F811
    context = _context(tmp_path, **{".dockerignore": "secret\n", "secret": "no\n"})
    done = legacy.run("build", "-t", "dbuilt:1", "-t", "dbuilt:2", "--build-arg", "WHO=docker",
                      "--label", "made.by=docker", str(context), timeout=120)
    out = done.stdout.decode()
    try:
        assert "Step 1/5 : FROM busybox" in out and "hello from the context" in out
        assert "Successfully tagged dbuilt:1" in out and "Successfully tagged dbuilt:2" in out, out
        short = out.split("Successfully built ")[1].split()[0]
        assert legacy.out("inspect", "-f", "{{.Id}}", "dbuilt:1")[7:19] == short
        assert legacy.out("run", "--rm", "dbuilt:1") == "built for docker"
        assert legacy.out("inspect", "-f", '{{index .Config.Labels "made.by"}}', "dbuilt:2") == "docker"
        assert legacy.run("run", "--rm", "dbuilt:1", "cat", "/secret", check=False).returncode != 0
        # One store and one cache: Corral's own CLI sees the image, and its build hits the cache.
        assert "dbuilt:1" in {f"{i['name']}:{i['tag']}" for i in json.loads(daemon.out("images", "--format", "json"))}
        again = daemon.out("build", "-t", "dbuilt:1", "--build-arg", "WHO=docker", "--label", "made.by=docker",
                           "--progress", "plain", str(context))
        assert again.count(" ---> CACHED") == 2 and f"Successfully built {short}" in again
        # -q prints the id only; -f names another Dockerfile in the context.
        (context / "Other.dockerfile").write_text("FROM dbuilt:1\nCMD [\"cat\", \"/hello.txt\"]\n")
        quiet = legacy.out("build", "-q", "-f", str(context / "Other.dockerfile"), "-t", "dbuilt:3", str(context))
        assert quiet.startswith("sha256:") and quiet == legacy.out("inspect", "-f", "{{.Id}}", "dbuilt:3")
        assert legacy.out("run", "--rm", "dbuilt:3") == "hello from the context"
        assert daemon.out("ps", "-a", "-q") == ""                    # no RUN container left
    finally:
        for tag in ("dbuilt:3", "dbuilt:2", "dbuilt:1"):
            legacy.run("rmi", tag, check=False)


def test_docker_build_errors_and_buildkit_refusals(daemon, docker, legacy, tmp_path):  # noqa: F811
    failing = _context(tmp_path, "FROM busybox\nRUN echo trying; exit 3\n")
    done = legacy.run("build", "-t", "dbroken:1", str(failing), check=False, timeout=120)
    assert done.returncode == 1
    assert "Dockerfile:2: RUN: the command returned a non-zero code: 3" in done.stderr.decode(), done.stderr
    assert "trying" in done.stdout.decode()
    assert legacy.run("inspect", "dbroken:1", check=False).returncode == 1
    assert daemon.out("ps", "-a", "-q") == ""
    # BuildKit's session endpoint stays refused, saying how to build instead; the CLI left to
    # choose (no DOCKER_BUILDKIT, no buildx here) reads `_ping`'s Builder-Version and uses this builder.
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(daemon.docker_socket))
        sock.sendall(b"POST /v1.44/session HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 501") and b"DOCKER_BUILDKIT=0" in answer
    fine = _context(tmp_path / "fine", "FROM busybox\nRUN echo chosen\n")
    done = docker.run("build", "-t", "dchosen:1", str(fine), check=False, timeout=120)
    try:
        assert done.returncode == 0 and "chosen" in done.stdout.decode(), done.stderr
    finally:
        docker.run("rmi", "dchosen:1", check=False)


def test_docker_py_builds_and_runs(daemon, tmp_path):  # noqa: F811
    docker_py = pytest.importorskip("docker")
    client = docker_py.DockerClient(base_url=f"unix://{daemon.docker_socket}", version="auto", timeout=120)
    context = _context(tmp_path)
    try:
        image, logs = client.images.build(path=str(context), tag="pybuilt:1", buildargs={"WHO": "docker-py"},
                                          rm=True)
        assert "pybuilt:1" in image.tags
        assert any("Step 4/5" in entry.get("stream", "") for entry in logs)
        assert client.containers.run("pybuilt:1", remove=True) == b"built for docker-py\n"
        # A gzip'd context of its own (custom_context), a target stage and labels.
        packed = io.BytesIO()
        with tarfile.open(fileobj=packed, mode="w:gz") as archive:
            text = b"FROM busybox AS one\nRUN echo one > /stage\nFROM one\nRUN exit 9\n"
            entry = tarfile.TarInfo("Dockerfile")
            entry.size = len(text)
            archive.addfile(entry, io.BytesIO(text))
        packed.seek(0)
        staged, _ = client.images.build(fileobj=packed, custom_context=True, encoding="gzip", tag="pystaged:1",
                                        target="one", labels={"made.by": "docker-py"})
        assert staged.labels == {"made.by": "docker-py"}
        assert client.containers.run("pystaged:1", ["cat", "/stage"], remove=True) == b"one\n"
        with pytest.raises(docker_py.errors.BuildError, match="non-zero code: 7"):
            client.images.build(fileobj=io.BytesIO(b"FROM busybox\nRUN exit 7\n"), tag="pybad:1")
    finally:
        for tag in ("pybuilt:1", "pystaged:1"):
            try:
                client.images.remove(tag, force=True)
            except docker_py.errors.ImageNotFound:
                pass
        client.close()
