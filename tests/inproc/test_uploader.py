"""The uploader in the test's own process: real Redis, the sandbox Miro in a thread, no worker process.

The layer beneath the drills: each case takes a fraction of a second, so the uploader's promises
(once, duplicates, adoption after a crash, pictures sized to their cell, the 429 pause) are
checked here on every run, and the drills check the same through real processes.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image

from services.worker.context import WorkerContext
from services.worker.uploader import Uploader
from shared.layout import slot_center
from shared.miro import MiroRateLimited
from shared.settings import load_settings


def picture(path: Path, size: tuple[int, int], color: tuple[int, int, int]) -> tuple[str, int, int]:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    path.write_bytes(buf.getvalue())
    st = os.stat(path)
    return path.name, st.st_size, st.st_mtime_ns


@pytest.fixture
def uploader(tmp_path, sandbox, redis_client, redis_url):
    folder = tmp_path / "inbox"
    folder.mkdir()
    settings = load_settings(environ={
        "MIRO_API_URL": sandbox.url, "MIRO_ACCESS_TOKEN": sandbox.token, "MIRO_BOARD_ID": sandbox.board_id,
        "WATCH_FOLDER": str(folder), "REDIS_URL": redis_url, "UPLOAD_MODE": "file",
    })
    ctx = WorkerContext(settings=settings, redis=redis_client, worker_name="inproc")
    up = Uploader(ctx, job_id="inproc-job")
    up.folder = folder  # for the tests
    return up


def images(sandbox) -> list[dict]:
    return [i for i in sandbox.items(sandbox.board_id) if i.get("type") == "image"]


def creates(sandbox) -> list[dict]:
    return [r for r in sandbox.requests() if r["method"] == "POST" and r["path"].endswith("/images")]


def test_a_version_is_uploaded_once_and_its_bytes_once(uploader, sandbox):
    version = picture(uploader.folder / "a.png", (800, 600), (200, 10, 10))
    first = uploader.sync(*version)
    assert first.outcome == "uploaded" and first.delivery == "file"
    assert uploader.sync(*version).outcome == "skipped"  # the same version again
    (uploader.folder / "copy.png").write_bytes((uploader.folder / "a.png").read_bytes())
    st = os.stat(uploader.folder / "copy.png")
    dup = uploader.sync("copy.png", st.st_size, st.st_mtime_ns)
    assert dup.outcome == "duplicate" and dup.item_id == first.item_id
    assert [i["id"] for i in images(sandbox)] == [first.item_id] and len(creates(sandbox)) == 1


@pytest.mark.parametrize("size", [(1600, 1000), (900, 1600), (4000, 500), (300, 2400)], ids=["landscape", "portrait", "panorama", "strip"])
def test_the_picture_fills_its_cell_and_stays_inside_it(uploader, sandbox, size):
    uploader.sync(*picture(uploader.folder / "p.png", size, (10, 120, 30)))
    [item] = images(sandbox)
    grid = uploader.settings.grid
    inner_w, inner_h = grid.cell_width - 2 * grid.padding, grid.cell_height - 2 * grid.padding
    w, h = item["geometry"]["width"], item["geometry"]["height"]
    assert w <= inner_w + 0.01 and h <= inner_h + 0.01, (w, h)
    assert abs(w - inner_w) < 0.01 or abs(h - inner_h) < 0.01, (w, h)
    assert (item["position"]["x"], item["position"]["y"]) == slot_center(grid, 0)


def test_an_item_made_by_an_interrupted_attempt_is_adopted_not_made_again(uploader, sandbox):
    version = picture(uploader.folder / "crash.png", (640, 480), (1, 2, 3))
    # What a worker killed after Miro's 201 and before the ledger write leaves: an intent, and the item.
    slot = uploader.ctx.ledger.reserve_slot("crash.png")
    uploader.ctx.ledger.begin("crash.png", slot, "crash.png", "file")
    x, y = slot_center(uploader.settings.grid, slot)
    made = uploader.ctx.miro.create_image_file(sandbox.board_id, (uploader.folder / "crash.png").read_bytes(), "crash.png",
                                               "image/png", {"title": "crash.png", "position": {"x": x, "y": y}})
    result = uploader.sync(*version)
    assert result.outcome == "uploaded" and result.item_id == str(made["id"])
    assert len(creates(sandbox)) == 1 and len(images(sandbox)) == 1


def test_a_429_pauses_every_worker_until_the_reset(uploader, sandbox):
    version = picture(uploader.folder / "limited.png", (100, 100), (9, 9, 9))
    sandbox.set_faults(error_status=429)
    with pytest.raises(MiroRateLimited):
        uploader.sync(*version)
    reset = max(r["done_at"] for r in sandbox.requests() if r["status"] == 429)
    paused = uploader.ctx.limiter.paused_until()  # in Redis: every worker's limiter reads it
    assert paused is not None and paused > reset, (paused, reset)
    # Nothing was created, so no intent is left for a recovery search.
    assert uploader.ctx.ledger.intent("limited.png") is None


def test_a_bad_file_is_rejected_and_never_reaches_miro(uploader, sandbox):
    path = uploader.folder / "notes.png"
    path.write_text("not a picture\n")
    st = os.stat(path)
    result = uploader.sync("notes.png", st.st_size, st.st_mtime_ns)
    assert result.outcome == "rejected" and result.reason
    assert [r for r in sandbox.requests() if r["path"].startswith("/v2/")] == []
