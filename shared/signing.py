"""HMAC-signed, expiring image URLs. Pure functions: no I/O, the clock is a parameter.

A signed path looks like ``/i/<name>?exp=<unix seconds>&sig=<hex>`` where ``<name>`` is the file's
path relative to the watch folder, base64url-encoded, so the URL never carries raw path syntax
(``..``, ``/``, ``%2e``) that a proxy or a server could reinterpret. The signature covers the
encoded name and the expiry.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from urllib.parse import urlencode

PREFIX = "/i/"


class SignatureError(ValueError):
    """The URL was tampered with, is malformed, or has expired. ``reason`` is one short word."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def encode_name(relpath: str) -> str:
    return base64.urlsafe_b64encode(relpath.encode("utf-8")).decode("ascii").rstrip("=")


def decode_name(token: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        return raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise SignatureError("malformed") from None


def _digest(secret: str, token: str, exp: int) -> str:
    msg = f"{token}\n{exp}".encode("ascii")
    return hmac.new(secret.encode("utf-8"), msg, hashlib.sha256).hexdigest()


def sign_path(relpath: str, secret: str, ttl: int, now: float | None = None) -> str:
    """The path and query of a URL that serves ``relpath`` until ``now + ttl``."""
    now = time.time() if now is None else now
    token = encode_name(relpath)
    exp = int(now) + int(ttl)
    return f"{PREFIX}{token}?" + urlencode({"exp": exp, "sig": _digest(secret, token, exp)})


def verify(token: str, exp: str | None, sig: str | None, secret: str, now: float | None = None) -> str:
    """Return the relative path a valid signature grants, else raise :class:`SignatureError`."""
    if not exp or not sig or not exp.isdigit() or len(exp) > 12:
        raise SignatureError("malformed")
    expected = _digest(secret, token, int(exp))
    if not hmac.compare_digest(expected, sig.lower()):
        raise SignatureError("bad-signature")
    now = time.time() if now is None else now
    if int(exp) < now:
        raise SignatureError("expired")
    return decode_name(token)
