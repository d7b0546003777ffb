"""Miro's OAuth side: the authorize page, ``POST /v1/oauth/token`` and expiring, rotating tokens.

As Miro does for an app with expiring tokens: an access token lives ``access_ttl`` seconds (Miro:
3599), a refresh token 60 days, and **every refresh returns a new pair and kills the old one**,
access token included. A refresh token presented twice is refused with ``invalid_grant``. An
authorization code is single-use and lives 10 minutes. Parameters are read from the query string
(as Miro's samples send them) or a form body (as Miro recommends).

:class:`OAuthAuthority` is the pure part (clock injected); the blueprint puts it on HTTP.
"""

from __future__ import annotations

import secrets
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, Response, current_app, jsonify, redirect, request

from .config import ALL_SCOPES
from .errors import ApiError

REFRESH_TTL = 60 * 24 * 3600.0
CODE_TTL = 600.0
OAUTH_USER = "oauth-user"
"""The identity behind every OAuth token: one user, so the credit budget survives rotation."""
TEAM_ID = "3458764517517819000"
USER_ID = "3458764517517819001"


def invalid_grant(message: str) -> ApiError:
    return ApiError(400, "invalid_grant", message)


@dataclass
class _Grant:
    expires_at: float
    pair_id: int


class OAuthAuthority:
    """Clients, codes and live pairs; thread-safe."""

    def __init__(self, client_id: str, client_secret: str, access_ttl: float = 3599.0,
                 clock: Callable[[], float] = time.time) -> None:
        if access_ttl <= 0:
            raise ValueError("access_ttl: must be positive")
        self.client_id = client_id
        self.client_secret = client_secret
        self.access_ttl = access_ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._access: dict[str, _Grant] = {}
        self._refresh: dict[str, _Grant] = {}
        self._codes: dict[str, tuple[str, float]] = {}  # code -> (redirect_uri, expires_at)
        self._next_pair = 0
        self.refreshes = 0
        self.refused = 0  # token requests answered invalid_grant
        self.minted: list[str] = []  # every token ever handed out, for the tests' secret scan
        self.stall_until = 0.0
        self.dropped = 0  # stalled token requests whose client left
        self.stalled = 0  # token requests waiting in a stall right now
        self.initial = self.mint()

    def mint(self) -> dict:
        """A new live pair, as the token endpoint answers it."""
        with self._lock:
            return self._mint_locked()

    def _mint_locked(self) -> dict:
        now = self.clock()
        self._next_pair += 1
        access, refresh = "sbx-at-" + secrets.token_urlsafe(24), "sbx-rt-" + secrets.token_urlsafe(24)
        self._access[access] = _Grant(now + self.access_ttl, self._next_pair)
        self._refresh[refresh] = _Grant(now + REFRESH_TTL, self._next_pair)
        self.minted += [access, refresh]
        return {"user_id": USER_ID, "team_id": TEAM_ID, "access_token": access, "refresh_token": refresh,
                "scope": " ".join(sorted(ALL_SCOPES)), "expires_in": int(self.access_ttl) if self.access_ttl >= 1 else self.access_ttl,
                "token_type": "bearer"}

    def access_error(self, token: str) -> ApiError | None:
        """None when ``token`` is a live access token; else the 401 Miro answers."""
        with self._lock:
            grant = self._access.get(token)
            if grant is None:
                return ApiError(401, "tokenNotFound", "Authorization token is invalid or revoked")
            if self.clock() >= grant.expires_at:
                return ApiError(401, "tokenNotFound", "Authorization token has expired")
            return None

    def knows(self, token: str) -> bool:
        with self._lock:
            return token in self._access

    def check_client(self, client_id: str | None, client_secret: str | None) -> None:
        if client_id != self.client_id or not secrets.compare_digest(client_secret or "", self.client_secret):
            raise ApiError(401, "invalid_client", "Client authentication failed: unknown client_id or wrong client_secret")

    def refresh(self, refresh_token: str) -> dict:
        with self._lock:
            grant = self._refresh.pop(refresh_token, None)
            if grant is None or self.clock() >= grant.expires_at:
                self.refused += 1
                raise invalid_grant("The refresh token is invalid, expired, revoked or was already used")
            self._kill_pair(grant.pair_id)  # rotation: the old access token stops working too
            self.refreshes += 1
            return self._mint_locked()

    def authorize(self, redirect_uri: str) -> str:
        code = secrets.token_urlsafe(16)
        with self._lock:
            self._codes[code] = (redirect_uri, self.clock() + CODE_TTL)
        return code

    def exchange(self, code: str, redirect_uri: str | None) -> dict:
        with self._lock:
            found = self._codes.pop(code, None)  # single use, even when the redirect_uri is wrong
            if found is None or self.clock() >= found[1]:
                raise invalid_grant("The authorization code is invalid, expired or was already used")
            if redirect_uri != found[0]:
                raise invalid_grant("redirect_uri does not match the one of the authorization request")
            return self._mint_locked()

    def revoke_all(self) -> int:
        """Every live pair stops working (a person removed the app from the team)."""
        with self._lock:
            count = len(self._refresh)
            self._access.clear()
            self._refresh.clear()
            return count

    def _kill_pair(self, pair_id: int) -> None:
        for table in (self._access, self._refresh):
            for token in [t for t, g in table.items() if g.pair_id == pair_id]:
                del table[token]


# ---- HTTP ---------------------------------------------------------------------------------

bp = Blueprint("miro_oauth", __name__)


def authority() -> OAuthAuthority | None:
    return current_app.extensions["sandbox"].oauth


@bp.errorhandler(ApiError)
def oauth_error(exc: ApiError):
    return jsonify(exc.body()), exc.status


@bp.post("/v1/oauth/token")
def token():
    auth = authority()
    if auth is None:
        raise ApiError(404, "notFound", "OAuth is off in this sandbox (start it with --oauth-client ID:SECRET)")
    params = request.values  # query string or form body; read first, so that only a hang-up is left to see
    if _client_left_while_stalled(auth):
        return Response(status=204)  # nobody reads it: the socket is gone
    auth.check_client(params.get("client_id"), params.get("client_secret"))
    grant_type = params.get("grant_type")
    if grant_type == "refresh_token":
        body = auth.refresh(params.get("refresh_token") or "")
        current_app.extensions["sandbox"].traffic.count("refreshes")
    elif grant_type == "authorization_code":
        body = auth.exchange(params.get("code") or "", params.get("redirect_uri"))
    else:
        raise ApiError(400, "unsupported_grant_type", f"grant_type must be refresh_token or authorization_code, not {grant_type!r}")
    response = jsonify(body)
    response.headers["Cache-Control"] = "no-store"
    return response


def _client_left_while_stalled(auth: OAuthAuthority) -> bool:
    """A stall (``/_sandbox/oauth/stall``) holds token requests as a stuck network path would. A
    request whose client hung up meanwhile never reaches the token service: it is dropped unread."""
    sock = request.environ.get("werkzeug.socket")
    auth.stalled += 1
    try:
        while auth.clock() < auth.stall_until:
            if sock is not None and _peer_gone(sock):
                auth.dropped += 1
                return True
            time.sleep(0.05)
        return False
    finally:
        auth.stalled -= 1


def _peer_gone(sock: socket.socket) -> bool:
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


@bp.get("/oauth/authorize")
def authorize():
    """Miro's consent page, approved at once: back to ``redirect_uri`` with ``code`` and ``state``."""
    auth = authority()
    if auth is None:
        return Response("OAuth is off in this sandbox\n", status=404, content_type="text/plain")
    args = request.args
    redirect_uri = args.get("redirect_uri", "")
    if args.get("client_id") != auth.client_id:
        return Response("unknown client_id\n", status=400, content_type="text/plain")
    if args.get("response_type") != "code" or urlsplit(redirect_uri).scheme not in ("http", "https"):
        return Response("response_type=code and an http(s) redirect_uri are required\n", status=400, content_type="text/plain")
    query = {"code": auth.authorize(redirect_uri)} | ({"state": args["state"]} if "state" in args else {})
    separator = "&" if urlsplit(redirect_uri).query else "?"
    return redirect(redirect_uri + separator + urlencode(query), code=302)


@bp.get("/_sandbox/oauth/initial")
def initial():
    auth = authority()
    if auth is None:
        return jsonify({"error": "OAuth is off (--oauth-client ID:SECRET)"}), 404
    return jsonify({"access_token": auth.initial["access_token"], "refresh_token": auth.initial["refresh_token"]})


@bp.post("/_sandbox/oauth/revoke")
def revoke():
    auth = authority()
    if auth is None:
        return jsonify({"error": "OAuth is off (--oauth-client ID:SECRET)"}), 404
    return jsonify({"revoked": auth.revoke_all()})


@bp.post("/_sandbox/oauth/stall")
def stall():
    auth = authority()
    if auth is None:
        return jsonify({"error": "OAuth is off (--oauth-client ID:SECRET)"}), 404
    seconds = (request.get_json(silent=True) or {}).get("seconds", 0)
    if not isinstance(seconds, (int, float)) or not 0 <= seconds <= 600:
        return jsonify({"error": "seconds: a number from 0 to 600"}), 400
    auth.stall_until = auth.clock() + seconds
    return jsonify({"stalled_for": seconds})
