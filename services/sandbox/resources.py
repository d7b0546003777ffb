"""The files behind ``data.imageUrl``: short-lived signed links, like the CDN links Miro redirects to.

``GET /v2/boards/{b}/resources/images/{rid}`` (token needed, in ``api.py``) hands out
``/resources/{b}/{rid}?expires=&signature=``, which serves the stored bytes with their stored
content type to anyone holding the link, for ``RESOURCE_URL_TTL`` seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import quote

from flask import Blueprint, Response, current_app, request

RESOURCE_URL_TTL = 60
"""Seconds a resource link stays valid (Miro: "This URL is valid for 60 seconds")."""

bp = Blueprint("miro_files", __name__)


def _signature(secret: bytes, board_id: str, resource_id: str, expires: int) -> str:
    return hmac.new(secret, f"{board_id}\n{resource_id}\n{expires}".encode(), hashlib.sha256).hexdigest()


def signed_url(base: str, secret: bytes, board_id: str, resource_id: str, now: float | None = None) -> str:
    expires = int(now if now is not None else time.time()) + RESOURCE_URL_TTL
    sig = _signature(secret, board_id, resource_id, expires)
    return f"{base}/resources/{quote(board_id, safe='')}/{resource_id}?expires={expires}&signature={sig}"


def signature_ok(secret: bytes, board_id: str, resource_id: str, expires: str, signature: str) -> bool:
    if not expires.isdigit() or int(expires) < time.time():
        return False
    return hmac.compare_digest(_signature(secret, board_id, resource_id, int(expires)), signature)


@bp.get("/resources/<board_id>/<resource_id>")
def resource_file(board_id: str, resource_id: str):
    sb = current_app.extensions["sandbox"]
    ok = signature_ok(sb.secret, board_id, resource_id, request.args.get("expires", ""), request.args.get("signature", ""))
    item = sb.store.by_resource(board_id, resource_id) if sb.store.has_board(board_id) else None
    if not ok or item is None or item.sha256 is None:
        return Response("Forbidden: this link is invalid or expired\n", status=403, mimetype="text/plain")
    return Response(sb.store.blob(item.sha256), content_type=item.content_type)
