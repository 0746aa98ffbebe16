"""Docker stream framing: what the launcher writes and the API sends for logs and exec."""
from __future__ import annotations

import pytest

from agent.api import frames
from agent.errors import CorralError


def test_header_is_dockers_layout():
    assert frames.encode(frames.STDOUT, b"hi\n") == b"\x01\x00\x00\x00\x00\x00\x00\x03hi\n"
    assert frames.encode(frames.STDERR, b"") == b"\x02\x00\x00\x00\x00\x00\x00\x00"
    assert frames.encode(frames.STDOUT, b"x" * 300)[:8] == b"\x01\x00\x00\x00\x00\x00\x01\x2c"


def test_exit_frame_carries_the_code_in_ascii():
    frame = frames.encode_exit(137)
    assert frame == b"\x03\x00\x00\x00\x00\x00\x00\x03137"
    assert frames.decode_all(frame) == [(frames.EXIT, b"137")]
    assert frames.decode_exit(b"137") == 137
    with pytest.raises(CorralError, match="not an exit code"):
        frames.decode_exit(b"x")


def test_decoder_handles_frames_split_anywhere():
    data = (frames.encode(1, b"out\n") + frames.encode(2, b"err\n") + frames.encode(1, b"")
            + frames.encode(1, b"more") + frames.encode_exit(3))
    for split in range(len(data) + 1):
        decoder = frames.FrameDecoder()
        got = decoder.feed(data[:split]) + decoder.feed(data[split:])
        decoder.close()
        assert got == [(1, b"out\n"), (2, b"err\n"), (1, b""), (1, b"more"), (3, b"3")]
    decoder = frames.FrameDecoder()
    got = [frame for byte in data for frame in decoder.feed(bytes([byte]))]
    assert len(got) == 5 and decoder.pending == 0


def test_a_cut_stream_is_reported():
    decoder = frames.FrameDecoder()
    assert decoder.feed(frames.encode(1, b"hello")[:-2]) == []
    assert decoder.pending == 11
    with pytest.raises(CorralError, match="11 bytes left over"):
        decoder.close()


def test_garbage_is_not_taken_for_frames():
    with pytest.raises(CorralError, match="corrupt stream frame header"):
        frames.FrameDecoder().feed(b"HTTP/1.1 200 OK\r\n")


def test_encode_refuses_unknown_streams():
    with pytest.raises(ValueError, match="stream 7"):
        frames.encode(7, b"")
