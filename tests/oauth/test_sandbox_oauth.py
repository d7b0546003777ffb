"""The sandbox plays Miro's OAuth side: authorize page, token endpoint, expiry and rotation."""

from __future__ import annotations

import socket
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from services.sandbox.errors import ApiError
from services.sandbox.main import describe
from services.sandbox.oauth import OAuthAuthority
from tests.fixtures.procs import wait_for

CLIENT = ("3458764500000000001", "sandbox-client-secret-51")
BOARD = "sandbox-board="


def token_call(sb, **params):
    return requests.post(sb.url + "/v1/oauth/token", params={"client_id": CLIENT[0], "client_secret": CLIENT[1], **params}, timeout=5)


def board(sb, token):
    return requests.get(f"{sb.url}/v2/boards/{BOARD}", headers={"Authorization": f"Bearer {token}"}, timeout=5)


@pytest.fixture
def sb(sandbox_factory):
    return sandbox_factory(oauth_client=CLIENT)


def test_refresh_rotates_the_pair_and_a_reused_refresh_token_is_refused(sb):
    first = sb.oauth_initial()
    assert set(first) == {"access_token", "refresh_token"}
    assert board(sb, first["access_token"]).status_code == 200
    r = token_call(sb, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    body = r.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 3599 and body["scope"] == "boards:read boards:write"
    assert body["access_token"] != first["access_token"] and body["refresh_token"] != first["refresh_token"]
    old = board(sb, first["access_token"])
    assert old.status_code == 401 and old.json() == {"type": "error", "status": 401, "code": "tokenNotFound",
                                                     "message": "Authorization token is invalid or revoked", "context": {}}
    assert board(sb, body["access_token"]).status_code == 200
    again = token_call(sb, grant_type="refresh_token", refresh_token=first["refresh_token"])
    assert again.status_code == 400 and again.json()["code"] == "invalid_grant" and again.json()["type"] == "error"
    assert sb.stats()["refreshes"] == 1


def test_parameters_in_a_form_body_work_too_and_a_wrong_client_is_refused(sb):
    first = sb.oauth_initial()
    form = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"], "client_id": CLIENT[0], "client_secret": "wrong"}
    r = requests.post(sb.url + "/v1/oauth/token", data=form, timeout=5)
    assert r.status_code == 401 and r.json()["code"] == "invalid_client"
    r = requests.post(sb.url + "/v1/oauth/token", data=form | {"client_secret": CLIENT[1]}, timeout=5)
    assert r.status_code == 200
    assert token_call(sb, grant_type="password").json()["code"] == "unsupported_grant_type"


def test_authorize_page_approves_at_once_and_the_code_is_single_use(sb):
    redirect = "http://127.0.0.1:9/callback"
    r = requests.get(sb.url + "/oauth/authorize", params={"response_type": "code", "client_id": CLIENT[0],
                                                          "redirect_uri": redirect, "state": "s-1"}, allow_redirects=False, timeout=5)
    assert r.status_code == 302 and r.headers["Location"].startswith(redirect + "?")
    query = parse_qs(urlsplit(r.headers["Location"]).query)
    assert query["state"] == ["s-1"]
    code = query["code"][0]
    wrong_uri = token_call(sb, grant_type="authorization_code", code=code, redirect_uri="http://127.0.0.1:9/other")
    assert wrong_uri.status_code == 400 and wrong_uri.json()["code"] == "invalid_grant"
    assert token_call(sb, grant_type="authorization_code", code=code, redirect_uri=redirect).status_code == 400  # used up

    r = requests.get(sb.url + "/oauth/authorize", params={"response_type": "code", "client_id": CLIENT[0], "redirect_uri": redirect},
                     allow_redirects=False, timeout=5)
    code = parse_qs(urlsplit(r.headers["Location"]).query)["code"][0]
    pair = token_call(sb, grant_type="authorization_code", code=code, redirect_uri=redirect)
    assert pair.status_code == 200 and board(sb, pair.json()["access_token"]).status_code == 200
    unknown = requests.get(sb.url + "/oauth/authorize", params={"response_type": "code", "client_id": "nope", "redirect_uri": redirect},
                           allow_redirects=False, timeout=5)
    assert unknown.status_code == 400


def test_access_tokens_expire_after_their_lifetime():
    now = [1000.0]
    auth = OAuthAuthority(*CLIENT, access_ttl=4, clock=lambda: now[0])
    token = auth.initial["access_token"]
    assert auth.initial["expires_in"] == 4 and auth.access_error(token) is None
    now[0] += 3.9
    assert auth.access_error(token) is None
    now[0] += 0.2
    refused = auth.access_error(token)
    assert isinstance(refused, ApiError) and refused.status == 401 and "expired" in refused.message
    # An expired access token does not stop its refresh token from working.
    assert auth.access_error(auth.refresh(auth.initial["refresh_token"])["access_token"]) is None


def test_revoked_pairs_stop_working_and_static_tokens_still_do(sb):
    first = sb.oauth_initial()
    assert sb.revoke_oauth() == 1
    assert board(sb, first["access_token"]).status_code == 401
    assert token_call(sb, grant_type="refresh_token", refresh_token=first["refresh_token"]).json()["code"] == "invalid_grant"
    assert board(sb, sb.token).status_code == 200  # --token keeps working beside OAuth


def test_the_credit_budget_is_the_users_and_survives_a_refresh(sandbox_factory):
    sb = sandbox_factory(oauth_client=CLIENT, credits_per_minute=120)
    first = sb.oauth_initial()
    assert board(sb, first["access_token"]).headers["X-RateLimit-Remaining"] == "70"
    fresh = token_call(sb, grant_type="refresh_token", refresh_token=first["refresh_token"]).json()
    assert board(sb, fresh["access_token"]).headers["X-RateLimit-Remaining"] == "20"


def test_a_stalled_token_request_whose_client_left_is_never_processed(sb):
    first = sb.oauth_initial()
    sb.stall_oauth(1.0)
    with socket.create_connection((sb.host, sb.port)) as s:
        query = f"grant_type=refresh_token&client_id={CLIENT[0]}&client_secret={CLIENT[1]}&refresh_token={first['refresh_token']}"
        # Headers and form body in two writes, as requests sends them.
        s.sendall(f"POST /v1/oauth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                  f"Content-Length: {len(query)}\r\n\r\n".encode())
        time.sleep(0.2)
        s.sendall(query.encode())
        wait_for(lambda: sb.oauth.stalled == 1, 10, what="the request to wait in the stall")
    wait_for(lambda: sb.oauth.dropped == 1, 10, what="the stalled request to be dropped")
    sb.stall_oauth(0)
    # After the stall, the refresh token is still the live one: the dropped request did nothing.
    r = requests.post(sb.url + "/v1/oauth/token", params={"grant_type": "refresh_token", "client_id": CLIENT[0],
                                                          "client_secret": CLIENT[1], "refresh_token": first["refresh_token"]}, timeout=10)
    assert r.status_code == 200, r.text


def test_without_oauth_client_there_is_no_token_endpoint(sandbox):
    assert requests.post(sandbox.url + "/v1/oauth/token", timeout=5).status_code == 404
    assert requests.get(sandbox.url + "/_sandbox/oauth/initial", timeout=5).status_code == 404
    assert "refreshes" not in sandbox.stats()


def test_the_command_prints_the_first_pair(sb):
    text = describe(sb, sb.config)
    first = sb.oauth_initial()
    assert f"MIRO_REFRESH_TOKEN={first['refresh_token']}" in text and "/oauth/authorize" in text
