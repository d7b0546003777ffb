"""The tunnel's circuit: whether new pictures may go by URL. Pure: no I/O, the clock is a parameter.

A tunnel that does not deliver is set aside (the circuit *opens*) when

* the probe sees an ngrok error page (the free plan's warning page, offline, over quota): the probe
  is then the judge, and the next passing probe closes the circuit (``until`` is None);
* ``failures`` verifications fail within ``window`` seconds while the probe still passes (Miro's
  fetcher is treated differently from ours). The probe alone cannot be trusted then, so the circuit
  stays open ``cooldown`` seconds (``until``) before a passing probe may close it.

While it is open new pictures go by file; pictures already created by URL are still verified.
The state is stored as JSON (:meth:`Circuit.to_json`) under ``keys.TUNNEL_CIRCUIT``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from enum import Enum


class CircuitState(str, Enum):
    CLOSED = "closed"  # the URL route is used
    OPEN = "open"  # the tunnel is set aside: new pictures go by file


NGROK_PAGES = frozenset({"warning-page", "offline", "quota"})
"""Probe reasons for which ngrok itself answered instead of the image server (see shared.tunnel.judge)."""
VERIFICATIONS_FAILED = "verifications-failed"


@dataclass(frozen=True)
class Limits:
    failures: int  # K: failed verifications that open the circuit...
    window: float  # ...within this many seconds
    cooldown: float  # seconds a circuit opened by failed verifications stays open


@dataclass(frozen=True)
class Circuit:
    state: CircuitState = CircuitState.CLOSED
    reason: str = ""
    since: float = 0.0
    until: float | None = None
    failures: tuple[float, ...] = ()
    """When recent verifications failed (closed circuit only; pruned to the window)."""

    @property
    def is_open(self) -> bool:
        return self.state is CircuitState.OPEN

    def to_json(self) -> str:
        return json.dumps({"state": self.state.value, "reason": self.reason, "since": self.since, "until": self.until,
                           "failures": list(self.failures)})

    @classmethod
    def from_json(cls, raw: str | bytes | None) -> Circuit:
        if not raw:
            return cls()
        data = json.loads(raw)
        return cls(CircuitState(data["state"]), str(data.get("reason", "")), float(data.get("since", 0.0)),
                   None if data.get("until") is None else float(data["until"]), tuple(float(t) for t in data.get("failures", ())))


def after_probe(circuit: Circuit, ok: bool, reason: str, now: float) -> Circuit:
    """The circuit once a probe answered ``ok`` / ``reason``."""
    if not circuit.is_open:
        if not ok and reason in NGROK_PAGES:
            return Circuit(CircuitState.OPEN, reason, now, None)
        return circuit
    if ok and (circuit.until is None or now >= circuit.until):
        return Circuit(CircuitState.CLOSED, "probe passed", now, None)
    if not ok and reason in NGROK_PAGES and circuit.reason != reason and circuit.until is None:
        return replace(circuit, reason=reason)  # still open, for the reason the probe sees now
    return circuit


def after_failed_verification(circuit: Circuit, now: float, limits: Limits) -> Circuit:
    """The circuit once a verification found that Miro did not fetch a picture."""
    if circuit.is_open:
        return circuit
    recent = tuple(t for t in circuit.failures if now - t < limits.window) + (now,)
    if len(recent) >= limits.failures:
        return Circuit(CircuitState.OPEN, VERIFICATIONS_FAILED, now, now + limits.cooldown)
    return replace(circuit, failures=recent)


def allows_url(circuit: Circuit) -> bool:
    return not circuit.is_open
