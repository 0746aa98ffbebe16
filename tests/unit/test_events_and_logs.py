import threading

from agent.events import Event, EventLog
from agent.runtime.logs import follow_log


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
    path.write_bytes(b"first")
    states = iter([True, True, False])
    writes = iter([b"second", b"third"])

    def wait(_seconds):
        with open(path, "ab") as handle:
            handle.write(next(writes, b""))

    chunks = list(follow_log(path, follow=True, running=lambda: next(states), wait=wait))
    assert b"".join(chunks) == b"firstsecondthird"
    assert b"".join(follow_log(path, follow=False, running=lambda: True, wait=wait)) == b"firstsecondthird"
