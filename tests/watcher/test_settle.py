"""The settle timer: a file is due once it has been left alone for settle_seconds."""

from __future__ import annotations

import pytest

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


def test_a_folder_that_arrives_is_one_batch_ready_when_nothing_in_it_changed():
    s = Settler(1.0)
    assert s.arriving("trip", now=0.0)
    assert not s.arriving("trip/day 2", now=0.1)  # a folder inside joins the batch
    for i, name in enumerate(["trip/b_21.png", "trip/day 2/a.png", "trip/b_00.png"]):
        s.touch(name, now=0.2 + i * 0.4, signature=i)  # the copy goes on for a while
    s.touch("elsewhere.png", now=0.2, signature=9)
    assert s.due(1.2) == [("elsewhere.png", 9)]  # not held by the batch
    assert s.due(1.9) == []  # b_21 settled long ago, but the folder did not
    s.stir("trip/day 2/b.png.part", now=1.5)  # still being written to
    assert s.due(2.4) == []
    assert sorted(s.due(2.5)) == [("trip/b_00.png", 2), ("trip/b_21.png", 0), ("trip/day 2/a.png", 1)]
    assert s.arrival_of("trip/b_99.png") is None  # arrived: a later file in it is on its own
    s.touch("trip/late.png", now=3.0, signature=3)
    assert s.due(4.0) == [("trip/late.png", 3)]


def test_a_folder_that_goes_on_arriving_is_handed_over_after_the_limit():
    s = Settler(1.0, arrival_limit=10.0)
    s.arriving("tether", now=0.0)
    for n in range(20):  # a camera writing into the folder it just made, every half second: never still for 1 s
        s.touch(f"tether/{n}.jpg", now=n / 2, signature=n)
        assert s.due(n / 2) == [], n
    assert sorted(p for p, _ in s.due(10.0)) == sorted(f"tether/{n}.jpg" for n in range(19))  # what landed and settled by then
    assert s.arrival_of("tether/20.jpg") is None  # then each file on its own
    assert s.due(10.5) == [("tether/19.jpg", 19)]


@pytest.mark.timeout(10)
def test_files_falling_due_milliseconds_apart_come_out_together():
    s = Settler(1.0)
    for n, name in enumerate(["b_10.png", "b_2.png", "b_1.png"]):  # one poll found them, touched a few ms apart
        s.touch(name, now=n * 0.01, signature=n)
    assert s.due(0.99) == []
    assert sorted(p for p, _ in s.due(1.0)) == ["b_1.png", "b_10.png", "b_2.png"]
    s.touch("later.png", now=1.0, signature=3)
    s.touch("much-later.png", now=1.5, signature=4)
    assert s.due(2.0) == [("later.png", 3)]  # not everything pending: only what is due within the grace
    s.arriving("copy", now=2.5)
    s.touch("copy/a.png", now=2.51, signature=5)  # its folder is still 10 ms after the file: within the grace
    assert s.due(3.5) == [("much-later.png", 4)] and s.due(3.51) == [("copy/a.png", 5)]
