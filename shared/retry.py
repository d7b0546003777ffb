"""Which failures to retry and when: pure functions, no I/O, no clock of their own.

==========================================  ==========  =========================================
failure                                     decision    next attempt
==========================================  ==========  =========================================
429 tooManyRequests                         RETRY       server's reset, else Retry-After, else backoff
5xx, 408, 425                               RETRY       backoff
timeout, refused/reset, broken body         RETRY       backoff
TimeoutError (our credit wait timed out)    RETRY       backoff
Redis unreachable                           RETRY       backoff
an exception with ``retryable = True``      RETRY       backoff (none of ours sets it today)
401, 403                                    HOLD_AUTH   none: workers stop taking jobs, keep them all
400, 404, 409, 413, other 4xx               FAIL        none: the job fails with Miro's code/message
anything else                               FAIL        none (a bug or a bad file; retrying won't fix)
==========================================  ==========  =========================================

The worker's "content busy" (another worker uploads the same bytes) is retried by the job itself
every 2 s, without a horizon (services/worker/tasks.py); it does not go through this table.

RETRY holds only until the horizon (``settings.retry_horizon``, a day by default) counted from
``since`` (the worker passes the job's first failure); the last attempt is placed at the horizon,
and after it the job fails. ``attempt`` numbers the retry being planned: 1 after the first failure.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum

import redis

from .miro import (
    MiroApiError,
    MiroAuthError,
    MiroError,
    MiroRateLimited,
    MiroServerError,
    MiroTransportError,
)

__all__ = [
    "DEFAULT_BASE",
    "DEFAULT_CAP",
    "DEFAULT_HORIZON",
    "Decision",
    "Plan",
    "backoff",
    "classify",
    "plan",
    "resume_at",
]

DEFAULT_BASE = 2.0
"""Seconds: the first backoff's upper bound."""
DEFAULT_CAP = 300.0
"""Seconds: no backoff is longer than this (5 minutes)."""
DEFAULT_HORIZON = 86_400
"""Seconds from the first failure after which a retryable failure becomes final (a day)."""

RETRYABLE_STATUS = frozenset({408, 425, 429})
"""4xx statuses that mean "not now" rather than "never" (besides every 5xx)."""


class Decision(str, Enum):
    RETRY = "retry"  # the same call may succeed later
    FAIL = "fail"  # it never will: the job fails with Miro's code and message
    HOLD_AUTH = "hold_auth"  # the token is refused: no job can succeed until a person fixes it


def classify(exc: BaseException) -> Decision:
    if isinstance(exc, MiroAuthError):
        return Decision.HOLD_AUTH
    if isinstance(exc, (MiroTransportError, MiroServerError, MiroRateLimited)):
        return Decision.RETRY
    if isinstance(exc, MiroApiError) and exc.status is not None and (exc.status in RETRYABLE_STATUS or exc.status >= 500):
        return Decision.RETRY
    # TimeoutError covers the credit limiter's RateLimitTimeout (imported there, not here: no cycle).
    if isinstance(exc, (TimeoutError, redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)):
        return Decision.RETRY
    if getattr(exc, "retryable", False) is True:
        return Decision.RETRY
    return Decision.FAIL


def backoff(
    attempt: int,
    base: float = DEFAULT_BASE,
    cap: float = DEFAULT_CAP,
    jitter: bool = True,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1 = the first retry).

    Exponential, capped, with "full jitter" (uniform in ``[0, min(cap, base * 2**(attempt-1))]``):
    workers that failed together (Miro down for everyone) come back spread out, not in a herd.
    """
    if attempt < 1:
        raise ValueError(f"attempt numbers the retry (1, 2, ...), got {attempt}")
    ceiling = min(cap, base * 2.0 ** min(attempt - 1, 64))  # the min keeps 2**n finite
    if not jitter:
        return ceiling
    return (rng or random).uniform(0.0, ceiling)


def resume_at(
    exc: MiroError,
    now: float,
    attempt: int,
    base: float = DEFAULT_BASE,
    cap: float = DEFAULT_CAP,
    rng: random.Random | None = None,
) -> float:
    """UNIX time at which Miro may be called again after ``exc`` (meant for a 429).

    The server's ``X-RateLimit-Reset`` first, then ``Retry-After``, then backoff: Miro documents
    the reset header; ``Retry-After`` is not documented for Miro but honoured when sent.
    """
    if exc.rate is not None and exc.rate.reset_at is not None and exc.rate.reset_at > now:
        return exc.rate.reset_at
    if exc.retry_after is not None:
        return now + exc.retry_after
    return now + backoff(attempt, base, cap, rng=rng)


@dataclass(frozen=True)
class Plan:
    decision: Decision
    delay: float  # seconds until the next attempt; 0 unless RETRY
    reason: str  # one line for the log and the failed job: what happened and why this decision


def plan(
    exc: BaseException,
    attempt: int,
    since: float,
    now: float,
    horizon: float = DEFAULT_HORIZON,
    base: float = DEFAULT_BASE,
    cap: float = DEFAULT_CAP,
    rng: random.Random | None = None,
) -> Plan:
    """What to do after ``exc``, ``attempt`` retries in, retrying allowed until ``since + horizon``."""
    decision = classify(exc)
    what = f"{type(exc).__name__}: {exc}"
    if decision is not Decision.RETRY:
        return Plan(decision, 0.0, what)
    deadline = since + horizon
    if now >= deadline:
        return Plan(Decision.FAIL, 0.0, f"gave up after {horizon:g}s of retries; last error {what}")
    if isinstance(exc, MiroRateLimited):
        delay = resume_at(exc, now, attempt, base, cap, rng) - now
    else:
        delay = backoff(attempt, base, cap, rng=rng)
    return Plan(Decision.RETRY, min(delay, deadline - now), what)

