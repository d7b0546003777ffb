"""Drill: Miro answers 500 to everything for 20 s in the middle of a burst, then recovers."""

from __future__ import annotations

import pytest

from tests.fixtures.procs import wait_for

IMAGES = 100
OUTAGE = 20  # seconds


@pytest.mark.slow
def test_images_arrive_once_after_a_server_outage_mid_burst(rig):
    rig.start_watcher()
    rig.start_workers(3)
    rig.sandbox.set_faults(latency_ms=30)  # so the burst is still going when the outage starts
    expected = rig.drop(IMAGES)
    wait_for(lambda: len(rig.items()) >= 20, 30, what="the burst to be under way")
    rig.sandbox.set_faults(error_status=500, error_for_seconds=OUTAGE)
    on_board_at_outage = len(rig.items())

    rig.wait_items(IMAGES, timeout=OUTAGE + 60)
    rig.wait_idle()
    rig.assert_each_once(expected)
    assert rig.failed_jobs() == 0
    assert on_board_at_outage < IMAGES, "the outage began after the burst ended; the drill proves nothing"
    assert rig.sandbox.stats().get("injected_errors", 0) > 0
    assert rig.events("upload.retry"), "no job met the outage"
    # Recovery is noticed by the first success, and the waiting retries go at once instead of
    # sitting out their backoff (up to a minute after a 20 s outage).
    assert len(rig.events("miro.recovered")) >= 1
    rig.stop_all_cleanly()
