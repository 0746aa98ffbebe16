"""The real `docker` CLI with Corral's volumes and files through the Docker Engine API:
`docker volume ...`, `run -v NAME:/path`, anonymous volumes, `cp`, `diff`, `export`.

What a user sees: output, exit codes, `inspect -f` fields, and what is left behind (nothing).
"""
from __future__ import annotations

import json
import re

import pytest

from tests.integration.corral_daemon import running_daemon
from tests.integration.docker_support import DockerCli

pytestmark = pytest.mark.privileged
HEX64 = re.compile(r"^[0-9a-f]{64}$")


@pytest.fixture(scope="module")
def daemon():
    with running_daemon() as instance:
        yield instance


@pytest.fixture(scope="module")
def docker(daemon, tmp_path_factory):
    return DockerCli(daemon, tmp_path_factory.mktemp("docker-config"))


@pytest.fixture(autouse=True)
def clean(daemon, docker):
    yield
    daemon.remove_all()
    docker.run("volume", "prune", "--all", "--force", check=False)


def _volumes(docker) -> list[str]:
    return docker.out("volume", "ls", "--format", "{{.Name}}").split()


def test_volume_verbs_and_a_volume_shared_between_containers(docker):
    assert docker.out("volume", "create", "--label", "team=a", "data") == "data"
    assert _volumes(docker) == ["data"]
    assert docker.out("volume", "inspect", "-f", "{{.Labels.team}} {{.Driver}} {{.Scope}}", "data") == "a local local"
    assert docker.out("volume", "ls", "--filter", "label=team=b", "-q") == ""
    docker.run("run", "--rm", "-v", "data:/d", "busybox", "sh", "-c", "echo kept > /d/file")
    assert docker.out("run", "--rm", "-v", "data:/d:ro", "busybox", "cat", "/d/file") == "kept"
    refused = docker.run("run", "--rm", "-v", "data:/d:ro", "busybox", "sh", "-c", "echo x > /d/other", check=False)
    assert refused.returncode != 0 and b"Read-only file system" in refused.stderr
    docker.run("run", "-d", "--name", "holder", "--mount", "type=volume,src=data,dst=/d", "busybox", "sleep", "300")
    mount = json.loads(docker.out("inspect", "-f", "{{json (index .Mounts 0)}}", "holder"))
    assert (mount["Type"], mount["Name"], mount["Destination"], mount["RW"]) == ("volume", "data", "/d", True)
    assert mount["Source"].endswith("/volumes/data/_data")
    busy = docker.run("volume", "rm", "data", check=False)
    assert busy.returncode == 1 and "in use" in busy.stderr.decode()
    assert docker.out("volume", "ls", "--filter", "dangling=true", "-q") == ""
    docker.run("rm", "-f", "holder")
    assert docker.out("volume", "rm", "data") == "data"
    assert _volumes(docker) == []
    missing = docker.run("volume", "inspect", "data", check=False)
    assert missing.returncode == 1 and "no such volume" in missing.stderr.decode()


def test_driver_options_are_refused_by_name_and_make_nothing(docker):
    done = docker.run("volume", "create", "--opt", "type=tmpfs", "fast", check=False)
    assert done.returncode == 1 and "DriverOpts.type" in done.stderr.decode()
    other = docker.run("volume", "create", "--driver", "nfs", "far", check=False)
    assert other.returncode == 1 and "Driver" in other.stderr.decode()
    assert _volumes(docker) == []


def test_anonymous_volumes_go_with_rm_v_and_run_rm(docker):
    docker.run("run", "-d", "--name", "anon", "-v", "/scratch", "busybox", "sleep", "300")
    (name,) = _volumes(docker)
    assert HEX64.match(name)
    assert docker.out("inspect", "-f", "{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}}{{end}}", "anon") == \
        f"volume {name} /scratch"
    assert docker.out("exec", "anon", "sh", "-c", "echo hi > /scratch/f && cat /scratch/f") == "hi"
    docker.run("rm", "-f", "-v", "anon")
    assert _volumes(docker) == []
    docker.run("run", "--rm", "-v", "/gone", "busybox", "true")
    assert _volumes(docker) == []


def test_prune_and_system_df_see_volumes(docker):
    docker.run("volume", "create", "named")
    docker.run("run", "--name", "left", "-v", "/anon", "-v", "named:/n", "busybox", "sh", "-c",
               "head -c 5000 /dev/zero > /n/blob")
    df = docker.out("system", "df", "-v", "--format", "{{json .Volumes}}")
    sizes = {volume["Name"]: volume for volume in json.loads(df)}
    assert (sizes["named"]["Size"], sizes["named"]["Links"]) == ("5kB", "1")
    docker.run("rm", "left")                             # without -v: the anonymous volume stays
    assert len(_volumes(docker)) == 2
    pruned = docker.out("volume", "prune", "--force")
    assert "named" not in pruned and "Total reclaimed space" in pruned
    assert _volumes(docker) == ["named"]
    assert "named" in docker.out("volume", "prune", "--all", "--force")
    assert _volumes(docker) == []
