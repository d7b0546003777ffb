"""The shared, refreshing token pair against a real Redis and the sandbox's token endpoint."""

from __future__ import annotations

import threading
import time

import pytest
import redis as redis_lib
from cryptography.fernet import Fernet

from shared import keys
from shared.miro import MiroAuthError, MiroClient
from shared.oauth import OAuthClient
from shared.tokenpair import PairCodec, PairSource, PairState, TokenPair
from shared.tokens import LOCK_TTL, REFUSED_CODE, RefreshingToken, TokenStore

CLIENT = ("3458764500000000002", "tokens-client-secret-77")
BOARD = "sandbox-board="


@pytest.fixture
def sb(sandbox_factory):
    return sandbox_factory(oauth_client=CLIENT, access_token_ttl=3599)


def source(sb, redis_url, seed=None, key=None) -> RefreshingToken:
    store = TokenStore(redis_lib.Redis.from_url(redis_url), PairCodec(key))
    return RefreshingToken(store, OAuthClient(sb.url, *CLIENT), seed=seed)


def seed_of(refresh_token: str, access_token: str = "") -> TokenPair:
    return TokenPair(access_token, refresh_token, None, None, PairSource.ENV, 0.0)


def expire(redis_url, src: RefreshingToken) -> None:
    """Make the stored pair look expired (as after a stop longer than its life)."""
    stored = src.store.read()
    pair = TokenPair(stored.pair.access_token, stored.pair.refresh_token, time.time() - 1, 3599, PairSource.REFRESH, 0.0)
    redis_lib.Redis.from_url(redis_url).hset(keys.OAUTH_PAIR, "pair", src.store.codec.dump(pair))


def test_env_seeds_the_store_only_when_nothing_is_stored(sb, redis_url):
    first = sb.oauth_initial()
    src = source(sb, redis_url, seed=seed_of(first["refresh_token"]))
    token = src.current()  # no access token in the seed: refreshed at once
    assert sb.stats()["refreshes"] == 1 and token != first["access_token"]
    # A restart with the same (now dead) .env: the stored pair is used, the dead one never sent.
    again = source(sb, redis_url, seed=seed_of(first["refresh_token"]))
    assert again.current() == token and again.current() == token
    assert again.store.read().pair.source is PairSource.REFRESH
    assert sb.oauth.refused == 0


def test_one_refresh_for_many_racers(sb, redis_url):
    first = sb.oauth_initial()
    src = source(sb, redis_url, seed=seed_of(first["refresh_token"], first["access_token"]))
    src.current()
    expire(redis_url, src)
    racers = [source(sb, redis_url) for _ in range(12)]
    got: list[str] = []
    barrier = threading.Barrier(len(racers))

    def race(r):
        barrier.wait()
        got.append(r.current())

    threads = [threading.Thread(target=race, args=(r,)) for r in racers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sb.stats()["refreshes"] == 1 and sb.oauth.refused == 0
    assert len(got) == 12 and len(set(got)) == 1
    assert src.store.read().generation == 2


def test_a_401_mid_flight_gets_one_refresh_and_one_retry(sb, redis_url):
    first = sb.oauth_initial()
    src = source(sb, redis_url, seed=seed_of(first["refresh_token"], first["access_token"]))
    client = MiroClient(sb.url, src)
    assert client.get_board(BOARD)["id"] == BOARD
    sb.oauth.refresh(first["refresh_token"])  # someone else rotated it behind our back: our pair is dead
    before = len(sb.requests())
    with pytest.raises(MiroAuthError) as caught:
        client.get_board(BOARD)
    # One 401, one refresh attempt (refused: the other party holds the only live pair), no loop.
    assert caught.value.code == REFUSED_CODE
    assert [r["status"] for r in sb.requests()[before:]] == [401]
    assert sb.oauth.refused == 1


def test_a_401_for_a_token_another_process_already_replaced_needs_no_refresh(sb, redis_url):
    first = sb.oauth_initial()
    a = source(sb, redis_url, seed=seed_of(first["refresh_token"], first["access_token"]))
    client = MiroClient(sb.url, a)
    old = a.current()
    b = source(sb, redis_url)
    expire(redis_url, b)
    fresh = b.current()  # b rotates: `old` is dead now
    assert a.rejected(old) == fresh
    assert client.get_board(BOARD)["id"] == BOARD
    assert sb.stats()["refreshes"] == 1


def test_a_refused_refresh_token_holds_everyone_until_login_stores_a_pair(sb, redis_url):
    first = sb.oauth_initial()
    src = source(sb, redis_url, seed=seed_of(first["refresh_token"], first["access_token"]))
    src.current()
    sb.revoke_oauth()
    expire(redis_url, src)
    with pytest.raises(MiroAuthError) as caught:
        src.current()
    assert caught.value.code == REFUSED_CODE and "invalid_grant" in str(caught.value)
    assert src.store.read().state is PairState.REFUSED
    other = source(sb, redis_url)
    with pytest.raises(MiroAuthError):
        other.current()
    assert sb.oauth.refused == 1  # the others never spend a request on the dead token
    login_pair = TokenPair.from_response(sb.oauth.mint(), time.time(), PairSource.LOGIN)
    src.store.put(login_pair)
    assert other.current() == login_pair.access_token
    assert MiroClient(sb.url, other).get_board(BOARD)["id"] == BOARD


def test_a_dead_lock_holder_delays_the_others_by_the_lock_ttl_only(sb, redis_url):
    first = sb.oauth_initial()
    src = source(sb, redis_url, seed=seed_of(first["refresh_token"], first["access_token"]))
    src.current()
    expire(redis_url, src)
    assert src.store.try_lock("deadhost:4242:dead0000")  # what a holder killed mid-refresh leaves
    started = time.monotonic()
    token = source(sb, redis_url).current()
    waited = time.monotonic() - started
    assert token and sb.stats()["refreshes"] == 1
    assert LOCK_TTL - 1 < waited < 15, waited  # seconds, not minutes


def test_writes_are_fenced_by_the_generation(sb, redis_url):
    first = sb.oauth_initial()
    src = source(sb, redis_url, seed=seed_of(first["refresh_token"], first["access_token"]))
    src.current()
    stale = TokenPair("at-stale-0001", "rt-stale-0001", None, None, PairSource.REFRESH, 0.0)
    assert src.store.replace(0, stale) == 0  # minted from a generation that is gone: not stored
    assert src.store.read().pair.access_token == first["access_token"]
    assert src.store.replace(1, stale) == 2


def test_the_stored_pair_can_be_encrypted(sb, redis_url):
    key = Fernet.generate_key().decode()
    first = sb.oauth_initial()
    src = source(sb, redis_url, seed=seed_of(first["refresh_token"]), key=key)
    token = src.current()
    raw = redis_lib.Redis.from_url(redis_url).hget(keys.OAUTH_PAIR, "pair")
    assert token.encode() not in raw and first["refresh_token"].encode() not in raw
    with pytest.raises(MiroAuthError, match="cannot be decrypted"):
        source(sb, redis_url, key=Fernet.generate_key().decode()).current()


def test_a_401_for_a_pair_that_looks_fresh_is_refreshed_once_and_the_call_retried(sb, redis_url):
    live = sb.oauth.mint()
    src = source(sb, redis_url)
    src.store.put(TokenPair("at-killed-elsewhere-01", live["refresh_token"], time.time() + 3000, 3599, PairSource.LOGIN, 0.0))
    before = len(sb.requests())
    assert MiroClient(sb.url, src).get_board(BOARD)["id"] == BOARD
    assert [r["status"] for r in sb.requests()[before:]] == [401, 200]
    assert sb.stats()["refreshes"] == 1
