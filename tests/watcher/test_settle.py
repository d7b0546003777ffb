"""The settle timer: a file is due once it has been left alone for settle_seconds."""

from __future__ import annotations

from services.watcher.settle import Settler


def test_file_is_due_after_settle_seconds_with_its_last_signature():
    s = Settler(1.0)
    s.touch("a.png", now=10.0, signature=(5, 1))
    assert s.next_deadline() == 11.0
    assert s.due(10.9) == []
    assert s.due(11.0) == [("a.png", (5, 1))]
    assert "a.png" not in s and s.due(99) == []


def test_each_touch_restarts_the_timer():
    s = Settler(1.0)
    s.touch("a.png", 10.0, (1, 1))
    s.touch("a.png", 10.5, (2, 2))
    s.touch("a.png", 10.8, (3, 3))
    assert s.due(11.5) == []
    assert s.next_deadline() == 11.8
    assert s.due(11.8) == [("a.png", (3, 3))]


def test_forgotten_files_never_fall_due():
    s = Settler(0.5)
    s.touch("a.png", 0.0, 1)
    s.touch("b.png", 0.1, 2)
    s.forget("a.png")
    assert s.due(10) == [("b.png", 2)]
    assert len(s) == 0 and s.next_deadline() is None


def test_due_in_deadline_order_and_heap_stays_bounded():
    s = Settler(1.0)
    for i in range(1000):  # a big file written in many small pieces
        s.touch("big.png", i * 0.001, i)
    s.touch("small.png", 0.0, 0)
    assert len(s._heap) < 200  # stale entries are dropped, not kept per touch
    assert s.next_deadline() == 1.0
    assert [p for p, _ in s.due(5)] == ["small.png", "big.png"]
