"""Images: list, inspect, pull (`fromImage`) and import (`fromSrc`) with NDJSON progress, tag,
push (credentials in `X-Registry-Auth`), delete, history, prune.

Pull and push run Corral's own registry client (agent/registry), whose progress events are
already docker's words ("Pulling fs layer", "Downloading", "Pull complete"); a failure after
the status line is the last line, `{"errorDetail": {"message"}, "error"}`, as dockerd ends it.
"""
from __future__ import annotations

import base64
import json
import queue
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Any

from agent.dockerapi import filters
from agent.dockerapi.app import Parts
from agent.dockerapi.errors import no_such_image
from agent.dockerapi.router import Reply, Request, Router
from agent.dockerapi.views import image_summary, names_by_id, timestamp
from agent.errors import Conflict, CorralError, InvalidArgument, NotFound
from agent.events import Event

_LIST_FILTERS = ("dangling", "label", "reference", "before", "since", "until")


class ImageRoutes:
    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.images = parts.images
        self._clients: tuple[Any, Any] | None = None
        self._guard = threading.Lock()

    def register(self, router: Router) -> None:
        router.add("GET", "/images/json", self.list)
        router.add("POST", "/images/create", self.create, raw_body=True)
        router.add("POST", "/images/prune", self.prune)
        router.add("GET", "/images/search", self.search)
        router.add("GET", "/images/{name*}/json", self.inspect)
        router.add("GET", "/images/{name*}/history", self.history)
        router.add("POST", "/images/{name*}/tag", self.tag)
        router.add("POST", "/images/{name*}/push", self.push)
        router.add("DELETE", "/images/{name*}", self.remove)

    def _get(self, ref: str):
        return no_such_image(ref, lambda: self.images.get(ref))

    def _registry(self) -> tuple[Any, Any]:
        """The puller and pusher, built on first use (httpx is imported only by a daemon that pulls)."""
        with self._guard:
            if self._clients is None:
                from agent.registry.pull import Puller
                from agent.registry.push import Pusher
                puller = Puller(self.images, self.parts.registry_options)
                self._clients = (puller, Pusher(self.images, self.parts.registry_options, puller.tokens))
            return self._clients

    # Reading

    def list(self, request: Request) -> Reply:
        wanted = filters.parse(request.text("filters"), _LIST_FILTERS)
        dangling = filters.truthy(wanted.get("dangling"))
        found = []
        images = sorted(self.images.list(), key=lambda i: i.created, reverse=True)
        names = names_by_id(images)
        seen: set[str] = set()
        for image in images:
            if image.id in seen:
                continue
            seen.add(image.id)
            if dangling is not None and dangling == bool(names[image.id]):
                continue
            if "reference" in wanted and not any(filters.any_match([ref], name) or filters.any_match([ref], name.rsplit(":", 1)[0])
                                                 for ref in wanted["reference"] for name in names[image.id]):
                continue
            if wanted.get("label"):
                continue                          # Corral's images carry no labels
            found.append(image_summary(image, sorted(names[image.id])))
        return Reply.json(found)

    def inspect(self, request: Request) -> Reply:
        image = self._get(request.params["name"])
        return Reply.json(image_inspect(image, sorted(names_by_id(self.images.list())[image.id])))

    def history(self, request: Request) -> Reply:
        image = self._get(request.params["name"])
        entries = []
        for index, layer in enumerate(reversed(image.layers)):
            entries.append({"Id": image.id if index == 0 else "<missing>", "Created": int(image.created),
                            "CreatedBy": f"layer {layer[7:19]}", "Tags": [image.reference] if index == 0 and image.tagged else None,
                            "Size": image.size if len(image.layers) == 1 else 0, "Comment": ""})
        return Reply.json(entries)

    def search(self, request: Request) -> Reply:
        raise InvalidArgument("search: Corral does not search registries; pull a reference you know")

    # Pull and import

    def create(self, request: Request) -> Reply:
        source = request.text("fromSrc")
        image_name = request.text("fromImage")
        if source and image_name:
            raise InvalidArgument("give fromImage (pull) or fromSrc (import), not both")
        if source:
            return self._import(request, source)
        if not image_name:
            raise InvalidArgument("fromImage: an image to pull is required")
        return self._pull(request, image_name)

    def _pull(self, request: Request, name: str) -> Reply:
        from agent.registry import platform as platforms
        from agent.registry.reference import parse
        tag = request.text("tag")
        text = name if not tag else (f"{name}@{tag}" if tag.startswith("sha256:") else f"{name}:{tag}")
        ref = parse(text)
        platform = request.text("platform")
        wanted = platforms.parse(platform) if platform else None
        credentials = registry_credentials(request.header("X-Registry-Auth"))
        puller, _ = self._registry()
        events = self.parts.events

        def work(emit: Callable[[dict], None]) -> None:
            image = puller.pull(ref, credentials, wanted, emit)
            events.emit(Event("image", "pull", image.id, str(ref)))
        return Reply.chunks(progress(work))

    def _import(self, request: Request, source: str) -> Reply:
        if source != "-":
            raise InvalidArgument(f"fromSrc {source!r}: Corral imports only the request body (fromSrc=-), "
                                  "not a URL")
        repo = request.text("repo")
        tag = request.text("tag")
        reference = f"{repo}:{tag}" if repo and tag else repo or "<none>"
        if request.query.get("changes"):
            raise InvalidArgument("changes: Corral cannot honour Dockerfile changes on import")
        workspace = tempfile.mkdtemp(prefix="docker-import-", dir="/var/tmp")
        try:
            path = f"{workspace}/rootfs.tar"
            stream = request.body_stream
            assert stream is not None
            with open(path, "wb") as handle:
                while chunk := stream.read(1 << 20):
                    handle.write(chunk)
            if reference == "<none>":
                raise InvalidArgument("repo: Corral names every imported image; give repo (and tag)")
            image = self.parts.runtime.import_image(path, reference)
        finally:
            shutil.rmtree(workspace, ignore_errors=True)
        return Reply.json({"status": image.id})

    # Naming, pushing, removing

    def tag(self, request: Request) -> Reply:
        source = request.params["name"]
        repo, tag = request.text("repo"), request.text("tag") or "latest"
        if not repo:
            raise InvalidArgument("repo: a repository name is required")
        self._get(source)
        image = self.images.tag(source, f"{repo}:{tag}")
        self.parts.events.emit(Event("image", "tag", image.id, f"{repo}:{tag}"))
        return Reply.empty(201)

    def push(self, request: Request) -> Reply:
        from agent.registry.reference import parse
        name = request.params["name"]
        tag = request.text("tag")
        ref = parse(f"{name}:{tag}" if tag else name)
        self._get(f"{ref.familiar_name}:{ref.tag}")
        credentials = registry_credentials(request.header("X-Registry-Auth"))
        _, pusher = self._registry()

        def work(emit: Callable[[dict], None]) -> None:
            digest = pusher.push(ref, credentials, emit)
            emit({"progressDetail": {}, "aux": {"Tag": ref.tag, "Digest": digest, "Size": 0}})
        return Reply.chunks(progress(work))

    def remove(self, request: Request) -> Reply:
        ref = request.params["name"]
        image = self._get(ref)
        users = [c for c in self.parts.runtime.list(all=True) if c.image_id == image.id]
        if users:
            raise Conflict(f'conflict: unable to remove repository reference "{ref}" - container '
                           f"{users[0].id[:12]} is using its referenced image {image.id[7:19]}")
        self.parts.runtime.remove_image(ref)
        answer: list[dict] = []
        if image.tagged:
            answer.append({"Untagged": image.reference})
        try:
            self.images.get(image.id)
        except NotFound:
            answer.append({"Deleted": image.id})
        return Reply.json(answer)

    def prune(self, request: Request) -> Reply:
        wanted = filters.parse(request.text("filters"), ("dangling", "label", "until"))
        only_dangling = filters.truthy(wanted.get("dangling"))
        only_dangling = True if only_dangling is None else only_dangling
        used = {c.image_id for c in self.parts.runtime.list(all=True)}
        deleted, reclaimed = [], 0
        for image in self.images.list():
            if image.id in used or (only_dangling and image.tagged):
                continue
            try:
                self.parts.runtime.remove_image(image.id if not image.tagged else image.reference)
            except CorralError:
                continue
            deleted.append({"Deleted": image.id})
            reclaimed += image.size
        return Reply.json({"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed})


def image_inspect(image, tags: list[str]) -> dict:
    config = image.config
    return {
        "Id": image.id, "RepoTags": tags,
        "RepoDigests": list(image.repo_digests), "Parent": "", "Comment": "",
        "Created": timestamp(image.created), "DockerVersion": "", "Author": "",
        "Config": {"Env": list(config.env), "Cmd": list(config.cmd) or None,
                   "Entrypoint": list(config.entrypoint) or None, "WorkingDir": config.workdir if config.workdir != "/" else "",
                   "Labels": None, "User": "", "ExposedPorts": None, "Volumes": None, "OnBuild": None},
        "Architecture": _arch(), "Os": "linux", "Size": image.size, "VirtualSize": image.size,
        "GraphDriver": {"Name": "overlay2", "Data": None},
        "RootFS": {"Type": "layers", "Layers": list(image.layers)},
        "Metadata": {"LastTagTime": timestamp(image.created)},
    }


def registry_credentials(header: str):
    """X-Registry-Auth: base64url JSON of {username, password, identitytoken} (padding optional)."""
    if not header:
        return None
    from agent.registry.auth import Credentials
    try:
        data = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (ValueError, TypeError):
        raise InvalidArgument("X-Registry-Auth: not base64url-encoded JSON") from None
    if not isinstance(data, dict):
        raise InvalidArgument("X-Registry-Auth: expected a JSON object")
    username, password = data.get("username") or "", data.get("password") or ""
    token = data.get("identitytoken") or ""
    if not (username or password or token):
        return None
    return Credentials(username, password, token)


def progress(work: Callable[[Callable[[dict], None]], None]) -> Iterator[bytes]:
    """Run `work(emit)` in a thread; each emitted event is one JSON line, an error the last."""
    events: queue.Queue = queue.Queue()
    done = object()

    def run() -> None:
        try:
            work(events.put)
        except CorralError as exc:
            events.put({"errorDetail": {"message": str(exc)}, "error": str(exc)})
        except Exception as exc:  # noqa: BLE001 - a bug must still end the stream with a message
            events.put({"errorDetail": {"message": f"internal error: {exc}"}, "error": f"internal error: {exc}"})
        events.put(done)
    threading.Thread(target=run, name="docker-image-op", daemon=True).start()
    while (event := events.get()) is not done:
        yield json.dumps(event).encode() + b"\n"


def _arch() -> str:
    from agent.dockerapi.system import _go_arch
    return _go_arch()
