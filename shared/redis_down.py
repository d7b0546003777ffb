"""What every command and service says when Redis does not answer: one line that names REDIS_URL.

A command prints it on stderr and stops (exit 2). A service that waits for Redis (worker,
watcher) logs it as ``redis.waiting`` and again every :data:`REPEAT_SECONDS`, so the last lines of
a log show why nothing moves; a server (image server, dashboard, metrics) logs ``redis.unavailable``
and answers 503 with the line where it needs Redis. The address is shown without its password.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis

from .log import EventLogger

REPEAT_SECONDS = 30.0
"""While a service waits for Redis, its waiting line comes again this often (seconds)."""

_CONNECT_ERROR = re.compile(r"^Error -?\d+ connecting to \S+?\.? (.+?)\.?$")


def shown(url: str) -> str:
    """``url`` with its password (in the user part or the query) replaced by ``***``."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        user, _, where = netloc.rpartition("@")
        if ":" in user:
            user = user.split(":", 1)[0] + ":***"
        netloc = f"{user}@{where}"
    query = urlencode([(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)], safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def reason(exc: redis.RedisError) -> str:
    """The short cause: "connection refused", "timed out", the server's answer."""
    text = " ".join(str(exc).split())
    if isinstance(exc, redis.TimeoutError):
        return "timed out"
    found = _CONNECT_ERROR.match(text)
    return (found.group(1) if found else text or type(exc).__name__).rstrip(".").lower()


def fix(exc: redis.RedisError) -> str:
    if isinstance(exc, (redis.AuthenticationError, redis.exceptions.AuthorizationError)):
        return "put Redis's password in REDIS_URL (redis://:PASSWORD@host:port/0)"
    return "start Redis, or fix REDIS_URL"


def problem(url: str, exc: redis.RedisError) -> str:
    """The one line a command prints."""
    if isinstance(exc, (redis.ConnectionError, redis.TimeoutError)):
        return f"no answer from Redis at REDIS_URL={shown(url)} ({reason(exc)}); {fix(exc)}"
    return f"Redis at REDIS_URL={shown(url)} answered an error ({reason(exc)}); check REDIS_URL and the Redis server"


def fields(url: str, exc: redis.RedisError) -> dict[str, Any]:
    """The same, as a service's log fields."""
    return {"redis_url": shown(url), "error": reason(exc), "fix": fix(exc)}


class Reminder:
    """True at once, then at most every ``every`` seconds: a line worth repeating, not a flood."""

    def __init__(self, every: float = REPEAT_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self.clock = clock
        self.last: float | None = None

    def due(self) -> bool:
        now = self.clock()
        if self.last is not None and now - self.last < self.every:
            return False
        self.last = now
        return True


def wait_until_answers(
    connection: redis.Redis,
    url: str,
    log: EventLogger,
    pause: Callable[[float], object],
    give_up_after: float | None = None,
    on_failure: Callable[[], None] = lambda: None,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Ping until Redis answers (True); False when ``pause`` returns true (asked to stop) or time is up.

    ``pause(seconds)`` waits between tries: ``threading.Event.wait`` (true once set) or ``time.sleep``.
    Compose may start a service before Redis, so waiting is normal; the line says what it waits for.
    """
    deadline = None if give_up_after is None else clock() + give_up_after
    reminder = Reminder(clock=clock)
    delay = 0.2
    while True:
        try:
            connection.ping()
            return True
        except redis.RedisError as exc:
            on_failure()
            if deadline is not None and clock() >= deadline:
                log.error("redis.unavailable", **fields(url, exc), waited=give_up_after)
                return False
            if reminder.due():
                log.warning("redis.waiting", **fields(url, exc))
            if pause(delay):
                return False
            delay = min(delay * 2, 5.0)


def say_if_down(connection: redis.Redis, url: str, log: EventLogger, meanwhile: str) -> None:
    """A server starts whatever Redis does: one line if it is not there yet, and what it does ``meanwhile``."""
    try:
        connection.ping()
    except redis.RedisError as exc:
        log.warning("redis.unavailable", **fields(url, exc), meanwhile=meanwhile)
