"""Real registries for tests: Debian's docker-registry on a free loopback port, and test images.

Images are built here from small deterministic layers into an OCI layout and copied into the
registry with the real `skopeo`, so what Corral pulls was written by another implementation.
Modes: open, htpasswd (Basic) and token (a token server in the test suite signs JWTs with a key
made per run); any of them with TLS from a CA made per run.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def layer_tar(files: dict[str, bytes]) -> bytes:
    """An uncompressed tar of `files` with fixed owners and times (same input, same bytes)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        directories = sorted({str(Path(name).parent) for name in files if str(Path(name).parent) != "."})
        for directory in directories:
            info = tarfile.TarInfo(directory)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 1
            archive.addfile(info)
        for name in sorted(files):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(files[name]), 0o755, 1
            archive.addfile(info, io.BytesIO(files[name]))
    return buffer.getvalue()


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Layout:
    """An OCI image layout directory being filled."""

    path: Path
    manifests: list[dict] = field(default_factory=list)

    def blob(self, data: bytes) -> str:
        digest = _digest(data)
        target = self.path / "blobs" / "sha256" / digest.split(":")[1]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        return digest

    def add_image(self, layers: list[dict[str, bytes]], *, arch: str = "amd64", variant: str = "",
                  cmd: list[str] | None = None, compress: bool = True) -> dict:
        return self.add_tars([layer_tar(files) for files in layers], arch=arch, variant=variant, cmd=cmd,
                             compress=(lambda raw: gzip.compress(raw, mtime=0)) if compress else None)

    def add_tars(self, tars: list[bytes], *, arch: str = "amd64", variant: str = "", cmd: list[str] | None = None,
                 compress=None) -> dict:
        """An image of these uncompressed layer tars; `compress(raw)` gives each gzip blob (None: plain tar)."""
        descriptors, diff_ids = [], []
        for raw in tars:
            diff_ids.append(_digest(raw))
            blob = compress(raw) if compress else raw
            media = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if compress else "")
            descriptors.append({"mediaType": media, "digest": self.blob(blob), "size": len(blob)})
        platform = {"os": "linux", "architecture": arch, **({"variant": variant} if variant else {})}
        config = json.dumps({**platform, "config": {"Cmd": cmd or ["/bin/sh"], "Env": ["PATH=/bin"]},
                             "rootfs": {"type": "layers", "diff_ids": diff_ids}}, sort_keys=True).encode()
        manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                               "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                          "digest": self.blob(config), "size": len(config)},
                               "layers": descriptors}, sort_keys=True).encode()
        entry = {"mediaType": OCI_MANIFEST, "digest": self.blob(manifest), "size": len(manifest),
                 "platform": platform, "diff_ids": diff_ids}
        self.manifests.append(entry)
        return entry

    def write_single(self, tag: str) -> None:
        """index.json naming the one image under `tag`."""
        entry = {k: v for k, v in self.manifests[-1].items() if k not in ("platform", "diff_ids")}
        entry["annotations"] = {"org.opencontainers.image.ref.name": tag}
        self._index([entry])

    def write_multi(self, tag: str) -> None:
        """index.json pointing at a nested index of every image added, under `tag`."""
        nested = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                             "manifests": [{k: v for k, v in m.items() if k != "diff_ids"}
                                           for m in self.manifests]}, sort_keys=True).encode()
        self._index([{"mediaType": OCI_INDEX, "digest": self.blob(nested), "size": len(nested),
                      "annotations": {"org.opencontainers.image.ref.name": tag}}])

    def _index(self, manifests: list[dict]) -> None:
        (self.path / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
        (self.path / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": manifests}))


class Registry:
    """docker-registry on 127.0.0.1:<free port>, its storage in `root`; stopped by `stop()`."""

    def __init__(self, root: Path, *, auth: dict | None = None, tls: tuple[Path, Path] | None = None,
                 access_log: bool = False) -> None:
        self.root = root
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.tls = tls
        root.mkdir(parents=True, exist_ok=True)
        http: dict = {"addr": self.host}
        if tls:
            http["tls"] = {"certificate": str(tls[0]), "key": str(tls[1])}
        config = {"version": 0.1, "log": {"level": "warn", "accesslog": {"disabled": not access_log}},
                  "storage": {"filesystem": {"rootdirectory": str(root / "data")}, "delete": {"enabled": True}},
                  "http": http}
        if auth:
            config["auth"] = auth
        (root / "config.yml").write_text(json.dumps(config))   # JSON is YAML
        self.log = open(root / "registry.log", "ab")   # noqa: SIM115 - the registry writes it until stop()
        self.process = subprocess.Popen(["docker-registry", "serve", str(root / "config.yml")],
                                        stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        scheme = "https" if tls else "http"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {(root / 'registry.log').read_text()}")
            try:
                httpx.get(f"{scheme}://{self.host}/v2/", verify=False, timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("docker-registry did not answer in 20 s")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()

    def push_layout(self, layout: Path, tag: str, repository: str, *, all_platforms: bool = False,
                    extra: tuple[str, ...] = (), creds: str | None = None) -> None:
        """`skopeo copy oci:LAYOUT:TAG docker://HOST/REPO:TAG` (the real skopeo)."""
        args = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false", *extra]
        if all_platforms:
            args.append("--all")
        if creds:
            args += ["--dest-creds", creds]
        args += [f"oci:{layout}:{tag}", f"docker://{self.host}/{repository}:{tag}"]
        done = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {done.stderr}")

    def access_log(self) -> str:
        """What the registry logged: one combined-format line per request when access_log is on."""
        return (self.root / "registry.log").read_text(errors="replace")

    def blob_files(self) -> list[Path]:
        return sorted((self.root / "data").rglob("blobs/sha256/*/*/data"))


# -- TLS and token auth, with keys made per run


def make_ca(directory: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 signed by it, and a token-signing certificate."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def key():
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def cert(subject: str, public, issuer: str, signer, *, ca: bool, san=None):
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                   .public_key(public).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(signer, hashes.SHA256())

    def write(name: str, data: bytes) -> Path:
        (directory / name).write_bytes(data)
        return directory / name
    pem = serialization.Encoding.PEM
    private = {"encoding": pem, "format": serialization.PrivateFormat.TraditionalOpenSSL,
               "encryption_algorithm": serialization.NoEncryption()}
    ca_key, server_key, token_key = key(), key(), key()
    ca_cert = cert("corral test CA", ca_key.public_key(), "corral test CA", ca_key, ca=True)
    server_cert = cert("127.0.0.1", server_key.public_key(), "corral test CA", ca_key, ca=False,
                       san=[x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    token_cert = cert("corral token signer", token_key.public_key(), "corral token signer", token_key, ca=True)
    return {"ca": write("ca.crt", ca_cert.public_bytes(pem)),
            "server_cert": write("server.crt", server_cert.public_bytes(pem)),
            "server_key": write("server.key", server_key.private_bytes(**private)),
            "token_cert": write("token.crt", token_cert.public_bytes(pem)),
            "token_key": write("token.key", token_key.private_bytes(**private))}


def htpasswd_auth(directory: Path, users: dict[str, str]) -> dict:
    """The registry's `auth:` section for Basic auth with bcrypt'd passwords."""
    import bcrypt
    path = directory / "htpasswd"
    path.write_text("".join(f"{user}:{bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=4)).decode()}\n"
                            for user, pw in users.items()))
    return {"htpasswd": {"realm": "corral-test", "path": str(path)}}


class TokenServer:
    """A Docker token server on loopback: Basic-authenticated users get the actions they ask for
    (anonymous callers get none); tokens are RS256 JWTs with the signing certificate in `x5c`."""

    SERVICE = "corral-test-registry"
    ISSUER = "corral-test-token-server"

    def __init__(self, keys: dict[str, Path], users: dict[str, str]) -> None:
        import base64 as b64
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs, urlsplit

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding

        signing_key = serialization.load_pem_private_key(keys["token_key"].read_bytes(), None)
        der = x509.load_pem_x509_certificate(keys["token_cert"].read_bytes()).public_bytes(
            serialization.Encoding.DER)
        self.requests: list[dict] = []
        server_self = self

        def encode(data: dict) -> str:
            return b64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                query = parse_qs(urlsplit(self.path).query)
                user = ""
                header = self.headers.get("Authorization", "")
                if header.startswith("Basic "):
                    name, _, password = b64.b64decode(header[6:]).decode().partition(":")
                    if users.get(name) != password:
                        self.send_response(401)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    user = name
                scopes = query.get("scope", [])
                server_self.requests.append({"user": user, "scopes": scopes})
                access = []
                for scope in scopes if user else []:
                    kind, _, rest = scope.partition(":")
                    name, _, actions = rest.rpartition(":")
                    access.append({"type": kind, "name": name, "actions": actions.split(",")})
                now = int(time.time())
                claims = {"iss": TokenServer.ISSUER, "sub": user, "aud": TokenServer.SERVICE, "iat": now,
                          "nbf": now - 10, "exp": now + 300, "jti": os.urandom(8).hex(), "access": access}
                signing_input = f"{encode({'typ': 'JWT', 'alg': 'RS256', 'x5c': [b64.b64encode(der).decode()]})}." \
                                f"{encode(claims)}"
                signature = signing_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
                token = f"{signing_input}.{b64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
                body = json.dumps({"token": token, "expires_in": 300}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.keys = keys

    def registry_auth(self) -> dict:
        return {"token": {"realm": self.realm, "service": self.SERVICE, "issuer": self.ISSUER,
                          "rootcertbundle": str(self.keys["token_cert"])}}

    def stop(self) -> None:
        self.server.shutdown()
