"""One Miro credit budget for every worker, kept in Redis.

Miro counts credits per user and app: 100,000 a minute, an image create or update costs 100, a
delete 500, a board read 50. Every worker process (on any host) draws from the same token bucket,
so ten workers together stay under the budget that one would.

Usage::

    limiter = CreditLimiter.from_settings(redis, settings)
    client = MiroClient(settings.miro_api_url, token, on_rate=limiter.observe)
    limiter.acquire(Cost.IMAGE_WRITE)      # blocks (sleeping, not spinning) until the credits are there
    client.create_image_file(...)
    # on MiroRateLimited: limiter.pause_after(exc): every worker waits for the server's reset

The bucket:

* budget ``B = credits_per_minute * margin`` a minute, refilled continuously at ``B/60`` a second;
* capacity ``C = B * burst``. Over any stretch of one minute the bucket grants at most ``C + B``.
  A fixed-window server (Miro's window, and the sandbox's, is a minute) allows ``L`` per window
  whatever the timing, so ``C + B <= L`` keeps us under it even when a full bucket is drained
  just after a window opens. With the default margin 0.95 that means ``burst <= 0.05/0.95``;
  :data:`DEFAULT_BURST` = 0.05 gives ``C + B = 0.9975 L`` and still lets ~47 uploads start at
  once after an idle spell (a folder dropped in gets a fast start, then the steady rate).
* A cost above the capacity (a 500-credit delete with a tiny budget) is granted when the bucket
  is full and leaves it in debt, so it waits its turn instead of waiting for ever.

Following the server: :meth:`observe` takes each response's ``X-RateLimit-*`` headers. With a
reset time, the server's window (remaining, reset) is kept beside the bucket and every grant must
fit both, so another app spending the same token's credits slows us down too. Without one, the
bucket is cut to the server's remaining. :meth:`pause_until` (after a 429) stops every worker
until then. All times are Redis ``TIME`` so workers on different hosts agree.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import redis

from . import keys, retry
from .log import get_logger

if TYPE_CHECKING:
    from .miro import MiroError, RateInfo
    from .settings import Settings

__all__ = ["Cost", "CreditLimiter", "DEFAULT_BURST", "RateLimitTimeout"]

DEFAULT_BURST = 0.05
"""Capacity of the bucket as a fraction of the per-minute budget (see the module docstring)."""

SAME_WINDOW = 1.0
"""Seconds: two reset times closer than this are the same server window (delta resets jitter)."""

_log = get_logger("ratelimit")


class Cost:
    """Credits per call (Miro rate-limit levels: 1 = 50, 2 = 100, 3 = 500)."""

    IMAGE_WRITE = 100  # create or update an image, file or URL (Level 2)
    IMAGE_GET = 50  # get an image item (Level 1)
    RESOURCE_GET = 50  # download data.imageUrl; Miro documents no level, assume Level 1
    LIST_PAGE = 100  # one page of GET /items (Level 2)
    BOARD_GET = 50  # GET /boards/{id} (Level 1)
    FRAME_CREATE = 100  # (Level 2)
    FRAME_UPDATE = 100  # resize a growing frame (Level 2)
    DELETE = 500  # (Level 3)


class RateLimitTimeout(TimeoutError):
    """``acquire`` could not get the credits within its ``timeout``."""

    def __init__(self, cost: float, wait: float, reason: str) -> None:
        self.cost = cost
        self.wait = wait
        self.reason = reason  # "bucket", "server" (its window is spent) or "paused" (after a 429)
        super().__init__(f"{cost:g} credits not available for {wait:.3f}s more ({reason})")


# Shared prologue: Redis time, and the bucket brought up to date (refill since ts, server window
# dropped once its reset has passed).
_LOAD = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts', 'srv_remaining', 'srv_reset')
local tokens = tonumber(b[1]) or capacity
local ts = tonumber(b[2]) or now
local srv_remaining = tonumber(b[3])
local srv_reset = tonumber(b[4])
if now > ts then tokens = math.min(capacity, tokens + (now - ts) * rate) end
if srv_reset and srv_reset <= now then srv_remaining = nil; srv_reset = nil end
"""

# Shared epilogue: write the bucket back; it expires when it would be full again anyway.
_STORE = """
redis.call('HSET', KEYS[1], 'tokens', tokens, 'ts', now)
local ttl = (capacity - tokens) / rate
if srv_reset then
  redis.call('HSET', KEYS[1], 'srv_remaining', srv_remaining, 'srv_reset', srv_reset)
  ttl = math.max(ttl, srv_reset - now)
else
  redis.call('HDEL', KEYS[1], 'srv_remaining', 'srv_reset')
end
redis.call('PEXPIRE', KEYS[1], math.ceil(ttl * 1000) + 1000)
"""

# KEYS: bucket, pause.  ARGV: rate, capacity, cost.  -> {1, tokens_left, ''} or {0, wait, reason}
_ACQUIRE = _LOAD + """
local cost = tonumber(ARGV[3])
local pause = tonumber(redis.call('GET', KEYS[2]) or '0')
if pause > now then return {0, tostring(pause - now), 'paused'} end
local wait, reason = 0, 'bucket'
local need = math.min(cost, capacity)
if tokens < need then wait = (need - tokens) / rate end
if srv_remaining and srv_remaining < cost and srv_reset - now > wait then
  wait, reason = srv_reset - now, 'server'
end
if wait <= 0 then
  tokens = tokens - cost
  if srv_remaining then srv_remaining = srv_remaining - cost end
end
""" + _STORE + """
if wait <= 0 then return {1, tostring(tokens), ''} end
return {0, tostring(wait), reason}
"""

# KEYS: bucket.  ARGV: rate, capacity, remaining, reset_at ('' when unknown).  -> tokens
_OBSERVE = _LOAD + """
local remaining = tonumber(ARGV[3])
local reset_at = tonumber(ARGV[4])
if not reset_at then
  tokens = math.min(tokens, remaining)
elseif reset_at > now then
  if srv_reset and math.abs(reset_at - srv_reset) < tonumber(ARGV[5]) then
    srv_remaining = math.min(srv_remaining, remaining)
  elseif not srv_reset or reset_at > srv_reset then
    srv_remaining, srv_reset = remaining, reset_at
  end
end
""" + _STORE + """
return tostring(tokens)
"""

# KEYS: pause.  ARGV: until (UNIX seconds).  A pause is only ever extended, never cut short.
_PAUSE = """
local until_ = tonumber(ARGV[1])
local current = redis.call('GET', KEYS[1]) or '0'
if until_ > tonumber(current) then
  redis.call('SET', KEYS[1], ARGV[1])
  redis.call('PEXPIREAT', KEYS[1], math.ceil(until_ * 1000) + 1000)
  return ARGV[1]
end
return current
"""


class CreditLimiter:
    """The shared credit bucket. Safe to use from many threads and processes at once."""

    def __init__(
        self,
        redis_client: redis.Redis,
        credits_per_minute: float,
        margin: float,
        burst: float = DEFAULT_BURST,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if credits_per_minute <= 0 or not 0 < margin <= 1 or burst <= 0:
            raise ValueError("credits_per_minute must be > 0, margin in (0, 1], burst > 0")
        self.redis = redis_client
        self.budget = credits_per_minute * margin
        self.rate = self.budget / 60.0
        self.capacity = self.budget * burst
        self._sleep = sleep
        self._acquire = redis_client.register_script(_ACQUIRE)
        self._observe = redis_client.register_script(_OBSERVE)
        self._pause = redis_client.register_script(_PAUSE)

    @classmethod
    def from_settings(cls, redis_client: redis.Redis, settings: Settings, sleep: Callable[[float], None] = time.sleep) -> CreditLimiter:
        return cls(redis_client, settings.credits_per_minute, settings.rate_safety_margin, sleep=sleep)

    def now(self) -> float:
        """Redis ``TIME`` as UNIX seconds: the clock every worker shares."""
        seconds, micros = self.redis.time()
        return seconds + micros / 1_000_000

    def acquire(self, cost: float, timeout: float | None = None) -> float:
        """Take ``cost`` credits, sleeping until they are there; return the seconds waited.

        ``timeout`` bounds the wait (0: only if available right now); past it, raise
        :class:`RateLimitTimeout` at once rather than sleep for nothing.
        """
        started = time.monotonic()
        while True:
            granted, value, reason = self._acquire(
                keys=[keys.RATE_BUCKET, keys.RATE_PAUSE_UNTIL], args=[repr(self.rate), repr(self.capacity), repr(float(cost))]
            )
            waited = time.monotonic() - started
            if int(granted):
                if waited >= 1.0:
                    _log.info("rate.waited", cost=cost, seconds=round(waited, 3))
                return waited
            wait = float(value)
            if timeout is not None and waited + wait > timeout:
                raise RateLimitTimeout(cost, wait, _text(reason))
            # A little jitter so workers woken by the same refill do not all ask at once.
            self._sleep(wait + random.uniform(0, min(0.05, wait / 4)))

    def observe(self, info: RateInfo) -> None:
        """Follow the server's ``X-RateLimit-*`` (pass as ``MiroClient(on_rate=...)``)."""
        if info.remaining is None:
            return
        reset = "" if info.reset_at is None else repr(float(info.reset_at))
        self._observe(
            keys=[keys.RATE_BUCKET],
            args=[repr(self.rate), repr(self.capacity), str(int(info.remaining)), reset, repr(SAME_WINDOW)],
        )

    def pause_until(self, until: float) -> float:
        """No worker gets credits before UNIX time ``until`` (extends, never shortens, a pause)."""
        effective = float(self._pause(keys=[keys.RATE_PAUSE_UNTIL], args=[repr(float(until))]))
        if effective == until:
            _log.warning("rate.paused", until=round(until, 3), seconds=round(until - self.now(), 3))
        return effective

    def pause_after(self, exc: MiroError, attempt: int = 1) -> float:
        """After a 429: pause everyone until the server's reset, else ``Retry-After``, else backoff."""
        return self.pause_until(retry.resume_at(exc, self.now(), attempt))

    def paused_until(self) -> float | None:
        """The UNIX time of a pause in force, if any."""
        value = self.redis.get(keys.RATE_PAUSE_UNTIL)
        if value is None:
            return None
        until = float(value)
        return until if until > self.now() else None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
