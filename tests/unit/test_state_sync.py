"""The durable saves' fsyncs in one long-lived thread (agent/runtime/state_sync.py): every save's
fsyncs are done before its wait returns, all in the same thread, the descriptors are closed, an
error reaches the waiter, and the thread ends when idle and comes back for the next save."""
from __future__ import annotations

import errno
import os
import threading

import pytest

from agent.errors import KernelError
from agent.runtime import state_sync
from agent.runtime.model import Container, ContainerSpec
from agent.runtime.state import ContainerStore


def container(n: int) -> Container:
    return Container(id=f"{n:x}" * 64, name=f"c{n}", spec=ContainerSpec(image="busybox"), image_id="sha256:0",
                     created_at=float(n))


@pytest.fixture
def recorded(monkeypatch):
    """Each fdatasync and fsync the syncer makes: (call, fd, thread)."""
    calls: list[tuple[str, int, int]] = []
    real_fdatasync, real_fsync = os.fdatasync, os.fsync

    def fdatasync(fd: int) -> None:
        calls.append(("fdatasync", fd, threading.get_ident()))
        real_fdatasync(fd)

    def fsync(fd: int) -> None:
        calls.append(("fsync", fd, threading.get_ident()))
        real_fsync(fd)

    monkeypatch.setattr(state_sync.os, "fdatasync", fdatasync)
    monkeypatch.setattr(state_sync.os, "fsync", fsync)
    return calls


def test_every_deferred_save_is_synced_before_its_wait_returns_in_one_thread(tmp_path, recorded):
    store = ContainerStore(tmp_path)
    for n in range(1, 6):
        pending = store.save(container(n), durable=True, sync_later=True)
        assert pending is not None
        pending.wait()
        # The file's data, then its directory and the containers directory: all three before
        # the waiter goes on.
        assert [call for call, _, _ in recorded[-3:]] == ["fdatasync", "fsync", "fsync"]
        for _, fd, _ in recorded[-3:]:
            with pytest.raises(OSError) as closed:
                os.fstat(fd)
            assert closed.value.errno == errno.EBADF, "the descriptors are closed once synced"
    assert len({thread for _, _, thread in recorded}) == 1, "one thread synced every save"
    assert threading.get_ident() not in {thread for _, _, thread in recorded}
    assert store._syncer.thread is not None and store._syncer.thread.ident == recorded[0][2]
    assert {c.name for c in ContainerStore(tmp_path).all()} == {f"c{n}" for n in range(1, 6)}


def test_a_failed_fsync_reaches_the_waiter(tmp_path, monkeypatch):
    def failing(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(state_sync.os, "fdatasync", failing)
    store = ContainerStore(tmp_path)
    pending = store.save(container(7), durable=True, sync_later=True)
    assert pending is not None
    with pytest.raises(KernelError, match="saving container state durably: Input/output error"):
        pending.wait()
    # The next save is synced as usual: the thread went on.
    monkeypatch.undo()
    pending = store.save(container(8), durable=True, sync_later=True)
    assert pending is not None
    pending.wait()


def test_the_thread_ends_when_idle_and_the_next_save_starts_it(tmp_path, monkeypatch, recorded):
    monkeypatch.setattr(state_sync, "IDLE_SECONDS", 0.05)
    syncer = state_sync.StateSyncer()
    files = [os.open(tmp_path / f"f{n}", os.O_WRONLY | os.O_CREAT, 0o600) for n in range(2)]
    syncer.submit((files[0],)).wait()
    first = syncer.thread
    assert first is not None
    first.join(timeout=30)          # a bound for a broken syncer, not a timing assertion
    assert not first.is_alive() and syncer.thread is None
    syncer.submit((files[1],)).wait()
    assert recorded[-1][:2] == ("fdatasync", files[1])
    assert syncer.thread is not None and syncer.thread is not first
