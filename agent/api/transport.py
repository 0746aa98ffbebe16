"""The transport under ApiClient: one HTTP request over the daemon's UNIX socket per call,
its answer decoded (JSON, JSON lines, Docker frames, raw chunks or an upgraded connection),
and an error answer raised again as the CorralError the daemon named. JSON calls go over the
client's kept connection (agent/api/keepalive.py); streams and upgrades over their own."""
from __future__ import annotations

from collections.abc import Iterator

from agent.api import frames, json_body
from agent.api.http_unix import ProtocolError, Response, request
from agent.api.keepalive import KeptConnection
from agent.errors import CorralError, DaemonUnavailable, from_dict

TYPE_CHECKING = False   # typing.TYPE_CHECKING without importing typing, ~4 ms of every CLI start
if TYPE_CHECKING:
    import _socket
    from typing import Any

_READ_SIZE = 65536
# RFC 3986's unreserved characters: everything else in a path segment or query is %-encoded.
_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _percent(text: str) -> str:
    """`urllib.parse.quote(text, safe="")` without importing urllib (start-up time)."""
    return "".join(chr(byte) if byte in _UNRESERVED else f"%{byte:02X}" for byte in text.encode())


def _ref(ref: str) -> str:
    return _percent(ref)


def _filters(filters: dict | None) -> dict:
    """The `filters` query parameter (docker's JSON) when there are any."""
    if not filters:
        return {}
    import json  # here and below: only where JSON is needed (agent/api/json_body.py says why)
    return {"filters": json.dumps(filters, separators=(",", ":"))}


class Transport:
    """The requests every group of ApiClient's methods is written with. ApiClient sets
    `_path` (the socket), `_timeout` and `_kept` (its kept connection)."""

    _path: str
    _timeout: float | None
    _kept: KeptConnection

    def _json(self, method: str, path: str, *, body: Any = None, query: dict | None = None) -> Any:
        response = self._open(method, path, body=body, query=query, kept=True)
        try:
            data = response.read()
        except (ProtocolError, OSError) as exc:
            raise CorralError(f"{method} {path}: the daemon's answer was cut off: {exc}") from None
        finally:
            response.close()
        if response.status == 204 or not data:
            return None
        import json
        try:
            return json.loads(data)
        except ValueError:
            raise CorralError(f"{method} {path}: the daemon answered with invalid JSON: {data[:200]!r}") from None

    def _upgrade(self, path: str, *, body: Any = None,
                 query: dict | None = None) -> tuple[_socket.socket, bytes, dict[str, str]]:
        """The connection after `101 UPGRADED`, the bytes already read past it, its headers."""
        response = self._open("POST", path, body=body, query=query,
                              headers={"Connection": "Upgrade", "Upgrade": "tcp"})
        if response.status != 101:
            response.close()
            raise CorralError(f"POST {path}: the daemon answered {response.status} instead of upgrading the connection")
        return (*response.take_connection(), response.headers)

    def _open(self, method: str, path: str, *, body: Any = None, query: dict | None = None,
              headers: dict[str, str] | None = None, chunks: Iterator[bytes] | None = None,
              kept: bool = False) -> Response:
        """Send the request and read the answer's head; `kept`: over the kept connection (a
        plain answer the caller reads to its end), else over a connection of its own."""
        target = path
        if query:
            target += "?" + "&".join(f"{_percent(str(k))}={_percent(_query_value(v))}" for k, v in query.items())
        headers = {"Host": "corral", "Accept": "application/json", **(headers or {})}
        payload = None
        if body is not None:
            payload = json_body.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            if kept:
                response = self._kept.request(method, target, body=payload, headers=headers, timeout=self._timeout)
            else:
                response = request(self._path, method, target, body=payload, headers=headers,
                                   timeout=self._timeout, chunks=chunks)
        except (FileNotFoundError, ConnectionRefusedError):
            raise DaemonUnavailable(
                f"cannot reach the Corral daemon at unix://{self._path}",
                hint="start it with `sudo corral daemon` or `make run`, or set CORRAL_HOST / --host") from None
        except PermissionError:
            raise DaemonUnavailable(
                f"permission denied on the Corral daemon's socket unix://{self._path}",
                hint="run as root, or as a member of the socket's group") from None
        except (ProtocolError, OSError) as exc:
            raise DaemonUnavailable(f"lost the connection to the Corral daemon at unix://{self._path}: {exc}",
                                    hint="check the daemon's log") from None
        if response.status >= 400:
            try:
                raise _error_of(response)
            finally:
                response.close()
        return response

    def _frames(self, response: Response) -> Iterator[tuple[int, bytes]]:
        decoder = frames.FrameDecoder()
        try:
            while chunk := self._read(response):
                yield from decoder.feed(chunk)
            decoder.close()
        finally:
            response.close()

    @staticmethod
    def _read(response: Response) -> bytes:
        try:
            return response.read1(_READ_SIZE)
        except (ProtocolError, OSError) as exc:
            raise CorralError(f"the daemon ended the stream early: {exc}",
                              hint="the daemon may have stopped; check its log") from None

    def _lines(self, method: str, path: str, *, body: Any = None, query: dict | None = None) -> Iterator[dict]:
        """A JSON-lines stream, one object per line as it arrives."""
        import json
        response = self._open(method, path, body=body, query=query)
        pending = b""
        try:
            while chunk := self._read(response):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
        finally:
            response.close()

    def _chunks(self, response: Response) -> Iterator[bytes]:
        try:
            while chunk := self._read(response):
                yield chunk
        finally:
            response.close()


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _stat_of(response: Response) -> dict:
    import base64
    import json
    header = response.headers.get("x-docker-container-path-stat", "")
    try:
        return json.loads(base64.b64decode(header)) if header else {}
    except ValueError:
        raise CorralError(f"the daemon sent an unreadable path stat: {header[:80]!r}") from None


def _error_of(response: Response) -> CorralError:
    import json
    try:
        data = response.read()
    except (ProtocolError, OSError):
        data = b""
    try:
        payload = json.loads(data)
        if isinstance(payload, dict) and "message" in payload:
            return from_dict(payload)
    except ValueError:
        pass
    text = data.decode(errors="replace").strip() or response.reason
    return CorralError(f"the daemon answered {response.status}: {text}")
