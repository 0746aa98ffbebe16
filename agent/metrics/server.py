"""Serve /metrics over HTTP from a private CollectorRegistry (never the global REGISTRY).

`serve_metrics("127.0.0.1:9750", collector)` binds, answers in a daemon thread and returns a
`MetricsServer` whose `stop()` closes the socket and joins the thread. The daemon starts it
after the collector's sources and stops it first.

The HTTP side is prometheus_client's threading WSGI server; the body is written by `render()`,
not by prometheus_client's WSGI app, for scrape cost (bench/scrape_cost.py): with every syscall
of 200 containers a scrape is ~24k samples, and the stock app formats each sample's labels
anew and gzips at level 9, which together cost several times the collection itself. `render()`
writes the same text format 0.0.4, byte for byte what `generate_latest()` writes (a unit test
compares them), but formats each shared label set once, and the body is gzipped at level 1 by ISA-L.
The endpoint keeps a `LabelTexts` from one scrape to the next, so the label dicts the
collector keeps across scrapes are formatted once per container, not once per scrape.
"""
from __future__ import annotations

import errno
import socket
import threading
from wsgiref.simple_server import WSGIRequestHandler, make_server

from isal import igzip
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.exposition import ThreadingWSGIServer

from agent.errors import Conflict, InvalidArgument, KernelError
from agent.metrics.text import TextMetric
from agent.metrics.text import label_text as make_label_text
from agent.metrics.text import value_text as format_value

DEFAULT_ADDR = "127.0.0.1:9750"


def parse_addr(text: str) -> tuple[str, int]:
    """("host", port) from "host:port", "[::1]:port" or ":port" (all IPv4 interfaces)."""
    host, sep, port = str(text).rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise InvalidArgument(f"metrics-addr {text!r}: expected HOST:PORT like {DEFAULT_ADDR}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise InvalidArgument(f"metrics-addr {text!r}: write IPv6 addresses in brackets, like [::1]:9750")
    return host or "0.0.0.0", int(port)


class _QuietHandler(WSGIRequestHandler):
    """Scrapes every few seconds must not fill the daemon's log."""

    def log_message(self, format, *args):  # noqa: A002 - the base class names it so
        pass


class MetricsServer:
    """A running /metrics endpoint; `stop()` is idempotent."""

    def __init__(self, httpd: ThreadingWSGIServer, thread: threading.Thread) -> None:
        self._httpd = httpd
        self._thread = thread
        self._stopped = False

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port); the port is the real one when 0 was asked for."""
        host, port = self._httpd.server_address[:2]
        return str(host), port

    @property
    def url(self) -> str:
        host, port = self.address
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/metrics"

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def build_registry(*collectors, process_metrics: bool = True) -> CollectorRegistry:
    """A private registry with the given collectors; the process/platform collectors read a few
    /proc/self files per scrape, cheap enough to keep on by default."""
    registry = CollectorRegistry(auto_describe=True)
    for collector in collectors:
        registry.register(collector)
    if process_metrics:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
    return registry


class LabelTexts:
    """The formatted label text of each label dict one render met, for the next render.

    Keyed by the dict's id and holding the dict itself, so an id cannot be reused by another
    dict while its entry lives. Only the last render's dicts are kept: dicts that collectors
    build afresh each scrape (prometheus_client's own) drop out after one render. A dict is
    taken to be unchanged once a collector has yielded it; Corral's collector never changes
    one, and a collector that changed a yielded dict in place would be shown its old text.
    """

    def __init__(self) -> None:
        # id(labels) -> (labels, their text, {sample name: (value, whole line)})
        self.last: dict[int, tuple[dict, str, dict[str, tuple[float, str]]]] = {}


def render(registry: CollectorRegistry, texts: LabelTexts | None = None) -> bytes:
    """The registry in Prometheus text format 0.0.4, as `generate_latest()` writes it.

    Label sets are formatted once per dict object: the collector hands the same dict to every
    series of a container, so most samples reuse a string; with `texts`, dicts met in the
    previous render are not formatted again. The cache holds each dict, so no id can be
    reused by a new dict while rendering. Families the collector hands over as text
    (`TextMetric`: every container's syscall series, most of a scrape's samples) are written as
    they are.
    """
    output: list[str] = []
    append = output.append
    formatted: dict[int, tuple[dict, str, dict[str, tuple[float, str]]]] = {}
    get_formatted = formatted.get
    last = texts.last if texts is not None else {}
    get_last = last.get
    for metric in registry.collect():
        name, kind = metric.name, metric.type
        # The same renaming generate_latest() does from OpenMetrics types to text 0.0.4.
        if kind == "counter":
            name += "_total"
        elif kind == "info":
            name, kind = name + "_info", "gauge"
        elif kind == "stateset":
            kind = "gauge"
        elif kind == "gaugehistogram":
            kind = "histogram"
        elif kind == "unknown":
            kind = "untyped"
        help_text = metric.documentation.replace("\\", r"\\").replace("\n", r"\n")
        append(f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n")
        if isinstance(metric, TextMetric):
            append(metric.text)     # written by the collector, kept between scrapes
            continue
        extra: dict[str, list[str]] = {}
        specials = {metric.name + suffix: suffix for suffix in ("_created", "_gsum", "_gcount")}
        for sample in metric.samples:
            sample_name, labels, value, timestamp = sample[0], sample[1], sample[2], sample[3]
            if labels:
                hit = get_formatted(id(labels))
                if hit is None or hit[0] is not labels:
                    hit = get_last(id(labels))
                    if hit is None or hit[0] is not labels:
                        hit = (labels, make_label_text(labels), {})
                    formatted[id(labels)] = hit
                # The line this label set had in this family at the last scrape, if its value
                # has not moved since: most figures of an idle container never do.
                lines = hit[2]
                kept = lines.get(sample_name)
                if kept is not None and timestamp is None and kept[0] == value:
                    text = kept[1]
                elif timestamp is None:
                    text = f"{sample_name}{hit[1]} {format_value(value)}\n"
                    lines[sample_name] = (value, text)
                else:
                    text = f"{sample_name}{hit[1]} {format_value(value)} {int(float(timestamp) * 1000):d}\n"
            elif timestamp is None:
                text = f"{sample_name} {format_value(value)}\n"
            else:
                text = f"{sample_name} {format_value(value)} {int(float(timestamp) * 1000):d}\n"
            if sample_name in specials:
                extra.setdefault(specials[sample_name], []).append(text)
            else:
                append(text)
        for suffix, texts_of_suffix in sorted(extra.items()):
            append(f"# HELP {metric.name}{suffix} {help_text}\n# TYPE {metric.name}{suffix} gauge\n")
            output.extend(texts_of_suffix)
    if texts is not None:
        texts.last = formatted
    return "".join(output).encode("utf-8")


def _gzip_accepted(environ) -> bool:
    accepted = environ.get("HTTP_ACCEPT_ENCODING", "")
    return any(part.split(";")[0].strip().lower() == "gzip" for part in accepted.split(","))


def scrape_body(registry: CollectorRegistry, texts: LabelTexts | None, compress: bool) -> bytes:
    """What one /metrics answer carries: the text, gzipped when the scraper accepts gzip."""
    body = render(registry, texts)
    # ISA-L's level 1: a fifth of the size already, at a seventh of what zlib's level 1 takes
    # (and far less than level 9, prometheus_client's choice).
    return igzip.compress(body, compresslevel=1) if compress else body


def _app(registry: CollectorRegistry):
    texts = LabelTexts()

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            compress = _gzip_accepted(environ)
            body = scrape_body(registry, texts, compress)
            headers = [("Content-Type", CONTENT_TYPE_LATEST)]
            if compress:
                headers.append(("Content-Encoding", "gzip"))
            start_response("200 OK", headers)
            return [body]
        if path == "/":
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"Corral agent: metrics at /metrics\n"]
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found: metrics are at /metrics\n"]
    return app


def serve_metrics(addr: str, *collectors, process_metrics: bool = True,
                  registry: CollectorRegistry | None = None) -> MetricsServer:
    """Listen on `addr` ("host:port") and serve the collectors at /metrics."""
    host, port = parse_addr(addr)
    if registry is None:
        registry = build_registry(*collectors, process_metrics=process_metrics)

    class Server(ThreadingWSGIServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        allow_reuse_address = True

    try:
        httpd = make_server(host, port, _app(registry), Server, handler_class=_QuietHandler)
    except socket.gaierror as exc:
        raise InvalidArgument(f"metrics-addr {addr!r}: unknown host {host!r} ({exc.strerror})") from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise Conflict(f"metrics-addr {addr!r}: the port is already in use",
                           hint="stop the other listener or choose another --metrics-addr") from None
        if exc.errno == errno.EADDRNOTAVAIL:
            raise InvalidArgument(f"metrics-addr {addr!r}: {host} is not an address of this host",
                                  hint="use 127.0.0.1 or an address from `ip addr`") from None
        raise KernelError(f"metrics-addr {addr!r}: cannot listen: {exc.strerror}") from None
    thread = threading.Thread(target=httpd.serve_forever, name="corral-metrics", daemon=True)
    thread.start()
    return MetricsServer(httpd, thread)
