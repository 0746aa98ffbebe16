"""The real `docker` CLI with Corral's volumes and files through the Docker Engine API:
`docker volume ...`, `run -v NAME:/path`, anonymous volumes, `cp`, `diff`, `export`.

What a user sees: output, exit codes, `inspect -f` fields, and what is left behind (nothing).
"""
from __future__ import annotations

import io
import json
import re
import tarfile

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


def _tar(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in files.items():
            member = tarfile.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
    return buffer.getvalue()


def test_cp_both_ways_through_planted_links_diff_and_export(docker, tmp_path):
    docker.run("run", "-d", "--name", "files", "-v", "vol:/vol", "busybox", "sleep", "300")
    docker.run("exec", "files", "sh", "-c", "echo inside > /etc/motd; mkdir /made; echo v > /vol/v; rm /bin/vi; "
                                            "ln -s / /rootlink; ln -s /etc/hostname /hostlink")
    docker.run("cp", "files:/etc/motd", str(tmp_path / "motd"))
    assert (tmp_path / "motd").read_text() == "inside\n"
    docker.run("cp", "files:/vol/v", str(tmp_path / "v"))          # a file in a volume
    assert (tmp_path / "v").read_text() == "v\n"
    docker.run("cp", "files:/rootlink/etc/motd", str(tmp_path / "through"))   # the container's /, not the host's
    assert (tmp_path / "through").read_text() == "inside\n"
    streamed = tarfile.open(fileobj=io.BytesIO(docker.run("cp", "files:/hostlink", "-").stdout))
    (member,) = streamed.getmembers()
    assert member.issym() and member.linkname == "/etc/hostname"   # the link itself, never the host's file
    upload = tmp_path / "up"
    upload.mkdir()
    (upload / "a.txt").write_text("up\n")
    docker.run("cp", str(upload), "files:/tmp/")
    assert docker.out("exec", "files", "cat", "/tmp/up/a.txt") == "up"
    assert docker.out("exec", "files", "stat", "-c", "%u", "/tmp/up/a.txt") == "0"
    docker.run("cp", "-", "files:/vol", input=_tar({"piped.txt": b"piped\n"}))
    assert docker.out("run", "--rm", "-v", "vol:/v", "busybox", "cat", "/v/piped.txt") == "piped"
    missing = docker.run("cp", "files:/nothing", str(tmp_path / "x"), check=False)
    assert missing.returncode == 1 and "/nothing" in missing.stderr.decode()
    assert not (tmp_path / "x").exists()
    changes = docker.out("diff", "files").splitlines()
    assert {"A /etc/motd", "A /made", "D /bin/vi", "C /etc"} <= set(changes)
    assert not [line for line in changes if "/vol" in line]
    exported = tmp_path / "root.tar"
    docker.run("export", "-o", str(exported), "files")
    names = set(tarfile.open(exported).getnames())
    assert {"etc/motd", "made", "bin/busybox"} <= {name.removeprefix("./") for name in names}
    assert not [name for name in names if "vol/v" in name or name.endswith("bin/vi")]
