"""Pull, push, tag and login against Debian's real docker-registry, driven through the CLI.

The registry's own access log says which blobs were fetched, so "the second pull fetches
nothing" and "a shared layer is fetched once" are checked on the server's side.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from pathlib import Path

import pytest

from tests.integration.corral_daemon import running_daemon
from tests.integration.registry_support import (
    Layout,
    Registry,
    TokenServer,
    htpasswd_auth,
    make_ca,
)

pytestmark = pytest.mark.privileged

BUSYBOX = Path("/bin/busybox").read_bytes() if Path("/bin/busybox").exists() else b""


@pytest.fixture(scope="module")
def certs_dir(tmp_path_factory):
    """Where the daemon looks for registries' CAs (HOST:PORT/ca.crt), filled by the TLS tests."""
    return tmp_path_factory.mktemp("certs.d")


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    server = Registry(tmp_path_factory.mktemp("registry"), access_log=True)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def daemon(certs_dir, registry):
    # The test registry is also the daemon's docker.io mirror: `corral pull NAME` of a Docker Hub
    # name is served from it, with no internet (test_docker_hub_names_come_from_the_mirror).
    with running_daemon("--registry-certs-dir", str(certs_dir),
                        "--registry-mirror", f"docker.io={registry.host}") as instance:
        yield instance


def _image(tmp: Path, name: str, layers: list[dict[str, bytes]], **kwargs) -> Layout:
    layout = Layout(tmp / name)
    layout.add_image(layers, **kwargs)
    layout.write_single("v1")
    return layout


def _publish(registry: Registry, tmp: Path, repository: str, layers: list[dict[str, bytes]],
             tag: str = "v1", **kwargs) -> str:
    layout = Layout(tmp / f"{repository.replace('/', '_')}-{tag}")
    layout.add_image(layers, **kwargs)
    layout.write_single(tag)
    registry.push_layout(layout.path, tag, repository)
    return f"{registry.host}/{repository}:{tag}"


def _blob_gets(registry: Registry, repository: str) -> list[str]:
    return re.findall(rf'"GET /v2/{re.escape(repository)}/blobs/(sha256:[0-9a-f]+)', registry.access_log())


def _images(daemon) -> list[dict]:
    return json.loads(daemon.out("images", "--format", "json"))


def test_pull_and_run(daemon, registry, tmp_path):
    ref = _publish(registry, tmp_path, "run/app", [{"bin/busybox": BUSYBOX}, {"etc/motd": b"pulled\n"}],
                   cmd=["/bin/busybox", "cat", "/etc/motd"])
    out = daemon.out("pull", ref)
    assert "Pull complete" in out and "Downloaded newer image" in out
    assert daemon.out("run", "--rm", ref) == "pulled"
    listed = [i for i in _images(daemon) if i["name"] == ref.rsplit(":", 1)[0]]
    assert len(listed) == 1 and listed[0]["repo_digests"][0].startswith(ref.rsplit(":", 1)[0] + "@sha256:")
    digests = daemon.out("images", "--digests")
    assert listed[0]["repo_digests"][0].split("@")[1] in digests


def test_second_pull_fetches_no_blob(daemon, registry, tmp_path):
    ref = _publish(registry, tmp_path, "again/app", [{"a": b"1" * 5000}, {"b": b"2"}])
    daemon.cli("pull", ref)
    before = len(_blob_gets(registry, "again/app"))
    assert before == 3                       # config + 2 layers
    out = daemon.out("pull", ref)
    assert "Image is up to date" in out
    assert len(_blob_gets(registry, "again/app")) == before


def test_shared_layer_fetched_once(daemon, registry, tmp_path):
    base = {"base/file": b"shared base layer\n" * 100}
    first = _publish(registry, tmp_path, "shared/one", [base, {"one": b"1"}])
    second = _publish(registry, tmp_path, "shared/two", [base, {"two": b"2"}])
    daemon.cli("pull", first)
    out = daemon.out("pull", second)
    assert "Already exists" in out
    assert len(_blob_gets(registry, "shared/two")) == 2     # its config and its own layer only


def test_concurrent_pulls_fetch_each_layer_once(daemon, registry, tmp_path):
    ref = _publish(registry, tmp_path, "busy/app", [{"x": os.urandom(200_000)}, {"y": os.urandom(100_000)}])
    results = []
    threads = [threading.Thread(target=lambda: results.append(daemon.cli("pull", ref, check=False)))
               for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [r.returncode for r in results] == [0, 0, 0], [r.stderr for r in results]
    manifest = json.loads(subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                                         capture_output=True, check=True).stdout)
    layers = [layer["digest"] for layer in manifest["layers"]]
    gets = _blob_gets(registry, "busy/app")
    assert sorted(d for d in gets if d in layers) == sorted(layers)


def test_platform_choice(daemon, registry, tmp_path):
    layout = Layout(tmp_path / "multi")
    layout.add_image([{"which": b"amd64\n"}], arch="amd64", cmd=["amd64"])
    layout.add_image([{"which": b"arm64\n"}], arch="arm64", cmd=["arm64"])
    layout.add_image([{"which": b"armv6\n"}], arch="arm", variant="v6", cmd=["armv6"])
    layout.write_multi("v1")
    registry.push_layout(layout.path, "v1", "multi/app", all_platforms=True)
    ref = f"{registry.host}/multi/app:v1"

    def pulled_cmd(*flags: str) -> list[str]:
        daemon.cli("pull", *flags, ref)
        return next(i for i in _images(daemon) if i["name"] == f"{registry.host}/multi/app")["config"]["cmd"]
    assert pulled_cmd("--platform", "linux/aarch64") == ["arm64"]
    assert pulled_cmd("--platform", "linux/arm/v7") == ["armv6"]      # v7 runs v6
    failed = daemon.cli("pull", "--platform", "linux/s390x", ref, check=False)
    assert failed.returncode != 0
    text = failed.stderr.decode()
    assert "linux/s390x" in text and "linux/amd64" in text and "linux/arm64" in text and "linux/arm/v6" in text


def test_docker_manifest_list_and_zstd_and_plain_layers(daemon, registry, tmp_path):
    layout = Layout(tmp_path / "formats")
    layout.add_image([{"bin/busybox": BUSYBOX}, {"etc/motd": b"formats\n"}], arch="amd64",
                     cmd=["/bin/busybox", "cat", "/etc/motd"])
    layout.add_image([{"etc/motd": b"not this one\n"}], arch="arm64", cmd=["/bin/false"])
    layout.add_image([{"etc/motd": b"nor this one\n"}], arch="ppc64le", cmd=["/bin/false"])
    layout.write_multi("v1")
    registry.push_layout(layout.path, "v1", "fmt/v2s2", all_platforms=True, extra=("--format", "v2s2"))
    registry.push_layout(layout.path, "v1", "fmt/zstd", all_platforms=True,
                         extra=("--dest-compress-format", "zstd", "--dest-compress"))
    plain = _image(tmp_path, "plain", [{"bin/busybox": BUSYBOX}, {"etc/motd": b"formats\n"}],
                   cmd=["/bin/busybox", "cat", "/etc/motd"], compress=False)
    registry.push_layout(plain.path, "v1", "fmt/plain")
    for repository in ("fmt/v2s2", "fmt/zstd", "fmt/plain"):
        raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                              f"docker://{registry.host}/{repository}:v1"], capture_output=True, check=True).stdout
        assert b"manifest" in raw
        if repository == "fmt/v2s2":          # a Docker manifest list of three platforms
            assert json.loads(raw)["mediaType"] == "application/vnd.docker.distribution.manifest.list.v2+json"
            assert len(json.loads(raw)["manifests"]) == 3
        assert daemon.out("run", "--rm", f"{registry.host}/{repository}:v1") == "formats"


def test_corrupt_blob_refused_and_nothing_stored(daemon, registry, tmp_path):
    ref = _publish(registry, tmp_path, "bad/app", [{"f": b"good content\n" * 1000}])
    manifest = json.loads(subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                                         capture_output=True, check=True).stdout)
    layer = manifest["layers"][0]["digest"].split(":")[1]
    data = next(p for p in registry.blob_files() if p.parent.name == layer)
    content = bytearray(data.read_bytes())
    content[-20] ^= 0xFF
    data.write_bytes(bytes(content))
    layers_before = sorted(os.listdir(daemon.root / "images" / "layers" / "sha256"))
    result = daemon.cli("pull", ref, check=False)
    assert result.returncode != 0
    assert "digest mismatch" in result.stderr.decode() and layer in result.stderr.decode()
    assert not [i for i in _images(daemon) if i["name"].endswith("bad/app")]
    assert sorted(os.listdir(daemon.root / "images" / "layers" / "sha256")) == layers_before
    assert not list((daemon.root / "images" / "downloads").glob("*")) if (daemon.root / "images" / "downloads").exists() else True


def test_unknown_tag_and_repository(daemon, registry, tmp_path):
    ref = _publish(registry, tmp_path, "known/app", [{"f": b"x"}])
    tag = daemon.cli("pull", ref.replace(":v1", ":nope"), check=False)
    assert tag.returncode != 0 and "MANIFEST_UNKNOWN" in tag.stderr.decode()
    repo = daemon.cli("pull", f"{registry.host}/no/such:v1", check=False)
    # docker-registry 2.8 answers MANIFEST_UNKNOWN for a repository it never heard of, too
    assert repo.returncode != 0 and "no/such:v1" in repo.stderr.decode() and "UNKNOWN" in repo.stderr.decode()
    assert "corral login" in repo.stderr.decode()        # the hint: it may be private


def test_push_then_skopeo_reads_it_back(daemon, registry, tmp_path):
    target = f"{registry.host}/pushed/busybox:1"
    daemon.cli("tag", "busybox:latest", target)
    out = daemon.out("push", target)
    digest = re.search(r"digest: (sha256:[0-9a-f]{64})", out).group(1)
    inspected = json.loads(subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{target}"],
                                          capture_output=True, check=True).stdout)
    assert inspected["Digest"] == digest
    copy = tmp_path / "copy"
    subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{target}", f"oci:{copy}:x"],
                   check=True, capture_output=True)
    index = json.loads((copy / "index.json").read_text())
    assert index["manifests"][0]["digest"] == digest
    assert "Layer already exists" in daemon.out("push", target)
    assert re.search(r"digest: (sha256:[0-9a-f]{64})", daemon.out("push", target)).group(1) == digest


def test_push_of_pulled_image_uploads_no_blob(daemon, registry, tmp_path):
    ref = _publish(registry, tmp_path, "orig/app", [{"f": b"original\n" * 500}])
    daemon.cli("pull", ref)
    target = f"{registry.host}/copy/app:v1"
    daemon.cli("tag", ref, target)
    out = daemon.out("push", target)
    assert "Mounted from" in out
    assert "/v2/copy/app/blobs/uploads/" in registry.access_log()              # the mounts
    assert not re.search(r'"(?:PUT|PATCH) /v2/copy/app/blobs/uploads/', registry.access_log())
    original = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{ref}"],
                              capture_output=True, check=True).stdout
    copied = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{target}"],
                            capture_output=True, check=True).stdout
    assert copied == original


def _cli_as_user(daemon, config_dir: Path, *args: str, stdin: bytes | None = None):
    env = {**daemon.env, "DOCKER_CONFIG": str(config_dir)}
    return subprocess.run([*daemon.cli_command(), *args], env=env, capture_output=True, input=stdin, timeout=120,
                          check=False)


def test_login_and_private_pull(daemon, tmp_path):
    server = Registry(tmp_path / "private", auth=htpasswd_auth(tmp_path, {"alice": "right-password"}))
    try:
        layout = _image(tmp_path, "private-image", [{"secret": b"only for alice\n"}])
        server.push_layout(layout.path, "v1", "alice/app", creds="alice:right-password")
        ref = f"{server.host}/alice/app:v1"
        config = tmp_path / "docker-config"
        before = _cli_as_user(daemon, config, "pull", ref)
        assert before.returncode != 0 and "corral login" in before.stderr.decode()
        wrong = _cli_as_user(daemon, config, "login", "-u", "alice", "--password-stdin", server.host,
                             stdin=b"wrong\n")
        assert wrong.returncode != 0 and not (config / "config.json").exists()
        right = _cli_as_user(daemon, config, "login", "-u", "alice", "--password-stdin", server.host,
                             stdin=b"right-password\n")
        assert right.returncode == 0 and b"Login Succeeded" in right.stdout
        assert (config / "config.json").stat().st_mode & 0o777 == 0o600
        assert server.host in json.loads((config / "config.json").read_text())["auths"]
        after = _cli_as_user(daemon, config, "pull", ref)
        assert after.returncode == 0, after.stderr
        assert _cli_as_user(daemon, config, "logout", server.host).returncode == 0
        assert server.host not in json.loads((config / "config.json").read_text())["auths"]
    finally:
        server.stop()


def test_token_registry_over_tls_push_with_mount(daemon, certs_dir, tmp_path):
    keys = make_ca(tmp_path / "keys")
    tokens = TokenServer(keys, {"bob": "pw"})
    server = Registry(tmp_path / "token", auth=tokens.registry_auth(), tls=(keys["server_cert"], keys["server_key"]))
    (certs_dir / server.host).mkdir()
    (certs_dir / server.host / "ca.crt").write_bytes(keys["ca"].read_bytes())
    try:
        config = tmp_path / "docker-config"
        assert _cli_as_user(daemon, config, "login", "-u", "bob", "--password-stdin", server.host,
                            stdin=b"pw\n").returncode == 0
        first, second = f"{server.host}/bob/one:1", f"{server.host}/bob/two:1"
        daemon.cli("tag", "busybox:latest", first)
        daemon.cli("tag", "busybox:latest", second)
        pushed = _cli_as_user(daemon, config, "push", first)
        assert pushed.returncode == 0, pushed.stderr
        mounted = _cli_as_user(daemon, config, "push", second)
        assert mounted.returncode == 0 and b"Mounted from" in mounted.stdout, mounted.stdout + mounted.stderr
        assert any("repository:bob/two:pull,push" in r["scopes"] and "repository:bob/one:pull" in r["scopes"]
                   for r in tokens.requests), tokens.requests
        anonymous = daemon.cli("pull", second, check=False)
        assert anonymous.returncode != 0 and "corral login" in anonymous.stderr.decode()
        inspected = subprocess.run(["skopeo", "inspect", "--cert-dir", str(certs_dir / server.host),
                                    "--creds", "bob:pw", f"docker://{second}"], capture_output=True, text=True, check=False)
        assert inspected.returncode == 0, inspected.stderr
    finally:
        server.stop()
        tokens.stop()


def test_docker_hub_names_come_from_the_mirror(daemon, registry, tmp_path):
    _publish(registry, tmp_path, "library/mirrored", [{"bin/busybox": BUSYBOX}, {"etc/motd": b"from the mirror\n"}],
             tag="1.0", cmd=["/bin/busybox", "cat", "/etc/motd"])
    out = daemon.out("pull", "mirrored:1.0")          # docker.io/library/mirrored:1.0
    assert "Downloaded newer image for mirrored:1.0" in out
    assert '"GET /v2/library/mirrored/manifests/' in registry.access_log()
    assert daemon.out("run", "--rm", "mirrored:1.0") == "from the mirror"


def test_run_pulls_a_missing_image_and_fails_cleanly_when_it_cannot(daemon, registry, tmp_path):
    ref = _publish(registry, tmp_path, "runpull/app", [{"bin/busybox": BUSYBOX}, {"etc/motd": b"pulled by run\n"}],
                   cmd=["/bin/busybox", "cat", "/etc/motd"])
    result = daemon.cli("run", "--rm", ref)
    assert result.stdout.decode().strip() == "pulled by run"
    assert f"Unable to find image '{ref}' locally" in result.stderr.decode()
    before = set(os.listdir(daemon.root / "containers"))
    missing = daemon.cli("run", "--rm", f"{registry.host}/runpull/none:1", check=False)
    assert missing.returncode == 125 and "runpull/none:1" in missing.stderr.decode()
    assert set(os.listdir(daemon.root / "containers")) == before
    never = daemon.cli("run", "--rm", "--pull", "never", f"{registry.host}/runpull/none:1", check=False)
    assert never.returncode == 125 and "Unable to find" not in never.stderr.decode()


def test_daemon_killed_mid_pull_leaves_nothing_half_made(daemon, registry, tmp_path):
    """SIGKILL of the daemon at seeded random points of a pull: after each restart nothing
    half-extracted is left, every stored layer is complete, and the pull then succeeds."""
    import random
    import signal as signals
    import time
    seed = int(os.environ.get("CORRAL_CRASH_SEED", random.randrange(1 << 30)))
    chance = random.Random(seed)
    layers = [{"bin/busybox": BUSYBOX}, {f"data/{n}": os.urandom(64 * 1024) for n in range(300)},
              {"big": os.urandom(24 << 20)}]
    ref = _publish(registry, tmp_path, "killed/app", layers, cmd=["/bin/busybox", "ls", "/data"])
    images = daemon.root / "images"
    for round_number in range(3):
        puller = subprocess.Popen([*daemon.cli_command(), "pull", ref], env=daemon.env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(chance.uniform(0.05, 0.6))
        daemon.process.send_signal(signals.SIGKILL)
        daemon.process.wait()
        puller.wait(timeout=60)
        daemon.process = None
        daemon.start()
        where = f"seed {seed}, round {round_number}"
        assert list((images / "tmp").iterdir()) == [], where
        for layer in (images / "layers" / "sha256").iterdir():
            if layer.is_dir():
                assert layer.with_suffix(".json").is_file(), f"{where}: {layer} has no record"
        if any(i["name"] == ref.rsplit(":", 1)[0] for i in _images(daemon)):
            daemon.cli("image", "rm", ref)
    daemon.cli("pull", ref)
    assert daemon.out("run", "--rm", ref).split() == sorted(str(n) for n in range(300))
