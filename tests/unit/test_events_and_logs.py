import threading

from agent.api.frames import decode_all
from agent.events import Event, EventLog
from agent.runtime.log_file import encode_frame
from agent.runtime.logs import LogQuery, encoded_log


def test_event_log_persists_and_follows(tmp_path):
    log = EventLog(tmp_path / "events.jsonl")
    log.emit(Event("container", "create", "id1", "one", time=10.0))
    log.emit(Event("container", "start", "id1", "one", time=20.0))
    assert [e.action for e in log.since(15)] == ["start"]
    assert [e.action for e in EventLog(tmp_path / "events.jsonl").since(0)] == ["create", "start"]
    stop = threading.Event()
    stream = log.follow(0, stop=stop, poll=0.05)
    assert next(stream).action == "create"
    assert next(stream).action == "start"
    log.emit(Event("container", "die", "id1", "one"))
    assert next(stream).action == "die"
    stop.set()


def test_follow_log_reads_until_exit(tmp_path):
    path = tmp_path / "container.log"
    path.write_bytes(encode_frame(1, b"first"))
    states = iter([True, True, False])
    writes = iter([encode_frame(1, b"second"), encode_frame(2, b"third")])

    def wait(_seconds):
        with open(path, "ab") as handle:
            handle.write(next(writes, b""))

    followed = list(encoded_log(path, LogQuery(follow=True), alive=lambda: next(states), wait=wait))
    assert [data for _, data in decode_all(b"".join(followed))] == [b"first", b"second", b"third"]
    again = b"".join(encoded_log(path, LogQuery(), alive=lambda: True, wait=wait))
    assert decode_all(again) == [(1, b"first"), (1, b"second"), (2, b"third")]
