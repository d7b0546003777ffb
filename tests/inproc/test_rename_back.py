"""A rename back that lands while the worker is retitling the item: watcher and worker in the test's process.

The watcher gets synthetic events on a fake clock (as in test_watcher); the jobs it queues run in
an RQ SimpleWorker in burst mode with the test's worker context, against the sandbox Miro and a
real Redis. The rename back is done from inside the Miro call, so the interleaving is exact.
"""

from __future__ import annotations

import os

import pytest
from rq import SimpleWorker
from watchdog.events import FileClosedEvent, FileMovedEvent

from services.watcher.watcher import Watcher
from services.worker import context as worker_context
from services.worker.context import WorkerContext
from shared.settings import load_settings
from tests.inproc.test_watcher import Clock, deliver, png

DELETE_SETTLE = 10.0


@pytest.fixture
def make_pair(tmp_path, sandbox, redis_client, redis_url):
    """(watcher, worker context) on one folder, one queue, one ledger."""
    folder = tmp_path / "inbox"
    folder.mkdir()

    def make(**environ: str) -> tuple[Watcher, WorkerContext]:
        settings = load_settings(environ={
            "MIRO_API_URL": sandbox.url, "MIRO_ACCESS_TOKEN": sandbox.token, "MIRO_BOARD_ID": sandbox.board_id,
            "WATCH_FOLDER": str(folder), "REDIS_URL": redis_url, "UPLOAD_MODE": "file", "QUEUE_NAME": "inproc", **environ,
        })
        ctx = WorkerContext(settings=settings, redis=redis_client, worker_name="inproc")
        watcher = Watcher(folder, ctx.ledger, ctx.jobs, settle_seconds=2.0, rescan_interval=0, job_timeout=60,
                          close_events=True, clock=Clock(), delete_settle=DELETE_SETTLE)
        worker_context.set_context(ctx)
        return watcher, ctx

    yield make
    worker_context.set_context(None)


def work(ctx: WorkerContext) -> None:
    """What the worker processes do: run every queued job, and the jobs those queue, to the end."""
    SimpleWorker([ctx.jobs], connection=ctx.redis, serializer=ctx.jobs.serializer).work(burst=True)


def titles(sandbox) -> dict[str, str]:
    return {i["id"]: i["data"]["title"] for i in sandbox.items(sandbox.board_id) if i.get("type") == "image"}


def first_upload(watcher: Watcher, ctx: WorkerContext, sandbox) -> str:
    x = watcher.folder / "x.png"
    x.write_bytes(png((7, 7, 7)))
    deliver(watcher, FileClosedEvent(str(x)))
    work(ctx)
    [(item_id, title)] = titles(sandbox).items()
    assert title == "x.png"
    return item_id


def creates(sandbox) -> int:
    return sum(1 for r in sandbox.requests() if r["method"] == "POST" and r["path"].endswith("/images"))


def test_renamed_back_while_the_item_is_retitled_ends_titled_with_the_name_on_disk(make_pair, sandbox, monkeypatch):
    watcher, ctx = make_pair()
    x, y = watcher.folder / "x.png", watcher.folder / "y.png"
    item_id = first_upload(watcher, ctx, sandbox)

    retitle = ctx.miro.update_image
    renamed_back = []

    def retitled_then_renamed_back(*args, **kwargs):
        answer = retitle(*args, **kwargs)
        if not renamed_back:  # the board says y.png, the ledger still says x.png: the watcher finds x.png synced
            renamed_back.append(True)
            os.rename(y, x)
            deliver(watcher, FileMovedEvent(str(y), str(x)))
        return answer

    monkeypatch.setattr(ctx.miro, "update_image", retitled_then_renamed_back)
    os.rename(x, y)
    deliver(watcher, FileMovedEvent(str(x), str(y)))
    work(ctx)

    assert renamed_back
    assert titles(sandbox) == {item_id: "x.png"}
    entries = ctx.ledger.all_items()
    assert set(entries) == {"x.png"} and entries["x.png"].item_id == item_id
    assert creates(sandbox) == 1


def test_moved_back_in_while_its_item_is_deleted_ends_with_an_item_again(make_pair, sandbox, monkeypatch, tmp_path):
    watcher, ctx = make_pair(ON_DELETE="remove")
    x, outside = watcher.folder / "x.png", tmp_path / "x.png"
    first = first_upload(watcher, ctx, sandbox)
    (watcher.folder / "other.png").write_bytes(png((1, 1, 1)))  # a folder left empty holds every deletion

    delete = ctx.miro.delete_item

    def deleted_then_moved_back(*args, **kwargs):
        delete(*args, **kwargs)
        os.rename(outside, x)  # the ledger still holds x.png: the watcher finds it synced
        deliver(watcher, FileMovedEvent(str(outside), str(x)))

    monkeypatch.setattr(ctx.miro, "delete_item", deleted_then_moved_back)
    os.rename(x, outside)
    deliver(watcher, FileMovedEvent(str(x), str(outside)))
    watcher.clock.advance(DELETE_SETTLE)
    watcher._enact_deletions()
    work(ctx)

    [(item_id, title)] = titles(sandbox).items()
    assert title == "x.png" and item_id != first
    assert ctx.ledger.path("x.png").item_id == item_id
    assert creates(sandbox) == 2
