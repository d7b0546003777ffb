"""How long `miro-sync up` waits before starting a service again after it exited (pure, no I/O).

Compose's ``restart:`` policy, as Docker applies it: the first restart comes quickly, each exit
that follows a short run doubles the wait (a crash loop does not spin), up to a cap, and a service
that ran for a while counts as healthy again, so its next exit is restarted quickly.
"""

from __future__ import annotations

from dataclasses import dataclass

FIRST_DELAY = 0.5
"""Seconds before the first restart (Docker: 0.1 s; a Python service takes longer than that to fail again)."""
MAX_DELAY = 30.0
"""Seconds, the cap of a crash loop's wait."""
HEALTHY_AFTER = 10.0
"""Seconds of running after which an exit starts the backoff over (Docker's value)."""


@dataclass
class Backoff:
    """One service's restarts: ``delay(ran_for)`` after each exit."""

    first: float = FIRST_DELAY
    cap: float = MAX_DELAY
    healthy_after: float = HEALTHY_AFTER
    quick_exits: int = 0
    """Exits in a row, each after less than ``healthy_after`` seconds of running."""

    def delay(self, ran_for: float) -> float:
        """Seconds to wait before starting again a service that exited after ``ran_for`` seconds."""
        if ran_for >= self.healthy_after:
            self.quick_exits = 0
        delay = min(self.cap, self.first * 2**self.quick_exits)
        self.quick_exits += 1
        return delay
