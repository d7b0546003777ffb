"""The circuit's rules (shared.circuit), pure: which probe answers and failures open it, what closes it."""

from __future__ import annotations

from shared.circuit import Circuit, CircuitState, Limits, after_failed_verification, after_probe

LIMITS = Limits(failures=3, window=60, cooldown=30)


def test_an_ngrok_page_opens_it_until_a_probe_passes():
    opened = after_probe(Circuit(), False, "warning-page", now=100)
    assert (opened.state, opened.reason, opened.since, opened.until) == (CircuitState.OPEN, "warning-page", 100, None)
    assert after_probe(opened, False, "warning-page", now=110) == opened
    closed = after_probe(opened, True, "ok", now=120)
    assert closed.state is CircuitState.CLOSED and closed.since == 120


def test_a_failure_of_our_own_set_up_does_not_open_it():
    for reason in ("no-endpoint", "unreachable", "http-403", "not-configured"):
        assert after_probe(Circuit(), False, reason, now=1) == Circuit()


def test_k_failures_within_the_window_open_it_for_the_cooldown():
    c = Circuit()
    for now in (0, 10):
        c = after_failed_verification(c, now, LIMITS)
        assert not c.is_open
    c = after_failed_verification(c, 20, LIMITS)
    assert c.is_open and c.reason == "verifications-failed" and c.until == 50
    assert after_probe(c, True, "ok", now=40).is_open  # a passing probe in the cooldown does not close it
    assert after_probe(c, True, "ok", now=50).state is CircuitState.CLOSED


def test_failures_older_than_the_window_do_not_count():
    c = Circuit()
    for now in (0, 10, 70, 75):
        c = after_failed_verification(c, now, LIMITS)
    assert not c.is_open and c.failures == (70, 75)


def test_round_trip_through_json():
    c = after_failed_verification(Circuit(failures=(1.0, 2.0)), 3.0, LIMITS)
    assert Circuit.from_json(c.to_json()) == c
    assert Circuit.from_json(None) == Circuit()
