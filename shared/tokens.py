"""The Miro token pair of an app with expiring tokens, shared by every process through Redis.

Miro kills the old pair on every refresh, so two refreshes with one refresh token must never
happen: the second would be refused and, stored, would replace the good pair the first one got.
Hence, for all workers, the watcher and `doctor`:

* the current pair lives in Redis (``keys.OAUTH_PAIR``), with a ``generation`` that every write
  raises; a process reads it before each call (one HGETALL: 0.1 to 0.25 ms per call measured
  here against a local Redis, decoded pair cached, next to tens of ms for an upload);
* it is refreshed ahead of its expiry (:func:`shared.tokenpair.assess`) by one process: the one
  that takes ``keys.OAUTH_LOCK`` (SET NX, :data:`LOCK_TTL` seconds). The others go on with the
  still-valid token, or, once it has expired, wait until the generation changes and use the
  winner's pair;
* the lock lives longer than a token call can take (:data:`shared.oauth.TOKEN_TIMEOUT`), so it
  cannot expire under a live holder; a holder that dies delays the others by at most
  :data:`LOCK_TTL` seconds. Writes are fenced by the generation (compare-and-set in one Lua
  script): a pair minted from generation *g* is stored only while *g* is still current;
* a refresh token Miro refuses (``invalid_grant``) marks the pair refused: every process then
  raises :class:`~shared.miro.MiroAuthError` at once (the worker's hold) until `miro-sync login`
  stores a new pair.

Start-up order: the stored pair first; ``MIRO_REFRESH_TOKEN`` from the environment only seeds the
store when nothing is stored, because after the first rotation the one in `.env` is dead.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import redis

from . import keys
from .log import get_logger, register_secrets
from .miro import MiroAuthError, MiroTransportError, StaticToken, TokenSource
from .oauth import InvalidGrant, OAuthClient, OAuthError, OAuthUnavailable
from .settings import Settings
from .tokenpair import Freshness, PairCodec, PairSource, PairState, TokenPair, UnreadablePair, assess

__all__ = ["LOCK_TTL", "RefreshingToken", "StoredPair", "TokenStore", "token_source"]

LOCK_TTL = 10.0
"""Seconds the refresh lock lives: above a token call's worst case (3 s connect + 5 s read)."""
WAIT_LIMIT = 3 * LOCK_TTL
"""A process waiting for another's refresh gives up (a retryable error) after this many seconds."""
WAIT_POLL = 0.05
STORE_RETRY_SECONDS = 5.0
"""How long a refreshed pair's write is retried while Redis does not answer."""

REFUSED_CODE = "invalid_grant"
MISSING_CODE = "noStoredToken"
UNREADABLE_CODE = "unreadableToken"

log = get_logger("oauth")


@dataclass(frozen=True)
class StoredPair:
    generation: int
    state: PairState
    pair: TokenPair


_REPLACE = """
local g = tonumber(redis.call('HGET', KEYS[1], 'generation') or '0')
if g ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'generation', g + 1, 'state', ARGV[2], 'pair', ARGV[3])
return g + 1
"""
_MARK_REFUSED = """
local g = tonumber(redis.call('HGET', KEYS[1], 'generation') or '0')
if g ~= tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2])
return 1
"""
_SEED = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'generation', 1, 'state', ARGV[1], 'pair', ARGV[2])
return 1
"""
_PUT = """
local g = redis.call('HINCRBY', KEYS[1], 'generation', 1)
redis.call('HSET', KEYS[1], 'state', ARGV[1], 'pair', ARGV[2])
return g
"""
_UNLOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class TokenStore:
    """The pair in Redis: read, seed, put (login), fenced replace (refresh), and the refresh lock."""

    def __init__(self, connection: redis.Redis, codec: PairCodec | None = None) -> None:
        self.redis = connection
        self.codec = codec or PairCodec()
        self._replace = connection.register_script(_REPLACE)
        self._mark_refused = connection.register_script(_MARK_REFUSED)
        self._seed = connection.register_script(_SEED)
        self._put = connection.register_script(_PUT)
        self._unlock = connection.register_script(_UNLOCK)
        self._decoded: tuple[bytes, TokenPair] | None = None

    def read(self) -> StoredPair | None:
        """Raises :class:`UnreadablePair` when the blob cannot be decoded (wrong or missing key)."""
        raw = cast("dict[bytes, bytes]", self.redis.hgetall(keys.OAUTH_PAIR))  # a bytes connection
        if not raw or b"pair" not in raw:
            return None
        blob = raw[b"pair"]
        if self._decoded is None or self._decoded[0] != blob:
            pair = self.codec.load(blob.decode())
            register_secrets((pair.access_token, pair.refresh_token))
            self._decoded = (blob, pair)
        return StoredPair(int(raw.get(b"generation", b"0")), PairState(raw.get(b"state", b"valid").decode()), self._decoded[1])

    def seed(self, pair: TokenPair) -> bool:
        """Store ``pair`` only when nothing is stored; True when it was."""
        return bool(self._seed(keys=[keys.OAUTH_PAIR], args=[PairState.VALID.value, self.codec.dump(pair)]))

    def put(self, pair: TokenPair) -> int:
        """Store ``pair`` whatever was there (after `miro-sync login`); returns its generation."""
        return int(self._put(keys=[keys.OAUTH_PAIR], args=[PairState.VALID.value, self.codec.dump(pair)]))

    def replace(self, seen_generation: int, pair: TokenPair) -> int:
        """Store ``pair`` as the successor of ``seen_generation``; 0 if another pair came first."""
        return int(self._replace(keys=[keys.OAUTH_PAIR], args=[seen_generation, PairState.VALID.value, self.codec.dump(pair)]))

    def mark_refused(self, seen_generation: int) -> bool:
        # The generation stays: a pair refreshed from it still wins over this mark (see replace).
        return bool(self._mark_refused(keys=[keys.OAUTH_PAIR], args=[seen_generation, PairState.REFUSED.value]))

    def try_lock(self, owner: str) -> bool:
        return bool(self.redis.set(keys.OAUTH_LOCK, owner, nx=True, px=int(LOCK_TTL * 1000)))

    def unlock(self, owner: str) -> None:
        self._unlock(keys=[keys.OAUTH_LOCK], args=[owner])

    def lock_holder(self) -> str | None:
        value = cast("bytes | None", self.redis.get(keys.OAUTH_LOCK))
        return value.decode() if value else None


def lock_owner() -> str:
    """``host:pid:random``: who holds the lock, readable by a person (and a drill) in Redis."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class RefreshingToken(TokenSource):
    """Access tokens from the shared pair, refreshed ahead of expiry by one process for all."""

    renewable = True

    def __init__(self, store: TokenStore, oauth: OAuthClient, seed: TokenPair | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.oauth = oauth
        self.seed = seed
        self.clock = clock

    def __repr__(self) -> str:
        return "RefreshingToken(***)"

    def current(self) -> str:
        stored = self._stored()
        freshness = assess(stored.pair, self.clock())
        if freshness is Freshness.FRESH:
            return stored.pair.access_token
        if freshness is Freshness.DUE:
            try:
                return self._refresh(stored, wait=False).pair.access_token
            except MiroTransportError as exc:  # the old token still works for a while: use it
                log.warning("oauth.refresh_failed", reason=str(exc), action="using the current token until it expires")
                return stored.pair.access_token
        return self._refresh(stored, wait=True).pair.access_token

    def rejected(self, token: str) -> str | None:
        stored = self._stored()
        if stored.pair.access_token != token:
            return stored.pair.access_token  # another process rotated the pair while our call was out
        return self._refresh(stored, wait=True).pair.access_token

    # ---------------------------------------------------------------------------------------

    def _stored(self) -> StoredPair:
        stored = self._read()
        if stored is None and self.seed is not None and self.store.seed(self.seed):
            log.info("oauth.seeded", source=PairSource.ENV.value, note="MIRO_REFRESH_TOKEN stored; from now on the stored pair is used")
        stored = stored or self._read()
        if stored is None:
            raise MiroAuthError("no Miro token is stored and MIRO_REFRESH_TOKEN is not set; run `miro-sync login`",
                                status=401, code=MISSING_CODE)
        return self._usable(stored)

    def _read(self) -> StoredPair | None:
        try:
            return self.store.read()
        except UnreadablePair as exc:
            raise MiroAuthError(f"{exc}; or run `miro-sync login` to store a new one", status=401, code=UNREADABLE_CODE) from None

    def _usable(self, stored: StoredPair) -> StoredPair:
        if stored.state is PairState.REFUSED:
            raise refused_error()
        return stored

    def _refresh(self, seen: StoredPair, wait: bool) -> StoredPair:
        owner = lock_owner()
        deadline = time.monotonic() + WAIT_LIMIT
        while True:
            if self.store.try_lock(owner):
                try:
                    return self._refresh_holding_lock(seen)
                finally:
                    self.store.unlock(owner)
            latest = self._read()
            if latest is not None and (latest.generation != seen.generation or latest.state is not seen.state):
                return self._usable(latest)  # the winner's pair
            if not wait:
                return seen
            if time.monotonic() > deadline:
                raise MiroTransportError(f"waited {WAIT_LIMIT:g} s for another process to refresh the Miro token")
            time.sleep(WAIT_POLL)

    def _refresh_holding_lock(self, seen: StoredPair) -> StoredPair:
        latest = self._read()
        if latest is None:
            raise MiroAuthError("the stored Miro token was deleted; run `miro-sync login`", status=401, code=MISSING_CODE)
        if latest.generation != seen.generation or latest.state is not PairState.VALID:
            return self._usable(latest)  # refreshed between our read and our lock
        try:
            pair = self.oauth.refresh(latest.pair.refresh_token)
        except InvalidGrant:
            self.store.mark_refused(latest.generation)
            raise refused_error() from None
        except OAuthError as exc:
            raise MiroAuthError(f"Miro refused the token refresh ({exc.error}): check MIRO_CLIENT_ID and MIRO_CLIENT_SECRET",
                                status=exc.status or 401, code=exc.error) from None
        except OAuthUnavailable as exc:
            raise MiroTransportError(f"token refresh failed: {exc}") from None
        register_secrets((pair.access_token, pair.refresh_token))
        generation = self._store_refreshed(latest.generation, pair)
        if not generation:
            log.warning("oauth.refresh_superseded", note="a pair stored meanwhile (login) is kept")
        else:
            log.info("oauth.refreshed", generation=generation, expires_in=pair.lifetime)
        newest = self._read()
        if newest is None:
            raise MiroAuthError("the stored Miro token was deleted; run `miro-sync login`", status=401, code=MISSING_CODE)
        return self._usable(newest)


    def _store_refreshed(self, seen_generation: int, pair: TokenPair) -> int:
        # Miro has already killed the old pair: this one must reach Redis, or nobody can refresh again.
        deadline = time.monotonic() + STORE_RETRY_SECONDS
        while True:
            try:
                return self.store.replace(seen_generation, pair)
            except redis.RedisError as exc:
                if time.monotonic() > deadline:
                    log.error("oauth.store_failed", error=type(exc).__name__,
                              action="the refreshed pair is lost; if workers hold, run `miro-sync login`")
                    raise
                time.sleep(0.2)


def refused_error() -> MiroAuthError:
    return MiroAuthError("Miro refused the stored refresh token (invalid_grant): it was revoked, expired or used twice",
                         status=401, code=REFUSED_CODE)


def env_pair(settings: Settings) -> TokenPair | None:
    """The pair `.env` gives (refresh token, maybe an access token of unknown expiry), or None."""
    if not settings.miro_refresh_token:
        return None
    return TokenPair(access_token=settings.miro_access_token, refresh_token=settings.miro_refresh_token,
                     expires_at=None, source=PairSource.ENV, obtained_at=time.time())


def token_store(settings: Settings, connection: redis.Redis) -> TokenStore:
    return TokenStore(connection, PairCodec(settings.miro_token_key))


def token_source(settings: Settings, connection: redis.Redis | None = None) -> TokenSource:
    """What a MiroClient authenticates with: the static token, or the shared refreshing pair."""
    if not settings.oauth:
        return StaticToken(settings.miro_access_token)
    connection = connection or redis.Redis.from_url(settings.redis_url, socket_connect_timeout=5, socket_timeout=5)
    oauth = OAuthClient(settings.miro_api_url, settings.miro_client_id, settings.miro_client_secret)
    return RefreshingToken(token_store(settings, connection), oauth, seed=env_pair(settings))
