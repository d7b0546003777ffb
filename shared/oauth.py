"""Miro's OAuth 2.0 token endpoint (``POST /v1/oauth/token``) and authorize address.

The parameters go in an ``application/x-www-form-urlencoded`` body, which Miro accepts as well as
the query string it shows in its samples, so the client secret and the tokens never sit in a URL
that a proxy might log. Nothing here logs or raises a token or the secret.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import requests

from .tokenpair import PairSource, TokenPair

TOKEN_PATH = "/v1/oauth/token"
TOKEN_TIMEOUT = (3.0, 5.0)
"""Connect and read timeouts of a token call; their sum stays under the refresh lock's lifetime
(:data:`shared.tokens.LOCK_TTL`), so a lock cannot expire while its holder's call is in flight."""
SCOPES = "boards:read boards:write"


class OAuthError(Exception):
    """The token endpoint said no. ``error`` is its code (``invalid_grant``, ``invalid_client``...)."""

    def __init__(self, error: str, message: str, status: int | None = None) -> None:
        self.error = error
        self.status = status
        super().__init__(f"{status} {error}: {message}" if status else f"{error}: {message}")


class InvalidGrant(OAuthError):
    """The refresh token or code is unknown, used already, expired or revoked: a person must log in again."""


class OAuthUnavailable(Exception):
    """No usable answer (refused, timeout, 5xx, a body that is not JSON): the same call may work later."""


@dataclass(frozen=True)
class OAuthClient:
    api_url: str
    client_id: str
    client_secret: str
    session: requests.Session | None = None

    def __repr__(self) -> str:
        return f"OAuthClient({self.api_url!r}, client_id={self.client_id!r})"

    def refresh(self, refresh_token: str) -> TokenPair:
        return self._token({"grant_type": "refresh_token", "refresh_token": refresh_token}, PairSource.REFRESH)

    def exchange_code(self, code: str, redirect_uri: str) -> TokenPair:
        return self._token({"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}, PairSource.LOGIN)

    def _token(self, params: dict[str, str], source: PairSource) -> TokenPair:
        form = {**params, "client_id": self.client_id, "client_secret": self.client_secret}
        http = self.session or requests
        try:
            response = http.post(self.api_url.rstrip("/") + TOKEN_PATH, data=form, timeout=TOKEN_TIMEOUT,
                                 headers={"Accept": "application/json"})
        except requests.RequestException as exc:
            raise OAuthUnavailable(f"token endpoint unreachable ({type(exc).__name__})") from None
        now = time.time()
        body = _json(response)
        if response.status_code >= 500 or body is None:
            raise OAuthUnavailable(f"token endpoint answered {response.status_code}" + ("" if body else " without JSON"))
        if response.status_code >= 300:
            raise _error(response.status_code, body)
        if not isinstance(body.get("access_token"), str) or not body["access_token"]:
            raise OAuthUnavailable("token endpoint answered without an access_token")
        return TokenPair.from_response(body, now, source)


def authorize_url(authorize_base: str, client_id: str, redirect_uri: str, state: str) -> str:
    """Where a person approves the app; Miro then sends the browser to ``redirect_uri?code=...&state=...``."""
    query = urlencode({"response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri, "state": state})
    return f"{authorize_base}?{query}"


def _json(response: requests.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _error(status: int, body: dict[str, Any]) -> OAuthError:
    # Miro's envelope says {"code", "message"}; RFC 6749 says {"error", "error_description"}. Read both.
    error = str(body.get("error") or body.get("code") or "error")
    message = str(body.get("error_description") or body.get("message") or "refused")
    kind = InvalidGrant if error in ("invalid_grant", "invalidGrant") else OAuthError
    return kind(error, message, status)
