"""The watcher in the test's own process, fed synthetic file events, on a fake clock; real Redis.

No observer and no waiting: the test says what the file system did (the events watchdog would
deliver) and when (the fake clock), then lets the watcher handle its inbox. Settle times, close
events and "queued once" are checked exactly, in milliseconds; tests/watcher runs the real observer.
"""

from __future__ import annotations

import io
import os
import random

import pytest
from PIL import Image
from watchdog.events import DirCreatedEvent, FileClosedEvent, FileCreatedEvent, FileModifiedEvent, FileMovedEvent, FileOpenedEvent

from services.watcher.watcher import Watcher
from shared import keys
from shared.jobs import upload_queue
from shared.ledger import Ledger

SETTLE = 2.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def png(color: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), color).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def make_watcher(tmp_path, redis_client, clock):
    folder = tmp_path / "inbox"
    folder.mkdir()

    def make(close_events: bool) -> Watcher:
        w = Watcher(folder, Ledger(redis_client, "board="), upload_queue(redis_client, "inproc"), settle_seconds=SETTLE,
                    rescan_interval=0, job_timeout=60, close_events=close_events, clock=clock)
        w.folder_path = folder
        return w

    return make


def deliver(w: Watcher, *events) -> None:
    """What the observer thread does (events into the inbox), then one turn of the watcher's loop."""
    for event in events:
        w.handler().dispatch(event)
    w._pump(0)
    w._settled()


def queued(redis_client) -> list[str]:
    return [job.args[0] for job in upload_queue(redis_client, "inproc").jobs]


def test_a_file_is_queued_once_after_it_settled_not_before(make_watcher, clock, redis_client):
    w = make_watcher(close_events=False)
    path = w.folder_path / "a.png"
    path.write_bytes(png((1, 2, 3)))
    deliver(w, FileCreatedEvent(str(path)), FileModifiedEvent(str(path)))
    clock.advance(SETTLE - 0.01)
    deliver(w)
    assert queued(redis_client) == []
    clock.advance(0.01)
    deliver(w)
    assert queued(redis_client) == ["a.png"]
    deliver(w, FileModifiedEvent(str(path)))  # touched again, same bytes and mtime
    clock.advance(SETTLE)
    deliver(w)
    assert queued(redis_client) == ["a.png"]


def test_every_write_restarts_the_settle_time(make_watcher, clock, redis_client):
    w = make_watcher(close_events=False)
    path = w.folder_path / "growing.png"
    data = png((4, 5, 6))
    path.write_bytes(b"")
    deliver(w, FileCreatedEvent(str(path)))
    for i in range(1, 6):  # a write every 1.5 s: never quiet for the 2 s settle time
        clock.advance(1.5)
        path.write_bytes(data[: len(data) * i // 5])
        deliver(w, FileModifiedEvent(str(path)))
        assert queued(redis_client) == [], i
    clock.advance(SETTLE)
    deliver(w)
    assert queued(redis_client) == ["growing.png"]


def test_with_close_events_a_file_written_in_place_is_queued_at_its_close(make_watcher, clock, redis_client):
    w = make_watcher(close_events=True)
    path = w.folder_path / "camera.png"
    path.write_bytes(b"")
    deliver(w, FileCreatedEvent(str(path)), FileOpenedEvent(str(path)))
    clock.advance(SETTLE * 10)  # a slow writer: open for a long time, nothing queued
    path.write_bytes(png((7, 8, 9)))
    deliver(w, FileModifiedEvent(str(path)))
    assert queued(redis_client) == []
    deliver(w, FileClosedEvent(str(path)))  # no settle wait after the close
    assert queued(redis_client) == ["camera.png"]


def test_a_file_moved_in_is_queued_at_once(make_watcher, clock, redis_client):
    w = make_watcher(close_events=True)
    hidden, final = w.folder_path / ".part", w.folder_path / "done.png"
    hidden.write_bytes(png((10, 11, 12)))
    hidden.rename(final)
    deliver(w, FileMovedEvent(str(hidden), str(final)))
    assert queued(redis_client) == ["done.png"]


def test_a_folder_copied_in_is_queued_in_name_order_with_its_cells_reserved_in_that_order(make_watcher, clock, redis_client):
    w = make_watcher(close_events=True)
    folder = w.folder_path / "batch"
    folder.mkdir()
    names = [f"b_{i}.png" for i in range(12)]  # b_2 before b_10: not the order of the strings
    order = random.Random(3).sample(names, len(names))  # a copy writes in no particular order
    for name in order[:2]:  # copied with their times kept (cp -p) before the watcher looked
        (folder / name).write_bytes(png((names.index(name), 1, 1)))
        os.utime(folder / name, (1e9, 1e9))
    deliver(w, DirCreatedEvent(str(folder)))
    for name in order[2:]:
        clock.advance(0.05)
        path = folder / name
        path.write_bytes(png((names.index(name), 2, 2)))
        deliver(w, FileCreatedEvent(str(path)), FileOpenedEvent(str(path)), FileModifiedEvent(str(path)), FileClosedEvent(str(path)))
    single = w.folder_path / "single.png"
    single.write_bytes(png((0, 0, 1)))
    deliver(w, FileCreatedEvent(str(single)), FileClosedEvent(str(single)))
    assert queued(redis_client) == ["single.png"]  # a file closed elsewhere is not held
    clock.advance(SETTLE - 0.01)
    deliver(w)
    assert queued(redis_client) == ["single.png"]  # the folder changed SETTLE_SECONDS ago, not yet
    clock.advance(0.01)
    deliver(w)
    assert queued(redis_client) == ["single.png"] + [f"batch/{n}" for n in names]
    slots = redis_client.hgetall(keys.slots("board="))
    assert [int(slots[f"batch/{n}".encode()]) for n in names] == list(range(len(names)))  # the cells, before any worker
    assert int(slots[b"single.png"]) == 0 and w.ledger.frame_column("batch") == 0
