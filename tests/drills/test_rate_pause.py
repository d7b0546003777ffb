"""Drill: after a 429 every worker pauses until Miro's reset; no request reaches Miro before it.

The sandbox answers the next API call with an injected 429 (its ``X-RateLimit-Reset`` is the end
of the token's current window, shortened to WINDOW seconds so the drill stays short). The fault is
cleared as soon as that 429 has been answered, so any later request is a request made during the
pause or after it, and the drill can tell which.
"""

from __future__ import annotations

from tests.fixtures.procs import wait_for

WINDOW = 4  # seconds: the sandbox's credit window, so a reset is at most this far away
FILES = 6


def test_a_429_pauses_every_worker_until_the_reset(rig_factory):
    rig = rig_factory(credit_window_seconds=WINDOW)
    rig.start_watcher()
    rig.start_workers(2)
    warm = rig.drop(1, start=1000, prefix="warm")  # opens the token's window, so the pause below is shorter than WINDOW
    rig.wait_items(1)
    rig.wait_idle(quiet=0.3)

    rig.sandbox.set_faults(error_status=429)
    expected = {**warm, **rig.drop(FILES)}
    first_429 = wait_for(lambda: next((r for r in rig.sandbox.requests() if r["status"] == 429), None), 30,
                         what=lambda: "the injected 429\n" + rig.tail())
    rig.sandbox.clear_faults()

    rig.wait_items(1 + FILES, timeout=60)
    rig.wait_idle()
    rig.assert_each_once(expected)
    assert rig.failed_jobs() == 0

    paused = rig.events("rate.paused")
    assert paused, "a 429 was answered and no worker paused:\n" + rig.tail()
    until = max(float(e["until"]) for e in paused)
    assert until > first_429["done_at"], (until, first_429)
    injected = [r for r in rig.sandbox.requests() if r["status"] == 429]
    # Another worker's call may have been on its way when the first 429 was answered; none may
    # *arrive* after the last 429 and before the pause ends (0.05 s: Redis TIME vs the sandbox's clock).
    during = [r for r in rig.sandbox.requests() if injected[-1]["done_at"] < r["at"] < until - 0.05]
    assert during == [], f"requests during the pause (until {until}): {during}"
    after = [r for r in rig.sandbox.requests() if r["at"] >= until - 0.05]
    assert after, "nothing was uploaded after the pause: the drill proves nothing"
    rig.stop_all_cleanly()
