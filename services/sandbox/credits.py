"""Miro's credit budget: a fixed one-minute window per token. Pure logic; the clock is injected.

A token's window opens with its first call and ends 60 s later; ``X-RateLimit-Reset`` is that end
as UNIX seconds. A call that costs more than what is left is refused (429) and charges nothing.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class RateState:
    limit: int
    remaining: int
    reset_at: int  # UNIX seconds

    def headers(self) -> dict[str, str]:
        return {"X-RateLimit-Limit": str(self.limit), "X-RateLimit-Remaining": str(self.remaining),
                "X-RateLimit-Reset": str(self.reset_at)}


class CreditBuckets:
    def __init__(self, credits_per_minute: int, clock: Callable[[], float] = time.time,
                 window_seconds: float = WINDOW_SECONDS) -> None:
        self.limit = credits_per_minute  # per window: a minute unless a drill shortens the window
        self.window_seconds = window_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int]] = {}  # token -> (window end, credits used)

    def _window(self, token: str, now: float) -> tuple[float, int]:
        end, used = self._windows.get(token, (0.0, 0))
        if now >= end:
            end, used = now + self.window_seconds, 0
        return end, used

    def _state(self, end: float, used: int) -> RateState:
        return RateState(self.limit, max(0, self.limit - used), math.ceil(end))

    def charge(self, token: str, cost: int) -> tuple[bool, RateState]:
        """Take ``cost`` credits from ``token``'s window if it has them."""
        with self._lock:
            now = self._clock()
            end, used = self._window(token, now)
            allowed = used + cost <= self.limit
            if allowed:
                used += cost
            self._windows[token] = (end, used)
            return allowed, self._state(end, used)

    def peek(self, token: str) -> RateState:
        """The state without charging (for answers given before a token is known)."""
        with self._lock:
            return self._state(*self._window(token, self._clock()))

    def exhaust(self, token: str) -> RateState:
        """Spend what is left (an injected 429 reports an empty window, as a real one would)."""
        with self._lock:
            end, _ = self._window(token, self._clock())
            self._windows[token] = (end, self.limit)
            return self._state(end, self.limit)

    def set_limit(self, credits_per_minute: int) -> None:
        """Change the budget now; credits already used in open windows still count."""
        with self._lock:
            self.limit = credits_per_minute

    def reset(self) -> None:
        with self._lock:
            self._windows.clear()
