"""Drill: a burst far over Miro's credit budget is paced by our limiter, not by the server's 429s.

The sandbox's credit window is shortened from a minute to WINDOW seconds (the budget is then per
window), so a 120-image burst presses against it for several windows in seconds. Our side is told
the same budget per minute. Four workers upload several times faster than the budget allows
(6 a second; on a loaded 2-core machine they still do well over 10), so without the shared
limiter most of the burst would be answered 429, and the limiter is sure to make them wait.
"""

from __future__ import annotations

import collections

import pytest

IMAGES = 120
WINDOW = 5  # seconds
PER_WINDOW = 3_000  # credits: 30 uploads per window, 6 a second
MAX_429 = 3


@pytest.mark.slow
def test_burst_over_the_budget_is_paced_by_the_limiter(rig_factory):
    rig = rig_factory(credits_per_minute=PER_WINDOW, credit_window_seconds=WINDOW)
    rig.env["MIRO_CREDITS_PER_MINUTE"] = str(PER_WINDOW * 60 // WINDOW)
    rig.start_watcher()
    rig.start_workers(4)

    expected = rig.drop(IMAGES)
    rig.wait_items(IMAGES, timeout=90)
    rig.wait_idle()
    rig.assert_each_once(expected)
    assert rig.failed_jobs() == 0

    statuses = collections.Counter(r["status"] for r in rig.sandbox.requests())
    print(f"requests by status: {dict(statuses)}; limiter waits over 1 s: {len(rig.events('rate.waited'))}")
    assert statuses[429] <= MAX_429, statuses
    # The budget really was the limit: workers waited for credits (one line per wait over a second).
    assert rig.events("rate.waited"), "the burst never pressed against the budget; the drill proves nothing"
    rig.stop_all_cleanly()
