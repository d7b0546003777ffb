"""The Miro REST API v2 client: the few endpoints miro-sync uses, over one ``requests.Session``.

Usage::

    client = MiroClient("https://api.miro.com", token, on_rate=limiter.observe)
    item = client.create_image_file(board_id, png_bytes, "a.png", "image/png",
                                    {"title": "a.png", "position": {"x": 0, "y": 0}, "geometry": {"width": 400}})

Every failure reaches the caller as one of these (callers choose retry or not by type, see
:mod:`shared.retry`; nothing above this module ever sees a ``requests`` exception)::

    * MiroError                    .status .code .message .context .rate .retry_after .method .path
      + MiroTransportError         no usable answer: refused, reset, timeout, broken body  (retry)
      + MiroApiError               Miro answered with an error status and body
        - MiroRateLimited          429 tooManyRequests                                     (retry at reset)
        - MiroServerError          5xx                                                     (retry)
        - MiroAuthError            401 tokenNotProvided/tokenNotFound, 403 insufficientPermissions (hold)
        - MiroNotFound             404 notFound                                            (permanent)
        - MiroBadRequest           400 invalidParameters, 409, 413 and other 4xx           (permanent)

The token travels only in the ``Authorization`` header of requests to the API's own origin; it is
masked out of every exception message and context, so an error can be logged or stored as is.

The token comes from a :class:`TokenSource`: a plain string is a :class:`StaticToken`; an app with
expiring tokens passes :class:`shared.tokens.RefreshingToken`. Every request asks the source for
the token in one place (``_send``); a 401 from a renewable source gets one refresh and one retry.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from importlib import metadata
from typing import Any, cast
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

from .log import get_logger, redact

__all__ = [
    "CONNECT_TIMEOUT",
    "MiroApiError",
    "MiroAuthError",
    "MiroBadRequest",
    "MiroClient",
    "MiroError",
    "MiroNotFound",
    "MiroRateLimited",
    "MiroServerError",
    "MiroTransportError",
    "RateInfo",
    "StaticToken",
    "TokenSource",
    "process_session",
    "user_agent",
]

CONNECT_TIMEOUT = 10.0
"""Seconds to open a TCP/TLS connection; the ``timeout`` argument is the read timeout."""

EPOCH_THRESHOLD = 1_000_000_000
"""An ``X-RateLimit-Reset`` at or above this is a UNIX time; below it, seconds from now."""

JsonObject = dict[str, Any]
"""One JSON object from Miro's API: an item, a board, a page of items."""

_log = get_logger("miro")


# --- rate-limit headers -------------------------------------------------------------------------


@dataclass(frozen=True)
class RateInfo:
    """What a response said about the credit budget (any field may be absent)."""

    limit: int | None
    remaining: int | None
    reset_at: float | None  # UNIX time when the server's window resets

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], now: float | None = None) -> RateInfo:
        now = time.time() if now is None else now
        reset = _number(headers.get("X-RateLimit-Reset"))
        if reset is not None and reset < EPOCH_THRESHOLD:
            reset = now + reset  # Miro's v2 docs do not say epoch or delta; accept both
        limit = _number(headers.get("X-RateLimit-Limit"))
        remaining = _number(headers.get("X-RateLimit-Remaining"))
        return cls(
            limit=None if limit is None else int(limit),
            remaining=None if remaining is None else int(remaining),
            reset_at=reset,
        )

    @property
    def empty(self) -> bool:
        return self.limit is None and self.remaining is None and self.reset_at is None


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds to wait: either delay-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    seconds = _number(value)
    if seconds is None:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - (time.time() if now is None else now)
        except (TypeError, ValueError):
            return None
    return max(0.0, seconds)


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value.strip())
    except ValueError:
        return None


# --- exceptions ----------------------------------------------------------------------------------


class MiroError(Exception):
    """Base of every client error. ``str()`` is one line: status, code, message, request."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        context: Any = None,
        rate: RateInfo | None = None,
        retry_after: float | None = None,
        method: str = "",
        path: str = "",
    ) -> None:
        self.message = message
        self.status = status
        self.code = code
        self.context = context
        self.rate = rate
        self.retry_after = retry_after
        self.method = method
        self.path = path
        super().__init__(self._line())

    def _line(self) -> str:
        head = " ".join(str(p) for p in (self.status, self.code) if p is not None)
        where = f" ({self.method} {self.path})" if self.method else ""
        return f"{head}: {self.message}{where}" if head else f"{self.message}{where}"


class MiroTransportError(MiroError):
    """No usable answer: connection refused or reset, timeout, or a body that is not Miro's JSON."""


class MiroApiError(MiroError):
    """Miro answered with an error status; ``code``/``message``/``context`` come from its body."""


class MiroRateLimited(MiroApiError):
    """429: the credit budget is spent; wait until ``rate.reset_at`` (or ``retry_after``)."""


class MiroServerError(MiroApiError):
    """5xx: Miro failed; the same request may succeed later."""


class MiroAuthError(MiroApiError):
    """401/403: the token is missing, unknown, expired or lacks a scope. No job can succeed."""


class MiroNotFound(MiroApiError):
    """404: the board or item does not exist (or the token cannot see it)."""


class MiroBadRequest(MiroApiError):
    """400, 409, 413 and other 4xx: this request will never succeed as sent."""


def _api_error_class(status: int) -> type[MiroApiError]:
    if status == 429:
        return MiroRateLimited
    if status >= 500:
        return MiroServerError
    if status in (401, 403):
        return MiroAuthError
    if status == 404:
        return MiroNotFound
    if 400 <= status < 500:
        return MiroBadRequest
    return MiroApiError  # e.g. an unfollowed 3xx


def _transport_kind(exc: requests.RequestException) -> str:
    # Most specific first: ConnectTimeout is both a ConnectionError and a Timeout.
    if isinstance(exc, requests.ConnectTimeout):
        return "connect timeout"
    if isinstance(exc, requests.Timeout):
        return "read timeout"
    if isinstance(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)):
        return "broken response"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed"
    return "request failed"


# --- session and identity ------------------------------------------------------------------------

_session: requests.Session | None = None
_session_lock = threading.Lock()


def _forget_session_after_fork() -> None:
    # A forked child (RQ's work horse) must not share the parent's pooled sockets.
    global _session, _session_lock
    _session = None
    _session_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_session_after_fork)


def process_session() -> requests.Session:
    """The process's one ``requests.Session`` (connection pool); a new one after ``fork()``."""
    global _session
    with _session_lock:
        if _session is None:
            session = requests.Session()
            # No urllib3 retries: a retried POST could create an image twice. Retrying is the job's call.
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=16, max_retries=0)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
            _session = session
        return _session


def user_agent() -> str:
    try:
        version = metadata.version("miro-sync")
    except metadata.PackageNotFoundError:
        version = "0"
    return f"miro-sync/{version}"


class _BearerAuth(requests.auth.AuthBase):
    """Sets the header per request. Passing an auth object also keeps requests from reading
    ``~/.netrc`` over our header, and requests drops it on a redirect to another host."""

    def __init__(self, token: str) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "_BearerAuth(***)"


# --- where the token comes from ------------------------------------------------------------------


class TokenSource:
    """Gives the access token for each request. ``renewable`` sources can replace a refused one."""

    renewable: bool = False

    def current(self) -> str:
        """A token believed valid now. May raise :class:`MiroAuthError` (no usable token) or
        :class:`MiroTransportError` (the token service is unreachable for now)."""
        raise NotImplementedError

    def rejected(self, token: str) -> str | None:
        """Miro answered 401 to ``token``: a new token to retry with, or None when there is none."""
        return None


class StaticToken(TokenSource):
    """One token for ever (a non-expiring Miro token, ``MIRO_ACCESS_TOKEN``)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __repr__(self) -> str:
        return "StaticToken(***)"

    def current(self) -> str:
        return self.token


# --- the client ----------------------------------------------------------------------------------


class MiroClient:
    """Miro REST API v2 for one token. Thread-safe as far as ``requests.Session`` is."""

    def __init__(
        self,
        base_url: str,
        token: str | TokenSource,
        timeout: float | tuple[float, float] = 30,
        session: requests.Session | None = None,
        on_rate: Callable[[RateInfo], None] | None = None,
    ) -> None:
        if not token:
            raise ValueError("MiroClient needs an access token")
        self.base_url = base_url.rstrip("/")
        self._origin = _origin(self.base_url)
        self.tokens = StaticToken(token) if isinstance(token, str) else token
        self.timeout = timeout if isinstance(timeout, tuple) else (min(CONNECT_TIMEOUT, timeout), timeout)
        self.session = session or process_session()
        self.on_rate = on_rate
        self._headers = {"User-Agent": user_agent(), "Accept": "application/json"}

    def __repr__(self) -> str:
        return f"MiroClient({self.base_url!r}, token=***)"

    # boards and items

    def get_board(self, board_id: str) -> JsonObject:
        return self._call_object("GET", _board_path(board_id))

    def get_image(self, board_id: str, item_id: str) -> JsonObject:
        return self._call_object("GET", f"{_board_path(board_id)}/images/{quote(item_id, safe='')}")

    def delete_item(self, board_id: str, item_id: str) -> None:
        self._call("DELETE", f"{_board_path(board_id)}/items/{quote(item_id, safe='')}")

    def list_items(
        self,
        board_id: str,
        type: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        parent_item_id: str | None = None,
    ) -> JsonObject:
        """One page: ``{"data": [...], "cursor": "..."?, "total", "size", "limit", "links"}``."""
        params = {"limit": str(limit), "type": type, "cursor": cursor, "parent_item_id": parent_item_id}
        return self._call_object("GET", f"{_board_path(board_id)}/items", params={k: v for k, v in params.items() if v})

    def iter_items(
        self,
        board_id: str,
        type: str | None = None,
        parent_item_id: str | None = None,
        before_page: Callable[[], object] | None = None,
    ) -> Iterator[JsonObject]:
        """Every item, page after page, following ``cursor`` until Miro returns none.

        ``before_page`` runs before each page is asked for (e.g. to take the page's credits).
        """
        cursor: str | None = None
        seen: set[str] = set()
        while True:
            if before_page is not None:
                before_page()
            page = self.list_items(board_id, type=type, limit=50, cursor=cursor, parent_item_id=parent_item_id)
            yield from page.get("data") or []
            cursor = page.get("cursor")
            if not cursor or cursor in seen:  # a repeated cursor would loop for ever
                return
            seen.add(cursor)

    def create_frame(self, board_id: str, title: str, position: JsonObject, geometry: JsonObject) -> JsonObject:
        body = {"data": {"title": title, "format": "custom", "type": "freeform"}, "position": position, "geometry": geometry}
        return self._call_object("POST", f"{_board_path(board_id)}/frames", json=body)

    def update_frame(self, board_id: str, item_id: str, position: JsonObject, geometry: JsonObject) -> JsonObject:
        """Move and/or resize a frame (``PATCH /frames/{id}``, Level 2); 200 with the frame."""
        body = {"position": position, "geometry": geometry}
        return self._call_object("PATCH", f"{_board_path(board_id)}/frames/{quote(item_id, safe='')}", json=body)

    # images

    def create_image_file(self, board_id: str, content: bytes, filename: str, content_type: str, data: JsonObject) -> JsonObject:
        """Multipart upload (``resource`` + ``data``); 201 with the new image item."""
        return self._call_object("POST", f"{_board_path(board_id)}/images", files=_multipart(content, filename, content_type, data))

    def update_image_file(
        self, board_id: str, item_id: str, content: bytes, filename: str, content_type: str, data: JsonObject | None = None
    ) -> JsonObject:
        """Replace an item's picture (and optionally title/position/geometry) by multipart PATCH."""
        path = f"{_board_path(board_id)}/images/{quote(item_id, safe='')}"
        return self._call_object("PATCH", path, files=_multipart(content, filename, content_type, data))

    def create_image_url(
        self,
        board_id: str,
        url: str,
        title: str,
        position: JsonObject,
        geometry: JsonObject,
        parent_id: str | None = None,
    ) -> JsonObject:
        """Miro fetches ``url`` itself; 201 with the new image item."""
        body: dict[str, Any] = {"data": {"url": url, "title": title}, "position": position, "geometry": geometry}
        if parent_id:
            body["parent"] = {"id": parent_id}
        return self._call_object("POST", f"{_board_path(board_id)}/images", json=body)

    def update_image_url(
        self,
        board_id: str,
        item_id: str,
        url: str,
        title: str | None = None,
        position: JsonObject | None = None,
        geometry: JsonObject | None = None,
    ) -> JsonObject:
        """Point an existing item at a new ``url`` (JSON PATCH); 200 with the item."""
        body: dict[str, Any] = {"data": {"url": url} | ({"title": title} if title is not None else {})}
        if position is not None:
            body["position"] = position
        if geometry is not None:
            body["geometry"] = geometry
        return self._call_object("PATCH", f"{_board_path(board_id)}/images/{quote(item_id, safe='')}", json=body)

    def update_image(
        self,
        board_id: str,
        item_id: str,
        title: str | None = None,
        position: JsonObject | None = None,
        parent_id: str | None = None,
    ) -> JsonObject:
        """Retitle and/or move an image (JSON PATCH, Level 2); the picture is untouched.

        With ``parent_id``, ``position`` is relative to that frame's top-left corner.
        """
        body: dict[str, Any] = {}
        if title is not None:
            body["data"] = {"title": title}
        if position is not None:
            body["position"] = position
        if parent_id is not None:
            body["parent"] = {"id": parent_id}
        return self._call_object("PATCH", f"{_board_path(board_id)}/images/{quote(item_id, safe='')}", json=body)

    def update_item(self, board_id: str, item_id: str, position: JsonObject | None = None, parent_id: str | None = None) -> JsonObject:
        """Move or re-parent any item (``PATCH /items/{id}``, Level 2)."""
        body: dict[str, Any] = {}
        if position is not None:
            body["position"] = position
        if parent_id is not None:
            body["parent"] = {"id": parent_id}
        return self._call_object("PATCH", f"{_board_path(board_id)}/items/{quote(item_id, safe='')}", json=body)

    def get_resource(self, image_url: str) -> bytes:
        """The original bytes behind an item's ``data.imageUrl`` (token sent, 307 followed)."""
        if _origin(image_url) != self._origin:
            # imageUrl comes from a response body; never send the token anywhere but the API.
            raise ValueError(f"refusing to send the Miro token to {_origin(image_url)}: not the API at {self._origin}")
        parts = urlsplit(image_url)
        query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("format", "redirect")]
        query += [("format", "original"), ("redirect", "true")]
        url = urlunsplit(parts._replace(query=urlencode(query)))
        response = self._send("GET", url, accept="*/*")
        return response.content

    # the one boundary between requests and the rest of the project

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._send(method, self.base_url + path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise MiroTransportError(
                f"broken response: {response.status_code} with a body that is not JSON: {self._snippet(response)}",
                status=response.status_code, rate=RateInfo.from_headers(response.headers), method=method, path=_path_of(response.url),
            ) from exc

    def _call_object(self, method: str, path: str, **kwargs: Any) -> JsonObject:
        # Calls that return an item, a board or a page: Miro answers each with one JSON object.
        return cast(JsonObject, self._call(method, path, **kwargs))

    def _send(self, method: str, url: str, accept: str | None = None, **kwargs: Any) -> requests.Response:
        headers = self._headers if accept is None else {**self._headers, "Accept": accept}
        token = self.tokens.current()
        response = self._request(method, url, headers, token, kwargs)
        if response.status_code == 401 and self.tokens.renewable:
            # Miro checks the token before doing anything, so resending after a 401 cannot do the work twice.
            fresh = self.tokens.rejected(token)
            if fresh and fresh != token:
                response = self._request(method, url, headers, fresh, kwargs)
        for hop in (*response.history, response):
            rate = RateInfo.from_headers(hop.headers)
            self._report_rate(rate)
        if response.status_code >= 300:
            raise self._api_error(method, response, rate)
        return response

    def _request(self, method: str, url: str, headers: dict[str, str], token: str, kwargs: dict[str, Any]) -> requests.Response:
        try:
            return self.session.request(method, url, headers=headers, auth=_BearerAuth(token), timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            detail = self._redact(str(exc))[:300]
            raise MiroTransportError(f"{_transport_kind(exc)}: {detail}", method=method, path=_path_of(url)) from exc

    def _report_rate(self, rate: RateInfo) -> None:
        if self.on_rate is None:
            return
        try:
            self.on_rate(rate)
        except Exception as exc:  # noqa: BLE001
            # The call itself succeeded (maybe an image was created): losing that answer to a
            # bookkeeping failure would make the caller retry and create it twice.
            _log.warning("rate.observe_failed", error=f"{type(exc).__name__}: {exc}")

    def _api_error(self, method: str, response: requests.Response, rate: RateInfo) -> MiroApiError:
        try:
            body = response.json()
        except ValueError:
            body = None
        status = response.status_code
        if isinstance(body, dict) and body.get("message"):
            code = body.get("code")
            message = self._redact(str(body["message"]))
            context = self._redact_deep(body.get("context"))
        else:
            code = None
            message = f"HTTP {status} {response.reason or ''}".rstrip() + f", body not Miro's JSON: {self._snippet(response)}"
            context = None
        return _api_error_class(status)(
            message,
            status=status,
            code=None if code is None else str(code),
            context=context,
            rate=rate,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            method=method,
            path=_path_of(response.request.url if response.request is not None else response.url),
        )

    def _snippet(self, response: requests.Response) -> str:
        text = " ".join(response.text[:200].split())
        return self._redact(text) or "(empty)"

    def _redact(self, text: str) -> str:
        # Rotated tokens are registered with the log's masker as they are read (shared.tokens).
        static = self.tokens.token if isinstance(self.tokens, StaticToken) else None
        return redact(text.replace(static, "***") if static else text)

    def _redact_deep(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._redact(value)
        if isinstance(value, list):
            return [self._redact_deep(v) for v in value]
        if isinstance(value, dict):
            return {k: self._redact_deep(v) for k, v in value.items()}
        return value


def _board_path(board_id: str) -> str:
    # Board ids may end in "=" (uXjVOD6LSME=); both official clients percent-encode path parameters.
    return f"/v2/boards/{quote(board_id, safe='')}"


_Part = tuple[str | None, str | bytes, str]  # (filename, content, content type), as requests takes a file


def _multipart(content: bytes, filename: str, content_type: str, data: JsonObject | None) -> list[tuple[str, _Part]]:
    # As Miro's curl sample: -F "data={...};type=application/json" -F "resource=@image.png;type=image/png"
    parts: list[tuple[str, _Part]] = []
    if data is not None:
        parts.append(("data", (None, json.dumps(data), "application/json")))
    parts.append(("resource", (filename, content, content_type)))
    return parts


def _origin(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"


def _path_of(url: str | None) -> str:
    parts = urlsplit(url or "")
    return parts.path + (f"?{parts.query}" if parts.query else "")
