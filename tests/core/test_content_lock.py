"""The per-content lock: one holder, stale holders taken over by exactly one worker."""

from __future__ import annotations

import json
import threading

import pytest
import redis as redis_lib

from services.worker import maintenance
from services.worker.context import WorkerContext
from services.worker.uploader import ContentBusy, _ContentLock
from shared import keys
from shared.settings import load_settings


@pytest.fixture
def ctx(redis_url, tmp_path):
    settings = load_settings(environ={"MIRO_ACCESS_TOKEN": "t-12345", "MIRO_BOARD_ID": "b=", "WATCH_FOLDER": str(tmp_path),
                                      "REDIS_URL": redis_url, "MIRO_SYNC_ENV_FILE": "/nonexistent"})
    return WorkerContext(settings=settings, redis=redis_lib.Redis.from_url(redis_url), worker_name="w1")


@pytest.fixture
def calm(monkeypatch):
    monkeypatch.setattr(maintenance, "_trouble_at", -1e9)


def test_live_holder_blocks_and_release_is_only_by_owner(ctx, calm):
    ctx.redis.set(keys.worker_alive("w2"), "1")
    with _ContentLock(ctx, "sha", "w2", "job-a"):
        with pytest.raises(ContentBusy), _ContentLock(ctx, "sha", "w1", "job-b", wait=0.3):
            pass
        assert json.loads(ctx.redis.get(keys.content_lock("b=", "sha")))["worker"] == "w2"
    assert ctx.redis.get(keys.content_lock("b=", "sha")) is None


def test_a_dead_holder_is_taken_over_by_exactly_one_worker(ctx, calm):
    key = keys.content_lock("b=", "sha")
    ctx.redis.set(key, json.dumps({"worker": "dead", "job": "job-0"}))  # no alive key: dead
    winners, barrier = [], threading.Barrier(8)

    def contend(i):
        lock = _ContentLock(ctx, "sha", f"w{i}", f"job-{i}", wait=0.5)
        ctx.redis.set(keys.worker_alive(f"w{i}"), "1")
        barrier.wait()
        try:
            lock.__enter__()
            winners.append(i)
        except ContentBusy:
            pass

    threads = [threading.Thread(target=contend, args=(i,)) for i in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(winners) == 1


def test_right_after_redis_trouble_nobody_is_judged_dead(ctx):
    maintenance.redis_trouble()
    ctx.redis.set(keys.content_lock("b=", "sha"), json.dumps({"worker": "quiet", "job": "job-0"}))
    with pytest.raises(ContentBusy), _ContentLock(ctx, "sha", "w1", "job-1", wait=0.3):
        pass
