"""The metrics' Redis store: counters add up across processes, histograms read back cumulative."""

from __future__ import annotations

import datetime as dt

import redis as redis_lib

from shared import metrics as m


def test_counts_and_histograms_round_trip(redis_client):
    m.use(redis_client)
    try:
        m.record_upload("file", m.Outcome.UPLOADED, ready_at=None)
        m.record_upload("file", m.Outcome.UPLOADED, ready_at=0.0)  # a very old file: lands in +Inf
        m.record_miro_error(429, "tooManyRequests")
        m.record_miro_error(None, None)
        m.record_conversion(0.03)
    finally:
        m.use(None)
    assert m.read_counter(redis_client, m.UPLOADS) == {("file", "uploaded"): 2}
    assert m.read_counter(redis_client, m.MIRO_ERRORS) == {("429", "tooManyRequests"): 1, ("none", "none"): 1}
    assert m.read_counter(redis_client, m.RATE_LIMITED) == {(): 1}
    buckets, total, count = m.read_histogram(redis_client, m.LATENCY)
    assert count == 1 and buckets[-1] == ("+Inf", 1) and buckets[-2][1] == 0
    buckets, total, count = m.read_histogram(redis_client, m.CONVERSION)
    assert dict(buckets)["0.025"] == 0 and dict(buckets)["0.05"] == 1 and abs(total - 0.03) < 1e-9
    assert redis_client.get("miro-sync:last-upload-at") is not None


def test_recording_never_raises_when_redis_is_gone():
    m.use(redis_lib.Redis(port=1, socket_connect_timeout=0.2))
    try:
        m.record_upload("file", m.Outcome.UPLOADED)
    finally:
        m.use(None)


def test_latency_counts_from_the_write_unless_queued_long_after():
    written = 1_700_000_000
    soon = dt.datetime.fromtimestamp(written + 2, dt.UTC).replace(tzinfo=None)
    late = dt.datetime.fromtimestamp(written + 3600, dt.UTC).replace(tzinfo=None)
    assert m.latency_start(written * 10**9, soon) == written
    assert m.latency_start(written * 10**9, late) == written + 3600
