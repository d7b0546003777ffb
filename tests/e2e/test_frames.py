"""FOLDERS=frames: one frame per subfolder, growing as it fills, never overlapping, children inside their frame's own grid."""

from __future__ import annotations

import itertools
import os

from tests.e2e.test_deletes import all_items
from tests.fixtures.procs import wait_for
from tests.fixtures.stack import make_image

FILES = ["root.png", "sub/a.png", "sub/b.png", "sub/c.png", "sub/deeper/x.png", "other/y.png"]


def box(item, frames=None):
    """(left, top, right, bottom) on the board."""
    pos = item.get("board_position") or item["position"]
    w, h = item["geometry"]["width"], item["geometry"].get("height", item["geometry"]["width"])
    return pos["x"] - w / 2, pos["y"] - h / 2, pos["x"] + w / 2, pos["y"] + h / 2


def overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def board(stack):
    items = all_items(stack)
    return [i for i in items if i["type"] == "frame"], [i for i in items if i["type"] == "image"]


def test_subfolders_become_frames_that_never_overlap_and_hold_their_children(local_stack):
    # Two cells a row, so the third picture of sub/ needs a second row: the frame grows (no "sub (2)").
    local_stack.env.update({"FRAME_COLUMNS": "2", "FRAME_ROWS": "1"})
    local_stack.start()
    (local_stack.folder / "sub" / "deeper").mkdir(parents=True)
    (local_stack.folder / "other").mkdir()
    (local_stack.folder / "empty").mkdir()  # an empty folder makes no frame
    for i, name in enumerate(FILES):
        make_image(local_stack.folder / name, size=(64, 48) if i % 2 else (40, 90), seed=i)
    local_stack.wait_items(len(FILES))
    frames, images = board(local_stack)
    titles = sorted(f["data"]["title"] for f in frames)
    assert titles == ["other", "sub", "sub/deeper"]
    by_id = {f["id"]: f for f in frames}
    assert next(f for f in frames if f["data"]["title"] == "sub")["geometry"]["height"] == 2 * 440
    # Frames never overlap each other, nor the root grid's row of cells.
    root = next(i for i in images if i["data"]["title"] == "root.png")
    assert "parent" not in root and root["position"] == {"x": 220.0, "y": 220.0, "origin": "center", "relativeTo": "canvas_center"}
    root_grid = (0, 0, 10 * 440, 440 * 10)
    for a, b in itertools.combinations(frames, 2):
        assert not overlap(box(a), box(b)), (a["data"]["title"], b["data"]["title"])
    for f in frames:
        assert not overlap(box(f), root_grid), f["data"]["title"]
    # Every child is inside its frame, in the frame's own grid, and no two children overlap.
    for image in images:
        if image["data"]["title"] == "root.png":
            continue
        frame = by_id[image["parent"]["id"]]
        folder = os.path.dirname(next(n for n in FILES if n.endswith("/" + image["data"]["title"])))
        assert frame["data"]["title"] == folder
        assert image["position"]["relativeTo"] == "parent_top_left"
        inner, outer = box(image), box(frame)
        assert outer[0] <= inner[0] and inner[2] <= outer[2] and outer[1] <= inner[1] and inner[3] <= outer[3], image["data"]["title"]
    for a, b in itertools.combinations([i for i in images if "parent" in i], 2):
        assert not overlap(box(a), box(b)), (a["data"]["title"], b["data"]["title"])
    # A restart makes no frame twice.
    assert local_stack.stop() == 0
    local_stack.start()
    wait_for(lambda: local_stack.log().count("watch.scan") >= 2, 60, what=lambda: local_stack.log()[-2000:])
    assert sorted(f["data"]["title"] for f in board(local_stack)[0]) == titles


def test_a_move_to_another_folder_moves_the_item_into_that_frame(local_stack):
    local_stack.start()
    (local_stack.folder / "from").mkdir()
    (local_stack.folder / "to").mkdir()
    make_image(local_stack.folder / "from" / "pic.png", seed=1)
    before = local_stack.wait_items(1)[0]
    os.rename(local_stack.folder / "from" / "pic.png", local_stack.folder / "to" / "moved.png")

    def moved():
        frames, images = board(local_stack)
        titles = {f["id"]: f["data"]["title"] for f in frames}
        item = images[0]
        return item if len(images) == 1 and titles.get((item.get("parent") or {}).get("id")) == "to" else None

    item = wait_for(moved, 30, what=lambda: local_stack.log()[-3000:])
    assert item["id"] == before["id"] and item["data"]["title"] == "moved.png"
    assert [r for r in local_stack.requests() if r["method"] == "POST" and r["path"].endswith("/images")].__len__() == 1
