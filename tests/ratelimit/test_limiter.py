"""The shared credit bucket against a real Redis: budget, pause, following the server.

Budgets are picked so refill is either negligible (count the grants exactly) or bounded by the
Redis clock (grants <= capacity + rate * elapsed); no test asserts how long anything took.
"""

from __future__ import annotations

import multiprocessing
import threading

import pytest
import redis

from shared import keys
from shared.miro import RateInfo
from shared.ratelimit import Cost, CreditLimiter, RateLimitTimeout

FORK = multiprocessing.get_context("fork")


def frozen(redis_client, capacity: float) -> CreditLimiter:
    """A bucket of ``capacity`` that refills 1 credit a minute: grants can be counted exactly."""
    return CreditLimiter(redis_client, credits_per_minute=1, margin=1.0, burst=capacity)


def grab(limiter: CreditLimiter, cost: float, tries: int) -> tuple[int, list[str]]:
    """Non-blocking attempts; the number granted and the reasons of the refusals."""
    granted, reasons = 0, []
    for _ in range(tries):
        try:
            limiter.acquire(cost, timeout=0)
            granted += 1
        except RateLimitTimeout as exc:
            reasons.append(exc.reason)
    return granted, reasons


def _worker(url: str, per_minute: float, burst: float, cost: float, tries: int, blocking: bool, start, results) -> None:
    limiter = CreditLimiter(redis.Redis.from_url(url), per_minute, 1.0, burst=burst)
    start.wait()
    if blocking:
        for _ in range(tries):
            limiter.acquire(cost)
        results.put(tries)
    else:
        results.put(grab(limiter, cost, tries)[0])


def run_processes(url: str, n: int, per_minute: float, burst: float, cost: float, tries: int, blocking: bool) -> int:
    start, results = FORK.Barrier(n), FORK.Queue()
    procs = [FORK.Process(target=_worker, args=(url, per_minute, burst, cost, tries, blocking, start, results)) for _ in range(n)]
    for p in procs:
        p.start()
    total = sum(results.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(10)
        assert p.exitcode == 0
    return total


def test_processes_racing_for_credits_get_exactly_the_bucket(redis_url, redis_client):
    # 8 processes x 40 tries of 100 credits against a 1,000-credit bucket: exactly 10 grants.
    # A read-then-write bucket (not atomic) or one bucket per process grants more.
    assert run_processes(redis_url, n=8, per_minute=1, burst=1000, cost=100, tries=40, blocking=False) == 10


def test_threads_sharing_one_limiter_get_exactly_the_bucket(redis_client):
    limiter = frozen(redis_client, 500)
    counts: list[int] = []
    threads = [threading.Thread(target=lambda: counts.append(grab(limiter, 50, 30)[0])) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(counts) == 10


def test_blocking_processes_never_exceed_capacity_plus_refill(redis_url, redis_client):
    per_minute, capacity, cost = 60_000.0, 200.0, 50.0  # 1,000 credits a second
    limiter = CreditLimiter(redis_client, per_minute, 1.0, burst=capacity / per_minute)
    t0 = limiter.now()
    total = run_processes(redis_url, n=4, per_minute=per_minute, burst=capacity / per_minute, cost=cost, tries=6, blocking=True)
    elapsed = limiter.now() - t0
    assert total == 24  # every blocking acquire returned
    assert total * cost <= capacity + limiter.rate * elapsed


def test_default_burst_keeps_a_fixed_window_under_the_limit(redis_client):
    # Capacity plus a minute of refill is what a fixed-window server can see in one window.
    limiter = CreditLimiter(redis_client, 100_000, 0.95)
    assert limiter.capacity + limiter.rate * 60 <= 100_000
    assert limiter.capacity >= 10 * Cost.IMAGE_WRITE  # a dropped folder still starts fast


def test_a_pause_set_by_one_client_holds_every_other(redis_url, redis_client):
    setter = CreditLimiter(redis.Redis.from_url(redis_url), 60_000, 1.0)
    other = CreditLimiter(redis.Redis.from_url(redis_url), 60_000, 1.0)
    # Long enough that starting three processes on a loaded machine still happens inside it.
    setter.pause_until(setter.now() + 60)

    granted, reasons = grab(other, 1, 5)
    assert granted == 0 and set(reasons) == {"paused"}
    assert run_processes(redis_url, n=3, per_minute=60_000, burst=1, cost=1, tries=5, blocking=False) == 0

    # A pause is never shortened, so the sleep-through part gets a short pause of its own.
    redis_client.delete(keys.RATE_PAUSE_UNTIL)
    until = setter.pause_until(setter.now() + 0.3)
    other.acquire(1)  # sleeps through the pause, then goes
    assert other.now() >= until
    assert other.paused_until() is None


def test_a_pause_is_extended_never_shortened(redis_client):
    limiter = frozen(redis_client, 1000)
    late = limiter.now() + 30
    limiter.pause_until(late)
    assert limiter.pause_until(late - 20) == late
    assert limiter.paused_until() == late
    with pytest.raises(RateLimitTimeout) as info:
        limiter.acquire(1, timeout=5)  # would need 30 s: refused at once, not after 5
    assert info.value.reason == "paused" and info.value.wait > 25


def test_observe_without_reset_cuts_the_bucket_to_the_servers_remaining(redis_client):
    limiter = frozen(redis_client, 1000)
    limiter.observe(RateInfo(limit=100_000, remaining=250, reset_at=None))
    assert grab(limiter, 100, 5)[0] == 2


def test_observe_never_loosens_the_bucket(redis_client):
    limiter = frozen(redis_client, 300)
    limiter.observe(RateInfo(limit=100_000, remaining=99_000, reset_at=None))
    limiter.observe(RateInfo(limit=100_000, remaining=99_000, reset_at=limiter.now() + 30))
    assert grab(limiter, 100, 5)[0] == 3


def test_observe_with_reset_holds_grants_to_the_servers_window(redis_client):
    # Another app spent most of the token's window: the server says 250 remain for 30 s.
    limiter = CreditLimiter(redis_client, 60_000, 1.0)  # our own bucket refills 1,000/s
    now = limiter.now()
    limiter.observe(RateInfo(limit=100_000, remaining=250, reset_at=now + 30))
    granted, reasons = grab(limiter, 100, 5)
    assert granted == 2 and set(reasons) == {"server"}

    # A late answer from the same window cannot give credits back...
    limiter.observe(RateInfo(limit=100_000, remaining=250, reset_at=now + 30.4))
    assert grab(limiter, 100, 1)[0] == 0
    # ...but the next window starts fresh.
    limiter.observe(RateInfo(limit=100_000, remaining=100_000, reset_at=now + 90))
    assert grab(limiter, 100, 3)[0] == 3


def test_server_window_ends_at_its_reset(redis_client):
    limiter = CreditLimiter(redis_client, 60_000, 1.0)
    reset = limiter.now() + 2  # the refusal below must come before it, two Redis calls later: wide for a loaded machine
    limiter.observe(RateInfo(limit=100_000, remaining=0, reset_at=reset))
    with pytest.raises(RateLimitTimeout) as info:
        limiter.acquire(100, timeout=0)
    assert info.value.reason == "server"
    limiter.acquire(100)
    assert limiter.now() >= reset


def test_cost_above_capacity_is_granted_from_a_full_bucket_then_waits(redis_client):
    limiter = frozen(redis_client, 100)
    limiter.acquire(Cost.DELETE, timeout=0)  # 500 > capacity: allowed once, leaves a debt
    with pytest.raises(RateLimitTimeout) as info:
        limiter.acquire(1, timeout=0)
    assert info.value.reason == "bucket"


def test_bucket_lives_in_the_shared_key_and_expires(redis_client):
    limiter = CreditLimiter(redis_client, 60_000, 1.0)
    limiter.acquire(100)
    assert redis_client.exists(keys.RATE_BUCKET)
    assert 0 < redis_client.pttl(keys.RATE_BUCKET) <= 60_000
