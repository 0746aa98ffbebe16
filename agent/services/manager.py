"""`ServiceManager`: the service verbs the API calls, over the store and one worker per service.

A verb checks its input completely before it changes anything (an unknown image, a replica
count out of bounds, a port in use: refused, nothing saved), saves the desired state, and
wakes the service's worker, which does the rest (reconciler.py). At daemon start `start`
reads every saved service and starts its worker, which adopts the replicas still running.
"""
from __future__ import annotations

import builtins  # ServiceManager.list shadows `list` in the annotations after it
import logging
import queue
import threading
from pathlib import Path
from typing import Iterator

from agent.api import frames
from agent.catalog.bus import BusEvent, ContainerHealth, ContainerRemoved, ContainerStopped
from agent.errors import Conflict, NotFound
from agent.events import Event, EventLog
from agent.network.ports import check_host_port, clash
from agent.services.balancer import Balancer
from agent.services.metrics import ServiceFigures
from agent.services.model import SERVICE_LABEL, Service, ServiceChange, ServiceSpec
from agent.services.reconciler import Context, ServiceWorker
from agent.services.replicas import drain, replica_spec, replicas_of
from agent.services.store import ServiceStore

log = logging.getLogger(__name__)


class ServiceManager:
    def __init__(self, root: Path, runtime, images, events: EventLog, networks=None, *,
                 balancer: Balancer | None = None) -> None:
        self.runtime = runtime
        self.images = images                # anything with the ImageStore's get(reference)
        self.networks = networks
        self.store = ServiceStore(root)
        if balancer is None and networks is not None:
            balancer = Balancer(networks.nat)
        self.context = Context(runtime=runtime, store=self.store, balancer=balancer, events=events)
        self._workers: dict[str, ServiceWorker] = {}
        self._lock = threading.Lock()

    # ---- daemon life ----------------------------------------------------------------

    def start(self) -> None:
        """Run every saved service; the balancer rules of services no longer saved go."""
        names = {service.name for service in self.store.all()}
        if self.context.balancer is not None:
            for stale in self.context.balancer.services() - names:
                self.context.balancer.remove(stale)
        for service in self.store.all():
            self._reserve(service.spec)
        for name in sorted(names):
            self._worker(name)

    def close(self) -> None:
        """Stop the workers; the replicas keep running and are adopted at the next start."""
        with self._lock:
            workers, self._workers = list(self._workers.values()), {}
        for worker in workers:
            worker.stop()

    def on_container(self, event: BusEvent) -> None:
        """Bus subscriber: a replica stopped or went, or its health check changed its verdict
        (agent/health/): its service's worker looks at once."""
        name = event.entry.labels.get(SERVICE_LABEL)
        worker = self._workers.get(name) if name else None
        if worker is None:
            return
        if isinstance(event, ContainerHealth):
            worker.note_health(event.entry.id, event.status)
        elif isinstance(event, (ContainerStopped, ContainerRemoved)):
            worker.wake()

    # ---- verbs ----------------------------------------------------------------------

    def create(self, spec: ServiceSpec) -> Service:
        with self._lock:
            if self.store.exists(spec.name):
                raise Conflict(f"service {spec.name} already exists", hint="`corral service update` changes it")
            self._check(spec)
            now = self.context.clock()
            service = Service(spec=spec, created_at=now, updated_at=now)
            self.store.save(service)
            self._reserve(spec)
        self.context.events.emit(Event("service", "create", "", spec.name, attributes={"image": spec.image}))
        self._worker(spec.name)
        return service

    def get(self, name: str) -> Service:
        return self.store.get(name)

    def list(self) -> list[dict]:
        return [self.summary(service) for service in self.store.all()]

    def summary(self, service: Service) -> dict:
        replicas = replicas_of(self.runtime.list(all=True), service.name)
        running = sum(1 for r in replicas if r.running)
        port = service.spec.port
        published = f"{port.host_ip}:{port.host_port}->{port.container_port}/{port.protocol}" if port else ""
        return {"name": service.name, "image": service.spec.image, "replicas": service.spec.replicas,
                "running": running, "port": published,
                "version": service.version, "update_state": service.update_state}

    def inspect(self, name: str) -> dict:
        service = self.store.get(name)
        balancer = self.context.balancer
        return {**service.to_dict(), **self.summary(service), "tasks": self.tasks(name),
                "balanced": list(balancer.addresses(name)) if balancer else []}

    def tasks(self, name: str) -> builtins.list[dict]:
        """`service ps`: each replica (running ones and past ones), its state and image."""
        service = self.store.get(name)
        rows: builtins.list[dict] = [{"name": r.name, "id": r.id, "slot": r.slot, "image": r.container.spec.image,
                 "version": r.version, "state": r.container.state, "current": r.version == service.version,
                 "address": r.address or "", "since": r.container.started_at or r.container.created_at}
                for r in replicas_of(self.runtime.list(all=True), name)]
        rows += [{"name": p.name, "id": "", "slot": p.slot, "image": p.image, "version": p.version,
                  "state": p.state if p.exit_code is None else f"{p.state} ({p.exit_code})",
                  "current": False, "address": "", "since": p.finished_at} for p in service.history]
        return sorted(rows, key=lambda row: (row["slot"], not row["id"], -row["since"]))

    def scale(self, name: str, replicas: int) -> Service:
        return self.update(name, ServiceChange(replicas=replicas))

    def update(self, name: str, change: ServiceChange) -> Service:
        with self._lock:
            current = self.store.get(name)
            spec = change.apply(current.spec)
            if change.image is not None:
                self._check_image(spec.image)
            service = self.store.modify(name, lambda s: s.updated(spec, self.context.clock()))
        self.context.events.emit(Event("service", "update", "", name,
                                       attributes={"version": service.version, "replicas": spec.replicas}))
        self._worker(name).wake()
        return service

    def rollback(self, name: str) -> Service:
        with self._lock:
            service = self.store.modify(name, lambda s: s.rolled_back("rolled back by request", self.context.clock()))
        self.context.events.emit(Event("service", "rollback", "", name, attributes={"version": service.version}))
        self._worker(name).wake()
        return service

    def remove(self, name: str) -> None:
        """Out of the balancer, every replica drained, stopped and removed, the record gone."""
        service = self.store.get(name)
        with self._lock:
            worker = self._workers.pop(name, None)
        if worker is not None:
            worker.stop()
        if self.context.balancer is not None:
            self.context.balancer.remove(name)
        grace = service.spec.stop_grace_period
        for replica in replicas_of(self.runtime.list(all=True), name):
            if replica.running:
                drain(replica, service.spec, self.context.proc)
                self.runtime.stop(replica.id, timeout=grace)
            try:
                self.runtime.remove(replica.id, force=True)
            except NotFound:
                pass
        self.store.delete(name)
        if self.networks is not None:
            self.networks.release_port(f"service {name}")
        self.context.events.emit(Event("service", "remove", "", name))

    def logs(self, name: str, follow: bool = False) -> Iterator[bytes]:
        """Every replica's log, each line prefixed with the replica's name, interleaved as
        they come (Docker frames, like a container's log)."""
        self.store.get(name)
        replicas = [r for r in replicas_of(self.runtime.list(all=True), name)]
        lines: queue.Queue = queue.Queue(maxsize=1024)

        def read(replica) -> None:
            decoder = frames.FrameDecoder()
            pending: dict[int, bytes] = {}
            prefix = f"{replica.name} | ".encode()
            try:
                for chunk in self.runtime.logs(replica.id, follow=follow):
                    for stream, data in decoder.feed(chunk):
                        text = pending.pop(stream, b"") + data
                        *whole, rest = text.split(b"\n")
                        for line in whole:
                            lines.put(frames.encode(stream, prefix + line + b"\n"))
                        if rest:
                            pending[stream] = rest
                for stream, rest in pending.items():
                    lines.put(frames.encode(stream, prefix + rest + b"\n"))
            except Exception as exc:  # noqa: BLE001 - a replica removed while read ends its part only
                log.debug("service %s: log of %s ended: %s", name, replica.name, exc)
            finally:
                lines.put(None)

        for replica in replicas:
            threading.Thread(target=read, args=(replica,), daemon=True, name=f"logs {replica.name}").start()

        def merged() -> Iterator[bytes]:
            left = len(replicas)
            while left:
                item = lines.get()
                if item is None:
                    left -= 1
                else:
                    yield item
        return merged()

    def figures(self) -> builtins.list[ServiceFigures]:
        """What /metrics shows of each service (agent/services/metrics.py)."""
        balancer = self.context.balancer
        connections = balancer.connections() if balancer is not None else {}
        containers = self.runtime.list(all=True)
        found = []
        for service in self.store.all():
            worker = self._workers.get(service.name)
            counted = connections.get(service.name)
            found.append(ServiceFigures(
                service=service.name, desired=service.spec.replicas,
                running=sum(1 for r in replicas_of(containers, service.name) if r.running),
                exits=worker.exits if worker is not None else 0,
                balanced=counted.balanced if counted and service.spec.port else None,
                refused=counted.refused if counted and service.spec.port else None))
        return found

    def wait_converged(self, name: str, timeout: float) -> bool:
        """Block until the worker has run one full pass after now (tests and `create`)."""
        worker = self._workers.get(name)
        if worker is None:
            return False
        with worker.converged:
            seen = worker.passes
            worker.wake()
            return worker.converged.wait_for(lambda: worker.passes > seen + 0, timeout)

    # ---- internals ------------------------------------------------------------------

    def _worker(self, name: str) -> ServiceWorker:
        with self._lock:
            worker = self._workers.get(name)
            if worker is None:
                worker = self._workers[name] = ServiceWorker(name, self.context)
                worker.start()
            return worker

    def _reserve(self, spec: ServiceSpec) -> None:
        """The service's port, kept from containers' -p (the balancer holds no socket on it)."""
        if spec.port is not None and self.networks is not None:
            self.networks.reserve_port(f"service {spec.name}", spec.port)

    def _check_image(self, image: str) -> None:
        try:
            self.images.get(image)
        except NotFound:
            raise NotFound(f"image {image!r} is not on this host", field="image",
                           hint=f"`corral pull {image}` first") from None

    def _check(self, spec: ServiceSpec) -> None:
        """Everything that would fail later, refused now: the image, the replica's container
        spec, the published port (another service's, a container's, a socket on the host)."""
        self._check_image(spec.image)
        replica_spec(Service(spec=spec), 1)
        if self.networks is not None and spec.network not in ("bridge", "default", "none", "host"):
            self.networks.get(spec.network)      # NotFound naming it
        port = spec.port
        if port is None:
            return
        if self.networks is None:
            raise Conflict(f"port {port}: networking is not enabled in this daemon")
        for other in self.store.all():
            if other.spec.port is not None and clash(port, other.spec.port):
                raise Conflict(f"host port {port.host_port}/{port.protocol} is already published by "
                               f"service {other.name}", field="port")
        for attachment in self.networks.attachments():
            for published in attachment.ports:
                if clash(port, published):
                    raise Conflict(f"host port {port.host_port}/{port.protocol} is already published by "
                                   f"container {attachment.container_name}", field="port")
        check_host_port(port)
