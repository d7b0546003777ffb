"""The pure token logic: when a pair is due, and how it is kept at rest."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from shared.tokenpair import Freshness, PairCodec, PairSource, TokenPair, UnreadablePair, assess, refresh_ahead


def pair(expires_at: float | None, lifetime: float | None = 3599.0, access: str = "at-secret-1") -> TokenPair:
    return TokenPair(access, "rt-secret-1", expires_at, lifetime, PairSource.REFRESH, 0.0)


def test_an_hour_token_is_refreshed_five_minutes_early():
    p = pair(1000.0 + 3599)
    assert refresh_ahead(p) == 300
    assert assess(p, now=1000.0) is Freshness.FRESH
    assert assess(p, now=1000.0 + 3599 - 301) is Freshness.FRESH
    assert assess(p, now=1000.0 + 3599 - 299) is Freshness.DUE
    assert assess(p, now=1000.0 + 3599) is Freshness.EXPIRED


def test_a_short_token_is_refreshed_a_quarter_of_its_life_early():
    p = pair(104.0, lifetime=4.0)
    assert refresh_ahead(p) == 1.0
    assert assess(p, now=102.9) is Freshness.FRESH
    assert assess(p, now=103.1) is Freshness.DUE


def test_a_pair_from_env_of_unknown_expiry_is_used_until_refused_and_one_without_access_token_is_refreshed():
    assert assess(pair(None, None), now=10**10) is Freshness.FRESH
    assert assess(pair(None, None, access=""), now=0) is Freshness.EXPIRED


def test_from_response_reads_expires_in():
    p = TokenPair.from_response({"access_token": "a", "refresh_token": "r", "expires_in": 3599}, now=50.0, source=PairSource.LOGIN)
    assert (p.expires_at, p.lifetime, p.source) == (3649.0, 3599.0, PairSource.LOGIN)
    assert TokenPair.from_response({"access_token": "a"}, now=1.0, source=PairSource.REFRESH).expires_at is None


def test_repr_shows_no_token():
    assert "secret" not in repr(pair(5.0)) and "secret" not in str(pair(5.0))


def test_plain_codec_round_trips():
    codec = PairCodec()
    assert codec.load(codec.dump(pair(5.0))) == pair(5.0)


def test_encrypted_codec_hides_the_tokens_and_needs_the_right_key():
    key = Fernet.generate_key().decode()
    codec = PairCodec(key)
    blob = codec.dump(pair(5.0))
    assert "secret" not in blob and codec.encrypted
    assert codec.load(blob) == pair(5.0)
    with pytest.raises(UnreadablePair, match="cannot be decrypted"):
        PairCodec(Fernet.generate_key().decode()).load(blob)
    with pytest.raises(UnreadablePair, match="set MIRO_TOKEN_KEY"):
        PairCodec().load(blob)
