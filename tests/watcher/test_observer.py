"""Observer choice: auto falls back to polling when inotify hits its limits."""

from __future__ import annotations

import errno
import logging
import queue

import pytest
from watchdog.observers.polling import PollingObserver

from services.watcher.observer import start_observer
from services.watcher.watcher import EventInbox
from shared.settings import WatchMode
from tests.fixtures.procs import wait_for


def _limit_reached(code: int):
    def native():
        raise OSError(code, "inotify watch limit reached" if code == errno.ENOSPC else "inotify instance limit reached")

    return native


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EMFILE])
def test_auto_falls_back_to_polling_with_one_line(tmp_path, caplog, code):
    inbox: queue.SimpleQueue = queue.SimpleQueue()
    with caplog.at_level(logging.INFO, logger="miro_sync"):
        observer = start_observer(WatchMode.AUTO, tmp_path, EventInbox(inbox), 0.1, native=_limit_reached(code))
    try:
        assert isinstance(observer, PollingObserver)
        lines = [r for r in caplog.records if r.getMessage() == "watch.fallback"]
        assert len(lines) == 1 and "max_user_watches" in lines[0].fields["reason"]
        (tmp_path / "a.png").write_bytes(b"x")  # and the polling observer really watches
        wait_for(lambda: any(getattr(inbox.get(timeout=1), "src_path", "").endswith("a.png") for _ in range(1)), 5, what="an event")
    finally:
        observer.stop()
        observer.join(5)


def test_auto_does_not_hide_other_errors(tmp_path):
    def broken():
        raise OSError(errno.EIO, "I/O error")

    with pytest.raises(OSError):
        start_observer(WatchMode.AUTO, tmp_path, EventInbox(queue.SimpleQueue()), 0.1, native=broken)
