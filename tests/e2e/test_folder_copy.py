"""A folder copied into the watch folder, as a new user met it: one frame, its pictures in name order.

`cp -r batch/ inbox/` with 45 numbered pictures, written in no particular order, two workers, the
sandbox board: the frame grows to hold them all (no "batch (2)"), b_00 is in the first cell and
b_44 in the last, nothing overlaps. A screenshot of the sandbox's board page is kept with the
test's process logs (``board-after-copy.png`` in its tmp_path) for a person to look at.
"""

from __future__ import annotations

import base64
import itertools
import json
import random
import re
import shutil

import pytest
from PIL import Image, ImageDraw, ImageFont

from shared.layout import Box, cell_of_child, frame_rows
from shared.settings import Grid
from tests.e2e.test_deletes import all_items
from tests.fixtures.procs import wait_for
from tests.fixtures.stack import BOARD, make_image
from tests.sandbox.browser import Browser, chromium_binary

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(chromium_binary() is None, reason="chromium is not installed (scripts/ensure-system-deps)"),
]

COUNT = 45
GRID = Grid()  # the stack runs with the defaults: 10 columns of 440, frames 5 cells wide


def numbered(path, n: int) -> None:
    """A picture that shows its number, so the screenshot shows the order."""
    im = Image.new("RGB", (200, 150), (40 + n * 4, 90, 200 - n * 3))
    ImageDraw.Draw(im).text((100, 75), f"{n:02d}", fill="white", font=ImageFont.load_default(size=110), anchor="mm")
    im.save(path, format="PNG")


def box(item: dict) -> Box:
    pos, geo = item["board_position"], item["geometry"]
    return Box(pos["x"] - geo["width"] / 2, pos["y"] - geo["height"] / 2, geo["width"], geo["height"])


def inside(inner: Box, outer: Box) -> bool:
    return (outer.left <= inner.left and inner.left + inner.width <= outer.left + outer.width
            and outer.top <= inner.top and inner.top + inner.height <= outer.top + outer.height)


def test_a_copied_folder_is_one_frame_in_name_order_that_grows(local_stack, spawn, tmp_path):
    local_stack.start()
    make_image(local_stack.folder / "first.png", seed=1)  # the root grid and another folder's frame: neighbours
    (local_stack.folder / "other").mkdir()
    make_image(local_stack.folder / "other" / "o.png", seed=2)
    local_stack.wait_items(2)

    source = tmp_path / "batch"
    source.mkdir()
    names = [f"b_{n:02d}.png" for n in range(COUNT)]
    order = random.Random(2024).sample(names, COUNT)
    assert order[:3] != names[:3]
    for name in order:  # made in no particular order
        numbered(source / name, int(name[2:4]))
    target = local_stack.folder / "batch"
    target.mkdir()  # what `cp -r` does: the folder, then each file in the order it reads them
    for name in order:
        shutil.copyfile(source / name, target / name)
    local_stack.wait_items(COUNT + 2)
    local_stack.wait_idle()

    items = all_items(local_stack)
    frames = {i["data"]["title"]: i for i in items if i["type"] == "frame"}
    images = [i for i in items if i["type"] == "image"]
    assert sorted(frames) == ["batch", "other"]  # one frame for the folder, no "batch (2)"
    batch = frames["batch"]
    children = {i["data"]["title"]: i for i in images if (i.get("parent") or {}).get("id") == batch["id"]}
    cells = {title: cell_of_child(GRID, i["position"]["x"], i["position"]["y"]) for title, i in children.items()}
    assert cells == {name: n for n, name in enumerate(names)}  # name order, cell by cell
    assert batch["geometry"]["height"] == frame_rows(GRID, COUNT) * GRID.cell_height  # 9 rows: all of them, no more
    assert all(inside(box(child), box(batch)) for child in children.values())
    root = Box(GRID.origin_x, GRID.origin_y, GRID.columns * GRID.cell_width, 10**9)
    for a, b in itertools.combinations([root, *map(box, frames.values())], 2):
        assert not a.overlaps(b), (a, b)
    for a, b in itertools.combinations(images, 2):
        assert not box(a).overlaps(box(b)), (a["data"]["title"], b["data"]["title"])
    resizes = lambda: [r for r in local_stack.requests() if r["method"] == "PATCH" and "/frames/" in r["path"]]  # noqa: E731
    assert len(resizes()) <= 1  # made for the cells reserved so far, grown once to hold the rest: not a row at a time

    # One more picture into the full frame: queued at its close (not held), the frame grows a row, downwards.
    before = len(resizes())
    numbered(source / "b_45.png", 45)
    shutil.copyfile(source / "b_45.png", target / "b_45.png")
    local_stack.wait_items(COUNT + 3)
    local_stack.wait_idle()
    assert re.search(r"file\.queued.*batch/b_45\.png.*trigger=closed", local_stack.log())
    assert local_stack.log().count("folder.arriving folder=batch") == 1
    grown = next(i for i in all_items(local_stack) if i["id"] == batch["id"])
    assert grown["geometry"]["height"] == (frame_rows(GRID, COUNT) + 1) * GRID.cell_height
    assert box(grown).top == box(batch).top and box(grown).left == box(batch).left and len(resizes()) == before + 1

    browser = Browser(spawn, tmp_path / "chromium-profile")
    try:
        browser.call("Emulation.setDeviceMetricsOverride", width=1600, height=1000, deviceScaleFactor=1, mobile=False)
        browser.navigate(f"{local_stack.api}/boards/{BOARD.replace('=', '%3D')}")
        shown = """JSON.stringify(Array.from(document.querySelectorAll('img.item')).map(i => i.complete && i.naturalWidth > 0))"""
        wait_for(lambda: (lambda done: len(done) == COUNT + 3 and all(done))(json.loads(browser.evaluate(shown))), 30,
                 what="every picture drawn on the board page")
        shot = browser.call("Page.captureScreenshot", format="png")
        (tmp_path / "board-after-copy.png").write_bytes(base64.b64decode(shot["data"]))
    finally:
        browser.close()
