"""Fault injection (POST /_sandbox/faults) and the request log it is measured with."""

from __future__ import annotations

import time

import pytest
import requests

from tests.fixtures.procs import wait_for

from .helpers import board_path, file_parts, png


def test_request_log_records_arrival_before_injected_latency(sandbox, miro):
    sandbox.set_faults(latency_ms=300)
    before = time.time()
    resp = miro.post(board_path(sandbox.board_id, "/images"), files=file_parts(png()))
    after = time.time()
    assert resp.status_code == 201
    [entry] = sandbox.requests()
    assert entry["method"] == "POST" and entry["path"] == f"/v2/boards/{sandbox.board_id}/images"
    assert entry["status"] == 201 and entry["token_hint"] == "…oken"
    assert before <= entry["at"] <= after - 0.3  # logged on arrival, then held for 300 ms
    assert entry["done_at"] - entry["at"] >= 0.3
    # The admin endpoints are never delayed nor logged.
    assert sandbox.faults()["latency_ms"] == 300
    assert len(sandbox.requests()) == 1


def test_requests_since(sandbox, miro):
    miro.get(board_path(sandbox.board_id))
    cut = time.time()
    miro.get(board_path(sandbox.board_id, "/items"))
    assert [r["path"] for r in sandbox.requests(since=cut)] == [f"/v2/boards/{sandbox.board_id}/items"]


def test_error_window_answers_the_status_with_miros_error_body(sandbox, miro):
    sandbox.set_faults(error_status=503, error_for_seconds=60)
    for path in ("", "/items"):
        resp = miro.get(board_path(sandbox.board_id, path))
        assert resp.status_code == 503
        assert resp.json()["type"] == "error" and resp.json()["status"] == 503
    created = miro.post(board_path(sandbox.board_id, "/images"), files=file_parts(png()))
    assert created.status_code == 503
    assert sandbox.items(sandbox.board_id) == []  # the request was not carried out
    sandbox.clear_faults()
    assert miro.get(board_path(sandbox.board_id)).status_code == 200
    assert sandbox.stats()["status_counts"] == {"503": 3, "200": 1}


def test_error_window_ends_by_itself(sandbox, miro):
    # A wide window for the first answer (a loaded machine may take a while to send it); then a
    # short one, and the sandbox's own countdown says when it is over.
    sandbox.set_faults(error_status=500, error_for_seconds=60)
    assert miro.get(board_path(sandbox.board_id)).status_code == 500
    sandbox.set_faults(error_for_seconds=0.2)
    wait_for(lambda: sandbox.faults()["error_for_seconds_left"] == 0, 10, what="the error window to end")
    assert miro.get(board_path(sandbox.board_id)).status_code == 200


def test_error_every_nth_request(sandbox, miro):
    sandbox.set_faults(error_status=500, error_every=3)
    statuses = [miro.get(board_path(sandbox.board_id)).status_code for _ in range(7)]
    assert statuses == [200, 200, 500, 200, 200, 500, 200]


def test_injected_429_looks_like_a_spent_budget(sandbox, miro):
    sandbox.set_faults(error_status=429)
    resp = miro.get(board_path(sandbox.board_id))
    assert resp.status_code == 429 and resp.json()["code"] == "tooManyRequests"
    assert resp.headers["X-RateLimit-Remaining"] == "0"


def test_dropped_connections_get_no_answer(sandbox, miro):
    sandbox.set_faults(drop_connections_for_seconds=60)
    with pytest.raises(requests.ConnectionError):
        miro.get(board_path(sandbox.board_id))
    with pytest.raises(requests.ConnectionError):
        miro.post(board_path(sandbox.board_id, "/images"), files=file_parts(png()))
    assert sandbox.items(sandbox.board_id) == []
    assert [r["status"] for r in sandbox.requests()] == [0, 0]
    assert sandbox.stats()["dropped"] == 2
    sandbox.clear_faults()
    assert miro.get(board_path(sandbox.board_id)).status_code == 200


def test_drop_window_ends_by_itself(sandbox, miro):
    sandbox.set_faults(drop_connections_for_seconds=60)  # wide, then short: as for the error window
    with pytest.raises(requests.ConnectionError):
        miro.get(board_path(sandbox.board_id))
    sandbox.set_faults(drop_connections_for_seconds=0.2)
    wait_for(lambda: sandbox.faults()["drop_connections_for_seconds_left"] == 0, 10, what="the drop window to end")
    assert miro.get(board_path(sandbox.board_id)).status_code == 200


def test_credits_per_minute_change_at_runtime(sandbox, miro):
    assert miro.get(board_path(sandbox.board_id)).headers["X-RateLimit-Limit"] == "100000"
    sandbox.set_faults(credits_per_minute=150)  # 50 already used in this window
    resp = miro.get(board_path(sandbox.board_id, "/items"))
    assert resp.status_code == 200
    assert resp.headers["X-RateLimit-Limit"] == "150" and resp.headers["X-RateLimit-Remaining"] == "0"
    assert miro.get(board_path(sandbox.board_id)).status_code == 429
    sandbox.clear_faults()
    assert miro.get(board_path(sandbox.board_id)).headers["X-RateLimit-Limit"] == "100000"


@pytest.mark.parametrize("spec", [{"latency": 5}, {"error_every": 2}, {"error_status": 200}, {"latency_ms": -1},
                                  {"drop_connections_for_seconds": "soon"}])
def test_bad_fault_requests_are_refused(sandbox, spec):
    resp = requests.post(sandbox.url + "/_sandbox/faults", json=spec, timeout=5)
    assert resp.status_code == 400 and resp.json()["error"]


def test_reset_empties_the_boards_and_logs(sandbox, miro):
    miro.post(board_path(sandbox.board_id, "/images"), files=file_parts(png()))
    sandbox.set_faults(latency_ms=10)
    sandbox.reset()
    assert sandbox.items(sandbox.board_id) == [] and sandbox.requests() == []
    assert sandbox.faults()["latency_ms"] == 0
    assert sandbox.stats() == {"status_counts": {}, "creates": 0}


def test_latency_given_at_start_applies_until_cleared(sandbox_factory, miro_for):
    sb = sandbox_factory(latency_ms=200)
    miro_for(sb, sb.token).get(board_path(sb.board_id))
    [entry] = sb.requests()
    assert entry["done_at"] - entry["at"] >= 0.2
    assert sb.clear_faults()["latency_ms"] == 200  # back to the start-up value, not 0
