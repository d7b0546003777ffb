"""The limiter following the sandbox's real X-RateLimit-* answers through MiroClient(on_rate=...)."""

from __future__ import annotations

import pytest
import redis as redis_lib

from services.sandbox.server import SandboxConfig, start_sandbox
from shared.miro import MiroClient, MiroRateLimited
from shared.ratelimit import Cost, CreditLimiter, RateLimitTimeout

TOKEN = "follow-SECRET-token-42"
BOARD = "follow-board="


@pytest.fixture
def sandbox_500():
    """Miro with a 500-credit minute: ten board reads."""
    handle = start_sandbox(SandboxConfig(port=0, tokens={TOKEN: {"boards:read", "boards:write"}}, boards=[BOARD],
                                         credits_per_minute=500))
    yield handle
    handle.stop()


def calls_until_refused(limiter: CreditLimiter, client: MiroClient, tries: int) -> tuple[int, set[str]]:
    done, reasons = 0, set()
    for _ in range(tries):
        try:
            limiter.acquire(Cost.BOARD_GET, timeout=0)
        except RateLimitTimeout as exc:
            reasons.add(exc.reason)
            continue
        client.get_board(BOARD)  # a 429 here would raise and fail the test
        done += 1
    return done, reasons


def test_limiter_spends_exactly_the_servers_window_without_a_429(sandbox_500, redis_client):
    # Configured for Miro's 100,000: our own bucket alone would allow far more than the server.
    limiter = CreditLimiter(redis_client, 100_000, 0.95)
    client = MiroClient(sandbox_500.url, TOKEN, on_rate=limiter.observe)

    done, reasons = calls_until_refused(limiter, client, 20)

    assert done == 10 and reasons == {"server"}
    assert sandbox_500.stats()["status_counts"] == {"200": 10}


def test_credits_spent_by_another_app_on_the_same_token_slow_us_down(sandbox_500, redis_client):
    other_app = MiroClient(sandbox_500.url, TOKEN)
    for _ in range(6):
        other_app.get_board(BOARD)  # 300 of the 500 credits gone, behind our limiter's back
    limiter = CreditLimiter(redis_client, 100_000, 0.95)
    client = MiroClient(sandbox_500.url, TOKEN, on_rate=limiter.observe)

    done, reasons = calls_until_refused(limiter, client, 20)

    assert done == 4 and reasons == {"server"}  # one blind call, then the 150 the server says are left
    assert "429" not in sandbox_500.stats()["status_counts"]


def test_a_429_pauses_every_worker_until_the_servers_reset(sandbox_500, redis_url, redis_client):
    limiter = CreditLimiter(redis_client, 100_000, 0.95)
    other_worker = CreditLimiter(redis_lib.Redis.from_url(redis_url), 100_000, 0.95)
    client = MiroClient(sandbox_500.url, TOKEN)  # no on_rate: the pause alone must hold everyone
    sandbox_500.set_faults(error_status=429)
    with pytest.raises(MiroRateLimited) as info:
        client.get_board(BOARD)

    until = limiter.pause_after(info.value)

    assert until == info.value.rate.reset_at
    with pytest.raises(RateLimitTimeout) as held:
        other_worker.acquire(Cost.IMAGE_WRITE, timeout=0)
    assert held.value.reason == "paused" and held.value.wait > 0
