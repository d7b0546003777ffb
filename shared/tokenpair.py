"""An OAuth token pair and when to refresh it: pure logic, no I/O (the store is :mod:`shared.tokens`).

Miro's expiring tokens live an hour (``expires_in: 3599``) and every refresh returns a new pair
and kills the old one. A pair is refreshed *ahead* of its expiry, so calls in flight never meet
an expired token: a quarter of its lifetime early, at most five minutes.

At rest the pair is JSON, or a Fernet token of that JSON when a key is set (``MIRO_TOKEN_KEY``):
the `cryptography` library's authenticated encryption, not hand-written crypto.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from enum import Enum
from typing import Any

REFRESH_AHEAD_SHARE = 0.25
"""Refresh when less than this share of the pair's lifetime is left..."""
REFRESH_AHEAD_MAX = 300.0
"""...but never more than this many seconds before the expiry (Miro's hour: five minutes early)."""


class Freshness(str, Enum):
    FRESH = "fresh"  # use it
    DUE = "due"  # still valid: one process refreshes now, the others go on with it
    EXPIRED = "expired"  # unusable: wait for a new pair


class PairState(str, Enum):
    VALID = "valid"
    REFUSED = "refused"  # Miro answered invalid_grant to its refresh token: only `miro-sync login` helps


class PairSource(str, Enum):
    ENV = "env"  # seeded from MIRO_REFRESH_TOKEN (and MIRO_ACCESS_TOKEN) when nothing was stored
    REFRESH = "refresh"
    LOGIN = "login"


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_at: float | None  # UNIX time; None: unknown (a pair from .env), used until Miro refuses it
    lifetime: float | None = None  # seconds, as ``expires_in`` said when the pair was minted
    source: PairSource = PairSource.REFRESH
    obtained_at: float = 0.0

    def __repr__(self) -> str:
        return f"TokenPair(expires_at={self.expires_at!r}, source={self.source.value})"

    @classmethod
    def from_response(cls, body: dict[str, Any], now: float, source: PairSource) -> TokenPair:
        """A token endpoint answer (``access_token``, ``refresh_token``, ``expires_in``) as a pair."""
        expires_in = body.get("expires_in")
        lifetime = float(expires_in) if isinstance(expires_in, (int, float)) and expires_in > 0 else None
        return cls(
            access_token=str(body["access_token"]),
            refresh_token=str(body.get("refresh_token") or ""),
            expires_at=None if lifetime is None else now + lifetime,
            lifetime=lifetime,
            source=source,
            obtained_at=now,
        )

    def seconds_left(self, now: float) -> float | None:
        return None if self.expires_at is None else self.expires_at - now


def refresh_ahead(pair: TokenPair) -> float:
    """Seconds before the expiry at which the pair is due for a refresh."""
    lifetime = pair.lifetime or REFRESH_AHEAD_MAX * 4
    return min(REFRESH_AHEAD_MAX, lifetime * REFRESH_AHEAD_SHARE)


def assess(pair: TokenPair, now: float | None = None) -> Freshness:
    if not pair.access_token:
        return Freshness.EXPIRED
    left = pair.seconds_left(time.time() if now is None else now)
    if left is None:
        return Freshness.FRESH
    if left <= 0:
        return Freshness.EXPIRED
    return Freshness.DUE if left <= refresh_ahead(pair) else Freshness.FRESH


# --- at rest ------------------------------------------------------------------------------------


class PairCodec:
    """The pair as stored: JSON, or Fernet-encrypted JSON when ``key`` is given."""

    def __init__(self, key: str | None = None) -> None:
        self._fernet = None
        if key:
            from cryptography.fernet import Fernet

            self._fernet = Fernet(key.encode())

    @property
    def encrypted(self) -> bool:
        return self._fernet is not None

    def dump(self, pair: TokenPair) -> str:
        data = asdict(pair) | {"source": pair.source.value}
        text = json.dumps(data, separators=(",", ":"))
        return self._fernet.encrypt(text.encode()).decode() if self._fernet else text

    def load(self, stored: str) -> TokenPair:
        """Raises :class:`UnreadablePair` for a blob this codec cannot read (wrong key, or none)."""
        text = stored
        if self._fernet is not None:
            from cryptography.fernet import InvalidToken

            try:
                text = self._fernet.decrypt(stored.encode()).decode()
            except InvalidToken:
                raise UnreadablePair("the stored Miro token cannot be decrypted with MIRO_TOKEN_KEY") from None
        try:
            data = json.loads(text)
            return replace(TokenPair(**{k: v for k, v in data.items() if k != "source"}), source=PairSource(data["source"]))
        except (ValueError, TypeError, KeyError):
            hint = " (it looks encrypted: set MIRO_TOKEN_KEY)" if self._fernet is None else ""
            raise UnreadablePair(f"the stored Miro token is unreadable{hint}") from None


class UnreadablePair(ValueError):
    """The stored pair cannot be decoded; ``str()`` says why, never the value."""
