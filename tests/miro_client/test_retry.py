"""The retry policy as tables: which failure gets which decision, and when the next try is."""

from __future__ import annotations

import random

import pytest
import redis

from shared import retry
from shared.miro import (
    MiroApiError,
    MiroAuthError,
    MiroBadRequest,
    MiroNotFound,
    MiroRateLimited,
    MiroServerError,
    MiroTransportError,
    RateInfo,
)
from shared.ratelimit import RateLimitTimeout
from shared.retry import Decision

NOW = 1_800_000_000.0


class Busy(Exception):
    retryable = True


@pytest.mark.parametrize(
    "exc, decision",
    [
        pytest.param(MiroRateLimited("limit", status=429, code="tooManyRequests"), Decision.RETRY, id="429"),
        pytest.param(MiroServerError("boom", status=500, code="internalError"), Decision.RETRY, id="500"),
        pytest.param(MiroServerError("gateway", status=503), Decision.RETRY, id="503"),
        pytest.param(MiroTransportError("read timeout"), Decision.RETRY, id="timeout"),
        pytest.param(MiroTransportError("connection failed"), Decision.RETRY, id="refused"),
        pytest.param(MiroBadRequest("slow", status=408), Decision.RETRY, id="408"),
        pytest.param(MiroBadRequest("early", status=425), Decision.RETRY, id="425"),
        pytest.param(RateLimitTimeout(100, 30, "paused"), Decision.RETRY, id="credit-wait-timeout"),
        pytest.param(redis.exceptions.ConnectionError("down"), Decision.RETRY, id="redis-down"),
        pytest.param(Busy("another worker"), Decision.RETRY, id="retryable-attribute"),
        pytest.param(MiroAuthError("no token", status=401, code="tokenNotProvided"), Decision.HOLD_AUTH, id="401"),
        pytest.param(MiroAuthError("scope", status=403, code="insufficientPermissions"), Decision.HOLD_AUTH, id="403"),
        pytest.param(MiroBadRequest("both", status=400, code="invalidParameters"), Decision.FAIL, id="400"),
        pytest.param(MiroNotFound("gone", status=404, code="notFound"), Decision.FAIL, id="404"),
        pytest.param(MiroBadRequest("conflict", status=409, code="conflict"), Decision.FAIL, id="409"),
        pytest.param(MiroBadRequest("too big", status=413), Decision.FAIL, id="413"),
        pytest.param(MiroApiError("moved", status=302), Decision.FAIL, id="unfollowed-3xx"),
        pytest.param(ValueError("bug"), Decision.FAIL, id="anything-else"),
    ],
)
def test_classify(exc, decision):
    assert retry.classify(exc) is decision


@pytest.mark.parametrize(
    "attempt, base, cap, expected",
    [
        (1, 2.0, 300.0, 2.0),
        (2, 2.0, 300.0, 4.0),
        (5, 2.0, 300.0, 32.0),
        (8, 2.0, 300.0, 256.0),
        (9, 2.0, 300.0, 300.0),  # capped
        (10_000, 2.0, 300.0, 300.0),  # no overflow
        (4, 0.5, 1.0, 1.0),
    ],
)
def test_backoff_without_jitter_is_exponential_and_capped(attempt, base, cap, expected):
    assert retry.backoff(attempt, base, cap, jitter=False) == expected


def test_backoff_full_jitter_spreads_over_the_whole_range():
    rng = random.Random(7)
    waits = [retry.backoff(6, 2.0, 300.0, rng=rng) for _ in range(2000)]
    assert all(0.0 <= w <= 64.0 for w in waits)
    assert min(waits) < 3.2 and max(waits) > 60.8  # full jitter, not +-10 %
    assert len(set(waits)) > 1900


def test_backoff_counts_retries_from_one():
    with pytest.raises(ValueError):
        retry.backoff(0)


@pytest.mark.parametrize(
    "rate, retry_after, expected",
    [
        pytest.param(RateInfo(100_000, 0, NOW + 42), 5.0, NOW + 42, id="reset-first"),
        pytest.param(RateInfo(100_000, 0, NOW - 1), 5.0, NOW + 5, id="stale-reset-then-retry-after"),
        pytest.param(RateInfo(None, None, None), 7.5, NOW + 7.5, id="retry-after"),
        pytest.param(None, None, NOW + 2.0, id="backoff"),
    ],
)
def test_resume_at_after_429(rate, retry_after, expected):
    exc = MiroRateLimited("limit", status=429, rate=rate, retry_after=retry_after)
    assert retry.resume_at(exc, NOW, attempt=1, rng=_top()) == expected


class _top(random.Random):
    """Jitter that always picks the top of the range, so expectations are exact."""

    def uniform(self, a, b):
        return b


@pytest.mark.parametrize(
    "exc, attempt, age, expected_decision, expected_delay",
    [
        pytest.param(MiroServerError("x", status=502), 3, 60, Decision.RETRY, 8.0, id="backoff-within-horizon"),
        pytest.param(MiroServerError("x", status=502), 4, 86_390, Decision.RETRY, 10.0, id="last-try-at-horizon"),
        pytest.param(MiroServerError("x", status=502), 3, 86_400, Decision.FAIL, 0.0, id="horizon-passed"),
        pytest.param(MiroRateLimited("x", status=429, rate=RateInfo(1, 0, NOW + 30)), 1, 10, Decision.RETRY, 30.0, id="429-waits-for-reset"),
        pytest.param(MiroBadRequest("x", status=400), 1, 0, Decision.FAIL, 0.0, id="400-fails-now"),
        pytest.param(MiroAuthError("x", status=401), 1, 90_000, Decision.HOLD_AUTH, 0.0, id="auth-holds-past-horizon"),
    ],
)
def test_plan(exc, attempt, age, expected_decision, expected_delay):
    result = retry.plan(exc, attempt, since=NOW - age, now=NOW, horizon=86_400, rng=_top())
    assert (result.decision, result.delay) == (expected_decision, expected_delay)
    assert type(exc).__name__ in result.reason


def test_failure_reason_carries_miros_code_and_message():
    exc = MiroBadRequest("Only one of width or height", status=400, code="invalidParameters", method="POST", path="/v2/boards/b/images")
    reason = retry.plan(exc, 1, since=NOW, now=NOW).reason
    assert "400 invalidParameters: Only one of width or height" in reason

