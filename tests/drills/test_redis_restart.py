"""Drill: Redis (AOF on) restarts in the middle of a burst; no job is lost, every process survives.

While Redis is down, more pictures arrive: the watcher cannot queue them then, and must do so once
Redis is back.
"""

from __future__ import annotations

import time

import pytest

from tests.fixtures.procs import wait_for

from .harness import events, read

IMAGES = 100
DURING = 20  # pictures dropped while Redis is down
DOWN_SECONDS = 3


@pytest.mark.slow
def test_redis_restart_mid_burst_loses_nothing(rig, redis_server):
    rig.start_watcher()
    rig.start_workers(3)
    rig.sandbox.set_faults(latency_ms=30)
    expected = rig.drop(IMAGES)
    wait_for(lambda: len(rig.items()) >= 20, 30, what="the burst to be under way")

    redis_server.stop()
    expected |= rig.drop(DURING, start=IMAGES, prefix="during")
    time.sleep(DOWN_SECONDS)
    redis_server.start()

    rig.wait_items(IMAGES + DURING, timeout=60)
    rig.wait_idle()
    rig.assert_each_once(expected)
    assert rig.failed_jobs() == 0
    for proc in rig.procs.values():
        assert proc.alive(), f"{proc.log_path.name} died with Redis:\n{read(proc)[-3000:]}"
    # The watcher says once that Redis went away and once that it is back, not once per event.
    watcher = events(read(rig.procs["watch-1"]))
    assert [e["event"] for e in watcher if e["event"].startswith("redis.")] == ["redis.unavailable", "redis.available"]
    rig.stop_all_cleanly()
