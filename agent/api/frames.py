"""Docker's stream framing, used for container logs and exec output on the API.

Each frame is an 8-byte header `[stream, 0, 0, 0, length (uint32 big-endian)]` followed by
`length` bytes of payload. Stream 1 is stdout, 2 is stderr; Corral adds stream 3 as the last
frame of an exec or a run (`POST /v1/containers/run`), carrying the exit code as ASCII digits,
so one HTTP response can carry both the output and the status; or, when the daemon failed after
the answer's head had gone out, the error as a JSON object (`{"error": ..., "message": ...}`, an
error answer's body), which the client raises as that error. The launcher writes log files in this same format, so the
daemon can send them unchanged.
"""
from __future__ import annotations

import struct

from agent.errors import CorralError, from_dict

STDIN, STDOUT, STDERR, EXIT = 0, 1, 2, 3
MEDIA_TYPE = "application/vnd.corral.raw-stream"
HEADER = struct.Struct(">BxxxI")
MAX_PAYLOAD = 0xFFFFFFFF


def encode(stream: int, data: bytes) -> bytes:
    """One frame of `data` on `stream`."""
    if stream not in (STDIN, STDOUT, STDERR, EXIT):
        raise ValueError(f"stream {stream}: expected 0, 1, 2 or 3")
    if len(data) > MAX_PAYLOAD:
        raise ValueError(f"frame payload of {len(data)} bytes exceeds {MAX_PAYLOAD}")
    return HEADER.pack(stream, len(data)) + bytes(data)


def encode_exit(code: int) -> bytes:
    """The final frame of an exec stream."""
    return encode(EXIT, str(int(code)).encode("ascii"))


def encode_error(error: dict) -> bytes:
    """The final frame of a stream whose work failed after the answer's head (CorralError.to_dict())."""
    import json  # not at the top: the CLI imports this module and reads JSON only on errors
    return encode(EXIT, json.dumps(error).encode())


def decode_exit(payload: bytes) -> int:
    """The exit code of a stream-3 frame; an error frame is raised as the daemon's CorralError."""
    if payload.startswith(b"{"):
        import json
        try:
            error = json.loads(payload)
        except ValueError:
            error = None
        if isinstance(error, dict) and "message" in error:
            raise from_dict(error)
    try:
        return int(payload.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise CorralError(f"exit frame carries {payload!r}, not an exit code") from None


class FrameDecoder:
    """Incremental decoder: feed it bytes as they arrive, get back complete frames."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= HEADER.size:
            stream, length = HEADER.unpack_from(self._buffer)
            if stream > EXIT or any(self._buffer[1:4]):
                raise CorralError(f"corrupt stream frame header {bytes(self._buffer[:HEADER.size]).hex()}",
                                  hint="the daemon and the client may be of different versions")
            end = HEADER.size + length
            if len(self._buffer) < end:
                break
            frames.append((stream, bytes(self._buffer[HEADER.size:end])))
            del self._buffer[:end]
        return frames

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back."""
        return len(self._buffer)

    def close(self) -> None:
        """Call at end of input: a partial frame left over means the stream was cut."""
        if self._buffer:
            raise CorralError(f"stream ended inside a frame ({len(self._buffer)} bytes left over)")


def decode_all(data: bytes) -> list[tuple[int, bytes]]:
    decoder = FrameDecoder()
    frames = decoder.feed(data)
    decoder.close()
    return frames
