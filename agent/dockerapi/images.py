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
from agent.dockerapi.create import is_zero
from agent.dockerapi.errors import no_such_container, no_such_image
from agent.dockerapi.router import Reply, Request, Router
from agent.dockerapi.views import image_summary, names_by_id
from agent.errors import Conflict, CorralError, InvalidArgument, NotFound
from agent.events import Event
from agent.runtime.filters import IMAGE_KEYS
from agent.runtime.filters import images as image_filters


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
        router.add("POST", "/commit", self.commit)
        router.add("GET", "/images/get", self.save)
        router.add("GET", "/images/{name*}/get", self.save)
        router.add("POST", "/images/load", self.load, raw_body=True)
        router.add("DELETE", "/images/{name*}", self.remove)

    def _get(self, ref: str):
        def lookup():
            try:
                return self.images.get(ref)
            except NotFound:
                return self.images.get(familiar(ref))
        return no_such_image(ref, lookup)

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
        wanted = filters.parse(request.text("filters"), IMAGE_KEYS, "images")
        every = self.images.list()
        names = names_by_id(every)
        found, seen = [], set()
        for image in sorted(image_filters(every, wanted), key=lambda i: i.created, reverse=True):
            if image.id not in seen:              # docker lists an id once, with all its names
                seen.add(image.id)
                found.append(image_summary(image, sorted(names[image.id])))
        return Reply.json(found)

    def inspect(self, request: Request) -> Reply:
        from agent.images.describe import inspect
        image = self._get(request.params["name"])
        return Reply.json(inspect(self.images, image, sorted(names_by_id(self.images.list())[image.id])))

    def history(self, request: Request) -> Reply:
        from agent.images.describe import history
        return Reply.json(history(self.images, self._get(request.params["name"])))

    def save(self, request: Request) -> Reply:
        from agent.images.archive import save_stream
        names = [request.params["name"]] if "name" in request.params else request.query.get("names", [])
        if not names:
            raise InvalidArgument("names: give the images to save")
        for name in names:
            self._get(name)
        return Reply.chunks(save_stream(self.images, names), "application/x-tar")

    def load(self, request: Request) -> Reply:
        from agent.images.archive import load
        workspace = tempfile.mkdtemp(prefix="docker-load-", dir="/var/tmp")
        try:
            path = f"{workspace}/images.tar"
            _spool(request, path)
            loaded = load(self.images, path)
        finally:
            shutil.rmtree(workspace, ignore_errors=True)
        lines = [json.dumps({"stream": f"Loaded image: {image.reference}\n"}).encode() + b"\n" for image in loaded]
        for image in loaded:
            self.parts.events.emit(Event("image", "load", image.id, image.reference))
        return Reply.chunks(iter(lines))

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
            _spool(request, path)
            if reference == "<none>":
                raise InvalidArgument("repo: Corral names every imported image; give repo (and tag)")
            image = self.parts.runtime.import_image(path, reference)
        finally:
            shutil.rmtree(workspace, ignore_errors=True)
        return Reply.json({"status": image.id})

    def commit(self, request: Request) -> Reply:
        """docker commit: the container's changes as a new image (Corral's own commit)."""
        from agent.images.commit import commit_container
        ref = request.text("container")
        container = no_such_container(ref, lambda: self.parts.runtime.get(ref))
        repo, tag = request.text("repo"), request.text("tag") or "latest"
        if not repo:
            raise InvalidArgument("repo: Corral names every committed image; give repo (and tag)")
        config = request.json(required=False)
        if any(not is_zero(value) for value in config.values()):
            raise InvalidArgument("Corral cannot honour a config in the commit body; use changes=")
        image = commit_container(self.images, self.parts.cgroups, container, familiar(f"{repo}:{tag}"),
                                 request.query.get("changes", []), pause=request.flag("pause", True),
                                 comment=request.text("comment"), author=request.text("author"))
        self.parts.events.emit(Event("container", "commit", container.id, container.name,
                                     attributes={"image": image.reference}))
        return Reply.json({"Id": image.id}, status=201)

    # Naming, pushing, removing

    def tag(self, request: Request) -> Reply:
        source = request.params["name"]
        repo, tag = request.text("repo"), request.text("tag") or "latest"
        if not repo:
            raise InvalidArgument("repo: a repository name is required")
        self._get(source)
        target = familiar(f"{repo}:{tag}")          # the CLI sends docker.io/... in full
        image = self.images.tag(familiar(source), target)
        self.parts.events.emit(Event("image", "tag", image.id, target))
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
        ref = familiar(request.params["name"])
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
        wanted = filters.parse(request.text("filters"), ("dangling", "label", "until"), "image prune")
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


def familiar(reference: str) -> str:
    """docker's short form of a reference (`docker.io/library/busybox` -> `busybox`), as Corral's
    store keeps names; an id or anything that is not a reference is left as it is."""
    from agent.registry.reference import parse
    if reference.startswith("sha256:") or "@" in reference or all(c in "0123456789abcdef" for c in reference):
        return reference
    try:
        ref = parse(reference)
    except CorralError:
        return reference
    return f"{ref.familiar_name}:{ref.tag}" if ref.tag else ref.familiar_name


def _spool(request: Request, path: str) -> None:
    """The request body (chunked or not) into `path`, as it arrives."""
    stream = request.body_stream
    if stream is None:
        raise InvalidArgument("a request body is required")
    with open(path, "wb") as handle:
        while chunk := stream.read(1 << 20):
            handle.write(chunk)


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
