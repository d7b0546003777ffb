"""The probe's verdicts and the tunnel state all workers share through Redis."""

from __future__ import annotations

import logging

import pytest

from shared import keys
from shared.log import get_logger
from shared.tunnel import PROBE_PNG, ProbeResult, TunnelState, judge
from tests.fixtures.procs import free_port

PNG = {"Content-Type": "image/png"}


@pytest.mark.parametrize("status, headers, body, reason", [
    (200, PNG, PROBE_PNG, "ok"),
    (200, {"Content-Type": "image/png; charset=binary"}, PROBE_PNG, "ok"),
    (200, {"Content-Type": "text/html", "ngrok-error-code": "ERR_NGROK_6024"}, b"<html>visit</html>", "warning-page"),
    (200, {"Content-Type": "text/html"}, b"<html>... ERR_NGROK_6024 ...</html>", "warning-page"),  # no header
    (200, {**PNG, "ngrok-error-code": "ERR_NGROK_6024"}, PROBE_PNG, "warning-page"),  # the header decides
    (404, {"Content-Type": "text/plain", "ngrok-error-code": "ERR_NGROK_3200"}, b"offline", "offline"),
    (404, {"Content-Type": "text/html"}, b"The endpoint is offline. ERR_NGROK_3200", "offline"),
    (429, {"ngrok-error-code": "ERR_NGROK_725"}, b"", "quota"),
    (429, {"ngrok-error-code": "ERR_NGROK_727"}, b"", "quota"),
    (502, {"ngrok-error-code": "ERR_NGROK_8012"}, b"", "http-502"),
    (403, {"Content-Type": "application/json"}, b'{"error":"forbidden"}', "http-403"),
    (500, {}, b"", "http-500"),
    (200, {"Content-Type": "text/html"}, b"<html>a captive portal</html>", "not-image"),
    (200, {}, PROBE_PNG, "not-image"),
    (200, {"Content-Type": "image/jpeg"}, b"\xff\xd8\xff recompressed", "bytes-differ"),
    (200, PNG, PROBE_PNG[:50], "bytes-differ"),
])
def test_judge(status, headers, body, reason):
    got, detail = judge(status, headers, body, PROBE_PNG)
    assert got == reason
    if reason != "ok":
        assert "UPLOAD_MODE=file" in detail


def test_fix_hints_name_the_way_out():
    _, warning = judge(200, {"ngrok-error-code": "ERR_NGROK_6024"}, b"", PROBE_PNG)
    assert "paid ngrok plan" in warning and "tunnel without an interstitial" in warning
    _, quota = judge(429, {"ngrok-error-code": "ERR_NGROK_727"}, b"", PROBE_PNG)
    assert "HTTP requests limit" in quota


def test_probe_result_round_trips_through_json():
    result = ProbeResult(False, "offline", "the endpoint is offline", "https://x.ngrok.app")
    assert ProbeResult.from_json(result.to_json()) == result


# -- TunnelState --------------------------------------------------------------------------------


def test_usable_probes_through_the_chain_and_caches_for_everyone(chain, settings_for, redis_client):
    settings = settings_for(NGROK_API_URL=chain.api_url, PROBE_INTERVAL="30")
    first = TunnelState(redis_client, settings).usable()
    assert (first.ok, first.reason, first.public_url) == (True, "ok", chain.public_url)
    assert 0 < redis_client.ttl(keys.TUNNEL_PROBE) <= 30

    chain.set_mode("warning-page")
    other_worker = TunnelState(redis_client, settings)
    assert other_worker.usable().ok  # the cached answer, no new probe
    assert other_worker.usable(force=True).reason == "warning-page"
    assert TunnelState(redis_client, settings).usable().reason == "warning-page"  # the new answer is shared


def test_invalidate_makes_the_next_call_probe_again(chain, settings_for, redis_client):
    state = TunnelState(redis_client, settings_for(NGROK_API_URL=chain.api_url))
    assert state.usable().ok
    chain.set_mode("offline")
    assert state.usable().ok
    state.invalidate()
    assert redis_client.get(keys.TUNNEL_PROBE) is None
    assert state.usable().reason == "offline"


def test_usable_with_public_base_url(chain, settings_for, redis_client):
    result = TunnelState(redis_client, settings_for(PUBLIC_BASE_URL=chain.public_url)).usable()
    assert result.ok and result.public_url == chain.public_url


@pytest.mark.parametrize("mode, reason", [("starting", "no-endpoint"), ("bandwidth", "quota"), ("warning-page", "warning-page")])
def test_usable_reports_each_failure(chain, settings_for, redis_client, mode, reason):
    chain.set_mode(mode)
    result = TunnelState(redis_client, settings_for(NGROK_API_URL=chain.api_url)).usable()
    assert (result.ok, result.reason) == (False, reason)
    assert "UPLOAD_MODE=file" in result.detail


def test_unreachable_agent_and_missing_configuration(settings_for, redis_client):
    down = TunnelState(redis_client, settings_for(NGROK_API_URL=f"http://127.0.0.1:{free_port()}")).check()
    assert (down.ok, down.reason) == (False, "unreachable")
    assert "cannot reach the ngrok agent API" in down.detail
    missing = TunnelState(redis_client, settings_for()).check()
    assert (missing.ok, missing.reason) == (False, "not-configured")


def test_unreachable_public_url(settings_for, redis_client):
    result = TunnelState(redis_client, settings_for(PUBLIC_BASE_URL=f"http://127.0.0.1:{free_port()}")).check()
    assert (result.ok, result.reason) == (False, "unreachable")


def test_warn_once_logs_one_line_per_change_across_workers(settings_for, redis_client, caplog):
    caplog.set_level(logging.INFO, logger="miro_sync")
    log = get_logger("worker")
    settings = settings_for()
    a, b = TunnelState(redis_client, settings), TunnelState(redis_client, settings)
    offline = ProbeResult(False, "offline", "the endpoint is offline", "https://x")
    quota = ProbeResult(False, "quota", "over quota", "https://x")
    ok = ProbeResult(True, "ok", "fine", "https://x")
    logged = [a.warn_once(offline, log), b.warn_once(offline, log), a.warn_once(offline, log),
              b.warn_once(quota, log), a.warn_once(ok, log), b.warn_once(ok, log)]
    assert logged == [True, False, False, True, True, False]
    lines = [(r.levelname, r.getMessage(), r.fields.get("reason")) for r in caplog.records if r.name == "miro_sync.worker"]
    assert lines == [("WARNING", "tunnel.unusable", "offline"), ("WARNING", "tunnel.unusable", "quota"),
                     ("INFO", "tunnel.usable", None)]
