"""Injected faults (``POST /_sandbox/faults``). Pure logic; the clock is injected.

- ``latency_ms``: every API request waits this long before it is handled.
- ``error_status`` (400..599): requests are answered with this status and a Miro error body,
  for ``error_for_seconds`` from now, or on every ``error_every``-th request (counted from when the
  fault was set; both together: every N-th request inside the window), or, with neither, until cleared.
- ``drop_connections_for_seconds``: requests are read and the socket is closed without an answer.
- ``credits_per_minute`` is applied by the server to its credit buckets (see ``server.py``).

A POST changes only the keys it names; DELETE goes back to the start-up values.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal, overload

KEYS = ("latency_ms", "error_status", "error_for_seconds", "error_every", "drop_connections_for_seconds",
        "credits_per_minute")


class FaultError(ValueError):
    """A fault request the sandbox cannot apply; the message names the key."""


@dataclass
class _State:
    latency_ms: int = 0
    error_status: int | None = None
    error_until: float | None = None
    error_every: int | None = None
    error_counter: int = 0
    drop_until: float | None = None


@overload
def _number(spec: dict[str, Any], key: str, minimum: float, integer: Literal[True]) -> int | None: ...
@overload
def _number(spec: dict[str, Any], key: str, minimum: float, integer: Literal[False]) -> float | None: ...
def _number(spec: dict[str, Any], key: str, minimum: float, integer: bool) -> float | None:
    value = spec.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and int(value) != value):
        raise FaultError(f"{key}: expected {'an integer' if integer else 'a number'}, got {value!r}")
    if value < minimum:
        raise FaultError(f"{key}: must be >= {minimum}, got {value}")
    return int(value) if integer else float(value)


class Faults:
    def __init__(self, latency_ms: int = 0, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._initial_latency = latency_ms
        self._state = _State(latency_ms=latency_ms)

    def apply(self, spec: dict[str, Any]) -> None:
        unknown = set(spec) - set(KEYS)
        if unknown:
            raise FaultError(f"unknown fault keys {sorted(unknown)}; known: {list(KEYS)}")
        latency = _number(spec, "latency_ms", 0, True)
        status = _number(spec, "error_status", 400, True)
        if status is not None and status > 599:
            raise FaultError(f"error_status: must be an HTTP error status (400..599), got {status}")
        for_seconds = _number(spec, "error_for_seconds", 0, False)
        every = _number(spec, "error_every", 1, True)
        drop = _number(spec, "drop_connections_for_seconds", 0, False)
        _number(spec, "credits_per_minute", 0, True)
        if (for_seconds is not None or every is not None) and status is None and self._state.error_status is None:
            raise FaultError("error_for_seconds/error_every: error_status is needed too")
        now = self._clock()
        with self._lock:
            s = self._state
            if latency is not None:
                s.latency_ms = latency
            if status is not None or for_seconds is not None or every is not None:
                s.error_status = status if status is not None else s.error_status
                s.error_until = now + for_seconds if for_seconds is not None else None
                s.error_every = every
                s.error_counter = 0
            if drop is not None:
                s.drop_until = now + drop

    def clear(self) -> None:
        with self._lock:
            self._state = _State(latency_ms=self._initial_latency)

    def latency_seconds(self) -> float:
        return self._state.latency_ms / 1000.0

    def should_drop(self) -> bool:
        until = self._state.drop_until
        return until is not None and self._clock() < until

    def error_status(self) -> int | None:
        """The status to answer this request with, or None; counts the request for ``error_every``."""
        with self._lock:
            s = self._state
            if s.error_status is None:
                return None
            if s.error_until is not None and self._clock() >= s.error_until:
                return None
            if s.error_every is None:
                return s.error_status
            s.error_counter += 1
            return s.error_status if s.error_counter % s.error_every == 0 else None

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            data = asdict(self._state)
        now = self._clock()
        for key, left_key in (("error_until", "error_for_seconds_left"), ("drop_until", "drop_connections_for_seconds_left")):
            until = data.pop(key)
            data[left_key] = None if until is None else max(0.0, until - now)
        return data
