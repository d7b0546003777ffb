"""Frames in the uploader's own process: a folder's frame grows; a board laid out before keeps its frames.

Small frames (2 columns, 1 row at first) so a few pictures fill them; the sandbox in a thread, real Redis.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil

import pytest

from services.worker.context import WorkerContext
from services.worker.uploader import Uploader
from shared import keys
from shared.layout import Box, child_center, folder_frame_box, frame_size, stacked_frame_center
from shared.ledger import ItemEntry
from tests.inproc.test_uploader import creates, images, picture, uploader  # noqa: F401  (uploader: a fixture)


@pytest.fixture
def small(uploader):  # noqa: F811
    """The uploader with frames of 2 columns, at least 1 row."""
    settings = dataclasses.replace(uploader.settings, grid=dataclasses.replace(uploader.settings.grid, frame_columns=2, frame_rows=1))
    up = Uploader(WorkerContext(settings=settings, redis=uploader.ctx.redis, worker_name="inproc"), job_id="inproc-job")
    up.folder = uploader.folder
    return up


def add(up: Uploader, relpath: str, seed: int) -> tuple[str, int, int]:
    path = up.folder / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    _, size, mtime_ns = picture(path, (60, 40), (seed, 40, 90))
    return relpath, size, mtime_ns


def frames(sandbox) -> dict[str, dict]:
    return {i["data"]["title"]: i for i in sandbox.items(sandbox.board_id) if i["type"] == "frame"}


def box(item: dict) -> Box:
    w, h = item["geometry"]["width"], item["geometry"]["height"]
    return Box(item["position"]["x"] - w / 2, item["position"]["y"] - h / 2, w, h)


def frame_patches(sandbox) -> list[dict]:
    return [r for r in sandbox.requests() if r["method"] == "PATCH" and "/frames/" in r["path"]]


def test_a_folders_frame_grows_a_row_at_a_time_instead_of_continuing(small, sandbox):
    grid = small.settings.grid
    for i in range(5):
        assert small.sync(*add(small, f"batch/b_{i}.png", i)).outcome == "uploaded"
    [frame] = frames(sandbox).values()  # no "batch (2)"
    assert frame["data"]["title"] == "batch"
    assert box(frame) == folder_frame_box(grid, 0, 3)  # 5 cells, 2 a row: 3 rows, the top-left corner where it began
    assert len(frame_patches(sandbox)) == 2  # one resize per new row
    for item in images(sandbox):
        assert item["parent"]["id"] == frame["id"]
        cell = int(item["data"]["title"][2])
        assert (item["position"]["x"], item["position"]["y"]) == child_center(grid, cell)  # in its cell, measured from the corner
    assert len(creates(sandbox)) == 5


def test_a_batch_reserved_at_once_costs_one_create_and_no_resize(small, sandbox):
    for i in range(5):  # what the watcher does as it queues a copied folder
        small.ctx.ledger.reserve_slot(f"batch/b_{i}.png", "batch")
    for i in (3, 0, 4, 1, 2):  # workers finish in any order
        small.sync(*add(small, f"batch/b_{i}.png", i))
    assert box(frames(sandbox)["batch"]) == folder_frame_box(small.settings.grid, 0, 3) and frame_patches(sandbox) == []
    cells = {i["data"]["title"]: (i["position"]["x"], i["position"]["y"]) for i in images(sandbox)}
    assert cells == {f"b_{i}.png": child_center(small.settings.grid, i) for i in range(5)}


def test_a_rename_or_a_duplicate_gives_back_the_cell_reserved_for_the_new_name(small, sandbox):
    ledger = small.ctx.ledger
    small.sync(*add(small, "a.png", 1))
    ledger.reserve_slot("renamed.png")  # the watcher, queueing the new name
    os.rename(small.folder / "a.png", small.folder / "renamed.png")
    st = os.stat(small.folder / "renamed.png")
    assert small.sync("renamed.png", st.st_size, st.st_mtime_ns).outcome == "moved"
    assert ledger.reserved(None) == 1  # the item kept cell 0; cell 1 is free again
    ledger.reserve_slot("copy.png")
    shutil.copyfile(small.folder / "renamed.png", small.folder / "copy.png")
    st = os.stat(small.folder / "copy.png")
    assert small.sync("copy.png", st.st_size, st.st_mtime_ns).outcome == "duplicate"  # DUPLICATES=skip: shows cell 0
    assert ledger.reserved(None) == 1
    small.sync(*add(small, "next.png", 2))
    assert ledger.path("next.png").slot == 1  # no hole


def test_a_board_laid_out_before_keeps_its_continuation_frames_and_uploads_nothing_again(small, sandbox):
    up, grid, board = small, small.settings.grid, small.settings.miro_board_id
    red, miro = up.ctx.redis, up.ctx.miro
    # What the earlier version left: fixed 2-cell frames "batch" and "batch (2)" stacked right of the grid, 3 pictures.
    w, h = frame_size(grid)
    made = {}
    for part, title in enumerate(["batch", "batch (2)"]):
        x, y = stacked_frame_center(grid, part)
        made[part] = miro.create_frame(board, title, {"x": x, "y": y, "origin": "center"}, {"width": w, "height": h})["id"]
        red.hset(keys.frames(board), f"folder:batch#{part}", json.dumps({"id": made[part], "title": title, "x": x, "y": y}))
        red.hset(keys.frame_index(board), f"folder:batch#{part}", part)
    red.set(keys.next_frame_index(board), 2)
    versions = []
    for slot in range(3):
        relpath, size, mtime_ns = add(up, f"batch/b_{slot}.png", slot)
        x, y = child_center(grid, slot % 2)
        item = miro.create_image_file(board, (up.folder / relpath).read_bytes(), f"b_{slot}.png", "image/png",
                                      {"title": f"b_{slot}.png", "position": {"x": x, "y": y}, "parent": {"id": made[slot // 2]}})
        up.ctx.ledger.record(relpath, ItemEntry(str(item["id"]), up_sha(up, relpath), size, mtime_ns, slot, "file", "file", 0.0,
                                                frame=made[slot // 2]))
        red.hset(keys.slots(board), relpath, slot)
        versions.append((relpath, size, mtime_ns))
    red.set(keys.folder_next_slot(board, "batch"), 3)
    before = len(creates(sandbox))

    assert [up.sync(*v).outcome for v in versions] == ["skipped"] * 3  # nothing uploaded again
    up.sync(*add(up, "batch/b_3.png", 3))  # fills "batch (2)"
    up.sync(*add(up, "batch/b_4.png", 4))  # continued, as before: "batch (3)"
    up.sync(*add(up, "new/x.png", 9))  # a new folder: a growing frame, in a column of its own
    assert len(creates(sandbox)) == before + 3
    shown = frames(sandbox)
    assert sorted(shown) == ["batch", "batch (2)", "batch (3)", "new"]
    parent = {i["data"]["title"]: i["parent"]["id"] for i in images(sandbox)}
    assert parent["b_3.png"] == made[1] and parent["b_4.png"] == shown["batch (3)"]["id"]
    assert box(shown["new"]) == folder_frame_box(grid, 1, 1)  # column 0 is the old stack's
    old = [box(shown[t]) for t in ("batch", "batch (2)", "batch (3)")]
    assert not any(box(shown["new"]).overlaps(b) for b in old) and frame_patches(sandbox) == []


def up_sha(up: Uploader, relpath: str) -> str:
    from services.worker.uploader import file_sha256

    return file_sha256(up.folder / relpath)
