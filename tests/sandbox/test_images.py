"""Image items: create from file and from URL, get, update, delete, and the imageUrl resource.

Every exchange goes through ``miro`` (tests/sandbox/openapi.py): accepted requests and all answers
are checked against Miro's spec.
"""

from __future__ import annotations

import base64
import hashlib
import io

import pytest
from PIL import Image, UnidentifiedImageError

from services.sandbox.config import CHROME_USER_AGENT, MAX_RESOURCE_BYTES

from .helpers import board_path, file_parts, jpeg, png


def images(board_id: str, item_id: str = "") -> str:
    return board_path(board_id, "/images" + (f"/{item_id}" if item_id else ""))


def field_of(resp) -> str:
    assert resp.headers["Content-Type"].startswith("application/json")
    return resp.json()["context"]["fields"][0]["field"]


def resource_bytes(miro, item: dict) -> bytes:
    """What a client gets following ``data.imageUrl`` with format=original&redirect=true."""
    url = item["data"]["imageUrl"].replace("format=preview", "format=original").replace("redirect=false", "redirect=true")
    resp = miro.get(url)
    assert resp.status_code == 307, resp.text
    final = miro.get(resp.headers["Location"])
    assert final.status_code == 200
    return final


# ---- create from file ------------------------------------------------------------------------


def test_create_from_file_answers_an_image_item_and_keeps_the_bytes(sandbox, miro):
    picture = png(400, 200)
    resp = miro.post(images(sandbox.board_id), files=file_parts(picture, {
        "title": "a.png", "position": {"x": 100, "y": -50}, "geometry": {"width": 200}}))
    assert resp.status_code == 201, resp.text
    item = resp.json()
    assert item["type"] == "image" and item["id"].isdigit()
    assert item["data"]["title"] == "a.png"
    assert item["position"] == {"x": 100, "y": -50, "origin": "center", "relativeTo": "canvas_center"}
    assert item["geometry"] == {"width": 200, "height": 100}  # height from the picture's 2:1 ratio
    assert item["createdAt"].endswith("Z") and item["createdBy"]["type"] == "user"
    assert item["links"]["self"].endswith(f"{images(sandbox.board_id, item['id'])}")
    assert "parent" not in item

    stored = {i["id"]: i for i in sandbox.items(sandbox.board_id)}[item["id"]]
    assert stored["bytes_sha256"] == hashlib.sha256(picture).hexdigest()
    assert stored["bytes_len"] == len(picture)
    assert stored["fetched_user_agent"] is None  # nothing was fetched
    assert sandbox.stats()["creates"] == 1


def test_create_from_file_with_height_or_nothing_sizes_from_the_picture(sandbox, miro):
    tall = jpeg(30, 60)
    by_height = miro.post(images(sandbox.board_id), files=file_parts(tall, {"geometry": {"height": 300}},
                                                                      "t.jpg", "image/jpeg")).json()
    assert by_height["geometry"] == {"width": 150, "height": 300}
    natural = miro.post(images(sandbox.board_id), files=file_parts(tall, None, "t.jpg", "image/jpeg")).json()
    assert natural["geometry"] == {"width": 30, "height": 60}
    assert natural["position"]["x"] == 0 and natural["position"]["y"] == 0


@pytest.mark.parametrize("data_type", [None, "text/plain"], ids=["no-part-type", "text-part-type"])
def test_data_part_is_read_with_or_without_its_content_type(sandbox, miro, data_type):
    resp = miro.post(images(sandbox.board_id), files=file_parts(png(), {"title": "typed?"}, data_type=data_type))
    assert resp.status_code == 201, resp.text
    assert resp.json()["data"]["title"] == "typed?"


def test_data_part_sent_as_a_file_is_read_too(sandbox, miro):
    files = {"resource": ("p.png", png(), "image/png"), "data": ("data.json", b'{"title": "from file"}', "application/json")}
    resp = miro.post(images(sandbox.board_id), files=files)
    assert resp.status_code == 201, resp.text
    assert resp.json()["data"]["title"] == "from file"


def test_create_from_file_without_resource_is_400_naming_resource(sandbox, miro):
    resp = miro.post(images(sandbox.board_id), files={"data": (None, '{"title": "x"}', "application/json")})
    assert resp.status_code == 400
    assert resp.json()["code"] == "invalidParameters"
    assert field_of(resp) == "resource"


def test_resource_up_to_6_mb_is_taken_and_one_byte_more_is_400(sandbox, miro):
    exactly = b"\0" * MAX_RESOURCE_BYTES
    assert miro.post(images(sandbox.board_id), files=file_parts(exactly)).status_code == 201
    resp = miro.post(images(sandbox.board_id), files=file_parts(exactly + b"\0"))
    assert resp.status_code == 400
    assert resp.json()["code"] == "invalidParameters" and field_of(resp) == "resource"
    assert len(sandbox.items(sandbox.board_id)) == 1


def test_width_and_height_together_are_400(sandbox, miro, image_origin):
    both = {"geometry": {"width": 100, "height": 100}}
    resp = miro.post(images(sandbox.board_id), files=file_parts(png(), both))
    assert resp.status_code == 400 and field_of(resp) == "geometry"
    url = image_origin.put("/a.png", png())
    resp = miro.post(images(sandbox.board_id), json={"data": {"url": url}, **both})
    assert resp.status_code == 400 and field_of(resp) == "geometry"
    assert image_origin.seen == []  # a bad request fetches nothing
    assert sandbox.items(sandbox.board_id) == []


@pytest.mark.parametrize("data", [
    {"geometry": {"width": -5}}, {"position": {"x": "left"}}, {"parent": {"id": "123"}}, {"tilte": "typo"},
], ids=["negative-width", "string-x", "unknown-parent", "unknown-field"])
def test_bad_data_part_is_400(sandbox, miro, data):
    resp = miro.post(images(sandbox.board_id), files=file_parts(png(), data))
    assert resp.status_code == 400
    assert resp.json()["code"] == "invalidParameters"


def test_malformed_json_body_is_400(sandbox, miro):
    resp = miro.post(images(sandbox.board_id), data=b"{not json", headers={"Content-Type": "application/json"})
    assert resp.status_code == 400 and resp.json()["code"] == "invalidParameters"


# ---- create from URL -------------------------------------------------------------------------


def test_create_from_url_stores_exactly_the_served_bytes_and_imageurl_gives_them_back(sandbox, miro, image_origin):
    picture = png(64, 32, "green")
    url = image_origin.put("/pics/a.png", picture)
    resp = miro.post(images(sandbox.board_id), json={"data": {"url": url, "title": "a"}, "geometry": {"width": 128}})
    assert resp.status_code == 201, resp.text
    item = resp.json()
    assert item["geometry"] == {"width": 128, "height": 64}

    final = resource_bytes(miro, item)
    assert final.content == picture
    assert final.headers["Content-Type"] == "image/png"

    stored = sandbox.items(sandbox.board_id)[0]
    assert stored["bytes_sha256"] == hashlib.sha256(picture).hexdigest()
    assert stored["fetched_user_agent"] == CHROME_USER_AGENT
    assert stored["fetched_status"] == 200 and stored["fetched_content_type"] == "image/png"
    assert [s["user_agent"] for s in image_origin.seen] == [CHROME_USER_AGENT]


def test_fetcher_follows_redirects_and_uses_the_configured_user_agent(sandbox_factory, miro_for, image_origin):
    sb = sandbox_factory(fetch_user_agent="MiroFetcher/1.0")
    picture = jpeg()
    image_origin.put("/final.jpg", picture, "image/jpeg")
    url = image_origin.redirect("/start", image_origin.url + "/final.jpg")
    resp = miro_for(sb, sb.token).post(images(sb.board_id), json={"data": {"url": url}})
    assert resp.status_code == 201
    stored = sb.items(sb.board_id)[0]
    assert stored["bytes_sha256"] == hashlib.sha256(picture).hexdigest()
    assert stored["fetched_user_agent"] == "MiroFetcher/1.0"
    assert [s["path"] for s in image_origin.seen] == ["/start", "/final.jpg"]
    assert {s["user_agent"] for s in image_origin.seen} == {"MiroFetcher/1.0"}


WARNING_PAGE = b"<!DOCTYPE html><html><body>You are about to visit... ERR_NGROK_6024</body></html>"


@pytest.mark.parametrize("body,content_type,status", [
    (WARNING_PAGE, "text/html", 200),
    (b"Not Found", "text/plain", 404),
    (b"", "image/png", 200),
], ids=["html-warning-page", "error-page", "empty"])
def test_create_from_url_answers_201_even_when_what_came_back_is_no_image(sandbox, miro, image_origin, body, content_type, status):
    url = image_origin.put("/x.png", body, content_type, status)
    resp = miro.post(images(sandbox.board_id), json={"data": {"url": url}, "geometry": {"width": 300}})
    assert resp.status_code == 201, resp.text
    item = resp.json()
    stored = sandbox.items(sandbox.board_id)[0]
    assert stored["bytes_sha256"] == hashlib.sha256(body).hexdigest() and stored["bytes_len"] == len(body)
    assert stored["fetched_status"] == status and stored["fetched_content_type"] == content_type
    assert stored["decodes"] is False
    got = resource_bytes(miro, item).content
    assert got == body
    with pytest.raises(UnidentifiedImageError):
        Image.open(io.BytesIO(got)).load()


def test_unreachable_url_is_still_201_with_an_empty_picture(sandbox, miro):
    from tests.fixtures.procs import free_port

    resp = miro.post(images(sandbox.board_id), json={"data": {"url": f"http://127.0.0.1:{free_port()}/gone.png"}})
    assert resp.status_code == 201
    stored = sandbox.items(sandbox.board_id)[0]
    assert stored["bytes_len"] == 0 and stored["fetched_status"] is None and stored["fetch_error"]


def test_create_from_data_url(sandbox, miro):
    picture = png(10, 10, "yellow")
    url = "data:image/png;base64," + base64.b64encode(picture).decode()
    resp = miro.post(images(sandbox.board_id), json={"data": {"url": url}})
    assert resp.status_code == 201, resp.text
    assert resp.json()["geometry"] == {"width": 10, "height": 10}
    assert resource_bytes(miro, resp.json()).content == picture


@pytest.mark.parametrize("body", [{}, {"data": {}}, {"data": {"url": "ftp://x/y.png"}}, {"data": {"url": 5}}],
                         ids=["no-data", "no-url", "ftp", "not-a-string"])
def test_create_from_url_needs_a_usable_url(sandbox, miro, body):
    resp = miro.post(images(sandbox.board_id), json=body)
    assert resp.status_code == 400 and resp.json()["code"] == "invalidParameters"
    assert field_of(resp).startswith("data")


# ---- the resource behind data.imageUrl ---------------------------------------------------------


def test_imageurl_needs_the_token_and_redirect_false_gives_a_short_lived_url(sandbox, miro, miro_for):
    item = miro.post(images(sandbox.board_id), files=file_parts(png())).json()
    url = item["data"]["imageUrl"]
    assert "format=preview" in url and "redirect=false" in url

    assert miro_for(sandbox, None).get(url).status_code == 401
    resp = miro.get(url)
    assert resp.status_code == 200
    body = resp.json()
    assert body["type"] == "image/png"
    fetched = miro_for(sandbox, None).get(body["url"])  # the signed URL itself needs no token
    assert fetched.status_code == 200 and fetched.content == png()
    tampered = body["url"].replace("signature=", "signature=0")
    assert miro_for(sandbox, None).get(tampered).status_code == 403


def test_unknown_resource_is_404(sandbox, miro):
    resp = miro.get(board_path(sandbox.board_id, "/resources/images/123?format=original&redirect=true"))
    assert resp.status_code == 404 and resp.json()["code"] == "notFound"


# ---- get, update, delete -----------------------------------------------------------------------


def test_get_image_and_its_404s(sandbox, miro):
    item = miro.post(images(sandbox.board_id), files=file_parts(png(), {"title": "t"})).json()
    got = miro.get(images(sandbox.board_id, item["id"]))
    assert got.status_code == 200 and got.json() == item

    for path in (images(sandbox.board_id, "3458764600999999999"), images("no-such-board=", item["id"])):
        resp = miro.get(path)
        assert resp.status_code == 404 and resp.json()["code"] == "notFound"
    frame = miro.post(board_path(sandbox.board_id, "/frames"), json={"data": {"title": "f"}}).json()
    assert miro.get(images(sandbox.board_id, frame["id"])).status_code == 404  # a frame is not an image


def test_update_from_file_replaces_the_bytes_and_keeps_the_width(sandbox, miro):
    item = miro.post(images(sandbox.board_id), files=file_parts(png(100, 100), {"geometry": {"width": 200}})).json()
    new_picture = png(100, 50, "black")
    resp = miro.patch(images(sandbox.board_id, item["id"]), files=file_parts(new_picture, {"title": "v2"}))
    assert resp.status_code == 200, resp.text
    updated = resp.json()
    assert updated["id"] == item["id"] and updated["data"]["title"] == "v2"
    assert updated["geometry"] == {"width": 200, "height": 100}
    assert updated["data"]["imageUrl"] != item["data"]["imageUrl"]
    assert resource_bytes(miro, updated).content == new_picture
    assert sandbox.items(sandbox.board_id)[0]["bytes_sha256"] == hashlib.sha256(new_picture).hexdigest()


def test_update_from_url_fetches_again_and_moves(sandbox, miro, image_origin):
    item = miro.post(images(sandbox.board_id), files=file_parts(png())).json()
    newer = jpeg(20, 20)
    url = image_origin.put("/newer.jpg", newer, "image/jpeg")
    resp = miro.patch(images(sandbox.board_id, item["id"]),
                      json={"data": {"url": url, "title": "newer"}, "position": {"x": 5, "y": 6}})
    assert resp.status_code == 200, resp.text
    updated = resp.json()
    assert updated["data"]["title"] == "newer" and (updated["position"]["x"], updated["position"]["y"]) == (5, 6)
    assert resource_bytes(miro, updated).content == newer
    assert sandbox.items(sandbox.board_id)[0]["fetched_user_agent"] == CHROME_USER_AGENT

    title_only = miro.patch(images(sandbox.board_id, item["id"]), json={"data": {"title": "renamed"}})
    assert title_only.status_code == 200 and title_only.json()["data"]["title"] == "renamed"
    assert len(image_origin.seen) == 1  # no url, no fetch


def test_update_unknown_image_is_404_and_both_sides_400(sandbox, miro):
    assert miro.patch(images(sandbox.board_id, "3458764600999999999"), json={}).status_code == 404
    item = miro.post(images(sandbox.board_id), files=file_parts(png())).json()
    resp = miro.patch(images(sandbox.board_id, item["id"]), json={"geometry": {"width": 1, "height": 1}})
    assert resp.status_code == 400 and field_of(resp) == "geometry"


def test_delete_image(sandbox, miro):
    item = miro.post(images(sandbox.board_id), files=file_parts(png())).json()
    resp = miro.delete(images(sandbox.board_id, item["id"]))
    assert resp.status_code == 204 and resp.content == b""
    assert miro.get(images(sandbox.board_id, item["id"])).status_code == 404
    assert miro.delete(images(sandbox.board_id, item["id"])).status_code == 404
    assert sandbox.items(sandbox.board_id) == []


def test_board_id_with_equals_sign_works_encoded_and_plain(sandbox, miro):
    assert sandbox.board_id.endswith("=")
    encoded = miro.post(images(sandbox.board_id), files=file_parts(png()))
    assert "%3D" in encoded.request.url and encoded.status_code == 201
    plain = miro.get(f"/v2/boards/{sandbox.board_id}/images/{encoded.json()['id']}")
    assert plain.status_code == 200
