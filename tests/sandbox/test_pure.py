"""The sandbox's pure parts, with a hand-driven clock: credit windows, fault windows, geometry."""

from __future__ import annotations

import pytest

from services.sandbox import geometry
from services.sandbox.credits import CreditBuckets
from services.sandbox.errors import ApiError
from services.sandbox.faults import FaultError, Faults


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_credit_window_opens_on_first_call_and_refills_after_a_minute():
    clock = Clock()
    buckets = CreditBuckets(300, clock)
    assert buckets.charge("t", 100) == (True, buckets.peek("t"))
    clock.now += 30
    ok, state = buckets.charge("t", 200)
    assert ok and state.remaining == 0 and state.reset_at == 1_000_060
    refused, state = buckets.charge("t", 50)
    assert not refused and state.remaining == 0
    clock.now += 30  # the window ends at 1_000_060
    ok, state = buckets.charge("t", 50)
    assert ok and state.remaining == 250 and state.reset_at == 1_000_120


def test_credit_limit_change_counts_what_was_used():
    buckets = CreditBuckets(1000, Clock())
    buckets.charge("t", 500)
    buckets.set_limit(600)
    assert buckets.peek("t").remaining == 100
    assert buckets.peek("other").remaining == 600


def test_fault_error_window_and_every_nth():
    clock = Clock()
    faults = Faults(clock=clock)
    assert faults.error_status() is None
    faults.apply({"error_status": 503, "error_for_seconds": 10})
    assert faults.error_status() == 503
    clock.now += 10
    assert faults.error_status() is None
    faults.apply({"error_status": 500, "error_every": 2, "error_for_seconds": 5})
    assert [faults.error_status() for _ in range(4)] == [None, 500, None, 500]
    clock.now += 5
    assert [faults.error_status() for _ in range(2)] == [None, None]


def test_fault_drop_window_and_clear():
    clock = Clock()
    faults = Faults(latency_ms=20, clock=clock)
    faults.apply({"drop_connections_for_seconds": 1, "latency_ms": 300})
    assert faults.should_drop() and faults.latency_seconds() == 0.3
    assert faults.snapshot()["drop_connections_for_seconds_left"] == 1
    clock.now += 1
    assert not faults.should_drop()
    faults.clear()
    assert faults.latency_seconds() == 0.02


@pytest.mark.parametrize("spec", [{"error_status": 302}, {"error_every": 0, "error_status": 500}, {"nope": 1},
                                  {"error_for_seconds": 3}, {"latency_ms": True}])
def test_fault_requests_that_make_no_sense(spec):
    with pytest.raises(FaultError):
        Faults().apply(spec)


@pytest.mark.parametrize("width,height,natural,expected", [
    (200, None, (400, 100), (200, 50)),
    (None, 100, (400, 100), (400, 100)),
    (None, None, (640, 480), (640, 480)),
    (300, None, None, (300, 300)),  # a picture that does not decode shows as a square
    (None, None, None, (geometry.BROKEN_IMAGE_SIZE, geometry.BROKEN_IMAGE_SIZE)),
])
def test_image_size(width, height, natural, expected):
    assert geometry.image_size(width, height, natural) == expected


def test_frame_coordinates_round_trip():
    frame = (1000.0, 500.0, 1000.0, 500.0)  # centre (1000, 500): top-left (500, 250)
    assert geometry.to_board(20, 30, frame) == (520, 280)
    assert geometry.to_parent(520, 280, frame) == (20, 30)
    assert geometry.to_board(20, 30, None) == (20, 30)


def test_width_and_height_together_name_geometry():
    with pytest.raises(ApiError) as caught:
        geometry.read_image_geometry({"geometry": {"width": 1, "height": 1}})
    assert caught.value.status == 400 and caught.value.context["fields"][0]["field"] == "geometry"
