"""Tokens, scopes and Miro's credit budget (X-RateLimit-* headers, 429 when spent)."""

from __future__ import annotations

import time

import pytest

from services.sandbox.config import LEVEL_1, LEVEL_2, LEVEL_3

from .helpers import board_path, file_parts, png

ITEM = "3458764600000000001"  # the first id a fresh sandbox gives

ENDPOINTS = [
    ("GET", ""), ("POST", "/images"), ("GET", f"/images/{ITEM}"), ("PATCH", f"/images/{ITEM}"),
    ("DELETE", f"/images/{ITEM}"), ("POST", "/frames"), ("GET", f"/frames/{ITEM}"), ("PATCH", f"/frames/{ITEM}"),
    ("DELETE", f"/frames/{ITEM}"),
    ("GET", "/items"), ("GET", f"/items/{ITEM}"), ("PATCH", f"/items/{ITEM}"), ("DELETE", f"/items/{ITEM}"),
    ("GET", "/resources/images/1?format=original&redirect=true"),
]
WRITES = [(m, p) for m, p in ENDPOINTS if m != "GET"]


@pytest.mark.parametrize("method,rest", ENDPOINTS)
def test_no_token_is_401_token_not_provided(sandbox, miro_for, method, rest):
    resp = miro_for(sandbox, None).request(method, board_path(sandbox.board_id, rest), json={})
    assert resp.status_code == 401
    assert resp.json()["code"] == "tokenNotProvided" and resp.json()["type"] == "error"


@pytest.mark.parametrize("method,rest", ENDPOINTS)
def test_unknown_token_is_401_token_not_found(sandbox, miro_for, method, rest):
    resp = miro_for(sandbox, "not-a-sandbox-token").request(method, board_path(sandbox.board_id, rest), json={})
    assert resp.status_code == 401 and resp.json()["code"] == "tokenNotFound"


def test_other_auth_schemes_are_not_a_token(sandbox, miro_for):
    session = miro_for(sandbox, None)
    resp = session.get(board_path(sandbox.board_id), headers={"Authorization": f"Basic {sandbox.token}"})
    assert resp.status_code == 401 and resp.json()["code"] == "tokenNotProvided"


@pytest.mark.parametrize("method,rest", WRITES)
def test_read_only_token_gets_403_on_writes(sandbox_factory, miro_for, method, rest):
    sb = sandbox_factory(tokens={"ro": {"boards:read"}, "rw": {"boards:read", "boards:write"}})
    resp = miro_for(sb, "ro").request(method, board_path(sb.board_id, rest), json={"data": {"title": "x"}})
    assert resp.status_code == 403
    assert resp.json()["code"] == "insufficientPermissions"


def test_read_only_token_reads(sandbox_factory, miro_for):
    sb = sandbox_factory(tokens={"ro": {"boards:read"}, "rw": {"boards:read", "boards:write"}})
    item = miro_for(sb, "rw").post(board_path(sb.board_id, "/images"), files=file_parts(png())).json()
    reader = miro_for(sb, "ro")
    assert reader.get(board_path(sb.board_id)).status_code == 200
    assert reader.get(board_path(sb.board_id, f"/images/{item['id']}")).status_code == 200
    assert reader.get(board_path(sb.board_id, "/items")).status_code == 200
    assert reader.get(item["data"]["imageUrl"]).status_code == 200


def remaining(resp) -> int:
    return int(resp.headers["X-RateLimit-Remaining"])


def test_credits_per_call_follow_miros_levels(sandbox, miro):
    start = time.time()
    first = miro.get(board_path(sandbox.board_id))
    assert int(first.headers["X-RateLimit-Limit"]) == 100_000
    assert remaining(first) == 100_000 - LEVEL_1
    reset = int(first.headers["X-RateLimit-Reset"])
    assert start + 59 <= reset <= time.time() + 61  # UNIX seconds of the window's end

    created = miro.post(board_path(sandbox.board_id, "/images"), files=file_parts(png()))
    assert remaining(created) == remaining(first) - LEVEL_2
    listed = miro.get(board_path(sandbox.board_id, "/items"))
    assert remaining(listed) == remaining(created) - LEVEL_2
    frame = miro.post(board_path(sandbox.board_id, "/frames"), json={"data": {}})
    assert remaining(frame) == remaining(listed) - LEVEL_2
    resized = miro.patch(board_path(sandbox.board_id, f"/frames/{frame.json()['id']}"), json={"geometry": {"height": 900}})
    assert remaining(resized) == remaining(frame) - LEVEL_2
    moved = miro.patch(board_path(sandbox.board_id, f"/items/{created.json()['id']}"), json={"position": {"x": 1, "y": 1}})
    assert remaining(moved) == remaining(resized) - LEVEL_2
    got = miro.get(board_path(sandbox.board_id, f"/images/{created.json()['id']}"))
    assert remaining(got) == remaining(moved) - LEVEL_1
    deleted = miro.delete(board_path(sandbox.board_id, f"/images/{created.json()['id']}"))
    assert remaining(deleted) == remaining(got) - LEVEL_3
    assert int(deleted.headers["X-RateLimit-Reset"]) == reset  # same window


def test_429_when_the_budget_is_spent_and_a_refused_call_costs_nothing(sandbox_factory, miro_for):
    sb = sandbox_factory(credits_per_minute=250, tokens={"a": {"boards:read", "boards:write"},
                                                         "b": {"boards:read", "boards:write"}})
    a = miro_for(sb, "a")
    assert remaining(a.get(board_path(sb.board_id, "/items"))) == 150
    refused = a.delete(board_path(sb.board_id, f"/items/{ITEM}"))  # Level 3 = 500 > 150 left
    assert refused.status_code == 429
    assert refused.json() == {"type": "error", "status": 429, "code": "tooManyRequests",
                              "message": "Request rate limit exceed", "context": {}}
    assert remaining(refused) == 150
    assert remaining(a.get(board_path(sb.board_id, "/items"))) == 50
    assert a.get(board_path(sb.board_id, "/items")).status_code == 429
    assert remaining(a.get(board_path(sb.board_id))) == 0
    assert a.get(board_path(sb.board_id)).status_code == 429
    # The budget is per token.
    assert miro_for(sb, "b").get(board_path(sb.board_id)).status_code == 200


def test_rate_headers_on_errors_too(sandbox, miro, miro_for):
    assert "X-RateLimit-Remaining" in miro.get(board_path("nope=")).headers
    assert "X-RateLimit-Remaining" in miro_for(sandbox, None).get(board_path(sandbox.board_id)).headers
    unknown_route = miro.get("/v2/no/such/route")
    assert unknown_route.status_code == 404 and unknown_route.json()["code"] == "notFound"
