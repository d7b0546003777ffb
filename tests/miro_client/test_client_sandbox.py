"""Every client method and every error class against the sandbox Miro, over real HTTP."""

from __future__ import annotations

import hashlib
import io
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from PIL import Image

from services.sandbox.server import SandboxConfig, start_sandbox
from shared import retry
from shared.miro import (
    MiroAuthError,
    MiroBadRequest,
    MiroClient,
    MiroError,
    MiroNotFound,
    MiroRateLimited,
    MiroServerError,
    MiroTransportError,
    RateInfo,
)

TOKEN = "tok-SECRET-0123456789abcdef"
READ_ONLY = "read-only-SECRET-9876543210"
BOARD = "uXjVOD6LSME="  # a real-looking id: ends with "=", which must go as %3D
OTHER_BOARD = "second-board"


def png(width: int = 40, height: int = 30, color: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def miro_sandbox():
    handle = start_sandbox(SandboxConfig(
        port=0,
        tokens={TOKEN: {"boards:read", "boards:write"}, READ_ONLY: {"boards:read"}},
        boards=[BOARD, OTHER_BOARD],
    ))
    yield handle
    handle.stop()


@pytest.fixture
def sandbox_api(miro_sandbox):
    miro_sandbox.reset()
    miro_sandbox.clear_faults()
    yield miro_sandbox
    miro_sandbox.clear_faults()


@pytest.fixture
def rates() -> list[RateInfo]:
    return []


@pytest.fixture
def client(sandbox_api, rates) -> MiroClient:
    return MiroClient(sandbox_api.url, TOKEN, timeout=10, on_rate=rates.append)


@pytest.fixture
def image_host(tmp_path):
    """A plain HTTP server for the URL route (what the image server is in production)."""
    (tmp_path / "blue.png").write_bytes(png(64, 32, "blue"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def assert_no_token(exc: BaseException) -> None:
    for text in (str(exc), repr(exc), getattr(exc, "message", ""), repr(getattr(exc, "context", None))):
        assert TOKEN not in text and READ_ONLY not in text


# ---- success paths ----------------------------------------------------------------------------


def test_get_board_percent_encodes_the_id_and_reports_rate_headers(sandbox_api, rates):
    wire: list[str] = []
    session = requests.Session()
    session.hooks["response"].append(lambda r, *a, **k: wire.append(r.request.url))
    client = MiroClient(sandbox_api.url, TOKEN, session=session, on_rate=rates.append)

    board = client.get_board(BOARD)

    assert board["id"] == BOARD
    assert wire == [f"{sandbox_api.url}/v2/boards/uXjVOD6LSME%3D"]
    [info] = rates
    assert info.limit == 100_000 and info.remaining == 100_000 - 50
    assert time.time() < info.reset_at <= time.time() + 61


def test_requests_carry_bearer_and_user_agent(sandbox_api):
    seen: list[requests.PreparedRequest] = []
    session = requests.Session()
    session.hooks["response"].append(lambda r, *a, **k: seen.append(r.request))
    MiroClient(sandbox_api.url, TOKEN, session=session).get_board(BOARD)
    assert seen[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen[0].headers["User-Agent"].startswith("miro-sync/")


def test_create_image_file_sends_resource_and_json_data(client, sandbox_api):
    content = png()
    data = {"title": "a b.png", "position": {"x": 230, "y": -40}, "geometry": {"width": 400}}

    item = client.create_image_file(BOARD, content, "a b.png", "image/png", data)

    assert item["type"] == "image"
    assert item["data"]["title"] == "a b.png"
    assert (item["position"]["x"], item["position"]["y"]) == (230, -40)
    assert item["geometry"]["width"] == 400
    [stored] = sandbox_api.items(BOARD)
    assert stored["id"] == item["id"]
    assert stored["bytes_sha256"] == hashlib.sha256(content).hexdigest()


def test_get_image_and_get_resource_return_the_original_bytes(client):
    content = png(50, 50, "green")
    item = client.create_image_file(BOARD, content, "g.png", "image/png", {"title": "g"})

    got = client.get_image(BOARD, item["id"])
    assert got["id"] == item["id"]
    assert "format=preview" in got["data"]["imageUrl"]
    assert client.get_resource(got["data"]["imageUrl"]) == content  # format=original, 307 followed


def test_update_image_file_replaces_the_picture_in_place(client, sandbox_api):
    item = client.create_image_file(BOARD, png(color="red"), "x.png", "image/png", {"title": "x"})
    new = png(color="yellow")

    updated = client.update_image_file(BOARD, item["id"], new, "x.png", "image/png")

    assert updated["id"] == item["id"]
    [stored] = sandbox_api.items(BOARD)
    assert stored["bytes_sha256"] == hashlib.sha256(new).hexdigest()
    assert updated["data"]["title"] == "x"  # no data part: title kept


def test_create_and_update_image_from_url(client, sandbox_api, image_host):
    item = client.create_image_url(BOARD, f"{image_host}/blue.png", "blue", {"x": 0, "y": 0}, {"width": 200})
    assert item["data"]["title"] == "blue" and item["geometry"]["width"] == 200
    [stored] = sandbox_api.items(BOARD)
    assert stored["bytes_len"] == len(png(64, 32, "blue"))

    updated = client.update_image_url(BOARD, item["id"], f"{image_host}/blue.png", title="renamed", geometry={"height": 50})
    assert updated["data"]["title"] == "renamed" and updated["geometry"]["height"] == 50


def test_frame_parent_and_listing_its_children(client, image_host):
    frame = client.create_frame(BOARD, "Sync", {"x": 0, "y": 0}, {"width": 1600, "height": 900})
    assert frame["type"] == "frame" and frame["data"]["title"] == "Sync"

    child = client.create_image_url(BOARD, f"{image_host}/blue.png", "in frame", {"x": 100, "y": 100}, {"width": 80},
                                    parent_id=frame["id"])
    assert child["parent"]["id"] == frame["id"]
    page = client.list_items(BOARD, parent_item_id=frame["id"])
    assert [i["id"] for i in page["data"]] == [child["id"]]
    grown = client.update_frame(BOARD, frame["id"], {"x": 0, "y": 450}, {"width": 1600, "height": 1800})
    assert grown["geometry"] == {"width": 1600, "height": 1800} and grown["position"]["y"] == 450


def test_iter_items_follows_the_cursor(client):
    content = png(8, 8)
    ids = {client.create_image_file(BOARD, content, f"{n}.png", "image/png", {"title": str(n)})["id"] for n in range(55)}
    client.create_frame(BOARD, "not an image", {"x": 0, "y": 0}, {"width": 200, "height": 200})

    first = client.list_items(BOARD, type="image")
    assert len(first["data"]) == 50 and first["cursor"]
    pages: list[int] = []
    listed = [i["id"] for i in client.iter_items(BOARD, type="image", before_page=lambda: pages.append(1))]
    assert sorted(listed) == sorted(ids)  # every image once, across two pages, no frame
    assert len(pages) == 2  # before_page ran before each page (the worker takes the page's credits there)


def test_delete_item(client):
    item = client.create_image_file(BOARD, png(), "d.png", "image/png", {})
    assert client.delete_item(BOARD, item["id"]) is None
    with pytest.raises(MiroNotFound):
        client.get_image(BOARD, item["id"])


# ---- errors -----------------------------------------------------------------------------------


def test_unknown_token_is_401(sandbox_api, rates):
    client = MiroClient(sandbox_api.url, "not-a-known-token-" + TOKEN, on_rate=rates.append)
    with pytest.raises(MiroAuthError) as info:
        client.get_board(BOARD)
    exc = info.value
    assert (exc.status, exc.code) == (401, "tokenNotFound")
    assert retry.classify(exc) is retry.Decision.HOLD_AUTH
    assert rates  # on_rate is called on errors too
    assert_no_token(exc)


def test_read_only_token_cannot_write_403(sandbox_api):
    client = MiroClient(sandbox_api.url, READ_ONLY)
    assert client.get_board(BOARD)["id"] == BOARD
    with pytest.raises(MiroAuthError) as info:
        client.create_image_file(BOARD, png(), "a.png", "image/png", {})
    assert (info.value.status, info.value.code) == (403, "insufficientPermissions")
    assert info.value.method == "POST" and info.value.path == "/v2/boards/uXjVOD6LSME%3D/images"
    assert_no_token(info.value)


def test_unknown_board_and_item_are_404(client):
    with pytest.raises(MiroNotFound) as info:
        client.get_board("no-such-board=")
    assert (info.value.status, info.value.code) == (404, "notFound")
    with pytest.raises(MiroNotFound):
        client.get_image(BOARD, "3458764500000000001")
    assert_no_token(info.value)


def test_width_and_height_together_is_400_with_miros_fields(client):
    with pytest.raises(MiroBadRequest) as info:
        client.create_image_file(BOARD, png(), "a.png", "image/png", {"geometry": {"width": 100, "height": 100}})
    exc = info.value
    assert (exc.status, exc.code) == (400, "invalidParameters")
    assert exc.context["fields"][0]["field"] == "geometry"
    assert retry.classify(exc) is retry.Decision.FAIL
    assert str(exc).startswith("400 invalidParameters: ")
    assert_no_token(exc)


def test_oversize_resource_is_refused(client):
    with pytest.raises(MiroBadRequest) as info:
        client.create_image_file(BOARD, b"\x89PNG" + bytes(6 * 1024 * 1024), "big.png", "image/png", {})
    assert info.value.status in (400, 413)
    assert retry.classify(info.value) is retry.Decision.FAIL


def test_429_carries_rate_info_and_the_reset(sandbox_api, client, rates):
    sandbox_api.set_faults(credits_per_minute=100)
    client.get_board(BOARD)
    client.get_board(BOARD)
    with pytest.raises(MiroRateLimited) as info:
        client.get_board(BOARD)
    exc = info.value
    assert (exc.status, exc.code) == (429, "tooManyRequests")
    assert exc.rate.limit == 100 and exc.rate.remaining == 0
    now = time.time()
    assert now < exc.rate.reset_at <= now + 61
    assert rates[-1] == exc.rate  # the limiter hears about the 429 too
    assert retry.resume_at(exc, now, attempt=1) == exc.rate.reset_at
    assert_no_token(exc)


def test_injected_429_and_5xx(sandbox_api, client):
    sandbox_api.set_faults(error_status=429)
    with pytest.raises(MiroRateLimited) as limited:
        client.get_board(BOARD)
    assert limited.value.rate.remaining == 0
    sandbox_api.set_faults(error_status=503)
    with pytest.raises(MiroServerError) as server:
        client.get_board(BOARD)
    assert server.value.status == 503
    assert retry.classify(server.value) is retry.Decision.RETRY


def test_error_body_that_is_not_json(client, sandbox_api):
    # The sandbox answers HTML outside /v2 (as a proxy in front of Miro might).
    with pytest.raises(MiroNotFound) as info:
        client.get_resource(f"{sandbox_api.url}/no/such/page")
    exc = info.value
    assert exc.status == 404 and exc.code is None
    assert "not Miro's JSON" in exc.message
    assert_no_token(exc)


def test_dropped_connection_is_a_transport_error(sandbox_api, client):
    sandbox_api.set_faults(drop_connections_for_seconds=30)
    with pytest.raises(MiroTransportError) as info:
        client.create_image_file(BOARD, png(), "a.png", "image/png", {})
    exc = info.value
    assert isinstance(exc.__cause__, requests.RequestException)
    assert exc.status is None and exc.rate is None
    assert retry.classify(exc) is retry.Decision.RETRY
    assert_no_token(exc)


def test_slow_answer_is_a_read_timeout(sandbox_api):
    sandbox_api.set_faults(latency_ms=1500)
    client = MiroClient(sandbox_api.url, TOKEN, timeout=(2, 0.3))
    with pytest.raises(MiroTransportError) as info:
        client.get_board(BOARD)
    assert "read timeout" in str(info.value)
    assert isinstance(info.value.__cause__, requests.Timeout)


def test_a_failing_on_rate_does_not_lose_a_created_item(sandbox_api):
    def broken(info: RateInfo) -> None:
        raise RuntimeError("redis is down")

    client = MiroClient(sandbox_api.url, TOKEN, on_rate=broken)
    item = client.create_image_file(BOARD, png(), "a.png", "image/png", {})
    assert [i["id"] for i in sandbox_api.items(BOARD)] == [item["id"]]


def test_every_error_is_a_miro_error(client):
    with pytest.raises(MiroError):
        client.get_board("no-such-board=")
