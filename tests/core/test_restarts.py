"""`miro-sync up`'s restart policy (services/restarts.py): compose's backoff, without processes."""

from __future__ import annotations

from services.restarts import Backoff


def test_a_crash_loop_doubles_the_wait_up_to_the_cap():
    backoff = Backoff(first=0.5, cap=30, healthy_after=10)
    assert [backoff.delay(ran_for=1) for _ in range(9)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]


def test_a_service_that_ran_a_while_is_restarted_quickly_again():
    backoff = Backoff(first=0.5, cap=30, healthy_after=10)
    for _ in range(5):
        backoff.delay(ran_for=0.2)
    assert backoff.delay(ran_for=10) == 0.5
    assert backoff.delay(ran_for=9.9) == 1  # a short run after that counts again


def test_the_defaults_are_compose_like():
    backoff = Backoff()
    assert backoff.delay(ran_for=0) < 1
    assert max(backoff.delay(ran_for=0) for _ in range(20)) == 30
