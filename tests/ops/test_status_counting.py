"""The counting behind `miro-sync status`: a pure function over what was read from Redis."""

from __future__ import annotations

import json

from shared.status import FailedJob, Snapshot, credits_left, summarize


def snap(**fields) -> Snapshot:
    return Snapshot(now=1000.0, **fields)


def test_totals_and_folders():
    s = summarize(snap(synced_paths=["a.png", "trip/x.png", "trip/y.png", "trip/day/z.png"],
                       rejected={"trip/bad.png": json.dumps({"reason": "not an image", "size": 3, "mtime_ns": 1})},
                       queued=3, in_flight=1, scheduled=2, failed=1, verify_pending=4,
                       recent_failed=[FailedJob("old.png", "Miro answered 400", at=5.0), FailedJob("new.png", "413", at=9.0)]))
    assert (s.synced, s.queued, s.in_flight, s.retrying, s.failed, s.rejected, s.held, s.awaiting_verification) == (4, 3, 1, 2, 1, 1, 0, 4)
    assert s.folders == {".": {"synced": 1, "rejected": 0}, "trip": {"synced": 2, "rejected": 1}, "trip/day": {"synced": 1, "rejected": 0}}
    assert [f["path"] for f in s.recent_failures] == ["new.png", "old.png"]
    assert s.recent_rejections == [{"path": "trip/bad.png", "reason": "not an image", "at": None}]
    assert not s.healthy and s.outstanding == 6


def test_a_hold_holds_every_waiting_job_and_is_unhealthy():
    blocked = json.dumps({"status": 401, "code": "tokenNotProvided", "message": "the token was refused", "at": 1.0})
    s = summarize(snap(queued=5, scheduled=2, auth_blocked=blocked))
    assert s.held == 7 and not s.healthy
    assert s.hold == {"status": 401, "code": "tokenNotProvided", "reason": "the token was refused"}
    assert summarize(snap(queued=5)).held == 0 and summarize(snap(queued=5)).healthy


def test_pause_tunnel_and_circuit():
    s = summarize(snap(pause_until="1030.5", tunnel_probe=json.dumps({"ok": False, "reason": "warning-page", "public_url": "https://x"}),
                       tunnel_circuit=json.dumps({"state": "open", "reason": "three failed probes"})))
    assert s.paused_until == 1030.5
    assert s.tunnel["state"] == "failing" and s.tunnel["reason"] == "warning-page"
    assert s.circuit == {"state": "open", "reason": "three failed probes"}
    quiet = summarize(snap(pause_until="999"))
    assert quiet.paused_until is None  # a pause in the past is over
    assert quiet.tunnel == {"state": "not-probed"} and quiet.circuit == {"state": "closed", "reason": None}


def test_credits_refill_since_the_last_take_up_to_the_capacity():
    assert credits_left({}, 100.0, 10.0, 500.0) is None
    assert credits_left({"tokens": "100", "ts": "90"}, 100.0, 10.0, 500.0) == 200.0
    assert credits_left({"tokens": "100", "ts": "0"}, 100.0, 10.0, 500.0) == 500.0
