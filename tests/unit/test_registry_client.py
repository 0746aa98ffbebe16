"""The registry client's pure logic, and its HTTP behaviour against a small fake registry for
what the real one never does locally: a redirect to another host, 429 with Retry-After, a
server that ignores Range, and a transfer that breaks off in the middle."""
from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from agent.errors import InvalidArgument, NotFound, RegistryError, Unauthorized
from agent.registry import blobs
from agent.registry import manifest as manifests
from agent.registry import platform as platforms
from agent.registry.auth import Credentials, DockerConfig, TokenCache, parse_challenge
from agent.registry.manifest import Descriptor, Index, Platform
from agent.registry.reference import normalize_registry, parse
from agent.registry.transport import RegistryOptions, Transport, is_loopback

# -- references


@pytest.mark.parametrize("text, registry, repository, tag, familiar", [
    ("debian", "docker.io", "library/debian", "latest", "debian"),
    ("debian:12", "docker.io", "library/debian", "12", "debian"),
    ("team/app", "docker.io", "team/app", "latest", "team/app"),
    ("docker.io/library/alpine:3", "docker.io", "library/alpine", "3", "alpine"),
    ("index.docker.io/x/y", "docker.io", "x/y", "latest", "x/y"),
    ("localhost:5000/x", "localhost:5000", "x", "latest", "localhost:5000/x"),
    ("localhost/x:1", "localhost", "x", "1", "localhost/x"),
    ("registry.example.com/a/b/c:v1", "registry.example.com", "a/b/c", "v1", "registry.example.com/a/b/c"),
    ("127.0.0.1:5000/nested/path/img", "127.0.0.1:5000", "nested/path/img", "latest", "127.0.0.1:5000/nested/path/img"),
])
def test_reference_normalised_as_docker_does(text, registry, repository, tag, familiar):
    ref = parse(text)
    assert (ref.registry, ref.repository, ref.tag, ref.familiar_name) == (registry, repository, tag, familiar)


def test_digest_references():
    digest = "sha256:" + "a" * 64
    ref = parse(f"debian@{digest}")
    assert (ref.digest, ref.tag, ref.version, str(ref)) == (digest, "", digest, f"debian@{digest}")
    assert parse(f"debian:12@{digest}").tag == "12"
    assert parse("debian").api_host == "registry-1.docker.io"
    with pytest.raises(InvalidArgument, match="sha256"):
        parse("debian@sha256:short")
    with pytest.raises(InvalidArgument, match="lowercase"):
        parse("Debian")


def test_login_server_names():
    assert normalize_registry("https://index.docker.io/v1/") == "docker.io"
    assert normalize_registry("localhost:5000") == "localhost:5000"
    with pytest.raises(InvalidArgument):
        normalize_registry("https://")


# -- platforms and manifests


@pytest.mark.parametrize("given, expected", [
    (("linux", "x86_64"), "linux/amd64"), (("Linux", "aarch64"), "linux/arm64"),
    (("linux", "arm64", "v8"), "linux/arm64"), (("linux", "armhf"), "linux/arm/v7"),
    (("linux", "armel"), "linux/arm/v6"), (("linux", "arm"), "linux/arm/v7"), (("linux", "i686"), "linux/386"),
])
def test_platform_normalisation(given, expected):
    assert str(platforms.normalize(Platform(*given))) == expected


def _index(*plats: tuple[str, ...]) -> Index:
    return Index(manifests.OCI_INDEX, [Descriptor(manifests.OCI_MANIFEST, f"sha256:{i:064x}", 1, Platform(*p))
                                       for i, p in enumerate(plats)])


def test_platform_choice_prefers_exact_then_older_arm_variants():
    index = _index(("linux", "amd64"), ("linux", "arm", "v5"), ("linux", "arm", "v6"), ("linux", "arm64", "v8"))
    assert platforms.choose(index, platforms.parse("linux/arm64"), "x").digest.endswith("3")
    assert platforms.choose(index, platforms.parse("linux/arm/v7"), "x").digest.endswith("2")
    with pytest.raises(NotFound) as refused:
        platforms.choose(index, platforms.parse("linux/ppc64le"), "img")
    assert "linux/amd64" in str(refused.value) and "linux/arm/v6" in str(refused.value)


def test_manifest_formats_and_schema1_refused():
    layer = {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": "sha256:" + "1" * 64,
             "size": 3}
    body = json.dumps({"schemaVersion": 2, "mediaType": manifests.DOCKER_MANIFEST,
                       "config": {"mediaType": manifests.DOCKER_CONFIG, "digest": "sha256:" + "2" * 64, "size": 2},
                       "layers": [layer]}).encode()
    parsed = manifests.parse(body, "", "x")
    assert isinstance(parsed, manifests.Manifest) and manifests.layer_compression(parsed.layers[0], "x") == "gzip"
    listing = json.dumps({"schemaVersion": 2, "mediaType": manifests.DOCKER_LIST, "manifests": [
        {**layer, "mediaType": manifests.DOCKER_MANIFEST, "platform": {"os": "linux", "architecture": "amd64"}}]})
    assert isinstance(manifests.parse(listing.encode(), "", "x"), Index)
    with pytest.raises(InvalidArgument, match="schema 1"):
        manifests.parse(json.dumps({"schemaVersion": 1, "fsLayers": []}).encode(), "", "x")
    with pytest.raises(InvalidArgument, match="size"):
        manifests.parse(json.dumps({"schemaVersion": 2, "mediaType": manifests.OCI_MANIFEST, "config": {
            "digest": "sha256:" + "2" * 64, "size": -1}, "layers": []}).encode(), "", "x")
    for accepted in (manifests.OCI_INDEX, manifests.DOCKER_LIST, manifests.OCI_MANIFEST, manifests.DOCKER_MANIFEST):
        assert accepted in manifests.ACCEPT


# -- credentials


def test_docker_config_round_trip_and_mode(tmp_path: Path):
    config = DockerConfig(tmp_path)
    assert config.get("localhost:5000") is None
    config.store("localhost:5000", Credentials("alice", "s3cret:with:colons"))
    assert config.path.stat().st_mode & 0o777 == 0o600
    assert config.get("localhost:5000") == Credentials("alice", "s3cret:with:colons")
    config.store("docker.io", Credentials("bob", "pw"))
    assert "https://index.docker.io/v1/" in json.loads(config.path.read_text())["auths"]
    assert config.erase("localhost:5000") and not config.erase("localhost:5000")
    assert config.get("docker.io") == Credentials("bob", "pw")


def test_credential_helper_is_asked(tmp_path: Path, monkeypatch):
    helper = tmp_path / "bin" / "docker-credential-fake"
    helper.parent.mkdir()
    helper.write_text('#!/bin/sh\nread host\necho "{\\"Username\\": \\"u-$host\\", \\"Secret\\": \\"p\\"}"\n')
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{helper.parent}:/usr/bin:/bin")
    (tmp_path / "config.json").write_text(json.dumps({"credHelpers": {"reg.example": "fake"}}))
    assert DockerConfig(tmp_path).get("reg.example") == Credentials("u-reg.example", "p")


def test_registry_auth_header_round_trip():
    header = Credentials("u", "p").to_header("reg")
    assert Credentials.from_header(header) == Credentials("u", "p")
    assert Credentials.from_header("") is None
    with pytest.raises(InvalidArgument):
        Credentials.from_header("!!!")


def test_challenge_parsing():
    challenge = parse_challenge('Bearer realm="https://auth.example/token",service="reg",'
                                'scope="repository:a/b:pull,push"')
    assert challenge.scheme == "bearer"
    assert challenge.params == {"realm": "https://auth.example/token", "service": "reg",
                                "scope": "repository:a/b:pull,push"}
    assert parse_challenge('Basic realm="x"').scheme == "basic"
    assert is_loopback("127.0.0.1:5000") and is_loopback("localhost") and is_loopback("[::1]:5000")
    assert not is_loopback("registry.example.com:5000")


# -- HTTP against a fake registry


class Fake:
    """What each path answers; handlers record the requests they saw."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict]] = []
        self.routes: dict[str, object] = {}

    def serve(self) -> tuple[ThreadingHTTPServer, str]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _any(self):
                fake.seen.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                route = fake.routes.get(self.path.split("?")[0])
                if route is None:
                    self.send_response(404)
                    self.send_header("Content-Type", "application/json")
                    body = json.dumps({"errors": [{"code": "BLOB_UNKNOWN", "message": "blob unknown"}]}).encode()
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                route(self)
            do_GET = do_HEAD = do_PUT = do_POST = _any

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, f"127.0.0.1:{server.server_address[1]}"


@pytest.fixture
def fake():
    instance = Fake()
    server, host = instance.serve()
    instance.host = host
    yield instance
    server.shutdown()


def _transport(host: str, credentials=None) -> Transport:
    return Transport(host, credentials, RegistryOptions(max_backoff=0.05), TokenCache())


def _send(handler, status: int, body: bytes = b"", headers: dict | None = None) -> None:
    handler.send_response(status)
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    if handler.command != "HEAD":
        handler.wfile.write(body)


def test_retry_after_429_then_success(fake):
    calls = []

    def route(handler):
        calls.append(1)
        if len(calls) < 3:
            _send(handler, 429, headers={"Retry-After": "0"})
        else:
            _send(handler, 200, b"ok")
    fake.routes["/v2/x"] = route
    assert _transport(fake.host).request("GET", "/v2/x").content == b"ok"
    assert len(calls) == 3


def test_errors_carry_the_registry_code(fake):
    with pytest.raises(NotFound, match="BLOB_UNKNOWN: blob unknown"):
        _transport(fake.host).request("GET", "/v2/missing")


def test_authorization_dropped_on_redirect_to_another_host(fake):
    other = Fake()
    server, other_host = other.serve()
    try:
        other.routes["/storage/blob"] = lambda h: _send(h, 200, b"data")

        def protected(handler):
            if "Authorization" not in handler.headers:
                _send(handler, 401, headers={"WWW-Authenticate": 'Basic realm="r"'})
            else:
                _send(handler, 307, headers={"Location": f"http://{other_host}/storage/blob"})
        fake.routes["/v2/a/blobs/x"] = protected
        response = _transport(fake.host, Credentials("u", "p")).request("GET", "/v2/a/blobs/x")
        assert response.content == b"data"
        expected = "Basic " + base64.b64encode(b"u:p").decode()
        assert fake.seen[-1][2].get("authorization") == expected
        assert "authorization" not in other.seen[0][2]
    finally:
        server.shutdown()


def test_basic_challenge_without_credentials_asks_for_login(fake):
    fake.routes["/v2/"] = lambda h: _send(h, 401, headers={"WWW-Authenticate": 'Basic realm="r"'})
    with pytest.raises(Unauthorized, match="corral login"):
        _transport(fake.host).request("GET", "/v2/")


def test_bearer_token_fetched_once_and_cached(fake):
    tokens = []

    def token(handler):
        tokens.append(handler.path)
        _send(handler, 200, json.dumps({"token": "T", "expires_in": 300}).encode())

    def protected(handler):
        if handler.headers.get("Authorization") == "Bearer T":
            _send(handler, 200, b"ok")
        else:
            _send(handler, 401, headers={"WWW-Authenticate": f'Bearer realm="http://{fake.host}/token",'
                                                             f'service="fake",scope="repository:a:pull"'})
    fake.routes["/token"] = token
    fake.routes["/v2/a/manifests/1"] = protected
    transport = _transport(fake.host)
    assert transport.request("GET", "/v2/a/manifests/1", scopes=["repository:a:pull"]).content == b"ok"
    assert transport.request("GET", "/v2/a/manifests/1", scopes=["repository:a:pull"]).content == b"ok"
    assert len(tokens) == 1 and "scope=repository%3Aa%3Apull" in tokens[0] and "service=fake" in tokens[0]


def _blob_route(content: bytes, *, honour_range: bool, break_first: bool):
    state = {"calls": 0}

    def route(handler):
        state["calls"] += 1
        start = 0
        wanted = handler.headers.get("Range")
        if wanted and honour_range:
            start = int(wanted.split("=")[1].rstrip("-"))
        body = content[start:]
        handler.send_response(206 if start else 200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if break_first and state["calls"] == 1:
            handler.wfile.write(body[:len(body) // 3])
            handler.wfile.flush()
            handler.connection.shutdown(2)     # the transfer breaks off
            return
        handler.wfile.write(body)
    return route, state


@pytest.mark.parametrize("honour_range", [True, False])
def test_broken_transfer_resumes(fake, tmp_path, honour_range):
    content = bytes(range(256)) * 4000
    digest = "sha256:" + hashlib.sha256(content).hexdigest()
    route, state = _blob_route(content, honour_range=honour_range, break_first=True)
    fake.routes[f"/v2/a/blobs/{digest}"] = route
    path = blobs.fetch(_transport(fake.host), "a", Descriptor("x", digest, len(content)), tmp_path)
    assert path.read_bytes() == content and state["calls"] == 2
    ranges = [h.get("range") for method, p, h in fake.seen if p.endswith(digest)]
    assert ranges[0] is None and ranges[1].startswith("bytes=") and ranges[1] != "bytes=0-"


def test_digest_mismatch_leaves_nothing(fake, tmp_path):
    content = b"x" * 1000
    wrong = "sha256:" + hashlib.sha256(b"other").hexdigest()
    route, _ = _blob_route(content, honour_range=True, break_first=False)
    fake.routes[f"/v2/a/blobs/{wrong}"] = route
    with pytest.raises(RegistryError, match="digest mismatch"):
        blobs.fetch(_transport(fake.host), "a", Descriptor("x", wrong, len(content)), tmp_path)
    assert list(tmp_path.iterdir()) == []


# -- a whole pull, extracting while downloading, over the fake registry


def _serve_image(fake: Fake, layer_raw: bytes, *, honour_range: bool, break_first: bool) -> str:
    import gzip
    blob = gzip.compress(layer_raw, mtime=0)
    blob_digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/x"]},
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer_raw).hexdigest()]}
                         }).encode()
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": manifests.OCI_MANIFEST,
                           "config": {"mediaType": manifests.OCI_CONFIG, "digest": config_digest, "size": len(config)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                                       "digest": blob_digest, "size": len(blob)}]}).encode()
    manifest_digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    headers = {"Content-Type": manifests.OCI_MANIFEST, "Docker-Content-Digest": manifest_digest}
    for version in ("v1", manifest_digest):
        fake.routes[f"/v2/app/manifests/{version}"] = lambda h: _send(h, 200, manifest, headers)
    fake.routes[f"/v2/app/blobs/{config_digest}"] = lambda h: _send(h, 200, config)
    route, state = _blob_route(blob, honour_range=honour_range, break_first=break_first)
    fake.routes[f"/v2/app/blobs/{blob_digest}"] = route
    return blob_digest


@pytest.mark.parametrize("honour_range", [True, False])
def test_pull_extracts_while_downloading_and_survives_a_broken_transfer(fake, tmp_path, honour_range):
    import io
    import tarfile

    from agent.images.store import ImageStore
    from agent.registry.pull import Puller
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for number in range(200):
            content = bytes([number]) * 5000
            info = tarfile.TarInfo(f"dir{number % 7}/file{number}")
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    _serve_image(fake, buffer.getvalue(), honour_range=honour_range, break_first=True)
    store = ImageStore(tmp_path / "root")
    image = Puller(store, RegistryOptions(max_backoff=0.05)).pull(parse(f"{fake.host}/app:v1"))
    layer = store.layer_dir(image.layers[0])
    assert (layer / "dir3" / "file10").read_bytes() == bytes([10]) * 5000
    assert len(list(layer.rglob("file*"))) == 200
    assert list((store.dir / "downloads").iterdir()) == []
    assert [p.name for p in (store.dir / "tmp").iterdir()] == []       # no staging left behind
