"""Boards, frames, children of frames, the generic item endpoints and cursor paging."""

from __future__ import annotations

import pytest

from .helpers import board_path, file_parts, png


def frames(board_id: str, item_id: str = "") -> str:
    return board_path(board_id, "/frames" + (f"/{item_id}" if item_id else ""))


def items_path(board_id: str, item_id: str = "") -> str:
    return board_path(board_id, "/items" + (f"/{item_id}" if item_id else ""))


def new_frame(miro, board_id: str, x: float = 0, y: float = 0, width: float = 1000, height: float = 500) -> dict:
    resp = miro.post(frames(board_id), json={"data": {"title": "Sync", "format": "custom", "type": "freeform"},
                                             "style": {"fillColor": "#ffffff"}, "position": {"x": x, "y": y},
                                             "geometry": {"width": width, "height": height}})
    assert resp.status_code == 201, resp.text
    return resp.json()


def new_image(miro, board_id: str, data: dict | None = None) -> dict:
    resp = miro.post(board_path(board_id, "/images"), files=file_parts(png(), data or {}))
    assert resp.status_code == 201, resp.text
    return resp.json()


def by_id(sandbox) -> dict[str, dict]:
    return {i["id"]: i for i in sandbox.items(sandbox.board_id)}


def test_get_board(sandbox, miro):
    resp = miro.get(board_path(sandbox.board_id))
    assert resp.status_code == 200
    board = resp.json()
    assert board["id"] == sandbox.board_id and board["type"] == "board"
    assert board["viewLink"] == sandbox.board_page(sandbox.board_id)
    missing = miro.get(board_path("nope="))
    assert missing.status_code == 404 and missing.json()["code"] == "notFound"


def test_frame_create_get_delete(sandbox, miro):
    frame = new_frame(miro, sandbox.board_id, 100, 200, 800, 400)
    assert frame["type"] == "frame" and frame["id"].isdigit()
    assert frame["data"] == {"format": "custom", "title": "Sync", "type": "freeform"}
    assert frame["geometry"] == {"width": 800, "height": 400}
    assert frame["position"]["relativeTo"] == "canvas_center"
    assert miro.get(frames(sandbox.board_id, frame["id"])).json() == frame
    assert miro.delete(frames(sandbox.board_id, frame["id"])).status_code == 204
    assert miro.get(frames(sandbox.board_id, frame["id"])).status_code == 404
    assert miro.delete(frames(sandbox.board_id, frame["id"])).status_code == 404


@pytest.mark.parametrize("body", [{}, {"data": {"format": "a4"}}, {"data": {"type": "grid"}}, {"data": {}, "geometry": {"width": 0}}],
                         ids=["no-data", "format", "type", "zero-width"])
def test_frame_create_400s(sandbox, miro, body):
    resp = miro.post(frames(sandbox.board_id), json=body)
    assert resp.status_code == 400 and resp.json()["code"] == "invalidParameters"


def test_patch_frame_resizes_and_moves_it_and_children_keep_their_place_in_it(sandbox, miro):
    frame = new_frame(miro, sandbox.board_id, x=1000, y=500, width=1000, height=500)  # top-left (500, 250)
    child = new_image(miro, sandbox.board_id, {"parent": {"id": frame["id"]}, "position": {"x": 220, "y": 220}})
    # Twice as tall, the top-left corner kept: the centre goes down by half the growth.
    resp = miro.patch(frames(sandbox.board_id, frame["id"]), json={"position": {"x": 1000, "y": 750}, "geometry": {"height": 1000}})
    assert resp.status_code == 200, resp.text
    grown = resp.json()
    assert grown["geometry"] == {"width": 1000, "height": 1000} and (grown["position"]["x"], grown["position"]["y"]) == (1000, 750)
    assert miro.get(frames(sandbox.board_id, frame["id"])).json() == grown
    assert by_id(sandbox)[child["id"]]["board_position"] == {"x": 720, "y": 470}  # where it was
    # A move carries the children along with the corner they are measured from.
    resp = miro.patch(frames(sandbox.board_id, frame["id"]), json={"position": {"x": 0, "y": 0}, "data": {"title": "Moved"},
                                                                   "style": {"fillColor": "#f5f6f8"}})
    assert resp.status_code == 200 and resp.json()["data"]["title"] == "Moved" and resp.json()["style"]["fillColor"] == "#f5f6f8"
    assert by_id(sandbox)[child["id"]]["board_position"] == {"x": -280, "y": -280}


@pytest.mark.parametrize("body,field", [({"geometry": {"height": 0}}, "geometry.height"), ({"geometry": {"depth": 1}}, "geometry"),
                                        ({"data": {"type": "grid"}}, "data.type"), ({"colour": "red"}, "colour"),
                                        ({"position": {"x": "left"}}, "position.x")])
def test_patch_frame_400s(sandbox, miro, body, field):
    frame = new_frame(miro, sandbox.board_id)
    resp = miro.patch(frames(sandbox.board_id, frame["id"]), json=body)
    assert resp.status_code == 400 and resp.json()["context"]["fields"][0]["field"] == field
    assert miro.get(frames(sandbox.board_id, frame["id"])).json() == frame  # nothing changed


def test_patch_frame_of_no_frame_is_404(sandbox, miro):
    image = new_image(miro, sandbox.board_id)
    assert miro.patch(frames(sandbox.board_id, "3458764600999999999"), json={"geometry": {"height": 10}}).status_code == 404
    assert miro.patch(frames(sandbox.board_id, image["id"]), json={"geometry": {"height": 10}}).status_code == 404


def test_image_in_a_frame_is_placed_from_the_frames_top_left(sandbox, miro):
    frame = new_frame(miro, sandbox.board_id, x=1000, y=500, width=1000, height=500)  # top-left (500, 250)
    image = new_image(miro, sandbox.board_id, {"parent": {"id": frame["id"]}, "position": {"x": 220, "y": 220}})
    assert image["parent"]["id"] == frame["id"]
    assert image["parent"]["links"]["self"].endswith(frames(sandbox.board_id, frame["id"]))
    assert image["position"]["relativeTo"] == "parent_top_left"
    assert by_id(sandbox)[image["id"]]["board_position"] == {"x": 720, "y": 470}

    listed = miro.get(items_path(sandbox.board_id), params={"parent_item_id": frame["id"]}).json()
    assert [i["id"] for i in listed["data"]] == [image["id"]]
    assert listed["data"][0]["parent"] == {"id": frame["id"]}


def test_parent_that_is_not_a_frame_is_400(sandbox, miro):
    image = new_image(miro, sandbox.board_id)
    resp = miro.post(board_path(sandbox.board_id, "/images"), files=file_parts(png(), {"parent": {"id": image["id"]}}))
    assert resp.status_code == 400
    assert resp.json()["context"]["fields"][0]["field"] == "parent.id"


def test_list_filters_by_type_and_parent(sandbox, miro):
    frame = new_frame(miro, sandbox.board_id)
    loose = new_image(miro, sandbox.board_id)
    inside = new_image(miro, sandbox.board_id, {"parent": {"id": frame["id"]}})
    everything = miro.get(items_path(sandbox.board_id)).json()
    assert [i["id"] for i in everything["data"]] == [frame["id"], loose["id"], inside["id"]]
    assert everything["total"] == 3 and everything["size"] == 3 and everything["limit"] == 10
    assert "cursor" not in everything
    only_images = miro.get(items_path(sandbox.board_id), params={"type": "image"}).json()
    assert [i["id"] for i in only_images["data"]] == [loose["id"], inside["id"]]
    only_frames = miro.get(items_path(sandbox.board_id), params={"type": "frame"}).json()
    assert [i["type"] for i in only_frames["data"]] == ["frame"]
    in_frame = miro.get(items_path(sandbox.board_id), params={"parent_item_id": frame["id"], "type": "image"}).json()
    assert [i["id"] for i in in_frame["data"]] == [inside["id"]]


@pytest.mark.parametrize("params,field", [
    ({"limit": "9"}, "limit"), ({"limit": "51"}, "limit"), ({"limit": "ten"}, "limit"),
    ({"type": "picture"}, "type"), ({"cursor": "not a cursor!"}, "cursor"),
])
def test_list_400s(sandbox, miro, params, field):
    resp = miro.get(items_path(sandbox.board_id), params=params)
    assert resp.status_code == 400
    assert resp.json()["code"] == "invalidParameters"
    assert resp.json()["context"]["fields"][0]["field"] == field


def test_list_with_unknown_frame_is_404(sandbox, miro):
    resp = miro.get(items_path(sandbox.board_id), params={"parent_item_id": "3458764600999999999"})
    assert resp.status_code == 404


def test_paging_120_items_with_limit_50_returns_each_once(sandbox, miro):
    created = [new_image(miro, sandbox.board_id, {"title": f"n{n}"})["id"] for n in range(120)]
    seen: list[str] = []
    sizes = []
    params = {"limit": "50", "type": "image"}
    while True:
        page = miro.get(items_path(sandbox.board_id), params=params).json()
        assert page["total"] == 120 and page["limit"] == 50
        sizes.append(page["size"])
        seen += [i["id"] for i in page["data"]]
        if "cursor" not in page:
            assert "next" not in page["links"]
            break
        assert page["links"]["next"].endswith(f"cursor={page['cursor'].replace('=', '%3D')}")
        params["cursor"] = page["cursor"]
    assert sizes == [50, 50, 20]
    assert seen == created


def test_paging_does_not_skip_or_repeat_when_items_are_added_between_pages(sandbox, miro):
    first = [new_image(miro, sandbox.board_id)["id"] for _ in range(12)]
    page1 = miro.get(items_path(sandbox.board_id), params={"limit": "10"}).json()
    later = new_image(miro, sandbox.board_id)["id"]
    page2 = miro.get(items_path(sandbox.board_id), params={"limit": "10", "cursor": page1["cursor"]}).json()
    assert [i["id"] for i in page1["data"] + page2["data"]] == first + [later]


def test_patch_item_moves_into_a_frame_keeping_its_place_then_moves_within(sandbox, miro):
    frame = new_frame(miro, sandbox.board_id, x=0, y=0, width=1000, height=500)  # top-left (-500, -250)
    image = new_image(miro, sandbox.board_id, {"position": {"x": 100, "y": 50}})
    resp = miro.patch(items_path(sandbox.board_id, image["id"]), json={"parent": {"id": frame["id"]}})
    assert resp.status_code == 200, resp.text
    moved = resp.json()
    assert moved["parent"] == {"id": frame["id"]}
    assert (moved["position"]["x"], moved["position"]["y"]) == (600, 300)
    assert by_id(sandbox)[image["id"]]["board_position"] == {"x": 100, "y": 50}

    resp = miro.patch(items_path(sandbox.board_id, image["id"]), json={"position": {"x": 10, "y": 20}})
    assert resp.status_code == 200
    assert by_id(sandbox)[image["id"]]["board_position"] == {"x": -490, "y": -230}
    assert miro.get(board_path(sandbox.board_id, f"/images/{image['id']}")).json()["position"]["relativeTo"] == "parent_top_left"


def test_patch_item_errors(sandbox, miro):
    image = new_image(miro, sandbox.board_id)
    assert miro.patch(items_path(sandbox.board_id, "3458764600999999999"), json={"position": {"x": 1, "y": 1}}).status_code == 404
    bad = miro.patch(items_path(sandbox.board_id, image["id"]), json={"parent": {"id": image["id"]}})
    assert bad.status_code == 400


def test_get_item_is_a_generic_item(sandbox, miro):
    image = new_image(miro, sandbox.board_id, {"title": "g"})
    got = miro.get(items_path(sandbox.board_id, image["id"]))
    assert got.status_code == 200
    assert got.json()["data"] == image["data"] and "links" not in got.json()


def test_generic_delete_works_for_images_and_frames_and_frame_children_stay_in_place(sandbox, miro):
    frame = new_frame(miro, sandbox.board_id, x=1000, y=1000, width=400, height=400)  # top-left (800, 800)
    child = new_image(miro, sandbox.board_id, {"parent": {"id": frame["id"]}, "position": {"x": 50, "y": 60}})
    loose = new_image(miro, sandbox.board_id)
    assert miro.delete(items_path(sandbox.board_id, loose["id"])).status_code == 204
    assert miro.delete(items_path(sandbox.board_id, frame["id"])).status_code == 204
    left = by_id(sandbox)
    assert list(left) == [child["id"]]
    assert left[child["id"]]["board_position"] == {"x": 850, "y": 860}
    assert "parent" not in miro.get(board_path(sandbox.board_id, f"/images/{child['id']}")).json()
    assert miro.delete(items_path(sandbox.board_id, loose["id"])).status_code == 404
